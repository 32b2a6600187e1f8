/* The worker pool. Worker threads claim, run and record; one maintenance thread renews leases,
 * passes cancellations to running handlers and reaps jobs whose worker died. Every connection
 * (a WorkQueue) belongs to exactly one of these threads. */
#include "jobbridge/worker_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/worker_pool_internal.h"
#include "jobbridge/health.h"
#include "jobbridge/job_metrics.h"
#include "jobbridge/log.h"
#include "jobbridge/outcome.h"
#include "jobbridge/time_metrics.h"
#include "jobbridge/trace.h"

/* Claim size adapts: it doubles while handlers finish fast (a claim per job would cost a
 * round trip per job) and falls back to 1 when they are slow (a worker must not sit on many
 * long jobs that other workers could run). */
#define CLAIM_MAX 256
#define FAST_HANDLER_MS 20
#define RECORD_EVERY_MS 50 /* outcomes wait at most this long to be recorded together */
/* After a resource shortage the worker pauses before it claims again: 1 s, doubling to 30 s
 * while shortages repeat, back to none after a run that did not have one. */
#define REQUEUE_PAUSE_MIN_MS JB_REQUEUE_DELAY_MS
#define REQUEUE_PAUSE_MAX_MS 30000

/* By default two workers per core, at least four: a worker spends much of each job waiting on
 * the database (the finish, a claim) or on its handler's I/O, and a worker that is idle when a
 * job arrives gets it straight from the ingest transaction. At 1,000 events/s on two cores, two
 * workers were idle for 18% of arrivals (p50 5.5 ms), four for 81% (p50 4.4 ms). */
size_t jb_worker_pool_connections(const jb_config *cfg) {
  long n = cfg->workers.threads;
  if (n <= 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    n = cores > 2 ? 2 * cores : 4;
  }
  return (size_t)n + 1;
}

static handler_entry *find_handler(const jb_worker_pool *p, const char *job_type) {
  for (size_t i = 0; i < p->nhandlers; i++)
    if (strcmp(p->handlers[i].job_type, job_type) == 0) return &p->handlers[i];
  return NULL;
}

jb_err jb_worker_pool_register(jb_worker_pool *p, const char *job_type, jb_job_handler h,
                               jb_error *e) {
  if (h.ops == NULL)
    return jb_fail(e, JB_ERR_INVALID, "handler for %s has no operations", job_type);
  for (size_t i = 0; i < p->nhandlers; i++) {
    if (strcmp(p->handlers[i].job_type, job_type) == 0) {
      jb_job_handler_release(p->handlers[i].h);
      p->handlers[i].h = h;
      return JB_OK;
    }
  }
  /* The pool owns h from here on, also when registering it fails: then h is destroyed. */
  char *name = strdup(job_type);
  handler_entry *hs = name ? realloc(p->handlers, (p->nhandlers + 1) * sizeof *hs) : NULL;
  if (hs == NULL) {
    free(name);
    jb_job_handler_release(h);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory registering the handler of job type %s",
                   job_type);
  }
  p->handlers = hs;
  memset(&hs[p->nhandlers], 0, sizeof hs[p->nhandlers]);
  hs[p->nhandlers].job_type = name;
  hs[p->nhandlers].h = h;
  const jb_job_type_cfg *jt = jb_config_job_type(p->cfg, job_type);
  hs[p->nhandlers].cap = jt != NULL && jt->concurrency > 0 ? jt->concurrency : 100;
  p->nhandlers++;
  return JB_OK;
}

/* ---- workers ---- */

/* The error recorded for an outcome the database refused even without its result. */
#define REFUSED_ERROR "the database refused this outcome's error message; see jobbridge's log"

/* The queue refused one outcome as invalid data (JB_ERR_INVALID: a result that cannot be
 * encoded; JB_ERR_DB_REFUSED: the database refused a value, as text it cannot store).
 * Retrying it unchanged would never end, so it is made storable step by step: first without its
 * result, then with a fixed error message. Returns false when nothing is left to change. */
static bool make_storable(worker *w, jb_finish *f, const jb_error *e) {
  const char *what = NULL;
  if (f->result != NULL) {
    f->result = NULL;
    what = "the job's result cannot be stored; recording its outcome without it";
  } else if (f->status != JB_STATUS_COMPLETED && f->error != NULL &&
             strcmp(f->error, REFUSED_ERROR) != 0) {
    f->error = REFUSED_ERROR;
    what = "the job's error message cannot be stored; recording its outcome without it";
  }
  if (what != NULL)
    jb_log(JB_LOG_ERROR, what, "job_id", f->id, "error", e->msg, "worker", w->owner, JB_LOG_END);
  return what != NULL;
}

/* Records outcomes, retrying while the database is away or fails for a passing reason (a
 * statement timeout, a deadlock, a read-only standby: JB_ERR_DB, JB_ERR_DB_CONN), with backoff:
 * the leases cover the jobs meanwhile, and if we die first, the reaper retries them. Outcomes
 * the database refuses as data are recorded one by one, each made storable (make_storable); one
 * that still cannot be stored is given up with an error log, and the reaper retries its job.
 * When stopping, it gives up at the end of the grace period: the jobs stay RUNNING until their
 * lease expires, and the reaper retries them. */
/* The state machine's check of outcomes about to be recorded: one it refuses (RUNNING -> it)
 * is never sent to the database, only logged as a bug (its job is left to the reaper). The
 * others move to the front of items; returns how many. */
static size_t legal_outcomes(worker *w, jb_finish *items, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    jb_error e;
    if (jb_status_transition(JB_STATUS_RUNNING, items[i].status, &e) != JB_OK) {
      jb_log(JB_LOG_ERROR, "bug: illegal outcome not recorded; the reaper retries the job",
             "job_id", items[i].id, "error", e.msg, "worker", w->owner, JB_LOG_END);
      continue;
    }
    items[k++] = items[i];
  }
  return k;
}

void jb_worker_record(worker *w, jb_finish *items, size_t n) {
  long backoff = 100;
  jb_worker_pool *p = w->pool;
  n = legal_outcomes(w, items, n);
  while (n > 0) {
    jb_health_beat(w->alive); /* retrying while the database is away is alive, not wedged */
    jb_error e;
    size_t applied = 0;
    jb_err rc = w->q.ops->finish(w->q.self, w->owner, items, n, &applied, &e);
    if (rc == JB_ERR_INVALID || rc == JB_ERR_DB_REFUSED) {
      if (n > 1) { /* find the one at fault: the others keep their results */
        for (size_t i = 0; i < n; i++) jb_worker_record(w, items + i, 1);
        return;
      }
      if (make_storable(w, items, &e)) continue;
      jb_log(JB_LOG_ERROR,
             "the database refuses a job's outcome; the reaper retries the job when its lease "
             "expires",
             "job_id", items[0].id, "error", e.msg, "worker", w->owner, JB_LOG_END);
      return;
    }
    if (rc == JB_OK) {
      if (applied < n) {
        jb_log(JB_LOG_WARN, "outcomes not recorded: the jobs were reaped or taken meanwhile",
               JB_LOG_U64("jobs", n - applied), "worker", w->owner, JB_LOG_END);
      }
      return;
    }
    if (jb_stop_requested(&p->stopping) && jb_mono_ms() >= atomic_load(&p->grace_end_ms)) {
      jb_log(JB_LOG_ERROR,
             "shutting down without recording job outcomes; the reaper retries the jobs when "
             "their lease expires",
             JB_LOG_U64("jobs", n), "error", e.msg, "worker", w->owner, JB_LOG_END);
      return;
    }
    jb_log(JB_LOG_WARN, "cannot record job outcomes; retrying", "error", e.msg, "worker", w->owner,
           JB_LOG_END);
    if (!jb_stop_requested(&p->stopping)) {
      jb_stop_wait(&p->stopping, backoff); /* a stop: one more try at once, then as below */
    } else { /* stopping: the retries end with the grace period, nothing ends them earlier */
      int64_t left = atomic_load(&p->grace_end_ms) - jb_mono_ms();
      jb_sleep_ms(left < backoff ? (long)(left > 0 ? left : 0) : backoff);
    }
    backoff = jb_backoff_next(backoff, 10000);
  }
}

/* The job's trace id for its log lines, in buf (33 bytes); NULL (no such field) when it has
 * none. */
static const char *trace_id(const jb_job *job, char *buf) {
  jb_trace_id(job->traceparent, buf);
  return buf[0] ? buf : NULL;
}

/* Runs job and decides its outcome into *out; or, for a job type with an asynchronous handler,
 * starts it (taking the job: see jb_worker_async_start) and returns false: no outcome yet. */
static bool run_job(worker *w, jb_job *job, jb_time claimed_at, jb_finish *out,
                    jb_job_result *res) {
  jb_worker_pool *p = w->pool;
  char tid[33];
  memset(res, 0, sizeof *res);
  const jb_job_run_metrics *jm = jb_job_run_metrics_for(job->job_type);
  jb_job_metrics_started(jm, job, claimed_at);
  handler_entry *he = find_handler(p, job->job_type);
  if (he != NULL && he->h.ops->start != NULL && atomic_load(&p->stop_handlers) == JB_STOP_NONE &&
      jb_worker_async_start(w, he, job, claimed_at))
    return false;
  jb_time ran_from = jb_time_now();
  pthread_mutex_lock(&w->slot.lock);
  memcpy(w->slot.job_id, job->id, sizeof w->slot.job_id);
  w->slot.job_type = job->job_type;
  w->slot.progress_dirty = false;
  atomic_store(&w->slot.ctx.stop, atomic_load(&p->stop_handlers));
  pthread_mutex_unlock(&w->slot.lock);
  const jb_job_handler *h = he != NULL ? &he->h : NULL;
  if (h == NULL) {
    res->success = false;
    res->retriable = false;
    char msg[256];
    snprintf(msg, sizeof msg, "no handler registered for job type %s", job->job_type);
    res->error_message = strdup(msg);
  } else if (atomic_load(&w->slot.ctx.stop) == JB_STOP_NONE) {
    /* A handler may run until its job type's timeout: not wedged meanwhile. */
    const jb_job_type_cfg *jt = jb_config_job_type(p->cfg, job->job_type);
    jb_health_busy(w->alive, jt != NULL ? (int64_t)(jt->timeout_s * 1000) : 0);
    h->ops->handle(h->self, job, &w->slot.ctx, res);
  }
  pthread_mutex_lock(&w->slot.lock);
  int stop = atomic_load(&w->slot.ctx.stop);
  w->slot.job_id[0] = '\0';
  w->slot.job_type = NULL;
  w->slot.progress_dirty = false; /* the outcome is what counts now */
  atomic_store(&w->slot.ctx.stop, JB_STOP_NONE);
  pthread_mutex_unlock(&w->slot.lock);
  double ran_s = (double)(jb_time_now() - ran_from) / 1e6;
  double rnd = (double)rand_r(&w->seed) / ((double)RAND_MAX + 1.0);
  *out = jb_decide_outcome(p->cfg, job, res, (jb_stop_reason)stop, rnd);
  jb_job_metrics_finished(jm, out->status, ran_s);
  if (!res->success && res->requeue && stop == JB_STOP_NONE) {
    w->pause_ms =
        w->pause_ms > 0 ? jb_backoff_next(w->pause_ms, REQUEUE_PAUSE_MAX_MS) : REQUEUE_PAUSE_MIN_MS;
    w->must_pause = true;
    out->delay_ms = w->pause_ms;
    jb_log(JB_LOG_ERROR,
           "jobbridge is short of a resource: the job goes back without burning a retry, and "
           "its worker pauses before it claims again",
           "job_id", job->id, "job_type", job->job_type, "trace_id", trace_id(job, tid), "reason",
           res->error_message ? res->error_message : "(no reason given)",
           JB_LOG_I64("pause_ms", w->pause_ms), "worker", w->owner, JB_LOG_END);
  } else if (stop == JB_STOP_NONE) {
    w->pause_ms = 0;
  }
  if (jb_log_enabled(JB_LOG_DEBUG))
    jb_log(JB_LOG_DEBUG, "job ran", "job_id", job->id, "job_type", job->job_type, "trace_id",
           trace_id(job, tid), "status", jb_status_name(out->status), "error", out->error,
           JB_LOG_END);
  return true;
}

/* ---- handing new jobs straight to idle workers (the dispatcher) ---- */

static bool serves_queue(const jb_config *cfg, const char *queue_name) {
  if (cfg->workers.queues_len == 0) return true;
  for (size_t i = 0; i < cfg->workers.queues_len; i++)
    if (strcmp(cfg->workers.queues[i], queue_name) == 0) return true;
  return false;
}

/* A reservation's slot names the worker and which of its reservations it is, so that a
 * hand-over or release arriving after the worker stopped waiting for it (see idle_wait) is
 * recognised as stale, even if the worker was reserved again meanwhile. */
#define RESERVATION_SPAN 4096u

static int reservation_slot(const jb_worker_pool *p, size_t which, unsigned reservation) {
  return (int)((reservation % RESERVATION_SPAN) * p->n + which);
}

/* The worker a slot names, if that reservation is still the one it waits for (idle_lock held). */
static worker *reserved_worker(jb_worker_pool *p, int ticket) {
  worker *w = &p->workers[(size_t)ticket % p->n];
  unsigned r = (unsigned)((size_t)ticket / p->n);
  if (w->state != W_RESERVED || w->reservation % RESERVATION_SPAN != r) return NULL;
  return w;
}

static int pool_reserve(void *self, const char *queue_name, const char **owner, int *lease_s) {
  jb_worker_pool *p = self;
  if (atomic_load(&p->idle) == 0) return -1;
  if (!serves_queue(p->cfg, queue_name)) return -2;
  int found = -1;
  pthread_mutex_lock(&p->idle_lock);
  for (size_t i = 0; found < 0 && !jb_stop_requested(&p->stopping) && i < p->n; i++)
    if (p->workers[i].state == W_IDLE) {
      worker *w = &p->workers[i];
      w->state = W_RESERVED;
      w->reservation++;
      w->reserved_ms = jb_mono_ms();
      atomic_fetch_sub(&p->idle, 1);
      found = reservation_slot(p, i, w->reservation);
      *owner = w->owner;
      *lease_s = p->cfg->workers.lease_s;
    }
  pthread_mutex_unlock(&p->idle_lock);
  return found;
}

static void pool_hand(void *self, int ticket, jb_job *job) {
  jb_worker_pool *p = self;
  pthread_mutex_lock(&p->idle_lock);
  worker *w = reserved_worker(p, ticket);
  if (w != NULL) {
    w->handed = *job;
    w->state = W_HANDED;
    pthread_cond_signal(&w->resolved);
  }
  pthread_mutex_unlock(&p->idle_lock);
  if (w == NULL) {
    jb_log(JB_LOG_ERROR,
           "a job was handed over after its worker stopped waiting for it; the reaper retries it "
           "when its lease expires",
           "job_id", job->id, JB_LOG_END);
    jb_job_clear(job);
    return;
  }
  memset(job, 0, sizeof *job);
  uint64_t one = 1;
  if (write(w->wake_fd, &one, sizeof one) < 0) { /* the counter is set already */
  }
}

static void pool_release(void *self, int ticket) {
  jb_worker_pool *p = self;
  pthread_mutex_lock(&p->idle_lock);
  worker *w = reserved_worker(p, ticket);
  if (w != NULL) {
    w->state = W_IDLE;
    atomic_fetch_add(&p->idle, 1);
    pthread_cond_signal(&w->resolved);
  }
  pthread_mutex_unlock(&p->idle_lock);
}

static const jb_dispatcher_ops dispatcher_ops = {
    .reserve = pool_reserve, .hand = pool_hand, .release = pool_release};

jb_dispatcher jb_worker_pool_dispatcher(jb_worker_pool *p) {
  return (jb_dispatcher){&dispatcher_ops, p};
}

/* How long a reserved worker waits for its hand-over, from its reservation: the renew period
 * (a third of the lease, as the maintenance thread's beat). The job's lease started with the
 * inserting transaction, after the reservation, so a job taken within this wait has at least
 * two thirds of its lease left, more than the time to the next renew beat (a third plus the
 * thread's half-second tick). Waiting the whole lease, as before, let a hand-over arriving near
 * its end run with a lease that ran out before any renewal, so another instance's reaper could
 * retry the job while it ran: it ran twice. */
static int64_t hand_over_wait_ms(const jb_config *cfg) {
  int64_t ms = (int64_t)cfg->workers.lease_s * 1000 / 3;
  return ms < 300 ? 300 : ms;
}

/* A reserved worker waits for its job: the transaction creating it is under way. It waits at
 * most hand_over_wait_ms from its reservation: if that transaction's outcome is not known by
 * then (its reply is late or lost, its connection hangs), the job, if it was committed, is
 * RUNNING under this worker with a lease nobody renews, and the reaper retries it; a late
 * hand-over of it is dropped (pool_hand). Called and returns with idle_lock held. */
static void wait_reserved(worker *w) {
  jb_worker_pool *p = w->pool;
  if (w->state != W_RESERVED) return;
  /* The condition waits on CLOCK_MONOTONIC, as jb_mono_ms counts: from the reservation. */
  int64_t end_ms = w->reserved_ms + hand_over_wait_ms(p->cfg);
  struct timespec until = {.tv_sec = (time_t)(end_ms / 1000),
                           .tv_nsec = (long)(end_ms % 1000) * 1000000L};
  while (w->state == W_RESERVED)
    if (pthread_cond_timedwait(&w->resolved, &p->idle_lock, &until) == ETIMEDOUT &&
        w->state == W_RESERVED) {
      w->state = W_BUSY;
      jb_log(JB_LOG_WARN,
             "gave up waiting for a job handed over: the outcome of its insert is unknown; if it "
             "was committed, the reaper retries the job when its lease expires",
             "worker", w->owner, JB_LOG_END);
    }
}

/* Idle: waits for a notification, a job handed over, or the polling interval (which also finds
 * due retries). Returns how many jobs it put in *jobs: the one handed over, or none. *notified:
 * a notification came too (jobs may be waiting in the table). */
static size_t idle_wait(worker *w, jb_job **jobs, bool *notified) {
  jb_worker_pool *p = w->pool;
  int timeout = p->cfg->workers.poll_ms > 200 ? 200 : p->cfg->workers.poll_ms;
  uint64_t count;
  /* A wake-up left from a hand-over taken after a notification: nothing is handed now. */
  if (read(w->wake_fd, &count, sizeof count) < 0) { /* none left: the usual case */
  }
  if (atomic_load(&w->ndone) > 0) return 0; /* answers of asynchronous jobs to record first */
  pthread_mutex_lock(&p->idle_lock);
  if (!jb_stop_requested(&p->stopping)) {
    w->state = W_IDLE;
    atomic_fetch_add(&p->idle, 1);
  }
  pthread_mutex_unlock(&p->idle_lock);
  jb_error e;
  /* wait_fd: a hand-over (wake_fd) or the pool's stop ends the wait at once. */
  if (w->q.ops->wait(w->q.self, timeout, w->wait_fd, notified, &e) != JB_OK) {
    *notified = true; /* claim (and so retry the database) after the pause */
    jb_stop_wait(&p->stopping, 100);
  }
  if (read(w->wake_fd, &count, sizeof count) < 0) { /* nothing was handed over */
  }
  size_t n = 0;
  pthread_mutex_lock(&p->idle_lock);
  wait_reserved(w);
  if (w->state == W_HANDED) {
    if ((*jobs = malloc(sizeof **jobs)) != NULL) {
      **jobs = w->handed;
      n = 1;
    } else {
      jb_log(JB_LOG_ERROR,
             "out of memory taking a job handed over; the reaper retries it when its lease "
             "expires",
             "job_id", w->handed.id, JB_LOG_END);
      jb_job_clear(&w->handed);
    }
    memset(&w->handed, 0, sizeof w->handed);
  } else if (w->state == W_IDLE) {
    atomic_fetch_sub(&p->idle, 1);
  }
  w->state = W_BUSY;
  pthread_mutex_unlock(&p->idle_lock);
  return n;
}

/* Publishes the jobs the worker holds to the maintenance thread: jobs[from..to). */
static void set_held(worker *w, const jb_job *jobs, size_t from, size_t to) {
  pthread_mutex_lock(&w->slot.lock);
  w->slot.held = jobs;
  w->slot.held_from = from;
  w->slot.held_to = to;
  pthread_mutex_unlock(&w->slot.lock);
}

/* Pauses ms before the next claim; a stop ends the pause at once. */
static void pause_worker(worker *w, long ms) {
  jb_stop_wait(&w->pool->stopping, ms);
}

/* Claimed rows come back in no particular order: run the highest priority first. */
static void sort_batch(jb_job *jobs, size_t n) {
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && (jobs[j].priority > jobs[j - 1].priority ||
                                 (jobs[j].priority == jobs[j - 1].priority &&
                                  jobs[j].scheduled_at < jobs[j - 1].scheduled_at));
         j--) {
      jb_job t = jobs[j];
      jobs[j] = jobs[j - 1];
      jobs[j - 1] = t;
    }
}

/* Records the outcomes of the jobs run up to jobs[done) (fin and res hold the nfin not yet
 * recorded, from index 0; a job started asynchronously has none here), releases their results,
 * publishes what the worker still holds, and records answered asynchronous jobs. */
static void record_done(worker *w, jb_job *jobs, size_t n, jb_finish *fin, jb_job_result *res,
                        size_t nfin, size_t done) {
  jb_worker_record(w, fin, nfin);
  for (size_t k = 0; k < nfin; k++) jb_job_result_clear(&res[k]);
  jb_worker_async_record(w);
  if (done < n)
    set_held(w, jobs, done, n);
  else
    set_held(w, NULL, 0, 0);
}

/* Runs a batch the worker holds and records its outcomes (every RECORD_EVERY_MS, and at the
 * end). Returns the time per job in ms. Without memory for the batch's outcomes, it runs and
 * records the jobs one at a time (on the stack): none is left for the reaper. */
static int64_t run_batch(worker *w, jb_job *jobs, size_t n) {
  jb_worker_pool *p = w->pool;
  jb_finish one_fin, *fin = calloc(n, sizeof *fin);
  jb_job_result one_res, *res = calloc(n, sizeof *res);
  size_t cap = n; /* how many outcomes fin and res hold */
  bool heap = fin != NULL && res != NULL;
  if (!heap) {
    free(fin);
    free(res);
    fin = &one_fin;
    res = &one_res;
    cap = 1;
    jb_log(JB_LOG_WARN, "out of memory for a batch's outcomes: running its jobs one at a time",
           "worker", w->owner, JB_LOG_END);
  }
  set_held(w, jobs, 0, n);
  size_t done = 0, k = 0; /* k: outcomes in fin not yet recorded */
  int64_t last = jb_mono_ms(), started = last;
  jb_time claimed_at = jb_time_now();
  for (size_t i = 0; i < n; i++) {
    bool stopping =
        jb_stop_requested(&p->stopping) && atomic_load(&p->stop_handlers) == JB_STOP_NONE;
    if (stopping || w->must_pause) {
      /* Jobs claimed but not started go back at once, no retry burnt: when stopping, and when
       * a resource shortage makes this worker pause. */
      res[k] = (jb_job_result){0};
      fin[k] = jb_decide_outcome(p->cfg, &jobs[i], &res[k], JB_STOP_SHUTDOWN, 0);
      fin[k].error = stopping ? "not started before shutdown"
                              : "not started: its worker pauses after a resource shortage";
      k++;
    } else if (run_job(w, &jobs[i], claimed_at, &fin[k], &res[k])) {
      k++;
    }
    done++;
    if (k == cap || jb_mono_ms() - last >= RECORD_EVERY_MS) {
      record_done(w, jobs, n, fin, res, k, done);
      k = 0;
      last = jb_mono_ms();
    }
  }
  record_done(w, jobs, n, fin, res, k, done);
  if (heap) {
    free(fin);
    free(res);
  }
  return (jb_mono_ms() - started) / (int64_t)n;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  jb_worker_pool *p = w->pool;
  const jb_config *cfg = p->cfg;
  long backoff = 100;
  int claim = 1;
  /* Jobs may be waiting in the table: at start, after a notification or the polling interval,
   * and after a full claim. Otherwise the worker waits idle, where new jobs are handed to it
   * straight from the transaction that creates them. */
  bool must_claim = true;
  /* Each turn waits at most the idle wait (200 ms) or a claim's backoff (10 s); a handler moves
   * the deadline out by its timeout (run_job). */
  char name[64];
  snprintf(name, sizeof name, "worker %d", w->index);
  w->alive = jb_health_thread(name, 60000);
  w->skip = p->nhandlers > 0 ? calloc(p->nhandlers, sizeof *w->skip) : NULL;
  while (!jb_stop_requested(&p->stopping)) {
    jb_health_beat(w->alive);
    jb_worker_async_record(w);
    jb_job *jobs = NULL;
    size_t n = 0;
    jb_error e;
    int take = claim; /* no more than the room under the asynchronous types' limits */
    size_t nskip = jb_worker_async_limits(w, &take);
    /* A claim whose reply is lost may have committed: its jobs are held by nobody, and the
     * reaper retries them when their lease expires. */
    if (must_claim &&
        w->q.ops->claim(w->q.self, w->owner, cfg->workers.queues, cfg->workers.queues_len, w->skip,
                        nskip, take, cfg->workers.lease_s, &jobs, &n, &e) != JB_OK) {
      jb_log(JB_LOG_WARN, "cannot claim jobs; retrying", "error", e.msg, "worker", w->owner,
             JB_LOG_END);
      pause_worker(w, backoff);
      backoff = jb_backoff_next(backoff, 10000);
      continue;
    }
    backoff = 100;
    jb_lifecycle_metrics_claimed(cfg, jobs, n); /* the job.started events the claim wrote */
    bool handed = false;
    must_claim = false;
    if (n == 0) {
      free(jobs);
      jobs = NULL;
      bool notified = false;
      n = idle_wait(w, &jobs, &notified);
      must_claim = notified || n == 0;
      if (n == 0) continue;
      handed = true;
    }
    must_claim = must_claim || (!handed && n == (size_t)take);
    sort_batch(jobs, n);
    int64_t per_job = run_batch(w, jobs, n);
    if (handed)
      ; /* a job handed over says nothing of how much a claim should take */
    else if (per_job < FAST_HANDLER_MS && n == (size_t)take)
      claim = claim * 2 > CLAIM_MAX ? CLAIM_MAX : claim * 2;
    else if (per_job >= FAST_HANDLER_MS)
      claim = 1;
    jb_jobs_free(jobs, n);
    if (w->must_pause) { /* jobbridge itself is short of a resource: let it recover */
      w->must_pause = false;
      must_claim = true;
      pause_worker(w, w->pause_ms);
    }
  }
  jb_worker_async_drain(w); /* the answers of its asynchronous jobs, within the grace */
  free(w->skip);
  w->skip = NULL;
  jb_health_remove(w->alive);
  w->alive = NULL;
  pthread_mutex_lock(&p->idle_lock); /* for jb_worker_pool_stop's wait */
  p->live--;
  pthread_cond_broadcast(&p->quiet);
  pthread_mutex_unlock(&p->idle_lock);
  return NULL;
}

/* ---- lifecycle ---- */

/* The pool's stop descriptors, and each worker's wait set: its wake_fd (made already) and the
 * pool's stop, in one epoll descriptor that a queue's wait polls as its wake descriptor. */
static jb_err make_wait_fds(jb_worker_pool *p, jb_error *e) {
  jb_err rc = jb_stop_init(&p->stopping, e);
  if (rc == JB_OK) rc = jb_stop_init(&p->maint_stop, e);
  for (size_t i = 0; rc == JB_OK && i < p->n; i++) {
    worker *w = &p->workers[i];
    if (w->wake_fd < 0)
      return jb_fail(e, JB_ERR_IO, "cannot create a worker's wake-up descriptor: %s",
                     strerror(errno));
    w->wait_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event wake = {.events = EPOLLIN}, stop = {.events = EPOLLIN};
    if (w->wait_fd < 0 || epoll_ctl(w->wait_fd, EPOLL_CTL_ADD, w->wake_fd, &wake) != 0 ||
        epoll_ctl(w->wait_fd, EPOLL_CTL_ADD, jb_stop_fd(&p->stopping), &stop) != 0)
      return jb_fail(e, JB_ERR_IO, "cannot create a worker's wait descriptor: %s", strerror(errno));
  }
  return rc;
}

jb_err jb_worker_pool_new(const jb_config *cfg, const char *instance, jb_work_queue *queues,
                          size_t nqueues, jb_worker_pool **out, jb_error *e) {
  size_t need = jb_worker_pool_connections(cfg);
  if (nqueues != need)
    return jb_fail(e, JB_ERR_INVALID, "the worker pool needs %zu queue connections, got %zu", need,
                   nqueues);
  jb_worker_pool *p = calloc(1, sizeof *p);
  if (p == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  p->cfg = cfg;
  snprintf(p->instance, sizeof p->instance, "%s", instance);
  p->n = need - 1;
  p->workers = calloc(p->n, sizeof *p->workers);
  if (p->workers == NULL) {
    free(p);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < p->n; i++) {
    worker *w = &p->workers[i];
    w->pool = p;
    w->index = (int)i;
    w->q = queues[i];
    w->seed = (unsigned)(time(NULL) ^ (long)i * 2654435761u ^ getpid());
    snprintf(w->owner, sizeof w->owner, "%s/w%zu", instance, i);
    pthread_mutex_init(&w->slot.lock, NULL);
    w->slot.ctx.progress = jb_worker_progress_report;
    pthread_condattr_t ca; /* timed waits on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->resolved, &ca);
    pthread_condattr_destroy(&ca);
    w->state = W_BUSY;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->wait_fd = -1;
  }
  pthread_mutex_init(&p->idle_lock, NULL);
  pthread_condattr_t ca; /* jb_worker_pool_stop waits on the monotonic clock */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->quiet, &ca);
  pthread_condattr_destroy(&ca);
  jb_err rc = make_wait_fds(p, e);
  if (rc != JB_OK) {
    jb_worker_pool_free(p);
    return rc;
  }
  p->maint_q = queues[p->n];
  *out = p;
  return JB_OK;
}

jb_err jb_worker_pool_start(jb_worker_pool *p, jb_error *e) {
  if (p->running) return JB_OK;
  jb_stop_reset(&p->stopping);
  jb_stop_reset(&p->maint_stop);
  atomic_store(&p->stop_handlers, JB_STOP_NONE);
  p->live = p->n; /* no thread runs yet */
  if (pthread_create(&p->maint, NULL, jb_worker_maint_main, p) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot start the maintenance thread");
  for (size_t i = 0; i < p->n; i++) {
    if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
      jb_stop_request(&p->stopping);
      jb_stop_request(&p->maint_stop);
      for (size_t j = 0; j < i; j++) pthread_join(p->workers[j].thread, NULL);
      pthread_join(p->maint, NULL);
      return jb_fail(e, JB_ERR_IO, "cannot start worker thread %zu", i);
    }
  }
  p->running = true;
  jb_log(JB_LOG_INFO, "workers started", JB_LOG_U64("threads", p->n), "instance", p->instance,
         JB_LOG_END);
  return JB_OK;
}

static bool any_busy(jb_worker_pool *p) {
  for (size_t i = 0; i < p->n; i++) {
    pthread_mutex_lock(&p->workers[i].slot.lock);
    bool busy = p->workers[i].slot.job_id[0] != '\0';
    pthread_mutex_unlock(&p->workers[i].slot.lock);
    if (busy) return true;
  }
  return false;
}

void jb_worker_pool_stop(jb_worker_pool *p, double grace_s) {
  if (!p->running) return;
  int64_t deadline = jb_mono_ms() + (int64_t)(grace_s * 1000);
  atomic_store(&p->grace_end_ms, deadline);
  jb_stop_request(&p->stopping); /* idle and pausing workers end their wait at once */
  /* The grace period: until every worker thread has ended (each ends when its handler returns
   * and its batch is recorded), or the deadline. */
  struct timespec until = {.tv_sec = (time_t)(deadline / 1000),
                           .tv_nsec = (long)(deadline % 1000) * 1000000L};
  pthread_mutex_lock(&p->idle_lock);
  while (p->live > 0 && pthread_cond_timedwait(&p->quiet, &p->idle_lock, &until) != ETIMEDOUT) {
  }
  pthread_mutex_unlock(&p->idle_lock);
  if (any_busy(p)) {
    jb_log(JB_LOG_WARN, "grace period over: stopping running handlers", JB_LOG_END);
    atomic_store(&p->stop_handlers, JB_STOP_SHUTDOWN);
    for (size_t i = 0; i < p->n; i++) {
      slot *s = &p->workers[i].slot;
      pthread_mutex_lock(&s->lock);
      if (s->job_id[0] != '\0') atomic_store(&s->ctx.stop, JB_STOP_SHUTDOWN);
      pthread_mutex_unlock(&s->lock);
    }
  }
  for (size_t i = 0; i < p->n; i++) pthread_join(p->workers[i].thread, NULL);
  jb_stop_request(&p->maint_stop);
  pthread_join(p->maint, NULL);
  p->running = false;
  jb_log(JB_LOG_INFO, "workers stopped", JB_LOG_END);
}

void jb_worker_pool_free(jb_worker_pool *p) {
  if (p == NULL) return;
  jb_worker_pool_stop(p, 0);
  for (size_t i = 0; i < p->nhandlers; i++) {
    jb_job_handler_release(p->handlers[i].h);
    free(p->handlers[i].job_type);
  }
  free(p->handlers);
  for (size_t i = 0; i < p->n; i++) {
    worker *w = &p->workers[i];
    pthread_mutex_destroy(&w->slot.lock);
    pthread_cond_destroy(&w->resolved);
    if (w->wake_fd >= 0) close(w->wake_fd);
    if (w->wait_fd >= 0) close(w->wait_fd);
    jb_job_clear(&w->handed); /* only if the pool never ran it: the reaper retries the job */
  }
  pthread_mutex_destroy(&p->idle_lock);
  pthread_cond_destroy(&p->quiet);
  jb_stop_destroy(&p->stopping);
  jb_stop_destroy(&p->maint_stop);
  free(p->workers);
  free(p);
}
