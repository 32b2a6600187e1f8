/* The worker pool's private parts, shared by worker_pool.c (workers, the dispatcher, the
 * lifecycle) and worker_maint.c (the maintenance thread). Private to src/core. */
#ifndef JB_WORKER_POOL_INTERNAL_H
#define JB_WORKER_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "jobbridge/stop.h"
#include "jobbridge/worker_pool.h"

typedef struct handler_entry {
  char *job_type;
  jb_job_handler h;
  int cap;              /* asynchronous handlers: jobs in flight at most (concurrency) */
  atomic_int in_flight; /* asynchronous handlers: jobs started, not yet completed */
} handler_entry;

/* A job an asynchronous handler runs (ops->start): the worker that claimed it holds it until it
 * records its outcome. Owned by that worker; its list and `done` are guarded by the worker's
 * slot lock. */
typedef struct pending_job {
  jb_handler_ctx ctx; /* the handler's view; first, so that a ctx is its pending_job */
  struct worker *w;
  handler_entry *he;
  jb_job job; /* owned: moved out of the claimed batch */
  jb_time claimed_at, ran_from;
  jb_job_result res; /* the handler's answer, once done */
  bool done;
  struct pending_job *next;
} pending_job;

/* What the maintenance thread sees of a worker: the job it runs, its stop switch, and the jobs
 * it holds (claimed or handed over, outcome not yet recorded: held[held_from..held_to), borrowed
 * from the worker's batch). Only these leases are renewed: a job whose claim outcome is unknown
 * is held by nobody, and falls to the reaper when its lease expires. */
typedef struct slot {
  pthread_mutex_t lock;
  char job_id[37];
  jb_handler_ctx ctx;
  const jb_job *held;
  size_t held_from, held_to;
  /* The running job's latest progress report not yet written (worker_progress.c): latest wins.
   * job_type is borrowed from the running job. */
  const char *job_type;
  bool progress_dirty;
  int progress_pct;
  char progress_msg[JB_PROGRESS_MESSAGE_MAX + 1];
  bool progress_has_msg;
} slot;

/* Where a worker stands for the dispatcher (guarded by the pool's idle_lock): BUSY claims and
 * runs; IDLE waits and may be reserved; RESERVED waits for the job an ingest transaction is
 * creating for it; HANDED has that job in `handed`. */
typedef enum { W_BUSY, W_IDLE, W_RESERVED, W_HANDED } worker_state;

typedef struct worker {
  struct jb_worker_pool *pool;
  int index;
  pthread_t thread;
  jb_work_queue q;
  char owner[160];
  slot slot;
  unsigned seed;
  worker_state state;
  unsigned reservation; /* counts reservations: a hand-over names the one it answers */
  int64_t reserved_ms;  /* jb_mono_ms() when reserved: the job's lease starts after it */
  jb_job handed;
  pthread_cond_t resolved; /* RESERVED became HANDED or IDLE */
  int wake_fd;             /* an eventfd: written when a job is handed over */
  int wait_fd;     /* an epoll set of wake_fd and the pool's stop: what an idle worker waits on */
  long pause_ms;   /* after a resource shortage: the pause before the next claim */
  bool must_pause; /* a job of this batch went back for a resource shortage */
  struct jb_health_slot *alive; /* this thread's heartbeat (jobbridge/health.h) */
  pending_job *pending;         /* jobs of asynchronous handlers it holds (slot.lock) */
  size_t npending;              /* slot.lock */
  atomic_int ndone;             /* of them, answered and not yet recorded */
  char **skip;                  /* the claim's list of types at their limit (nhandlers) */
} worker;

struct jb_worker_pool {
  const jb_config *cfg;
  char instance[128];
  worker *workers;
  size_t n;
  jb_work_queue maint_q;
  pthread_t maint;
  handler_entry *handlers;
  size_t nhandlers;
  jb_stop stopping;         /* no more claims: every worker polls it where it waits */
  jb_stop maint_stop;       /* the maintenance thread's, requested after the workers ended */
  atomic_int stop_handlers; /* a jb_stop_reason for every running handler, after the grace */
  atomic_int_fast64_t grace_end_ms; /* when stopping: outcomes are retried until then */
  bool running;
  pthread_mutex_t idle_lock; /* the workers' states, and live */
  size_t live;               /* worker threads not yet ended */
  pthread_cond_t quiet;      /* signalled when a worker thread ends */
  atomic_int idle;           /* how many are IDLE: the dispatcher's quick "nobody" */
};

/* Records outcomes through the worker's queue, retrying as the pool does (worker_pool.c). */
void jb_worker_record(worker *w, jb_finish *items, size_t n);

/* ---- asynchronous handlers (worker_async.c) ---- */

/* Starts job (claimed at claimed_at) with its type's asynchronous handler he, taking the job
 * (*job keeps only its id, for the held range). False when out of memory: *job is untouched,
 * and the caller runs it the usual way. */
bool jb_worker_async_start(worker *w, handler_entry *he, jb_job *job, jb_time claimed_at);
/* Records the outcomes of the worker's answered asynchronous jobs, if any. */
void jb_worker_async_record(worker *w);
/* When stopping: records the worker's asynchronous jobs as they answer; at the end of the
 * grace period asks the rest to stop (they return to RETRYING without burning a retry). */
void jb_worker_async_drain(worker *w);
/* The job types at their concurrency limit, into w->skip; lowers *claim to the room left
 * under the others' limits. Returns how many types are skipped. */
size_t jb_worker_async_limits(worker *w, int *claim);

/* The pool's jb_handler_ctx.progress: records a report in the ctx's slot. */
void jb_worker_progress_report(jb_handler_ctx *ctx, int pct, const char *message);
/* Writes every slot's pending progress report in one call of the maint queue's progress op
 * (maintenance thread). */
void jb_worker_progress_flush(jb_worker_pool *p);

/* The maintenance thread (arg: the pool): renews the leases of the jobs workers hold, passes
 * cancellations to running handlers, and runs the reaper, until maint_stop. */
void *jb_worker_maint_main(void *arg);

#endif
