/* JobService: the domain service. Implements the JobCreator port on top of a JobStore, checking
 * every request against the registered job types first, and offers the job operations the CLI
 * and (later) the HTTP API use. Of the WorkQueue it uses only request_cancel (cancel of a RUNNING
 * job). */
#ifndef JOBBRIDGE_JOB_SERVICE_H
#define JOBBRIDGE_JOB_SERVICE_H

#include "jobbridge/config.h"
#include "jobbridge/job_creator.h"
#include "jobbridge/job_store.h"
#include "jobbridge/work_queue.h"

/* Idle workers of this process that new jobs can be handed to straight from the transaction
 * that creates them, skipping the notification and the claim (the worker pool implements it).
 * Callable from any thread. */
typedef struct jb_dispatcher_ops {
  /* Reserves an idle worker that serves queue_name: *owner gets its locked_by (owned by the
   * dispatcher, valid as long as it is) and *lease_s its lease; returns the worker's slot.
   * -1: no worker is idle; -2: none of the idle ones serves that queue. A reservation must end
   * in hand or release. */
  int (*reserve)(void *self, const char *queue_name, const char **owner, int *lease_s);
  /* The job is committed RUNNING under the slot's owner: the worker runs it. Takes what *job
   * owns. */
  void (*hand)(void *self, int slot, jb_job *job);
  /* The reservation is not used (the insert failed, or the job was a duplicate). */
  void (*release)(void *self, int slot);
} jb_dispatcher_ops;

typedef struct jb_dispatcher {
  const jb_dispatcher_ops *ops; /* NULL: no dispatch, every job is stored waiting */
  void *self;
} jb_dispatcher;

typedef struct jb_job_service {
  jb_job_store store;   /* borrowed */
  jb_work_queue work;   /* borrowed: request_cancel only */
  const jb_config *cfg; /* borrowed: the registered job types */
  int cancel_wait_ms;   /* cancel of a RUNNING job: how long to wait for it to stop */
  jb_dispatcher dispatch;
} jb_job_service;

/* Binds a service to a store, a work queue (for cancellation of RUNNING jobs; it may share the
 * store's connection) and a config; all must outlive it. No dispatcher. */
void jb_job_service_init(jb_job_service *svc, jb_job_store store, jb_work_queue work,
                         const jb_config *cfg);

/* Jobs due now go straight to idle workers of d (borrowed; it must outlive the service). */
void jb_job_service_set_dispatcher(jb_job_service *svc, jb_dispatcher d);

/* The JobCreator port backed by this service (borrows svc). */
jb_job_creator jb_job_service_creator(jb_job_service *svc);

/* Validates one request without storing it (request index `index` of `n`, for messages). */
jb_err jb_job_service_validate(const jb_job_service *svc, const jb_job_request *req, size_t index,
                               size_t n, jb_error *e) JB_MUST_CHECK;

jb_err jb_job_service_get(jb_job_service *svc, const char *id, jb_job *out,
                          jb_error *e) JB_MUST_CHECK;
/* The job's finished attempts, oldest first (jobbridge/job_store.h); free with
 * jb_job_attempts_free. An empty array for a store without attempt history. */
jb_err jb_job_service_attempts(jb_job_service *svc, const char *id, jb_job_attempt **out, size_t *n,
                               jb_error *e) JB_MUST_CHECK;
jb_err jb_job_service_list(jb_job_service *svc, const jb_job_filter *f, jb_job **out, size_t *n,
                           jb_error *e) JB_MUST_CHECK;
/* A waiting job becomes FAILED "Job cancelled" at once. For a RUNNING job, cancellation is
 * requested (its worker stops the handler) and the call waits up to cancel_wait_ms for it to
 * end: JB_ERR_TIMEOUT if it is still running then (the request stays). */
jb_err jb_job_service_cancel(jb_job_service *svc, const char *id, jb_job *out,
                             jb_error *e) JB_MUST_CHECK;
jb_err jb_job_service_retry(jb_job_service *svc, const char *id, jb_job *out,
                            jb_error *e) JB_MUST_CHECK;
/* A progress report of a RUNNING job from outside (the HTTP API): stores progress (0..100) and
 * message (NULL for none; valid UTF-8 of at most JB_PROGRESS_MESSAGE_MAX bytes, no control
 * character but tab) through the work queue's progress op, with a job.progress event when the
 * job's type has progress_events. *out gets the job as read before, with the report applied.
 * JB_ERR_NOT_FOUND no such job; JB_ERR_STATE it is not RUNNING (or finished meanwhile);
 * JB_ERR_INVALID a bad argument, named. (job_progress.c) */
jb_err jb_job_service_progress(jb_job_service *svc, const char *id, int pct, const char *message,
                               jb_job *out, jb_error *e) JB_MUST_CHECK;
jb_err jb_job_service_stats(jb_job_service *svc, jb_queue_stats **out, size_t *n,
                            jb_error *e) JB_MUST_CHECK;
/* Jobs per minute over the last hour (jb_job_store_ops.throughput). */
jb_err jb_job_service_throughput(jb_job_service *svc, jb_throughput_minute **out, size_t *n,
                                 jb_error *e) JB_MUST_CHECK;

/* True if s is a UUID in its 36-character text form. */
bool jb_is_uuid(const char *s);

#endif
