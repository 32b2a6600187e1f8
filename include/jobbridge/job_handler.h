/* The JobHandler port: runs one job and says what happened. */
#ifndef JOBBRIDGE_JOB_HANDLER_H
#define JOBBRIDGE_JOB_HANDLER_H

#include <stdatomic.h>

#include "jobbridge/job.h"

/* Why a handler is asked to stop early. */
typedef enum {
  JB_STOP_NONE = 0,
  JB_STOP_CANCEL,   /* the job was cancelled: it ends FAILED "Job cancelled" */
  JB_STOP_SHUTDOWN, /* jobbridge is shutting down: the job returns to RETRYING, no retry burnt */
} jb_stop_reason;

/* Shared between the worker running a handler and the pool. A handler that runs for more than
 * a moment checks `stop` (an atomic jb_stop_reason) and returns soon after it is set. */
typedef struct jb_handler_ctx {
  atomic_int stop;
  /* Set by the worker pool (NULL elsewhere): takes a progress report of the running job. */
  void (*progress)(struct jb_handler_ctx *ctx, int pct, const char *message);
  /* Set by the worker pool for a job it started with ops->start: takes the job's outcome (see
   * jb_job_complete). NULL for a job run with ops->handle. */
  void (*complete)(struct jb_handler_ctx *ctx, jb_job_result *result);
} jb_handler_ctx;

/* An asynchronous handler's answer for a job it started: called exactly once per started job,
 * from any thread (never from inside start itself is fine too). The pool takes what *result
 * holds (it is zeroed); the job and ctx must not be touched after the call. */
static inline void jb_job_complete(jb_handler_ctx *ctx, jb_job_result *result) {
  ctx->complete(ctx, result);
}

/* Reports the running job's progress (pct clamped to 0..100; message may be NULL, is copied,
 * cut to JB_PROGRESS_MESSAGE_MAX bytes and made valid UTF-8). Cheap: it only records the latest
 * report; the pool writes it to the job at most a few times a second, only while the job still
 * runs under this worker. Callable from the handler's thread or any thread while handle runs. */
static inline void jb_job_report_progress(jb_handler_ctx *ctx, int pct, const char *message) {
  if (ctx != NULL && ctx->progress != NULL) ctx->progress(ctx, pct, message);
}
#define JB_PROGRESS_MESSAGE_MAX 500

typedef struct jb_job_handler_ops {
  /* Runs the job (borrowed) and fills *result (zeroed by the caller; the caller then owns what
   * it holds). Called from worker threads, several at once. */
  void (*handle)(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *result);
  /* Optional: the asynchronous way, preferred by the pool when set. Starts the job and returns
   * at once; the handler answers later with jb_job_complete(ctx, result) from any thread. job
   * and ctx stay valid until then. The handler watches ctx->stop (cancel, shutdown) and
   * completes soon after it is set. The pool holds the job meanwhile (its lease renewed, its
   * outcome recorded by the worker that claimed it), without a worker thread waiting on it;
   * job_types.*.concurrency caps how many of a type are in flight. Progress reports of such
   * jobs are not taken (ctx->progress is NULL). */
  void (*start)(void *self, const jb_job *job, jb_handler_ctx *ctx);
  /* Releases self. May be NULL. */
  void (*destroy)(void *self);
} jb_job_handler_ops;

typedef struct jb_job_handler {
  const jb_job_handler_ops *ops;
  void *self;
} jb_job_handler;

/* Releases a handler the caller owns (nothing for an empty one). */
static inline void jb_job_handler_release(jb_job_handler h) {
  if (h.ops != NULL && h.ops->destroy != NULL) h.ops->destroy(h.self);
}

/* The built-in handlers (noop, exec, C callbacks) are the handlers adapter's:
 * src/handlers/handlers.h. */

#endif
