/* Retention's pure parts: durations, the config check, one pruning pass over a recording
 * RetentionStore (batches until a short one, the stop flag, dry runs, the vacuum), and which
 * jobs emit lifecycle events. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/lifecycle.h"
#include "jobbridge/retention.h"

Test(duration, parses_each_unit) {
  struct {
    const char *s;
    int64_t want;
  } ok[] = {{"0s", 0},      {"3s", 3},           {"90m", 5400},
            {"12h", 43200}, {"7d", 7 * 86400LL}, {"36500d", 36500LL * 86400}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t got = -2;
    jb_error e;
    cr_assert_eq(jb_duration_parse(ok[i].s, &got, &e), JB_OK, "%s: %s", ok[i].s, e.msg);
    cr_assert_eq(got, ok[i].want, "%s", ok[i].s);
  }
}

Test(duration, refuses_with_a_reason) {
  struct {
    const char *s, *words;
  } bad[] = {{"", "is empty"},
             {"7", "followed by one unit"},
             {"7w", "followed by one unit"},
             {"7dd", "followed by one unit"},
             {"-1d", "whole number"},
             {" 1d", "whole number"},
             {"1.5h", "followed by one unit"},
             {"36601d", "longer than 100 years"},
             {"99999999999999999999s", "longer than 100 years"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t got = 0;
    jb_error e;
    cr_assert_eq(jb_duration_parse(bad[i].s, &got, &e), JB_ERR_INVALID, "accepted \"%s\"",
                 bad[i].s);
    cr_assert(strstr(e.msg, bad[i].words) != NULL, "\"%s\": %s", bad[i].s, e.msg);
  }
}

static jb_config *load(const char *text, jb_err want, const char *words) {
  jb_config *cfg = NULL;
  jb_error e;
  jb_err rc = jb_config_parse(text, "t.json", &cfg, &e);
  cr_assert_eq(rc, want, "%s: %s", text, rc == JB_OK ? "accepted" : e.msg);
  if (words != NULL) cr_assert(strstr(e.msg, words) != NULL, "%s", e.msg);
  return cfg;
}

Test(retention_config, defaults_keep_forever) {
  jb_config *cfg = load("{}", JB_OK, NULL);
  cr_assert_eq(cfg->retention.completed_s, -1);
  cr_assert_eq(cfg->retention.failed_s, -1);
  cr_assert_eq(cfg->retention.dead_letter_s, -1);
  cr_assert_eq(cfg->retention.interval_s, 60);
  cr_assert(cfg->retention.vacuum);
  cr_assert_not(jb_retention_enabled(&cfg->retention));
  jb_config_free(cfg);
  cfg = load("{\"retention\": {\"completed\": \"7d\", \"failed\": null, \"dead_letter\": \"3s\"}}",
             JB_OK, NULL);
  cr_assert_eq(cfg->retention.completed_s, 7 * 86400);
  cr_assert_eq(cfg->retention.failed_s, -1);
  cr_assert_eq(cfg->retention.dead_letter_s, 3);
  cr_assert(jb_retention_enabled(&cfg->retention));
  jb_config_free(cfg);
}

Test(retention_config, errors_name_the_key) {
  load("{\"retention\": {\"dead_letter\": \"2 days\"}}", JB_ERR_CONFIG,
       "t.json: retention.dead_letter: \"2 days\" is not a duration");
  load("{\"retention\": {\"completed\": 7}}", JB_ERR_CONFIG, "retention.completed");
  load("{\"retention\": {\"interval_s\": 0}}", JB_ERR_CONFIG, "retention.interval_s");
  load("{\"events\": {\"lifecycle\": [\"created\", \"done\"]}}", JB_ERR_CONFIG,
       "events.lifecycle[1]: \"done\" is not a lifecycle event");
  load("{\"job_types\": {\"t\": {\"handler\": \"noop\", \"events\": [\"Started\"]}}}",
       JB_ERR_CONFIG, "job_types.t.events[0]");
}

Test(lifecycle, global_and_per_type) {
  jb_config *cfg = load(
      "{\"events\": {\"lifecycle\": [\"created\"]}, \"job_types\": {"
      "\"a\": {\"handler\": \"noop\", \"events\": [\"started\"]}, \"b\": {\"handler\": \"noop\"}}}",
      JB_OK, NULL);
  cr_assert_eq(jb_lifecycle_events(cfg, "a"), JB_EVENT_CREATED | JB_EVENT_STARTED);
  cr_assert_eq(jb_lifecycle_events(cfg, "b"), JB_EVENT_CREATED);
  cr_assert_eq(jb_lifecycle_events(cfg, "unknown"), JB_EVENT_CREATED);
  bool all;
  const char **types;
  size_t n;
  jb_lifecycle_started_types(cfg, &all, &types, &n);
  cr_assert_not(all);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(types[0], "a");
  free(types);
  jb_config_free(cfg);
  cfg = load("{\"events\": {\"lifecycle\": [\"started\"]}}", JB_OK, NULL);
  jb_lifecycle_started_types(cfg, &all, &types, &n);
  cr_assert(all);
  free(types);
  cr_assert_eq(jb_lifecycle_events(cfg, "x"), JB_EVENT_STARTED);
  jb_config_free(cfg);
  cfg = load("{}", JB_OK, NULL);
  cr_assert_eq(jb_lifecycle_events(cfg, "x"), 0);
  jb_config_free(cfg);
}

/* A store with `left[status]` prunable jobs that records each call. */
typedef struct rec {
  uint64_t left[JB_STATUS_COUNT];
  int64_t older[JB_STATUS_COUNT];
  int prunes, counts, vacuums;
  int fail_at; /* the prune call that fails (1-based); 0: none */
  atomic_bool *stop_after_first;
} rec;

static jb_err r_prune(void *self, jb_job_status s, int64_t older, int batch, jb_prune_counts *c,
                      uint64_t *jobs, jb_error *e) {
  rec *r = self;
  if (++r->prunes == r->fail_at) return jb_fail(e, JB_ERR_DB, "connection lost");
  uint64_t n = r->left[s] < (uint64_t)batch ? r->left[s] : (uint64_t)batch;
  r->left[s] -= n;
  r->older[s] = older;
  if (s == JB_STATUS_COMPLETED) c->completed += n;
  if (s == JB_STATUS_FAILED) c->failed += n;
  if (s == JB_STATUS_DEAD_LETTER) c->dead_letter += n;
  c->attempts += 2 * n;
  *jobs = n;
  if (r->stop_after_first != NULL) atomic_store(r->stop_after_first, true);
  return JB_OK;
}

static jb_err r_count(void *self, jb_job_status s, int64_t older, jb_prune_counts *c, jb_error *e) {
  (void)e;
  rec *r = self;
  r->counts++;
  r->older[s] = older;
  if (s == JB_STATUS_COMPLETED) c->completed += r->left[s];
  return JB_OK;
}

static jb_err r_vacuum(void *self, jb_error *e) {
  (void)e;
  ((rec *)self)->vacuums++;
  return JB_OK;
}

static jb_err r_lead(void *self, bool *leader, jb_error *e) {
  (void)self, (void)e;
  *leader = true;
  return JB_OK;
}

static const jb_retention_store_ops rec_ops = {
    .try_lead = r_lead, .prune = r_prune, .vacuum = r_vacuum, .count = r_count};

static jb_retention_cfg policy(int64_t completed, int64_t failed, int64_t dead, int batch) {
  return (jb_retention_cfg){.completed_s = completed,
                            .failed_s = failed,
                            .dead_letter_s = dead,
                            .batch = batch,
                            .vacuum = true};
}

Test(retention_run, batches_until_a_short_one) {
  rec r = {.left = {[JB_STATUS_COMPLETED] = 2500, [JB_STATUS_DEAD_LETTER] = 1000}};
  jb_retention_cfg p = policy(3, -1, 60, 1000);
  jb_prune_counts c = {0};
  jb_error e;
  cr_assert_eq(jb_retention_run((jb_retention_store){&rec_ops, &r}, &p, false, NULL, &c, &e),
               JB_OK);
  /* completed: 1000, 1000, 500 (short: done); failed: kept forever, never asked;
   * dead letters: 1000, then 0 (short). */
  cr_assert_eq(r.prunes, 5);
  cr_assert_eq(c.completed, 2500);
  cr_assert_eq(c.failed, 0);
  cr_assert_eq(c.dead_letter, 1000);
  cr_assert_eq(c.attempts, 7000);
  cr_assert_eq(r.older[JB_STATUS_COMPLETED], 3);
  cr_assert_eq(r.older[JB_STATUS_DEAD_LETTER], 60);
  cr_assert_eq(r.vacuums, 1);
  cr_assert_eq(r.counts, 0);
}

Test(retention_run, no_vacuum_when_nothing_was_deleted_or_when_off) {
  rec r = {0};
  jb_retention_cfg p = policy(3, 3, 3, 10);
  jb_prune_counts c = {0};
  jb_error e;
  cr_assert_eq(jb_retention_run((jb_retention_store){&rec_ops, &r}, &p, false, NULL, &c, &e),
               JB_OK);
  cr_assert_eq(r.prunes, 3);
  cr_assert_eq(r.vacuums, 0);
  r.left[JB_STATUS_FAILED] = 5;
  p.vacuum = false;
  cr_assert_eq(jb_retention_run((jb_retention_store){&rec_ops, &r}, &p, false, NULL, &c, &e),
               JB_OK);
  cr_assert_eq(c.failed, 5);
  cr_assert_eq(r.vacuums, 0);
}

Test(retention_run, dry_run_only_counts) {
  rec r = {.left = {[JB_STATUS_COMPLETED] = 2500}};
  jb_retention_cfg p = policy(10, -1, -1, 1000);
  jb_prune_counts c = {0};
  jb_error e;
  cr_assert_eq(jb_retention_run((jb_retention_store){&rec_ops, &r}, &p, true, NULL, &c, &e), JB_OK);
  cr_assert_eq(r.prunes, 0);
  cr_assert_eq(r.counts, 1);
  cr_assert_eq(r.vacuums, 0);
  cr_assert_eq(c.completed, 2500);
  cr_assert_eq(r.left[JB_STATUS_COMPLETED], 2500);
}

Test(retention_run, stops_between_batches_and_reports_errors) {
  atomic_bool stop = false;
  rec r = {.left = {[JB_STATUS_COMPLETED] = 5000}, .stop_after_first = &stop};
  jb_retention_cfg p = policy(1, -1, -1, 1000);
  jb_prune_counts c = {0};
  jb_error e;
  cr_assert_eq(jb_retention_run((jb_retention_store){&rec_ops, &r}, &p, false, &stop, &c, &e),
               JB_OK);
  cr_assert_eq(r.prunes, 1);
  cr_assert_eq(c.completed, 1000);
  rec f = {.left = {[JB_STATUS_COMPLETED] = 5000}, .fail_at = 2};
  jb_prune_counts fc = {0};
  cr_assert_eq(jb_retention_run((jb_retention_store){&rec_ops, &f}, &p, false, NULL, &fc, &e),
               JB_ERR_DB);
  cr_assert_str_eq(e.msg, "connection lost");
  cr_assert_eq(fc.completed, 1000); /* the batch before the failure counts */
  cr_assert_eq(f.vacuums, 0);
}
