/* The metrics of schedules, retention and lifecycle events (jobbridge/time_metrics.h). */
#include "jobbridge/time_metrics.h"

#include <pthread.h>
#include <string.h>

#include "jobbridge/lifecycle.h"
#include "jobbridge/metrics.h"

typedef struct families {
  /* schedules */
  jb_metric_family *firings, *sched_created, *missed, *sched_errors, *last_fire;
  /* retention */
  jb_metric_family *pruned_jobs, *pruned_attempts, *pruned_outbox, *prune_runs, *prune_errors,
      *leader;
  /* lifecycle events */
  jb_metric_family *lifecycle;
} families;

static families fam;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void make_schedule_families(jb_metrics *m) {
  static const char *const sched[] = {"schedule", NULL};
  static const char *const sched_kind[] = {"schedule", "kind", NULL};
  static const char *const sched_error[] = {"schedule", "error", NULL};
  fam.firings = jb_metrics_counter(
      m, "jobbridge_schedule_firings_total",
      "Schedule firings this instance handled, by schedule and kind (on_time, catch_up: a missed "
      "firing created by the misfire policy), whether its job was created here or by another "
      "instance.",
      sched_kind);
  fam.sched_created = jb_metrics_counter(
      m, "jobbridge_schedule_jobs_created_total",
      "Jobs this instance created for schedule firings (a firing another instance made first is "
      "not counted), by schedule.",
      sched);
  fam.missed = jb_metrics_counter(
      m, "jobbridge_schedule_misfires_total",
      "Schedule firings missed (no instance ran, or the firing came too late), by schedule, "
      "whatever the misfire policy then created.",
      sched);
  fam.sched_errors = jb_metrics_counter(
      m, "jobbridge_schedule_errors_total",
      "Schedule firings that failed, by schedule and error: refused (the job was invalid; not "
      "retried) or database (retried).",
      sched_error);
  fam.last_fire = jb_metrics_gauge(
      m, "jobbridge_schedule_last_fire_timestamp_seconds",
      "The last firing of each schedule (its fire time, seconds since the epoch), as recorded by "
      "any instance.",
      sched);
}

static void make_retention_families(jb_metrics *m) {
  static const char *const status[] = {"status", NULL};
  fam.pruned_jobs = jb_metrics_counter(m, "jobbridge_retention_pruned_jobs_total",
                                       "Finished jobs deleted by retention, by status.", status);
  fam.pruned_attempts = jb_metrics_counter(m, "jobbridge_retention_pruned_attempts_total",
                                           "Attempt history rows deleted with their jobs.", NULL);
  fam.pruned_outbox = jb_metrics_counter(
      m, "jobbridge_retention_pruned_outbox_total",
      "Set-aside outbox rows deleted with their jobs (never one still to publish).", NULL);
  fam.prune_runs = jb_metrics_counter(m, "jobbridge_retention_runs_total",
                                      "Pruning passes completed while leading.", NULL);
  fam.prune_errors =
      jb_metrics_counter(m, "jobbridge_retention_errors_total",
                         "Pruning passes that failed (retried at the next interval).", NULL);
  fam.leader = jb_metrics_gauge(
      m, "jobbridge_retention_leader",
      "1 while this instance is the one that prunes (holds the retention lock), else 0.", NULL);
}

static void make_families(void) {
  jb_metrics *m = jb_metrics_global();
  static const char *const event[] = {"event", NULL};
  make_schedule_families(m);
  make_retention_families(m);
  fam.lifecycle = jb_metrics_counter(
      m, "jobbridge_lifecycle_events_total",
      "Opt-in lifecycle events written to the outbox, by event (job.created, job.started).", event);
}

static const families *get(void) {
  pthread_once(&once, make_families);
  return &fam;
}

/* ---- schedules ---- */

static const char *kind_name(jb_fire_kind kind) {
  return kind == JB_FIRE_CATCH_UP ? "catch_up" : kind == JB_FIRE_MANUAL ? "manual" : "on_time";
}

void jb_schedule_metrics_seen(const char *name, int64_t last_fire) {
  const families *f = get();
  jb_metric_get2(f->firings, name, "on_time");
  jb_metric_get2(f->firings, name, "catch_up");
  jb_metric_get1(f->sched_created, name);
  jb_metric_get1(f->missed, name);
  if (last_fire >= 0) jb_metric_set(jb_metric_get1(f->last_fire, name), (double)last_fire);
}

void jb_schedule_metrics_fired(const char *name, int64_t at, jb_fire_kind kind, bool created) {
  const families *f = get();
  jb_metric_inc(jb_metric_get2(f->firings, name, kind_name(kind)));
  if (created) jb_metric_inc(jb_metric_get1(f->sched_created, name));
  jb_metric *last = jb_metric_get1(f->last_fire, name);
  /* A catch-up of policy "all" fires the oldest first: the gauge only moves forward. */
  if (last != NULL && jb_metric_value(last) < (double)at) jb_metric_set(last, (double)at);
}

void jb_schedule_metrics_missed(const char *name, int64_t n) {
  if (n > 0) jb_metric_add(jb_metric_get1(get()->missed, name), (uint64_t)n);
}

void jb_schedule_metrics_error(const char *name, bool refused) {
  jb_metric_inc(jb_metric_get2(get()->sched_errors, name, refused ? "refused" : "database"));
}

/* ---- retention ---- */

static void collect_retention(void *arg) {
  const jb_retention_stats *s = arg;
  const families *f = get();
  jb_metric_set_total(jb_metric_get1(f->pruned_jobs, "COMPLETED"), atomic_load(&s->completed));
  jb_metric_set_total(jb_metric_get1(f->pruned_jobs, "FAILED"), atomic_load(&s->failed));
  jb_metric_set_total(jb_metric_get1(f->pruned_jobs, "DEAD_LETTER"), atomic_load(&s->dead_letter));
  jb_metric_set_total(jb_metric_get0(f->pruned_attempts), atomic_load(&s->attempts));
  jb_metric_set_total(jb_metric_get0(f->pruned_outbox), atomic_load(&s->outbox));
  jb_metric_set_total(jb_metric_get0(f->prune_runs), atomic_load(&s->runs));
  jb_metric_set_total(jb_metric_get0(f->prune_errors), atomic_load(&s->errors));
  jb_metric_set(jb_metric_get0(f->leader), atomic_load(&s->leading) ? 1 : 0);
}

void jb_retention_metrics_register(const jb_retention_stats *s) {
  get();
  collect_retention((void *)s); /* the series exist from the start, at 0 */
  jb_metrics_add_collector(jb_metrics_global(), collect_retention, (void *)s);
}

void jb_retention_metrics_unregister(const jb_retention_stats *s) {
  jb_metrics_remove_collector(jb_metrics_global(), collect_retention, (void *)s);
}

/* ---- lifecycle events ---- */

static jb_metric *created_series, *started_series;
static pthread_once_t lifecycle_once = PTHREAD_ONCE_INIT;

static void make_lifecycle_series(void) {
  const families *f = get();
  created_series = jb_metric_get1(f->lifecycle, "job.created");
  started_series = jb_metric_get1(f->lifecycle, "job.started");
}

void jb_lifecycle_metrics_register(void) {
  pthread_once(&lifecycle_once, make_lifecycle_series);
}

void jb_lifecycle_metrics_enqueued(const jb_new_job *jobs, size_t n, const jb_create_outcome *out) {
  uint64_t created = 0, started = 0;
  for (size_t i = 0; i < n; i++) {
    if (jobs[i].events == 0 || out[i].status != JB_CREATE_CREATED) continue;
    if (jobs[i].events & JB_EVENT_CREATED) created++;
    if ((jobs[i].events & JB_EVENT_STARTED) && jobs[i].run_by != NULL) started++;
  }
  if (created + started == 0) return;
  pthread_once(&lifecycle_once, make_lifecycle_series);
  jb_metric_add(created_series, created);
  jb_metric_add(started_series, started);
}

/* True when some job type (or every one) asks for job.started: no string compared when none
 * does, the common case. */
static bool any_started(const jb_config *cfg) {
  if (cfg->events.lifecycle_len > 0 && (jb_lifecycle_events(cfg, NULL) & JB_EVENT_STARTED))
    return true;
  for (size_t i = 0; i < cfg->job_types_len; i++)
    if (cfg->job_types[i].events_len > 0) return true;
  return false;
}

void jb_lifecycle_metrics_claimed(const jb_config *cfg, const jb_job *jobs, size_t n) {
  if (n == 0 || !any_started(cfg)) return;
  uint64_t started = 0;
  bool all = (jb_lifecycle_events(cfg, NULL) & JB_EVENT_STARTED) != 0;
  for (size_t i = 0; i < n; i++)
    if (all || (jb_lifecycle_events(cfg, jobs[i].job_type) & JB_EVENT_STARTED)) started++;
  if (started == 0) return;
  pthread_once(&lifecycle_once, make_lifecycle_series);
  jb_metric_add(started_series, started);
}
