/* The liveness and readiness registry (jobbridge/health.h): a list of slots under one mutex for
 * registering and reporting; beats and the ready fast path touch only a slot's atomics. */
#include "jobbridge/health.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/job.h"

typedef enum { SLOT_THREAD, SLOT_COMPONENT, SLOT_PROBE } slot_kind;

struct jb_health_slot {
  slot_kind kind;
  char *name;
  struct jb_health_slot *next;
  /* threads */
  int64_t allowed_ms;
  _Atomic int64_t deadline_ms; /* jb_mono_ms() clock */
  /* components and probes */
  atomic_bool ready;
  char reason[200]; /* under mu */
  char note[200];   /* under mu: shown beside a ready check (jb_health_note); "" for none */
  /* probes */
  jb_health_probe_fn fn;
  void *self;
  int64_t cache_ms, checked_ms; /* under mu */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static jb_health_slot *slots;

static jb_health_slot *add(slot_kind kind, const char *name) {
  jb_health_slot *s = calloc(1, sizeof *s);
  if (s == NULL || (s->name = strdup(name)) == NULL) {
    free(s);
    return NULL;
  }
  s->kind = kind;
  strcpy(s->reason, "starting");
  pthread_mutex_lock(&mu);
  s->next = slots;
  slots = s;
  pthread_mutex_unlock(&mu);
  return s;
}

jb_health_slot *jb_health_thread(const char *name, int64_t allowed_ms) {
  jb_health_slot *s = add(SLOT_THREAD, name);
  if (s == NULL) return NULL;
  s->allowed_ms = allowed_ms;
  atomic_store(&s->deadline_ms, jb_mono_ms() + allowed_ms);
  return s;
}

void jb_health_beat(jb_health_slot *s) {
  if (s != NULL)
    atomic_store_explicit(&s->deadline_ms, jb_mono_ms() + s->allowed_ms, memory_order_relaxed);
}

void jb_health_busy(jb_health_slot *s, int64_t ms) {
  if (s != NULL)
    atomic_store_explicit(&s->deadline_ms, jb_mono_ms() + s->allowed_ms + (ms > 0 ? ms : 0),
                          memory_order_relaxed);
}

jb_health_slot *jb_health_component(const char *name) {
  return add(SLOT_COMPONENT, name);
}

void jb_health_ready(jb_health_slot *s) {
  if (s == NULL || atomic_load(&s->ready)) return;
  pthread_mutex_lock(&mu);
  s->reason[0] = '\0';
  atomic_store(&s->ready, true);
  pthread_mutex_unlock(&mu);
}

void jb_health_note(jb_health_slot *s, const char *fmt, ...) {
  if (s == NULL) return;
  char note[sizeof s->note] = "";
  if (fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note, sizeof note, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_lock(&mu);
  memcpy(s->note, note, sizeof note);
  pthread_mutex_unlock(&mu);
}

void jb_health_not_ready(jb_health_slot *s, const char *fmt, ...) {
  if (s == NULL) return;
  char reason[sizeof s->reason];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&mu);
  memcpy(s->reason, reason, sizeof reason);
  atomic_store(&s->ready, false);
  pthread_mutex_unlock(&mu);
}

jb_health_slot *jb_health_probe(const char *name, jb_health_probe_fn fn, void *self,
                                int64_t cache_ms) {
  jb_health_slot *s = add(SLOT_PROBE, name);
  if (s == NULL) return NULL;
  pthread_mutex_lock(&mu);
  s->fn = fn;
  s->self = self;
  s->cache_ms = cache_ms;
  pthread_mutex_unlock(&mu);
  return s;
}

void jb_health_remove(jb_health_slot *s) {
  if (s == NULL) return;
  pthread_mutex_lock(&mu);
  for (jb_health_slot **p = &slots; *p != NULL; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  free(s->name);
  free(s);
}

bool jb_health_live(json_t **doc) {
  json_t *wedged = doc != NULL ? json_array() : NULL;
  size_t threads = 0, late = 0;
  int64_t now = jb_mono_ms();
  pthread_mutex_lock(&mu);
  for (const jb_health_slot *s = slots; s != NULL; s = s->next) {
    if (s->kind != SLOT_THREAD) continue;
    threads++;
    int64_t over = now - atomic_load(&s->deadline_ms);
    if (over <= 0) continue;
    late++;
    if (wedged != NULL)
      json_array_append_new(
          wedged, json_pack("{s:s, s:I}", "thread", s->name, "late_ms", (json_int_t)over));
  }
  pthread_mutex_unlock(&mu);
  if (doc != NULL)
    *doc = json_pack("{s:s, s:I, s:o}", "status", late == 0 ? "ok" : "wedged", "threads",
                     (json_int_t)threads, "wedged", wedged);
  return late == 0;
}

/* Runs a probe when its cached answer is older than cache_ms. Under mu. */
static void run_probe(jb_health_slot *s, int64_t now) {
  if (s->checked_ms != 0 && now - s->checked_ms < s->cache_ms) return;
  char why[sizeof s->reason] = "";
  bool ok = s->fn(s->self, why, sizeof why);
  snprintf(s->reason, sizeof s->reason, "%s", ok ? "" : why);
  atomic_store(&s->ready, ok);
  s->checked_ms = jb_mono_ms();
}

bool jb_health_readiness(json_t **doc) {
  json_t *checks = doc != NULL ? json_array() : NULL;
  bool all = true;
  int64_t now = jb_mono_ms();
  pthread_mutex_lock(&mu);
  for (jb_health_slot *s = slots; s != NULL; s = s->next) {
    if (s->kind == SLOT_THREAD) continue;
    if (s->kind == SLOT_PROBE) run_probe(s, now);
    bool ok = atomic_load(&s->ready);
    all = all && ok;
    if (checks == NULL) continue;
    json_t *c = json_pack("{s:s, s:b}", "name", s->name, "ready", ok);
    if (c != NULL && !ok) json_object_set_new(c, "reason", json_string(s->reason));
    if (c != NULL && s->note[0] != '\0') json_object_set_new(c, "note", json_string(s->note));
    json_array_append_new(checks, c);
  }
  pthread_mutex_unlock(&mu);
  if (doc != NULL)
    *doc = json_pack("{s:s, s:o}", "status", all ? "ready" : "not ready", "checks", checks);
  return all;
}
