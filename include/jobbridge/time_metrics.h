/* The metrics of the time and history parts (issue 14): the ScheduleTrigger's firings, the
 * retention loop's pruning and the lifecycle events written, in the process's registry
 * (jobbridge/metrics.h).
 *
 * Cost: a schedule fires at most once a second per schedule, so its series are looked up (lock
 * free) at each firing. Retention is read at scrape time from the loop's own atomic totals (a
 * collector). Lifecycle events are counted where they are written, one relaxed atomic add per
 * batch, and only when some job type asks for them. */
#ifndef JOBBRIDGE_TIME_METRICS_H
#define JOBBRIDGE_TIME_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/config.h"
#include "jobbridge/job.h"
#include "jobbridge/job_store.h"
#include "jobbridge/retention.h"
#include "jobbridge/schedule.h"

/* ---- schedules (src/core/schedule.c's thread) ---- */

/* The schedule `name` is running: its series exist from now (at 0); last_fire is the last
 * firing recorded by any instance (seconds since the epoch), or < 0 when none is known. */
void jb_schedule_metrics_seen(const char *name, int64_t last_fire);
/* This instance handled the firing at `at`: created its job (created), or found it made by
 * another instance (the dedupe key). */
void jb_schedule_metrics_fired(const char *name, int64_t at, jb_fire_kind kind, bool created);
/* n firings of the schedule were missed (while no instance ran, or too late), whatever the
 * misfire policy then created. */
void jb_schedule_metrics_missed(const char *name, int64_t n);
/* A firing failed: refused (the job was invalid: counted as done) or the database (retried). */
void jb_schedule_metrics_error(const char *name, bool refused);

/* ---- retention (src/core/retention.c's loop) ---- */

/* Reads s (borrowed until unregistered) at every scrape. */
void jb_retention_metrics_register(const jb_retention_stats *s);
void jb_retention_metrics_unregister(const jb_retention_stats *s);

/* ---- lifecycle events ---- */

/* Makes the lifecycle series exist (at 0) for a process that may write them. */
void jb_lifecycle_metrics_register(void);
/* After an enqueue committed: counts the job.created and job.started events its statement wrote
 * (jobs[i].events of the jobs created; job.started only for those stored RUNNING). */
void jb_lifecycle_metrics_enqueued(const jb_new_job *jobs, size_t n, const jb_create_outcome *out);
/* After a claim committed: counts the job.started events it wrote (the claimed jobs whose type
 * asks for job.started in cfg). */
void jb_lifecycle_metrics_claimed(const jb_config *cfg, const jb_job *jobs, size_t n);

#endif
