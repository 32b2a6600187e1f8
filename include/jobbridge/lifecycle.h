/* Lifecycle events: besides the outcome events (job.completed|failed|dead_letter|retrying),
 * opt-in job.created (written by the transaction that creates the job) and job.started (by the
 * claim, or by the insert of a job handed straight to a worker), through the same outbox, with
 * the same routing-key scheme (job.created.<job_type>, job.started.<job_type>) and the same
 * CloudEvents shape. Chosen by events.lifecycle (every job type) and job_types.*.events. */
#ifndef JOBBRIDGE_LIFECYCLE_H
#define JOBBRIDGE_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/config.h"

enum { JB_EVENT_CREATED = 1, JB_EVENT_STARTED = 2 };

/* The lifecycle events (JB_EVENT_* bits) jobs of this type emit. */
unsigned jb_lifecycle_events(const jb_config *cfg, const char *job_type);

/* Which claimed jobs emit job.started: *all when events.lifecycle has "started", else the
 * registered types whose events have it, as a new NULL-terminated array of borrowed names
 * (free() the array only; *n of them). *n 0 and !*all: none. NULL *types when memory ran out. */
void jb_lifecycle_started_types(const jb_config *cfg, bool *all, const char ***types, size_t *n);

#endif
