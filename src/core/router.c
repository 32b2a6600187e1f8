/* The router: the refcounted mapping table (replaced on reload while readers keep theirs) and
 * the parse-and-map step every event trigger uses. */
#include "jobbridge/router.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* One mapping table. The first is the app's config (borrowed); reloaded ones are owned. */
struct jb_route_table {
  jb_config *cfg;
  bool owned;
  atomic_int refs; /* the router's own reference while current, plus one per reader */
  size_t max_body;
  bool require_id;
  /* matched[i]: events mapping i turned into a job request (one relaxed add per match) */
  atomic_uint_fast64_t *matched;
  size_t nmatched;
};

struct jb_router {
  pthread_mutex_t lock; /* guards `current` (the pointer, not the table) */
  jb_route_table *current;
  size_t max_body;
  bool require_id;
};

static jb_route_table *table_new(const jb_router *r, jb_config *cfg, bool owned) {
  jb_route_table *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->nmatched = cfg->mappings_len;
  t->matched = calloc(t->nmatched ? t->nmatched : 1, sizeof *t->matched);
  if (t->matched == NULL) {
    free(t);
    return NULL;
  }
  for (size_t i = 0; i < t->nmatched; i++) atomic_init(&t->matched[i], 0);
  t->cfg = cfg;
  t->owned = owned;
  t->max_body = r->max_body;
  t->require_id = r->require_id;
  atomic_init(&t->refs, 1);
  return t;
}

jb_err jb_router_new(const jb_config *cfg, jb_router **out, jb_error *e) {
  *out = NULL;
  jb_router *r = calloc(1, sizeof *r);
  if (r == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for the router");
  r->max_body = (size_t)cfg->ingest.max_body_bytes;
  r->require_id = cfg->ingest.require_event_id;
  r->current = table_new(r, (jb_config *)cfg, false);
  if (r->current == NULL) {
    free(r);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory for the router");
  }
  pthread_mutex_init(&r->lock, NULL);
  *out = r;
  return JB_OK;
}

jb_route_table *jb_router_acquire(jb_router *r) {
  pthread_mutex_lock(&r->lock);
  jb_route_table *t = r->current;
  atomic_fetch_add(&t->refs, 1);
  pthread_mutex_unlock(&r->lock);
  return t;
}

void jb_router_release(jb_route_table *t) {
  if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1) return;
  if (t->owned) jb_config_free(t->cfg);
  free(t->matched);
  free(t);
}

jb_err jb_router_reload(jb_router *r, jb_config *next, jb_error *e) {
  jb_route_table *t = table_new(r, next, true);
  if (t == NULL) {
    jb_config_free(next);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory for the new mapping table");
  }
  pthread_mutex_lock(&r->lock);
  jb_route_table *old = r->current;
  r->current = t;
  pthread_mutex_unlock(&r->lock);
  jb_router_release(old); /* the router's reference; readers holding it keep it alive */
  return JB_OK;
}

const jb_config *jb_route_table_config(const jb_route_table *t) {
  return t->cfg;
}

uint64_t jb_route_table_matched(const jb_route_table *t, size_t i) {
  if (i >= t->nmatched) return 0;
  return atomic_load_explicit(&t->matched[i], memory_order_relaxed);
}

void jb_routed_clear(jb_routed *r) {
  jb_mapped_clear(&r->jobs);
  jb_event_clear(&r->event);
}

jb_route_verdict jb_router_route(const jb_route_table *t, const jb_delivery_facts *f,
                                 jb_routed *out, jb_error *why) {
  jb_routed_clear(out);
  jb_err rc = jb_event_parse(f, t->max_body, t->require_id, &out->event, why);
  if (rc == JB_OK) rc = jb_event_map(t->cfg, &out->event, f, &out->jobs, why);
  if (rc == JB_OK) {
    for (size_t i = 0; i < out->jobs.n; i++)
      if (out->jobs.mapping[i] < t->nmatched)
        atomic_fetch_add_explicit(&t->matched[out->jobs.mapping[i]], 1, memory_order_relaxed);
    return JB_ROUTE_JOBS;
  }
  if (rc == JB_ERR_NOMEM) {
    jb_routed_clear(out);
    return JB_ROUTE_RETRY;
  }
  jb_mapped_clear(&out->jobs);
  return JB_ROUTE_DEAD_LETTER;
}

void jb_router_free(jb_router *r) {
  if (r == NULL) return;
  jb_router_release(r->current);
  pthread_mutex_destroy(&r->lock);
  free(r);
}
