/* The metrics and heartbeats of the time and history parts (jobbridge/time_metrics.h): the
 * retention loop and the ScheduleTrigger's thread register with the health registry while they
 * run and leave it when stopped, and what they did shows in the process's metrics registry
 * (rendered as a scrape renders it); lifecycle events are counted as their statements write
 * them. Real threads over recording stores (the database parts are tested by
 * tests/integration/test_metrics_more.py). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobbridge/health.h"
#include "jobbridge/lifecycle.h"
#include "jobbridge/metrics.h"
#include "jobbridge/time_metrics.h"

/* The value of the series whose exposition line starts with `series` ("name{labels}"), or -1
 * when the scrape has no such line. */
static double scraped(const char *series) {
  size_t len = 0;
  char *text = jb_metrics_render(jb_metrics_global(), &len);
  cr_assert_not_null(text);
  double v = -1;
  size_t n = strlen(series);
  for (char *line = text; line != NULL && *line; line = strchr(line, '\n')) {
    if (*line == '\n') line++;
    if (strncmp(line, series, n) == 0 && line[n] == ' ') {
      v = strtod(line + n + 1, NULL);
      break;
    }
  }
  free(text);
  return v;
}

static json_int_t live_threads(bool *ok) {
  json_t *doc = NULL;
  *ok = jb_health_live(&doc);
  json_int_t n = json_integer_value(json_object_get(doc, "threads"));
  json_decref(doc);
  return n;
}

static jb_config *load(const char *text) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  return cfg;
}

/* ---- retention ---- */

typedef struct prunes {
  int calls;
} prunes;

/* Every pass deletes 5 COMPLETED jobs with 10 attempts and 1 outbox row (a short batch). */
static jb_err p_prune(void *self, jb_job_status s, int64_t older, int batch, jb_prune_counts *c,
                      uint64_t *jobs, jb_error *e) {
  (void)older, (void)batch, (void)e;
  ((prunes *)self)->calls++;
  *jobs = 0;
  if (s != JB_STATUS_COMPLETED) return JB_OK;
  c->completed += 5, c->attempts += 10, c->outbox += 1;
  *jobs = 5;
  return JB_OK;
}

static jb_err p_lead(void *self, bool *leader, jb_error *e) {
  (void)self, (void)e;
  *leader = true;
  return JB_OK;
}

static const jb_retention_store_ops prune_ops = {.try_lead = p_lead, .prune = p_prune};

Test(time_metrics, the_retention_loop_beats_and_its_totals_are_scraped) {
  jb_config *cfg = load(
      "{\"retention\": {\"completed\": \"1s\", \"interval_s\": 1, "
      "\"vacuum\": false}}");
  prunes p = {0};
  jb_retainer *r = NULL;
  jb_error e;
  cr_assert_eq(jb_retainer_new((jb_retention_store){&prune_ops, &p}, cfg, &r, &e), JB_OK, "%s",
               e.msg);
  bool ok;
  cr_assert_eq(live_threads(&ok), 0);
  cr_assert_eq(jb_retainer_start(r, &e), JB_OK, "%s", e.msg);
  const jb_retention_stats *st = jb_retainer_stats(r);
  for (int i = 0; i < 600 && atomic_load(&st->runs) < 2; i++) usleep(50 * 1000);
  cr_assert_geq(atomic_load(&st->runs), 2, "two passes in 30 s");
  cr_assert_eq(live_threads(&ok), 1, "the retention thread is watched");
  cr_assert(ok, "and alive");
  uint64_t runs = atomic_load(&st->runs);
  double jobs = scraped("jobbridge_retention_pruned_jobs_total{status=\"COMPLETED\"}");
  cr_assert_geq(jobs, 5.0 * (double)runs);
  cr_assert_eq(scraped("jobbridge_retention_pruned_jobs_total{status=\"FAILED\"}"), 0);
  cr_assert_eq(scraped("jobbridge_retention_pruned_attempts_total"), 2 * jobs);
  cr_assert_eq(scraped("jobbridge_retention_pruned_outbox_total"), jobs / 5);
  cr_assert_geq(scraped("jobbridge_retention_runs_total"), (double)runs);
  cr_assert_eq(scraped("jobbridge_retention_errors_total"), 0);
  cr_assert_eq(scraped("jobbridge_retention_leader"), 1);
  jb_retainer_stop(r);
  cr_assert_eq(live_threads(&ok), 0, "a stopped loop is no longer watched");
  cr_assert_not(atomic_load(&st->leading));
  jb_retainer_free(r);
  jb_config_free(cfg);
}

/* ---- schedules ---- */

typedef struct made {
  atomic_int calls;
  bool duplicate; /* answer every firing as made by another instance */
} made;

static jb_err c_create(void *self, const jb_job_request *reqs, size_t n, jb_create_outcome *out,
                       jb_error *e) {
  (void)reqs, (void)e;
  made *m = self;
  atomic_fetch_add(&m->calls, 1);
  for (size_t i = 0; i < n; i++)
    out[i] = (jb_create_outcome){.status = m->duplicate ? JB_CREATE_DUPLICATE : JB_CREATE_CREATED,
                                 .id = "0190a0b0-0000-7000-8000-000000000001"};
  return JB_OK;
}

static const jb_job_creator_ops creator_ops = {.create_jobs = c_create};

static jb_err s_last(void *self, const char *name, int64_t *out, bool *found, jb_error *e) {
  (void)name, (void)e;
  int64_t *last = self;
  *found = *last > 0;
  *out = *last;
  return JB_OK;
}

static jb_err s_record(void *self, const char *name, int64_t fire, jb_error *e) {
  (void)name, (void)e;
  *(int64_t *)self = fire;
  return JB_OK;
}

static const jb_schedule_store_ops store_ops = {s_last, s_record};

Test(time_metrics, the_schedule_thread_beats_and_its_firings_are_scraped) {
  jb_config *cfg = load(
      "{\"job_types\": {\"tick\": {\"handler\": \"noop\"}},"
      " \"schedules\": [{\"name\": \"every-second\", \"cron\": \"* * * * * *\","
      " \"job_type\": \"tick\", \"misfire\": \"once\"}]}");
  made m = {0};
  /* The last firing recorded 30 s ago: 29 or so firings were missed, one is caught up. */
  int64_t last = jb_time_now() / 1000000 - 30, was = last; /* last: the store's, recorded */
  jb_schedule_trigger *t = NULL;
  jb_error e;
  cr_assert_eq(jb_schedule_trigger_new(cfg, (jb_job_creator){&creator_ops, &m},
                                       (jb_schedule_store){&store_ops, &last}, &t, &e),
               JB_OK, "%s", e.msg);
  jb_job_trigger port = jb_schedule_trigger_port(t);
  bool ok;
  cr_assert_eq(port.ops->start(port.self, &e), JB_OK, "%s", e.msg);
  for (int i = 0; i < 600 && atomic_load(&m.calls) < 3; i++) usleep(50 * 1000);
  cr_assert_geq(atomic_load(&m.calls), 3, "a catch-up and two firings in 30 s");
  cr_assert_eq(live_threads(&ok), 1, "the schedule thread is watched");
  cr_assert(ok);
  double on_time =
      scraped("jobbridge_schedule_firings_total{schedule=\"every-second\",kind=\"on_time\"}");
  double catch_up =
      scraped("jobbridge_schedule_firings_total{schedule=\"every-second\",kind=\"catch_up\"}");
  double created = scraped("jobbridge_schedule_jobs_created_total{schedule=\"every-second\"}");
  double missed = scraped("jobbridge_schedule_misfires_total{schedule=\"every-second\"}");
  double fired_at =
      scraped("jobbridge_schedule_last_fire_timestamp_seconds{schedule=\"every-second\"}");
  port.ops->stop(port.self);
  cr_assert_eq(live_threads(&ok), 0, "a stopped trigger is no longer watched");
  cr_assert_eq(catch_up, 1, "policy once: one catch-up job");
  cr_assert_geq(missed, 28);
  cr_assert_leq(missed, 33);
  cr_assert_geq(on_time, 1);
  cr_assert_eq(created, on_time + catch_up, "every firing created its job here");
  cr_assert_geq(fired_at, (double)(was + 29), "the gauge holds the last firing");
  cr_assert_leq(fired_at, (double)last, "no later than the last recorded");
  cr_assert_eq(scraped("jobbridge_schedule_errors_total{schedule=\"every-second\",error="
                       "\"database\"}"),
               -1, "no error series before an error");
  jb_schedule_trigger_free(t);
  jb_config_free(cfg);
}

Test(time_metrics, a_firing_another_instance_made_is_not_counted_as_created_here) {
  jb_schedule_metrics_seen("s", 1700000000);
  cr_assert_eq(scraped("jobbridge_schedule_last_fire_timestamp_seconds{schedule=\"s\"}"),
               1700000000);
  jb_schedule_metrics_fired("s", 1700000060, JB_FIRE_ON_TIME, false);
  jb_schedule_metrics_fired("s", 1700000030, JB_FIRE_CATCH_UP, true);
  cr_assert_eq(scraped("jobbridge_schedule_firings_total{schedule=\"s\",kind=\"on_time\"}"), 1);
  cr_assert_eq(scraped("jobbridge_schedule_jobs_created_total{schedule=\"s\"}"), 1);
  cr_assert_eq(scraped("jobbridge_schedule_last_fire_timestamp_seconds{schedule=\"s\"}"),
               1700000060, "an older catch-up does not move the gauge back");
  jb_schedule_metrics_error("s", true);
  cr_assert_eq(scraped("jobbridge_schedule_errors_total{schedule=\"s\",error=\"refused\"}"), 1);
}

/* ---- lifecycle events ---- */

Test(time_metrics, lifecycle_events_are_counted_as_written) {
  jb_lifecycle_metrics_register();
  cr_assert_eq(scraped("jobbridge_lifecycle_events_total{event=\"job.created\"}"), 0);
  cr_assert_eq(scraped("jobbridge_lifecycle_events_total{event=\"job.started\"}"), 0);
  /* Created: both bits; created and handed to a worker: both events; a duplicate: none; no
   * bits: none. */
  jb_new_job jobs[4] = {{.events = JB_EVENT_CREATED | JB_EVENT_STARTED},
                        {.events = JB_EVENT_CREATED | JB_EVENT_STARTED, .run_by = "w1"},
                        {.events = JB_EVENT_CREATED, .run_by = "w1"},
                        {.events = 0}};
  jb_create_outcome out[4] = {{.status = JB_CREATE_CREATED},
                              {.status = JB_CREATE_CREATED},
                              {.status = JB_CREATE_DUPLICATE},
                              {.status = JB_CREATE_CREATED}};
  jb_lifecycle_metrics_enqueued(jobs, 4, out);
  cr_assert_eq(scraped("jobbridge_lifecycle_events_total{event=\"job.created\"}"), 2);
  cr_assert_eq(scraped("jobbridge_lifecycle_events_total{event=\"job.started\"}"), 1);
  /* Claims: only the types asking for job.started. */
  jb_config *cfg = load(
      "{\"job_types\": {\"a\": {\"handler\": \"noop\", \"events\": "
      "[\"started\"]}, \"b\": {\"handler\": \"noop\"}}}");
  jb_job claimed[3] = {{.job_type = "a"}, {.job_type = "b"}, {.job_type = "a"}};
  jb_lifecycle_metrics_claimed(cfg, claimed, 3);
  cr_assert_eq(scraped("jobbridge_lifecycle_events_total{event=\"job.started\"}"), 3);
  jb_config_free(cfg);
  cfg = load("{\"events\": {\"lifecycle\": [\"started\"]}}");
  jb_lifecycle_metrics_claimed(cfg, claimed, 3);
  cr_assert_eq(scraped("jobbridge_lifecycle_events_total{event=\"job.started\"}"), 6,
               "events.lifecycle: every type");
  jb_config_free(cfg);
  cfg = load("{}");
  jb_lifecycle_metrics_claimed(cfg, claimed, 3);
  cr_assert_eq(scraped("jobbridge_lifecycle_events_total{event=\"job.started\"}"), 6, "none");
  jb_config_free(cfg);
}
