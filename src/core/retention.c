/* Retention (jobbridge/retention.h): durations, the config check, one pruning pass and the
 * pruning loop of `jobbridge run`. */
#include "jobbridge/retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/health.h"
#include "jobbridge/log.h"
#include "jobbridge/stop.h"
#include "jobbridge/time_metrics.h"

#define MAX_DURATION_S (100LL * 366 * 86400)

jb_err jb_duration_parse(const char *s, int64_t *seconds, jb_error *e) {
  if (s == NULL || *s == '\0')
    return jb_fail(e, JB_ERR_INVALID, "is empty (expected a duration such as \"7d\" or \"12h\")");
  const char *p = s;
  int64_t n = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    n = n * 10 + (*p - '0');
    if (n > MAX_DURATION_S) return jb_fail(e, JB_ERR_INVALID, "\"%s\" is longer than 100 years", s);
  }
  if (p == s)
    return jb_fail(e, JB_ERR_INVALID,
                   "\"%s\" is not a duration: it must start with a whole number (\"7d\", \"12h\", "
                   "\"30m\", \"90s\")",
                   s);
  int64_t unit = 0;
  if (p[0] != '\0' && p[1] == '\0')
    unit = p[0] == 's' ? 1 : p[0] == 'm' ? 60 : p[0] == 'h' ? 3600 : p[0] == 'd' ? 86400 : 0;
  if (unit == 0)
    return jb_fail(
        e, JB_ERR_INVALID,
        "\"%s\" is not a duration: the number must be followed by one unit, s, m, h or d", s);
  if (n > MAX_DURATION_S / unit)
    return jb_fail(e, JB_ERR_INVALID, "\"%s\" is longer than 100 years", s);
  *seconds = n * unit;
  return JB_OK;
}

static jb_err parse_key(const char *name, const char *key, const char *text, int64_t *out,
                        jb_error *e) {
  *out = -1;
  if (text == NULL) return JB_OK;
  jb_error pe;
  if (jb_duration_parse(text, out, &pe) != JB_OK)
    return jb_fail(e, JB_ERR_CONFIG, "%s: %s: %s", name, key, pe.msg);
  return JB_OK;
}

static jb_err check_events(const char *name, const char *key, char **const v, size_t n,
                           jb_error *e) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], "created") != 0 && strcmp(v[i], "started") != 0)
      return jb_fail(e, JB_ERR_CONFIG,
                     "%s: %s[%zu]: \"%s\" is not a lifecycle event (\"created\" or \"started\"; "
                     "the outcome events are always sent)",
                     name, key, i, v[i]);
  return JB_OK;
}

jb_err jb_retention_config_check(const char *name, jb_config *cfg, jb_error *e) {
  jb_retention_cfg *r = &cfg->retention;
  jb_err rc = parse_key(name, "retention.completed", r->completed, &r->completed_s, e);
  if (rc == JB_OK) rc = parse_key(name, "retention.failed", r->failed, &r->failed_s, e);
  if (rc == JB_OK)
    rc = parse_key(name, "retention.dead_letter", r->dead_letter, &r->dead_letter_s, e);
  if (rc == JB_OK)
    rc =
        check_events(name, "events.lifecycle", cfg->events.lifecycle, cfg->events.lifecycle_len, e);
  for (size_t i = 0; rc == JB_OK && i < cfg->job_types_len; i++) {
    char key[160];
    snprintf(key, sizeof key, "job_types.%s.events", cfg->job_types[i].name);
    rc = check_events(name, key, cfg->job_types[i].events, cfg->job_types[i].events_len, e);
  }
  return rc;
}

bool jb_retention_enabled(const jb_retention_cfg *r) {
  return r->completed_s >= 0 || r->failed_s >= 0 || r->dead_letter_s >= 0;
}

/* A VACUUM may take long on a big table without being wedged: the loop's liveness deadline is
 * moved out this far before one. */
#define VACUUM_ALLOW_MS (60LL * 60 * 1000)

/* jb_retention_run, beating `alive` (may be NULL) after each batch. */
static jb_err run_pass(jb_retention_store store, const jb_retention_cfg *r, bool dry_run,
                       atomic_bool *stop, jb_health_slot *alive, jb_prune_counts *c, jb_error *e) {
  const struct {
    jb_job_status status;
    int64_t keep_s;
  } kinds[] = {{JB_STATUS_COMPLETED, r->completed_s},
               {JB_STATUS_FAILED, r->failed_s},
               {JB_STATUS_DEAD_LETTER, r->dead_letter_s}};
  uint64_t deleted = 0;
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    if (kinds[k].keep_s < 0) continue;
    if (dry_run) {
      jb_err rc = store.ops->count(store.self, kinds[k].status, kinds[k].keep_s, c, e);
      if (rc != JB_OK) return rc;
      continue;
    }
    for (;;) { /* short transactions: a batch each */
      if (stop != NULL && atomic_load(stop)) return JB_OK;
      uint64_t n = 0;
      jb_err rc =
          store.ops->prune(store.self, kinds[k].status, kinds[k].keep_s, r->batch, c, &n, e);
      if (rc != JB_OK) return rc;
      deleted += n;
      jb_health_beat(alive);
      if (n < (uint64_t)r->batch) break;
    }
  }
  if (!dry_run && deleted > 0 && r->vacuum && store.ops->vacuum != NULL) {
    jb_health_busy(alive, VACUUM_ALLOW_MS);
    return store.ops->vacuum(store.self, e);
  }
  return JB_OK;
}

jb_err jb_retention_run(jb_retention_store store, const jb_retention_cfg *r, bool dry_run,
                        atomic_bool *stop, jb_prune_counts *c, jb_error *e) {
  return run_pass(store, r, dry_run, stop, NULL, c, e);
}

/* ---- the pruning loop ---- */

struct jb_retainer {
  jb_retention_store store;
  const jb_config *cfg;
  jb_stop stop;
  pthread_t thread;
  bool started;
  bool leader;
  jb_retention_stats stats;
  jb_health_slot *alive; /* the loop's heartbeat (health.h); owned by the thread */
};

static void add_stats(jb_retention_stats *s, const jb_prune_counts *c) {
  atomic_fetch_add(&s->completed, c->completed);
  atomic_fetch_add(&s->failed, c->failed);
  atomic_fetch_add(&s->dead_letter, c->dead_letter);
  atomic_fetch_add(&s->attempts, c->attempts);
  atomic_fetch_add(&s->outbox, c->outbox);
}

/* One tick: lead if nobody does, then prune. Errors are logged and the next tick tries again. */
static void tick(jb_retainer *r) {
  jb_error e;
  jb_err rc = JB_OK;
  if (!r->leader) {
    rc = r->store.ops->try_lead(r->store.self, &r->leader, &e);
    if (rc == JB_OK && r->leader)
      jb_log(JB_LOG_INFO, "this instance prunes finished jobs (retention)", JB_LOG_END);
    atomic_store(&r->stats.leading, r->leader);
  }
  if (rc != JB_OK || !r->leader) goto out;
  jb_prune_counts c = {0};
  rc = run_pass(r->store, &r->cfg->retention, false, &r->stop.requested, r->alive, &c, &e);
  add_stats(&r->stats, &c); /* what committed before an error counts too */
  if (c.completed + c.failed + c.dead_letter > 0)
    jb_log(JB_LOG_INFO, "pruned finished jobs", JB_LOG_U64("completed", c.completed),
           JB_LOG_U64("failed", c.failed), JB_LOG_U64("dead_letter", c.dead_letter),
           JB_LOG_U64("attempts", c.attempts), JB_LOG_U64("outbox", c.outbox), JB_LOG_END);
  if (rc == JB_OK) atomic_fetch_add(&r->stats.runs, 1);
out:
  if (rc != JB_OK) {
    atomic_fetch_add(&r->stats.errors, 1);
    r->leader = false; /* a lost connection lost the lock too; ask again */
    atomic_store(&r->stats.leading, false);
    jb_log(JB_LOG_WARN, "pruning failed; trying again at the next interval", "error", e.msg,
           JB_LOG_END);
  }
}

static void *loop(void *arg) {
  jb_retainer *r = arg;
  int64_t interval_ms = (int64_t)r->cfg->retention.interval_s * 1000;
  /* It wakes every interval, and beats between the batches of a pass. */
  r->alive = jb_health_thread("retention", interval_ms + 60000);
  do {
    jb_health_beat(r->alive);
    tick(r);
    jb_health_beat(r->alive);
  } while (!jb_stop_wait(&r->stop, (long)interval_ms));
  jb_health_remove(r->alive);
  r->alive = NULL;
  return NULL;
}

jb_err jb_retainer_new(jb_retention_store store, const jb_config *cfg, jb_retainer **out,
                       jb_error *e) {
  jb_retainer *r = calloc(1, sizeof *r);
  if (r == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for the retention loop");
  r->store = store;
  r->cfg = cfg;
  r->stop.fd = -1;
  jb_err rc = jb_stop_init(&r->stop, e);
  if (rc != JB_OK) {
    free(r);
    return rc;
  }
  *out = r;
  return JB_OK;
}

jb_err jb_retainer_start(jb_retainer *r, jb_error *e) {
  int err = pthread_create(&r->thread, NULL, loop, r);
  if (err != 0)
    return jb_fail(e, JB_ERR_IO, "cannot start the retention thread: %s", strerror(err));
  r->started = true;
  jb_retention_metrics_register(&r->stats);
  return JB_OK;
}

void jb_retainer_stop(jb_retainer *r) {
  if (r == NULL || !r->started) return;
  jb_retention_metrics_unregister(&r->stats);
  jb_stop_request(&r->stop);
  pthread_join(r->thread, NULL);
  r->started = false;
  atomic_store(&r->stats.leading, false);
}

void jb_retainer_free(jb_retainer *r) {
  if (r == NULL) return;
  jb_retainer_stop(r);
  jb_stop_destroy(&r->stop);
  free(r);
}

const jb_retention_stats *jb_retainer_stats(const jb_retainer *r) {
  return &r->stats;
}
