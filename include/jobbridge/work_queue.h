/* The WorkQueue port: what the worker pool does with stored jobs (claim, record outcomes, renew
 * leases, reap jobs of lost workers, wait for work) and the request that a RUNNING job stop.
 * Implemented by the PostgreSQL adapter (src/postgres/pg_work.c). Creating, reading, cancelling
 * and retrying jobs is the JobStore port, jobbridge/job_store.h. */
#ifndef JOBBRIDGE_WORK_QUEUE_H
#define JOBBRIDGE_WORK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/job.h"

/* The outcome of one run, recorded by finish. */
typedef struct jb_finish {
  char id[37];
  jb_job_status status; /* COMPLETED, FAILED, RETRYING or DEAD_LETTER */
  json_t *result;       /* borrowed; NULL keeps the old result */
  const char *error;    /* borrowed; the error_message for failures */
  int64_t delay_ms;     /* RETRYING: run again after this long */
  bool burn_retry;      /* RETRYING: count this attempt (false when shutdown interrupted it) */
} jb_finish;

/* A job a worker holds: claimed (or handed over) and its outcome not yet recorded. */
typedef struct jb_held_job {
  char id[37];
  const char *owner; /* the worker's locked_by; borrowed */
} jb_held_job;

/* A RUNNING job whose lease expired, as the reaper found it: what its outcome is decided from.
 * job_type is owned by the array (jb_expired_jobs_free). */
typedef struct jb_expired_job {
  char id[37];
  char *job_type;
  int retry_count;
  int max_retries;
  bool cancel_requested;
} jb_expired_job;

/* A running job's latest progress report, as the pool writes it. */
typedef struct jb_progress {
  char id[37];
  const char *owner;   /* borrowed; the worker's locked_by, or NULL: any RUNNING job (the API) */
  int pct;             /* 0..100 */
  const char *message; /* borrowed, valid UTF-8, or NULL */
  bool event;          /* also write a job.progress outbox event (in the same statement) */
} jb_progress;

/* Frees n expired jobs (each one's job_type, then the array). NULL is fine. */
void jb_expired_jobs_free(jb_expired_job *jobs, size_t n);

typedef struct jb_work_queue_ops {
  /* Claims up to max due jobs (PENDING, SCHEDULED or RETRYING with scheduled_at <= now) of the
   * given queues (NULL/0: all), highest priority first, then oldest: they become RUNNING with
   * locked_by = owner and a lease of lease_s, skipping jobs of the types in skip_types (those
   * at their concurrency limit; NULL/0: none). *out is a new array (jb_jobs_free). */
  jb_err (*claim)(void *self, const char *owner, char *const *queues, size_t nqueues,
                  char *const *skip_types, size_t nskip, int max, int lease_s, jb_job **out,
                  size_t *n, jb_error *e);
  /* Records outcomes in one transaction, each with its outbox event. Only jobs still RUNNING
   * under `owner` change (a reaped or cancelled job is left alone); *applied counts them. */
  jb_err (*finish)(void *self, const char *owner, const jb_finish *items, size_t n, size_t *applied,
                   jb_error *e);
  /* For the n jobs workers hold (held[i]: a job id and its worker's locked_by): extends to
   * lease_s the lease of each that is still RUNNING under that owner (lease_s 0: extends
   * nothing, only looks for cancellations). Only jobs a worker holds are ever passed: a job
   * whose claim or hand-over committed while its reply was lost is held by nobody, so its lease
   * runs out and the reaper retries it. *cancel (a new array of ids, free()) lists those of
   * them whose cancellation was requested. */
  jb_err (*renew)(void *self, const jb_held_job *held, size_t n, int lease_s, char (**cancel)[37],
                  size_t *ncancel, jb_error *e);
  /* The reaper's two steps; what happens to each job is decided in core (jb_decide, with the
   * retry policy of its type and jitter), never here. `expired` lists up to max jobs RUNNING
   * with an expired lease (their worker was lost), oldest lease first: *out is a new array of
   * *n (free with jb_expired_jobs_free). */
  jb_err (*expired)(void *self, int max, jb_expired_job **out, size_t *n, jb_error *e);
  /* Applies decided[i] to the job seen[i] in one statement, each change with its outbox event,
   * to a job that is still RUNNING with an expired lease and the retry_count and
   * cancel_requested it was decided from (locked, SKIP LOCKED: a job whose worker is recording
   * its outcome right now is left alone, as is one that changed since it was seen). decided[i]
   * is a RETRYING, DEAD_LETTER or FAILED outcome (no result). *applied counts the changes. */
  jb_err (*reap)(void *self, const jb_expired_job *seen, const jb_finish *decided, size_t n,
                 size_t *applied, jb_error *e);
  /* Blocks until jobs may be waiting (a notification since the last claim), wake_fd (if not
   * -1) becomes readable, or timeout_ms passes (0: only looks). *notified (may be NULL) tells
   * whether a notification came. */
  jb_err (*wait)(void *self, int timeout_ms, int wake_fd, bool *notified, jb_error *e);
  /* Asks for a RUNNING job to be cancelled (its worker stops the handler). */
  jb_err (*request_cancel)(void *self, const char *id, jb_error *e);
  /* Stores the progress of n jobs in one statement: progress and progress_message of each job
   * that is still RUNNING (under items[i].owner unless that is NULL), with a job.progress
   * outbox event for those whose `event` is set; finished jobs are never touched. *applied
   * (may be NULL) counts the jobs changed. May be NULL in a queue that stores no progress. */
  jb_err (*progress)(void *self, const jb_progress *items, size_t n, size_t *applied, jb_error *e);
} jb_work_queue_ops;

/* Each instance is used by one thread at a time (one connection). */
typedef struct jb_work_queue {
  const jb_work_queue_ops *ops;
  void *self;
} jb_work_queue;

#endif
