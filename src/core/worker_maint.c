/* The worker pool's maintenance thread: lease renewal of the jobs workers hold, cancellation of
 * running handlers, and the reaper. It has its own connection (the pool's maint_q). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/worker_pool_internal.h"
#include "jobbridge/health.h"
#include "jobbridge/log.h"

static void cancel_running(jb_worker_pool *p, char (*ids)[37], size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < p->n; k++) {
      slot *s = &p->workers[k].slot;
      pthread_mutex_lock(&s->lock);
      if (strcmp(s->job_id, ids[i]) == 0) {
        atomic_store(&s->ctx.stop, JB_STOP_CANCEL);
        jb_log(JB_LOG_INFO, "cancelling running job", "job_id", ids[i], JB_LOG_END);
      }
      for (pending_job *pj = p->workers[k].pending; pj; pj = pj->next)
        if (!pj->done && strcmp(pj->job.id, ids[i]) == 0 &&
            atomic_exchange(&pj->ctx.stop, JB_STOP_CANCEL) != JB_STOP_CANCEL)
          jb_log(JB_LOG_INFO, "cancelling running job", "job_id", ids[i], JB_LOG_END);
      pthread_mutex_unlock(&s->lock);
    }
}

/* The jobs workers hold now (all of them, or only those whose handler runs), each with its
 * worker's owner: a new array (free()) of *n, or NULL when out of memory. */
static jb_held_job *held_jobs(jb_worker_pool *p, bool running_only, size_t *n) {
  size_t cap = p->n, len = 0;
  jb_held_job *h = malloc(cap * sizeof *h);
  for (size_t k = 0; h != NULL && k < p->n; k++) {
    worker *w = &p->workers[k];
    pthread_mutex_lock(&w->slot.lock);
    size_t more = running_only ? (w->slot.job_id[0] != '\0') : w->slot.held_to - w->slot.held_from;
    size_t batch = more;
    more += w->npending; /* asynchronous jobs run while the worker does other things */
    if (len + more > cap) {
      cap = (len + more) * 2;
      jb_held_job *g = realloc(h, cap * sizeof *h);
      if (g == NULL) free(h);
      h = g;
    }
    for (size_t i = 0; h != NULL && i < batch; i++, len++) {
      const char *id = running_only ? w->slot.job_id : w->slot.held[w->slot.held_from + i].id;
      memcpy(h[len].id, id, sizeof h[len].id);
      h[len].owner = w->owner;
    }
    for (pending_job *pj = w->pending; h != NULL && pj; pj = pj->next, len++) {
      memcpy(h[len].id, pj->job.id, sizeof h[len].id);
      h[len].owner = w->owner;
    }
    pthread_mutex_unlock(&w->slot.lock);
  }
  *n = len;
  return h;
}

/* Renews the leases of every job a worker holds (renew) or only looks for cancellations of
 * running ones; passes those to their handlers. False if the database could not be asked. */
static bool renew_held(jb_worker_pool *p, bool renew) {
  jb_work_queue q = p->maint_q;
  size_t n = 0, nids = 0;
  char(*ids)[37] = NULL;
  jb_error e;
  jb_held_job *held = held_jobs(p, !renew, &n);
  if (held == NULL) {
    jb_log(JB_LOG_WARN, "lease renewal failed: out of memory; retrying", JB_LOG_END);
    return false;
  }
  jb_err rc = q.ops->renew(q.self, held, n, renew ? p->cfg->workers.lease_s : 0, &ids, &nids, &e);
  if (rc == JB_OK)
    cancel_running(p, ids, nids);
  else
    jb_log(JB_LOG_WARN, "lease renewal failed; retrying", "error", e.msg, JB_LOG_END);
  free(ids);
  free(held);
  return rc == JB_OK;
}

void *jb_worker_maint_main(void *arg) {
  jb_worker_pool *p = arg;
  const jb_config *cfg = p->cfg;
  jb_work_queue q = p->maint_q;
  int64_t renew_every = cfg->workers.lease_s * 1000 / 3, reap_every = 5000;
  if (renew_every < 500) renew_every = 500;
  int64_t next_renew = 0, next_reap = 0;
  unsigned seed = (unsigned)jb_time_now() ^ (unsigned)(uintptr_t)p; /* the reaper's jitter */
  /* A turn waits half a second, or a database call: a minute late is wedged. */
  jb_health_slot *alive = jb_health_thread("worker maintenance", 60000);
  while (!jb_stop_requested(&p->maint_stop)) {
    jb_health_beat(alive);
    int64_t now = jb_mono_ms();
    jb_error e;
    /* Every half second: which running jobs were cancelled? On the renew beat, extend the
     * leases of every held job too. */
    bool renew = now >= next_renew;
    if (renew_held(p, renew) && renew) next_renew = now + renew_every;
    jb_worker_progress_flush(p); /* at most once a beat per job, every job in one statement */
    if (now >= next_reap) {
      size_t reaped = 0;
      if (jb_reap_expired(cfg, q, &seed, &reaped, &e) == JB_OK) {
        if (reaped > 0) {
          jb_log(JB_LOG_WARN, "reaped jobs whose lease expired (worker lost)",
                 JB_LOG_U64("jobs", reaped), JB_LOG_END);
        }
      } else {
        jb_log(JB_LOG_WARN, "reaper failed; retrying", "error", e.msg, JB_LOG_END);
      }
      next_reap = now + reap_every;
    }
    jb_stop_wait(&p->maint_stop, 500); /* the next beat, or the stop at once */
  }
  jb_health_remove(alive);
  return NULL;
}
