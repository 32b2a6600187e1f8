/* The outcome decision's two users turned into WorkQueue records (jb_finish): the worker's
 * (jb_decide_outcome, for each run it records) and the reaper's (jb_reap_expired, for jobs whose
 * worker was lost). Both decide through jb_decide; the queue only applies the decisions. */
#include <stdlib.h>
#include <string.h>

#include "jobbridge/log.h"
#include "jobbridge/outcome.h"
#include "jobbridge/worker_pool.h"

/* Expired jobs the reaper decides about per statement; it goes on while batches come back full
 * (at most REAP_ROUNDS of them per call: the next call, 5 s later, goes on). */
#define REAP_BATCH 500
#define REAP_ROUNDS 20

void jb_expired_jobs_free(jb_expired_job *jobs, size_t n) {
  if (jobs == NULL) return;
  for (size_t i = 0; i < n; i++) free(jobs[i].job_type);
  free(jobs);
}

static jb_finish finish_of(const char *id, const jb_decision *d, json_t *result) {
  jb_finish f;
  memset(&f, 0, sizeof f);
  memcpy(f.id, id, sizeof f.id);
  f.status = d->status;
  f.result = d->status == JB_STATUS_COMPLETED ? result : NULL;
  f.error = d->error;
  f.delay_ms = d->delay_ms;
  f.burn_retry = d->burn_retry;
  return f;
}

/* How the worker's run ended, from the handler's result and the stop switch. A cancellation
 * wins over everything (the job was asked to stop); a handler that finished despite a shutdown
 * completed. */
static jb_run_outcome run_outcome(const jb_job_result *r, jb_stop_reason stop) {
  if (stop == JB_STOP_CANCEL) return JB_RUN_CANCELLED;
  if (r->success) return JB_RUN_SUCCEEDED;
  if (stop == JB_STOP_SHUTDOWN) return JB_RUN_INTERRUPTED;
  if (r->requeue) return JB_RUN_REQUEUED;
  return r->retriable ? JB_RUN_FAILED_RETRIABLE : JB_RUN_FAILED_FINAL;
}

jb_finish jb_decide_outcome(const jb_config *cfg, const jb_job *job, const jb_job_result *r,
                            jb_stop_reason stop, double rnd) {
  jb_retry_policy policy = jb_config_retry_policy(cfg, job->job_type);
  jb_decision d;
  jb_error e;
  /* A worker runs only jobs it holds, and it holds them RUNNING (claimed or handed over). */
  if (jb_decide(JB_STATUS_RUNNING, job->retry_count, job->max_retries, &policy,
                run_outcome(r, stop), r->error_message, rnd, &d, &e) != JB_OK) {
    /* Not reachable from RUNNING; the record step refuses a RUNNING "outcome" before any SQL. */
    jb_log(JB_LOG_ERROR, "bug: no outcome decided", "job_id", job->id, "error", e.msg, JB_LOG_END);
    d = (jb_decision){.status = JB_STATUS_RUNNING, .error = "no outcome decided"};
  }
  /* A handler that asked for a delay (Retry-After) gets it, within the type's cap. */
  if (d.status == JB_STATUS_RETRYING && d.burn_retry && r->retry_after_ms > 0) {
    int64_t cap = (int64_t)(policy.max_s * 1000.0);
    d.delay_ms = r->retry_after_ms < cap ? r->retry_after_ms : cap;
  }
  return finish_of(job->id, &d, r->result_data);
}

/* Decides the outcome of each expired job (a lost worker, or a cancellation its worker did not
 * live to carry out) into decided[]; a job the decision refuses is moved out of the first *k
 * entries of seen (they keep their ownership) and logged. */
static void decide_expired(const jb_config *cfg, jb_expired_job *seen, size_t n, unsigned *seed,
                           jb_finish *decided, size_t *k) {
  *k = 0;
  for (size_t i = 0; i < n; i++) {
    jb_retry_policy policy = jb_config_retry_policy(cfg, seen[i].job_type);
    jb_run_outcome o = seen[i].cancel_requested ? JB_RUN_CANCELLED : JB_RUN_LEASE_EXPIRED;
    double rnd = (double)rand_r(seed) / ((double)RAND_MAX + 1.0);
    jb_decision d;
    jb_error e;
    if (jb_decide(JB_STATUS_RUNNING, seen[i].retry_count, seen[i].max_retries, &policy, o, NULL,
                  rnd, &d, &e) != JB_OK) {
      jb_log(JB_LOG_ERROR, "bug: the reaper's outcome was refused", "job_id", seen[i].id, "error",
             e.msg, JB_LOG_END);
      continue;
    }
    jb_expired_job t = seen[*k];
    seen[*k] = seen[i];
    seen[i] = t;
    decided[*k] = finish_of(seen[*k].id, &d, NULL);
    (*k)++;
  }
}

jb_err jb_reap_expired(const jb_config *cfg, jb_work_queue q, unsigned *seed, size_t *reaped,
                       jb_error *e) {
  *reaped = 0;
  for (int round = 0; round < REAP_ROUNDS; round++) {
    jb_expired_job *seen = NULL;
    size_t n = 0, k = 0, applied = 0;
    jb_err rc = q.ops->expired(q.self, REAP_BATCH, &seen, &n, e);
    if (rc != JB_OK) return rc;
    jb_finish *decided = n > 0 ? calloc(n, sizeof *decided) : NULL;
    if (n > 0 && decided == NULL) {
      jb_expired_jobs_free(seen, n);
      return jb_fail(e, JB_ERR_NOMEM, "out of memory deciding about %zu expired jobs", n);
    }
    if (n > 0) decide_expired(cfg, seen, n, seed, decided, &k);
    if (k > 0) rc = q.ops->reap(q.self, seen, decided, k, &applied, e);
    free(decided);
    jb_expired_jobs_free(seen, n);
    if (rc != JB_OK) return rc;
    *reaped += applied;
    if (n < REAP_BATCH) break;
  }
  return JB_OK;
}
