/* jobbridge's job metrics (registered in jb_metrics_global): jobs created by job type and queue
 * (the job service), and per job type the runs' outcomes, durations and start latencies (the
 * worker pool). Every update is an atomic add on a series found without a lock. */
#ifndef JOBBRIDGE_JOB_METRICS_H
#define JOBBRIDGE_JOB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "jobbridge/job.h"
#include "jobbridge/job_creator.h"
#include "jobbridge/job_store.h"

/* Counts the jobs of a committed batch that were created (not duplicates), by type and queue. */
void jb_job_metrics_created(const jb_new_job *jobs, size_t n, const jb_create_outcome *out);

/* One job type's series (found once per job, lock-free; made the first time the type is seen;
 * NULL when memory ran out, which the functions below accept). */
typedef struct jb_job_run_metrics jb_job_run_metrics;
const jb_job_run_metrics *jb_job_run_metrics_for(const char *job_type);

/* A handler is about to run `job`: observes the create-to-start latency (now - created_at) and
 * the claim-to-start latency (now - claimed_at, jb_time_now() when the worker got the job). */
void jb_job_metrics_started(const jb_job_run_metrics *m, const jb_job *job, jb_time claimed_at);
/* A run ended with outcome `status` (COMPLETED, FAILED, RETRYING, DEAD_LETTER) after run_s. */
void jb_job_metrics_finished(const jb_job_run_metrics *m, jb_job_status status, double run_s);

/* A dead-letter reason's class, a label value from a closed set: malformed (not JSON, not an
 * object, bad UTF-8, a NUL byte, empty), too_large, no_mapping, refused (the job was refused:
 * validation, the database), invalid (anything else about the event). */
const char *jb_metrics_reason_class(const char *reason);

#endif
