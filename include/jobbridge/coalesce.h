/* A group-committing JobCreator: concurrent create_jobs calls from many threads (HTTP
 * connections, webhooks) are gathered and handed to an inner JobCreator as one call, so one
 * transaction stores the jobs of many callers. Each caller still gets its own outcome:
 * - requests are validated in the caller's thread first (jb_job_service_validate), so an
 *   invalid request fails alone and never joins a group;
 * - a group the inner creator still refuses as invalid (JB_ERR_INVALID, JB_ERR_UNREGISTERED,
 *   JB_ERR_DB_REFUSED: data only the database rejects) is retried one caller at a time, so a
 *   caller's bad request cannot fail its neighbours;
 * - any other failure (the database is down) fails every caller of the group with the same
 *   error; nothing of the group was stored (one transaction).
 * One caller's n requests are stored all or none, as with the inner creator.
 *
 * Threads: one committer thread per inner creator; each inner creator is used only by its own
 * committer (an inner JobService has a connection of its own). */
#ifndef JOBBRIDGE_COALESCE_H
#define JOBBRIDGE_COALESCE_H

#include <stddef.h>

#include "jobbridge/job_creator.h"
#include "jobbridge/job_service.h"

typedef struct jb_coalescer jb_coalescer;

/* Starts one committer thread per inner creator (ninner >= 1). `validator` checks requests
 * in the callers' threads (only jb_job_service_validate is called: it reads the config).
 * A group holds at most max_group requests (one caller's call may hold more: it goes alone).
 * Everything is borrowed and must outlive the coalescer. */
jb_err jb_coalescer_new(const jb_job_creator *inner, size_t ninner, const jb_job_service *validator,
                        size_t max_group, jb_coalescer **out, jb_error *e) JB_MUST_CHECK;

/* The JobCreator port of the coalescer; create_jobs may be called from any thread at once.
 * After jb_coalescer_stop it fails with JB_ERR_STOPPED. */
jb_job_creator jb_coalescer_creator(jb_coalescer *c);

/* Counters, for tests and logs. */
typedef struct jb_coalescer_stats {
  unsigned long long calls;   /* create_jobs calls that reached a committer */
  unsigned long long groups;  /* inner calls made for groups */
  unsigned long long singles; /* inner calls made one caller at a time, after a refused group */
} jb_coalescer_stats;

jb_coalescer_stats jb_coalescer_get_stats(jb_coalescer *c);

/* Serves the calls already queued, then stops the committers. Idempotent. */
void jb_coalescer_stop(jb_coalescer *c);

/* Stops (if not yet) and frees. NULL is fine. */
void jb_coalescer_free(jb_coalescer *c);

#endif
