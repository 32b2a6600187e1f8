/* The worker pool: threads that claim jobs through the WorkQueue port, run the JobHandler of each
 * job's type, and record outcomes (with retries, backoff and dead letters). */
#ifndef JOBBRIDGE_WORKER_POOL_H
#define JOBBRIDGE_WORKER_POOL_H

#include "jobbridge/config.h"
#include "jobbridge/job_handler.h"
#include "jobbridge/job_service.h"
#include "jobbridge/work_queue.h"

typedef struct jb_worker_pool jb_worker_pool;

/* A pool of cfg->workers_threads workers (0: two per core, at least 4). queues[i] serves worker i
 * and queues[nthreads] the maintenance thread (lease renewal, cancellation, the reaper): each must
 * be its own connection, used by that thread only. The pool starts with no handler: the wiring
 * builds them (for the built-in ones, jb_handlers_from_config in src/handlers/handlers.h) and
 * hands each over with jb_worker_pool_register; a job of a type with none fails ("no handler
 * registered"). `instance` names this process in locked_by. cfg and queues are borrowed. */
jb_err jb_worker_pool_new(const jb_config *cfg, const char *instance, jb_work_queue *queues,
                          size_t nqueues, jb_worker_pool **out, jb_error *e) JB_MUST_CHECK;

/* How many queue connections the pool needs for this config (threads + 1). */
size_t jb_worker_pool_connections(const jb_config *cfg);

/* Registers (or replaces) the handler of a job type, before start. The pool owns it then, also
 * when this fails (it is destroyed then). */
jb_err jb_worker_pool_register(jb_worker_pool *p, const char *job_type, jb_job_handler h,
                               jb_error *e) JB_MUST_CHECK;

jb_err jb_worker_pool_start(jb_worker_pool *p, jb_error *e) JB_MUST_CHECK;

/* Stops claiming, lets running handlers finish for up to grace_s, then stops them (their jobs
 * return to RETRYING without burning a retry), records every outcome, and joins the threads. */
void jb_worker_pool_stop(jb_worker_pool *p, double grace_s);

/* The pool as a JobService dispatcher: jobs created while a worker is idle are handed to it
 * from the creating transaction (borrows p; valid until jb_worker_pool_free). */
jb_dispatcher jb_worker_pool_dispatcher(jb_worker_pool *p);

/* Stops if running, then frees (handlers included). */
void jb_worker_pool_free(jb_worker_pool *p);

/* What one run of a job leads to: the handler's result and the stop switch made a run outcome
 * and decided by jb_decide (jobbridge/outcome.h) with the retry policy of the job's type
 * (exposed for tests). rnd in [0, 1) draws the jitter. */
jb_finish jb_decide_outcome(const jb_config *cfg, const jb_job *job, const jb_job_result *r,
                            jb_stop_reason stop, double rnd);

/* The reaper (run by the pool's maintenance thread every 5 s; exposed for tests): lists the
 * RUNNING jobs of q whose lease expired, decides each one's outcome with jb_decide (a lost
 * worker is a retriable failure, with the retry policy of the job's type and jitter drawn from
 * *seed; FAILED "Job cancelled" if its cancellation was requested) and has q apply the
 * decisions, one statement per batch. *reaped counts the jobs changed. */
jb_err jb_reap_expired(const jb_config *cfg, jb_work_queue q, unsigned *seed, size_t *reaped,
                       jb_error *e) JB_MUST_CHECK;

#endif
