/* The outcome rules of the domain, each written once: the retry backoff, and the decision of
 * what a run's outcome does to a job (its new status, retry_count, delay and error). The worker
 * (when it records outcomes) and the reaper (for jobs whose lease expired) both use them; the
 * database only applies what they decided. */
#ifndef JOBBRIDGE_OUTCOME_H
#define JOBBRIDGE_OUTCOME_H

#include <stdint.h>

#include "jobbridge/job.h"

/* How a job type's failed runs are retried: delay = min(max_s, base_s × 2^retry_count), then
 * ± jitter (a fraction, 0..1) of it. Config `retry.*`, overridden per type by
 * `job_types.*.retry.*`. */
typedef struct jb_retry_policy {
  double base_s;
  double max_s;
  double jitter;
} jb_retry_policy;

/* The delay before the retry that follows a failure at retry_count (the count before this
 * failure; negative counts as 0), in milliseconds: min(max_s, base_s × 2^retry_count) scaled by
 * 1 + jitter × (2 rnd − 1). rnd in [0, 1) draws the jitter (0.5: none; values outside are
 * clamped). Never negative; no overflow for any retry_count (large counts give max_s). */
int64_t jb_retry_delay_ms(const jb_retry_policy *p, int retry_count, double rnd);

/* How one run of a job ended. */
typedef enum {
  JB_RUN_SUCCEEDED = 0,
  JB_RUN_FAILED_RETRIABLE, /* the handler failed; another attempt may succeed */
  JB_RUN_FAILED_FINAL,     /* the handler failed for good (non-retriable) */
  JB_RUN_CANCELLED,        /* cancellation was requested while it ran */
  JB_RUN_INTERRUPTED,      /* jobbridge's own shutdown stopped it (or it was not started) */
  JB_RUN_REQUEUED,         /* jobbridge was short of a resource: not the job's fault */
  JB_RUN_LEASE_EXPIRED,    /* its worker was lost (the reaper) */
  JB_RUN_OUTCOME_COUNT
} jb_run_outcome;

/* "succeeded", "failed (retriable)", …; "unknown" out of range. Static storage. */
const char *jb_run_outcome_name(jb_run_outcome o);

/* The error texts the decision itself sets (README and tests quote them). */
#define JB_ERROR_CANCELLED "Job cancelled"
#define JB_ERROR_INTERRUPTED "interrupted by shutdown"
#define JB_ERROR_LEASE_EXPIRED "lease expired: the worker running the job was lost"

/* A job sent back for a resource shortage is due again after this long (the worker replaces it
 * with its own pause when that is longer). */
#define JB_REQUEUE_DELAY_MS 1000

/* What one run's outcome does to its job. */
typedef struct jb_decision {
  jb_job_status status; /* the new status: COMPLETED, FAILED, RETRYING or DEAD_LETTER */
  int retry_count;      /* the new retry_count (+1 only when a retriable failure burns one) */
  bool burn_retry;      /* retry_count is the old one + 1 */
  int64_t delay_ms;     /* RETRYING: due again this long from now; 0 otherwise */
  const char *error;    /* the error_message to record (NULL for COMPLETED: the old one stays);
                           static, or the `error` passed in (borrowed) */
} jb_decision;

/* The one outcome decision. From the job's status (`from`), retry_count, max_retries, its
 * type's retry policy, the outcome of its run and the run's error (may be NULL: "failed"):
 *   succeeded                      -> COMPLETED
 *   failed (retriable), lease expired
 *                                  -> RETRYING, retry_count + 1, delay jb_retry_delay_ms,
 *                                     while retry_count < max_retries; else DEAD_LETTER
 *   failed (final)                 -> FAILED
 *   cancelled                      -> FAILED "Job cancelled"
 *   interrupted, requeued          -> RETRYING, retry_count unchanged (no retry burnt), due at
 *                                     once (interrupted) or after JB_REQUEUE_DELAY_MS
 * Only a RUNNING job has a run: from any other status (or an unknown outcome) the decision is
 * refused with JB_ERR_STATE and e naming both; every decision it makes is checked by
 * jb_status_transition. rnd in [0, 1) draws the jitter. *out is untouched on refusal. */
jb_err jb_decide(jb_job_status from, int retry_count, int max_retries, const jb_retry_policy *p,
                 jb_run_outcome outcome, const char *error, double rnd, jb_decision *out,
                 jb_error *e) JB_MUST_CHECK;

#endif
