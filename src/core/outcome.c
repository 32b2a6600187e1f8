/* The outcome rules, each written once: the retry backoff and the decision of what a run's
 * outcome does to its job. Pure functions: no I/O, no clock, no randomness of their own. */
#include "jobbridge/outcome.h"

#include <math.h>

static const char *const outcome_names[JB_RUN_OUTCOME_COUNT] = {
    [JB_RUN_SUCCEEDED] = "succeeded",
    [JB_RUN_FAILED_RETRIABLE] = "failed (retriable)",
    [JB_RUN_FAILED_FINAL] = "failed (not retriable)",
    [JB_RUN_CANCELLED] = "cancelled",
    [JB_RUN_INTERRUPTED] = "interrupted by shutdown",
    [JB_RUN_REQUEUED] = "requeued (resource shortage)",
    [JB_RUN_LEASE_EXPIRED] = "lease expired",
};

const char *jb_run_outcome_name(jb_run_outcome o) {
  if ((unsigned)o >= JB_RUN_OUTCOME_COUNT) return "unknown";
  return outcome_names[o];
}

int64_t jb_retry_delay_ms(const jb_retry_policy *p, int retry_count, double rnd) {
  if (!(rnd >= 0.0)) rnd = 0.0; /* also NaN */
  if (rnd >= 1.0) rnd = nextafter(1.0, 0.0);
  double base = p->base_s > 0 ? p->base_s : 0.0, cap = p->max_s > 0 ? p->max_s : 0.0;
  double jitter = p->jitter > 0 ? (p->jitter < 1 ? p->jitter : 1.0) : 0.0;
  /* base × 2^n, capped: ldexp is exact and needs no loop; from 2^1024 on a double overflows, so
   * such counts (and any base × 2^n past the cap) are the cap itself. */
  double delay = retry_count <= 0 ? base : retry_count >= 1024 ? cap : ldexp(base, retry_count);
  if (!(delay <= cap)) delay = cap;
  delay *= 1.0 + jitter * (2.0 * rnd - 1.0);
  return delay > 0 ? (int64_t)(delay * 1000.0) : 0;
}

/* The retry of a failure that is the job's (a retriable failure, a lost worker): RETRYING while
 * retries are left, else DEAD_LETTER. */
static void retry_or_dead(int retry_count, int max_retries, const jb_retry_policy *p, double rnd,
                          jb_decision *d) {
  if (retry_count < max_retries) {
    d->status = JB_STATUS_RETRYING;
    d->burn_retry = true;
    d->retry_count = retry_count + 1;
    d->delay_ms = jb_retry_delay_ms(p, retry_count, rnd);
  } else {
    d->status = JB_STATUS_DEAD_LETTER;
  }
}

jb_err jb_decide(jb_job_status from, int retry_count, int max_retries, const jb_retry_policy *p,
                 jb_run_outcome outcome, const char *error, double rnd, jb_decision *out,
                 jb_error *e) {
  if ((unsigned)outcome >= JB_RUN_OUTCOME_COUNT)
    return jb_fail(e, JB_ERR_STATE, "unknown run outcome %d of a %s job", (int)outcome,
                   jb_status_name(from));
  jb_decision d = {.retry_count = retry_count, .error = error != NULL ? error : "failed"};
  switch (outcome) {
    case JB_RUN_SUCCEEDED:
      d.status = JB_STATUS_COMPLETED;
      d.error = NULL;
      break;
    case JB_RUN_FAILED_RETRIABLE:
      retry_or_dead(retry_count, max_retries, p, rnd, &d);
      break;
    case JB_RUN_LEASE_EXPIRED:
      d.error = JB_ERROR_LEASE_EXPIRED;
      retry_or_dead(retry_count, max_retries, p, rnd, &d);
      break;
    case JB_RUN_FAILED_FINAL:
      d.status = JB_STATUS_FAILED;
      break;
    case JB_RUN_CANCELLED:
      d.status = JB_STATUS_FAILED;
      d.error = JB_ERROR_CANCELLED;
      break;
    case JB_RUN_INTERRUPTED: /* not the job's fault: no retry burnt, even with none left */
      d.status = JB_STATUS_RETRYING;
      d.error = JB_ERROR_INTERRUPTED;
      break;
    case JB_RUN_REQUEUED: /* jobbridge's own shortage: not the job's fault either */
      d.status = JB_STATUS_RETRYING;
      d.delay_ms = JB_REQUEUE_DELAY_MS;
      break;
    case JB_RUN_OUTCOME_COUNT:
      break;
  }
  /* Only a RUNNING job has a run to decide about; the state machine checks the rest. A cancel
   * while waiting (-> FAILED) is the cancel command's own transition, not a run's outcome. */
  if (from != JB_STATUS_RUNNING)
    return jb_fail(e, JB_ERR_STATE,
                   "illegal job status transition %s -> %s: a %s job has no run whose outcome "
                   "(%s) could be recorded",
                   jb_status_name(from), jb_status_name(d.status), jb_status_name(from),
                   jb_run_outcome_name(outcome));
  jb_err rc = jb_status_transition(from, d.status, e);
  if (rc != JB_OK) return rc;
  *out = d;
  return JB_OK;
}
