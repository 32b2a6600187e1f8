/* Jobs of asynchronous handlers (jb_job_handler_ops.start): the worker that claimed such a job
 * starts it and moves on; the handler answers later from its own thread (jb_job_complete), and
 * the worker records the outcome through its own connection with the batched finish. Meanwhile
 * the job is held by that worker: the maintenance thread renews its lease and passes its
 * cancellation (worker_maint.c). A job type's concurrency caps its jobs in flight: at the limit
 * the claim skips the type, so a slow endpoint never holds the workers other types need. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/worker_pool_internal.h"
#include "jobbridge/health.h"
#include "jobbridge/job_metrics.h"
#include "jobbridge/log.h"
#include "jobbridge/outcome.h"
#include "jobbridge/trace.h"

/* The handler's answer (any thread): kept for the worker, which is woken to record it. */
static void async_complete(jb_handler_ctx *ctx, jb_job_result *r) {
  pending_job *pj = (pending_job *)ctx;
  worker *w = pj->w;
  atomic_fetch_sub(&pj->he->in_flight, 1);
  pthread_mutex_lock(&w->slot.lock);
  pj->res = *r;
  memset(r, 0, sizeof *r);
  pj->done = true;
  pthread_mutex_unlock(&w->slot.lock);
  atomic_fetch_add(&w->ndone, 1);
  uint64_t one = 1;
  if (write(w->wake_fd, &one, sizeof one) < 0) { /* the counter is set already */
  }
}

bool jb_worker_async_start(worker *w, handler_entry *he, jb_job *job, jb_time claimed_at) {
  pending_job *pj = calloc(1, sizeof *pj);
  if (pj == NULL) return false;
  pj->w = w;
  pj->he = he;
  pj->job = *job; /* the job moves to pj; the batch keeps its id only */
  memset(job, 0, sizeof *job);
  memcpy(job->id, pj->job.id, sizeof job->id);
  pj->claimed_at = claimed_at;
  pj->ran_from = jb_time_now();
  pj->ctx.complete = async_complete;
  atomic_store(&pj->ctx.stop, atomic_load(&w->pool->stop_handlers));
  atomic_fetch_add(&he->in_flight, 1);
  pthread_mutex_lock(&w->slot.lock);
  pj->next = w->pending;
  w->pending = pj;
  w->npending++;
  pthread_mutex_unlock(&w->slot.lock);
  /* From here the handler may answer at once, from any thread: pj is the pool's until then. */
  he->h.ops->start(he->h.self, &pj->job, &pj->ctx);
  return true;
}

/* Unlinks the answered jobs of w: a list through next (slot lock taken here). */
static pending_job *take_done(worker *w, size_t *n) {
  pending_job *done = NULL;
  *n = 0;
  pthread_mutex_lock(&w->slot.lock);
  for (pending_job **pp = &w->pending; *pp;) {
    pending_job *pj = *pp;
    if (!pj->done) {
      pp = &pj->next;
      continue;
    }
    *pp = pj->next;
    pj->next = done;
    done = pj;
    w->npending--;
    (*n)++;
  }
  pthread_mutex_unlock(&w->slot.lock);
  atomic_fetch_sub(&w->ndone, (int)*n);
  return done;
}

/* The outcome of an answered job, decided as a synchronous run's (run_job). */
static jb_finish decide(worker *w, pending_job *pj) {
  jb_worker_pool *p = w->pool;
  int stop = atomic_load(&pj->ctx.stop);
  double rnd = (double)rand_r(&w->seed) / ((double)RAND_MAX + 1.0);
  jb_finish f = jb_decide_outcome(p->cfg, &pj->job, &pj->res, (jb_stop_reason)stop, rnd);
  if (!pj->res.success && pj->res.requeue && stop == JB_STOP_NONE) {
    f.delay_ms = JB_REQUEUE_DELAY_MS; /* a shortage of the handler's: back, no retry burnt */
    jb_log(JB_LOG_ERROR,
           "jobbridge is short of a resource: the job goes back without burning a "
           "retry",
           "job_id", pj->job.id, "job_type", pj->job.job_type, "reason",
           pj->res.error_message ? pj->res.error_message : "(no reason given)", "worker", w->owner,
           JB_LOG_END);
  }
  if (jb_log_enabled(JB_LOG_DEBUG)) {
    char tid[33];
    jb_trace_id(pj->job.traceparent, tid);
    jb_log(JB_LOG_DEBUG, "job ran", "job_id", pj->job.id, "job_type", pj->job.job_type, "trace_id",
           tid[0] ? tid : NULL, "status", jb_status_name(f.status), "error", f.error, JB_LOG_END);
  }
  double ran_s = (double)(jb_time_now() - pj->ran_from) / 1e6;
  jb_job_metrics_finished(jb_job_run_metrics_for(pj->job.job_type), f.status, ran_s);
  return f;
}

void jb_worker_async_record(worker *w) {
  if (atomic_load(&w->ndone) <= 0) return;
  size_t n = 0;
  pending_job *done = take_done(w, &n);
  if (n == 0) return;
  jb_finish *fin = calloc(n, sizeof *fin);
  size_t k = 0;
  for (pending_job *pj = done; pj; pj = pj->next) {
    jb_finish f = decide(w, pj);
    if (fin != NULL)
      fin[k++] = f;
    else /* out of memory: one at a time, from the stack */
      jb_worker_record(w, &f, 1);
  }
  if (fin != NULL) jb_worker_record(w, fin, k);
  free(fin);
  while (done != NULL) {
    pending_job *next = done->next;
    jb_job_result_clear(&done->res);
    jb_job_clear(&done->job);
    free(done);
    done = next;
  }
}

static size_t pending_count(worker *w) {
  pthread_mutex_lock(&w->slot.lock);
  size_t n = w->npending;
  pthread_mutex_unlock(&w->slot.lock);
  return n;
}

void jb_worker_async_drain(worker *w) {
  jb_worker_pool *p = w->pool;
  bool asked = false;
  while (pending_count(w) > 0) {
    jb_health_beat(w->alive);
    jb_worker_async_record(w);
    if (!asked && jb_mono_ms() >= atomic_load(&p->grace_end_ms)) {
      pthread_mutex_lock(&w->slot.lock);
      for (pending_job *pj = w->pending; pj; pj = pj->next)
        if (!pj->done) atomic_store(&pj->ctx.stop, JB_STOP_SHUTDOWN);
      pthread_mutex_unlock(&w->slot.lock);
      asked = true;
    }
    struct pollfd pfd = {.fd = w->wake_fd, .events = POLLIN};
    if (poll(&pfd, 1, 100) > 0) {
      uint64_t count;
      if (read(w->wake_fd, &count, sizeof count) < 0) { /* taken by a racing read: fine */
      }
    }
  }
}

size_t jb_worker_async_limits(worker *w, int *claim) {
  jb_worker_pool *p = w->pool;
  size_t n = 0;
  for (size_t i = 0; i < p->nhandlers; i++) {
    handler_entry *he = &p->handlers[i];
    if (he->h.ops->start == NULL) continue;
    int room = he->cap - atomic_load(&he->in_flight);
    if (room <= 0 && w->skip != NULL)
      w->skip[n++] = he->job_type;
    else if (room > 0 && room < *claim)
      *claim = room;
  }
  return n;
}
