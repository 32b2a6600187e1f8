/* The ScheduleTrigger's thread (jobbridge/schedule.h): sleeps until the next firing of any
 * schedule, creates its job through the JobCreator (the dedupe key makes it one job across all
 * instances), records the firing, and applies the misfire policy to firings it could not make
 * on time: those missed while no instance ran (found at start from the recorded last firing),
 * and those more than LATE_S late (the database was down, the machine slept). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/health.h"
#include "jobbridge/log.h"
#include "jobbridge/schedule.h"
#include "jobbridge/stop.h"
#include "jobbridge/time_metrics.h"

#define LATE_S 60               /* a firing this late is a misfire, not an on-time firing */
#define MAX_ENUMERATE 1000000LL /* firings enumerated by one catch-up at most */

/* One schedule as the thread holds it: a copy of its config entry, compiled. */
typedef struct sched {
  jb_schedule_cfg cfg; /* owned copy */
  jb_cron cron;
  jb_tz *tz;
  int64_t next; /* the next firing; valid when has_next */
  bool has_next;
} sched;

typedef struct sched_list {
  sched *v;
  size_t n;
} sched_list;

struct jb_schedule_trigger {
  const jb_config *cfg; /* borrowed: registered job types */
  jb_job_creator creator;
  jb_schedule_store store;
  sched_list list;    /* the thread's (before start: the trigger's) */
  sched_list pending; /* a reload's, taken by the thread; guarded by mu */
  bool has_pending;
  pthread_mutex_t mu;
  pthread_t thread;
  bool running;
  jb_stop stop;
  uint64_t rng;
  jb_health_slot *alive; /* the thread's heartbeat (health.h); owned by the thread */
};

static void cfg_free(jb_schedule_cfg *c) {
  free(c->name), free(c->cron), free(c->timezone), free(c->job_type), free(c->queue);
  free(c->misfire);
  json_decref(c->payload);
  json_decref(c->metadata);
}

static void list_free(sched_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    cfg_free(&l->v[i].cfg);
    jb_tz_free(l->v[i].tz);
  }
  free(l->v);
  l->v = NULL, l->n = 0;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static jb_err cfg_copy(const jb_schedule_cfg *from, jb_schedule_cfg *to, jb_error *e) {
  *to = *from;
  to->name = dup_or_null(from->name), to->cron = dup_or_null(from->cron);
  to->timezone = dup_or_null(from->timezone), to->job_type = dup_or_null(from->job_type);
  to->queue = dup_or_null(from->queue), to->misfire = dup_or_null(from->misfire);
  to->payload = from->payload ? json_deep_copy(from->payload) : json_object();
  to->metadata = from->metadata ? json_deep_copy(from->metadata) : NULL;
  if (!to->name || !to->cron || !to->timezone || !to->job_type || !to->queue || !to->misfire ||
      !to->payload || (from->metadata && !to->metadata))
    return jb_fail(e, JB_ERR_NOMEM, "out of memory copying schedule \"%s\"", from->name);
  return JB_OK;
}

/* Copies and compiles cfg's schedules into *out (all or none). */
static jb_err list_build(const jb_config *cfg, sched_list *out, jb_error *e) {
  out->n = 0;
  out->v = calloc(cfg->schedules_len ? cfg->schedules_len : 1, sizeof *out->v);
  if (out->v == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory copying schedules");
  for (size_t i = 0; i < cfg->schedules_len; i++) {
    sched *s = &out->v[out->n++];
    jb_err rc = cfg_copy(&cfg->schedules[i], &s->cfg, e);
    if (rc == JB_OK) rc = jb_schedule_compile(&s->cfg, &s->cron, &s->tz, e);
    if (rc != JB_OK) {
      list_free(out);
      return rc;
    }
  }
  return JB_OK;
}

static double next_jitter(jb_schedule_trigger *t) {
  t->rng ^= t->rng << 13, t->rng ^= t->rng >> 7, t->rng ^= t->rng << 17; /* xorshift64 */
  return (double)(t->rng >> 11) / 9007199254740992.0;
}

static int64_t now_s(void) {
  return jb_time_now() / 1000000;
}

/* Creates the job of one firing and records it. False when the database failed (try again);
 * a job the service refuses (the request is at fault) is logged and counts as done. */
static bool fire(jb_schedule_trigger *t, sched *s, int64_t at, jb_fire_kind kind) {
  jb_error e;
  jb_create_outcome out;
  char when[40];
  jb_cron_format(NULL, at, when, sizeof when);
  jb_err rc = jb_schedule_fire(&s->cfg, &t->creator, at, kind, next_jitter(t), &out, &e);
  if (rc == JB_ERR_INVALID || rc == JB_ERR_UNREGISTERED || rc == JB_ERR_DB_REFUSED) {
    jb_schedule_metrics_error(s->cfg.name, true);
    jb_log(JB_LOG_ERROR, "schedule firing refused", "schedule", s->cfg.name, "fire_time", when,
           "error", e.msg, JB_LOG_END);
    return true;
  }
  if (rc != JB_OK) {
    jb_schedule_metrics_error(s->cfg.name, false);
    jb_log(JB_LOG_WARN, "schedule firing failed, retrying", "schedule", s->cfg.name, "fire_time",
           when, "error", e.msg, JB_LOG_END);
    return false;
  }
  jb_log(JB_LOG_DEBUG, "schedule fired", "schedule", s->cfg.name, "fire_time", when, "job_id",
         out.id, "duplicate", out.status == JB_CREATE_DUPLICATE ? "true" : "false", JB_LOG_END);
  jb_schedule_metrics_fired(s->cfg.name, at, kind, out.status == JB_CREATE_CREATED);
  if (t->store.ops->record_fire(t->store.self, s->cfg.name, at, &e) != JB_OK)
    jb_log(JB_LOG_WARN, "cannot record a schedule's firing", "schedule", s->cfg.name, "error",
           e.msg, JB_LOG_END);
  return true;
}

/* The misfire policy over the firings in (after, until]: skip creates nothing, once the job of
 * the latest, all those of the latest misfire_max. */
static void catch_up(jb_schedule_trigger *t, sched *s, int64_t after, int64_t until) {
  bool once = strcmp(s->cfg.misfire, "once") == 0, all = strcmp(s->cfg.misfire, "all") == 0;
  size_t keep = all ? (size_t)s->cfg.misfire_max : 1;
  int64_t *ring = calloc(keep, sizeof *ring);
  int64_t f = after, count = 0;
  while (ring != NULL && count < MAX_ENUMERATE && jb_cron_next(&s->cron, s->tz, f, &f) &&
         f <= until)
    ring[count++ % (int64_t)keep] = f;
  int64_t first = count > (int64_t)keep ? count - (int64_t)keep : 0, created = 0;
  for (int64_t i = first; (once || all) && i < count && !jb_stop_requested(&t->stop); i++) {
    int64_t at = ring[i % (int64_t)keep];
    jb_health_beat(t->alive);
    while (!fire(t, s, at, JB_FIRE_CATCH_UP)) {
      if (jb_stop_wait(&t->stop, 1000)) break;
      jb_health_beat(t->alive);
    }
    created++;
  }
  free(ring);
  jb_schedule_metrics_missed(s->cfg.name, count);
  char from[40], to[40];
  jb_log(count ? JB_LOG_INFO : JB_LOG_DEBUG, "schedule catch-up", "schedule", s->cfg.name, "policy",
         s->cfg.misfire, JB_LOG_I64("missed", count), JB_LOG_I64("created", created), "after",
         jb_cron_format(NULL, after, from, sizeof from), "until",
         jb_cron_format(NULL, until, to, sizeof to), JB_LOG_END);
  if (t->store.ops->record_fire(t->store.self, s->cfg.name, until, &(jb_error){0}) != JB_OK)
    jb_log(JB_LOG_WARN, "cannot record a schedule's catch-up", "schedule", s->cfg.name, JB_LOG_END);
}

static void set_next(sched *s, int64_t after) {
  s->has_next = jb_cron_next(&s->cron, s->tz, after, &s->next);
}

/* At start: each enabled schedule's firings since its last recorded one are missed. */
static void start_schedules(jb_schedule_trigger *t) {
  int64_t now = now_s();
  for (size_t i = 0; i < t->list.n && !jb_stop_requested(&t->stop); i++) {
    sched *s = &t->list.v[i];
    set_next(s, now);
    if (!s->cfg.enabled) continue;
    jb_error e;
    int64_t last;
    bool found = false;
    while (t->store.ops->last_fire(t->store.self, s->cfg.name, &last, &found, &e) != JB_OK) {
      jb_log(JB_LOG_WARN, "cannot read a schedule's last firing, retrying", "schedule", s->cfg.name,
             "error", e.msg, JB_LOG_END);
      if (jb_stop_wait(&t->stop, 1000)) return;
      jb_health_beat(t->alive);
    }
    jb_schedule_metrics_seen(s->cfg.name, found ? last : -1);
    if (found && last < now) catch_up(t, s, last, now);
  }
}

/* Takes a reload's list: unchanged schedules keep their next firing, the others start now. */
static void take_pending(jb_schedule_trigger *t) {
  pthread_mutex_lock(&t->mu);
  if (!t->has_pending) {
    pthread_mutex_unlock(&t->mu);
    return;
  }
  sched_list next = t->pending;
  t->pending = (sched_list){0};
  t->has_pending = false;
  pthread_mutex_unlock(&t->mu);
  int64_t now = now_s();
  for (size_t i = 0; i < next.n; i++) {
    sched *s = &next.v[i];
    set_next(s, now);
    if (s->cfg.enabled) jb_schedule_metrics_seen(s->cfg.name, -1);
    for (size_t j = 0; j < t->list.n; j++) {
      sched *o = &t->list.v[j];
      if (strcmp(o->cfg.name, s->cfg.name) == 0 && strcmp(o->cfg.cron, s->cfg.cron) == 0 &&
          strcmp(o->cfg.timezone, s->cfg.timezone) == 0 && o->has_next) {
        s->next = o->next, s->has_next = true;
      }
    }
  }
  list_free(&t->list);
  t->list = next;
  jb_log(JB_LOG_INFO, "schedules reloaded", JB_LOG_U64("schedules", next.n), JB_LOG_END);
}

/* Fires what is due; returns how long to sleep (ms) before the next look. */
static long tick(jb_schedule_trigger *t) {
  int64_t now_us = jb_time_now(), now = now_us / 1000000, soonest = INT64_MAX;
  for (size_t i = 0; i < t->list.n && !jb_stop_requested(&t->stop); i++) {
    sched *s = &t->list.v[i];
    while (s->has_next && s->next <= now && !jb_stop_requested(&t->stop)) {
      if (!s->cfg.enabled) {
        set_next(s, now);
      } else if (now - s->next > LATE_S) {
        catch_up(t, s, s->next - 1, now);
        set_next(s, now);
      } else if (fire(t, s, s->next, JB_FIRE_ON_TIME)) {
        set_next(s, s->next);
      } else {
        return 1000; /* the database failed: try again in a second */
      }
    }
    if (s->has_next && s->next < soonest) soonest = s->next;
  }
  if (soonest == INT64_MAX) return 1000;
  long ms = (long)((soonest * 1000000 - jb_time_now()) / 1000) + 1;
  return ms < 1 ? 1 : (ms > 1000 ? 1000 : ms); /* a second at most: reloads are seen soon */
}

static void *run(void *arg) {
  jb_schedule_trigger *t = arg;
  /* Each turn waits a second at most; a catch-up beats at each job it creates. */
  t->alive = jb_health_thread("schedules", 60000);
  start_schedules(t);
  while (!jb_stop_requested(&t->stop)) {
    jb_health_beat(t->alive);
    take_pending(t);
    long ms = tick(t);
    if (jb_stop_wait(&t->stop, ms)) break;
  }
  jb_health_remove(t->alive);
  t->alive = NULL;
  return NULL;
}

static jb_err t_start(void *self, jb_error *e) {
  jb_schedule_trigger *t = self;
  jb_stop_reset(&t->stop);
  if (pthread_create(&t->thread, NULL, run, t) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot start the schedule thread");
  t->running = true;
  jb_log(JB_LOG_INFO, "schedules started", JB_LOG_U64("schedules", t->list.n), JB_LOG_END);
  return JB_OK;
}

static void t_stop(void *self) {
  jb_schedule_trigger *t = self;
  if (!t->running) return;
  jb_stop_request(&t->stop);
  pthread_join(t->thread, NULL);
  t->running = false;
}

static bool t_is_running(void *self) {
  return ((jb_schedule_trigger *)self)->running;
}

static const jb_job_trigger_ops trigger_ops = {t_start, t_stop, t_is_running};

jb_job_trigger jb_schedule_trigger_port(jb_schedule_trigger *t) {
  return (jb_job_trigger){&trigger_ops, t};
}

jb_err jb_schedule_trigger_new(const jb_config *cfg, jb_job_creator creator,
                               jb_schedule_store store, jb_schedule_trigger **out, jb_error *e) {
  jb_schedule_trigger *t = calloc(1, sizeof *t);
  if (t == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory creating the schedule trigger");
  t->cfg = cfg, t->creator = creator, t->store = store;
  t->rng = (uint64_t)jb_time_now() | 1;
  t->stop.fd = -1;
  pthread_mutex_init(&t->mu, NULL);
  jb_err rc = jb_stop_init(&t->stop, e);
  if (rc == JB_OK) rc = list_build(cfg, &t->list, e);
  if (rc != JB_OK) {
    jb_schedule_trigger_free(t);
    return rc;
  }
  *out = t;
  return JB_OK;
}

jb_err jb_schedule_trigger_reload(jb_schedule_trigger *t, const jb_config *next, jb_error *e) {
  for (size_t i = 0; i < next->schedules_len; i++)
    if (jb_config_job_type(t->cfg, next->schedules[i].job_type) == NULL)
      return jb_fail(e, JB_ERR_CONFIG,
                     "schedules[%zu].job_type: \"%s\" is not registered in the running config; "
                     "restart to add job types",
                     i, next->schedules[i].job_type);
  sched_list l;
  jb_err rc = list_build(next, &l, e);
  if (rc != JB_OK) return rc;
  pthread_mutex_lock(&t->mu);
  list_free(&t->pending);
  t->pending = l;
  t->has_pending = true;
  pthread_mutex_unlock(&t->mu);
  if (!t->running) take_pending(t);
  return JB_OK;
}

void jb_schedule_trigger_free(jb_schedule_trigger *t) {
  if (t == NULL) return;
  t_stop(t);
  list_free(&t->list);
  list_free(&t->pending);
  jb_stop_destroy(&t->stop);
  pthread_mutex_destroy(&t->mu);
  free(t);
}
