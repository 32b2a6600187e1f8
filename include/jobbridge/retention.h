/* Retention: finished jobs (COMPLETED, FAILED, DEAD_LETTER) older than retention.* are deleted
 * with their attempt history and their set-aside outbox rows, in short batched transactions, by
 * one instance at a time. The RetentionStore port is implemented by the PostgreSQL adapter
 * (src/postgres/pg_retention.c); the loop and the duration parsing are core
 * (src/core/retention.c). Waiting and running jobs are never touched. */
#ifndef JOBBRIDGE_RETENTION_H
#define JOBBRIDGE_RETENTION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/config.h"
#include "jobbridge/err.h"
#include "jobbridge/job.h"

/* What one pruning removed (or, dry, would remove). */
typedef struct jb_prune_counts {
  uint64_t completed;   /* jobs */
  uint64_t failed;      /* jobs */
  uint64_t dead_letter; /* jobs */
  uint64_t attempts;    /* job_attempts rows of those jobs */
  uint64_t outbox;      /* set-aside outbox rows of those jobs (never one still to publish) */
} jb_prune_counts;

typedef struct jb_retention_store_ops {
  /* Tries to become the one instance that prunes (kept for the connection's life). */
  jb_err (*try_lead)(void *self, bool *leader, jb_error *e);
  /* One transaction: deletes at most `batch` jobs in `status` (COMPLETED, FAILED or
   * DEAD_LETTER) that finished more than older_than_s seconds ago, oldest first, with their
   * attempts and set-aside outbox rows; adds what it deleted to *c; *jobs gets the job count. */
  jb_err (*prune)(void *self, jb_job_status status, int64_t older_than_s, int batch,
                  jb_prune_counts *c, uint64_t *jobs, jb_error *e);
  /* Marks the space of deleted rows reusable (a plain VACUUM of the jobs, job_attempts and
   * outbox tables, skipping one another process is vacuuming), so the tables stop growing
   * between autovacuum's visits. Never inside a transaction; takes no lock writers wait on. */
  jb_err (*vacuum)(void *self, jb_error *e);
  /* What prune would delete, without deleting it (every batch at once). */
  jb_err (*count)(void *self, jb_job_status status, int64_t older_than_s, jb_prune_counts *c,
                  jb_error *e);
} jb_retention_store_ops;

typedef struct jb_retention_store {
  const jb_retention_store_ops *ops;
  void *self;
} jb_retention_store;

/* Parses a duration: a whole number followed by s, m, h or d ("90s", "30m", "12h", "7d"), at
 * most 100 years. JB_ERR_INVALID with e saying what is wrong otherwise. */
jb_err jb_duration_parse(const char *s, int64_t *seconds, jb_error *e) JB_MUST_CHECK;

/* Loading's check of retention.* and the lifecycle event lists: parses the durations into the
 * *_s fields (-1 for null) and checks every event name. JB_ERR_CONFIG naming `name` and the
 * key. */
jb_err jb_retention_config_check(const char *name, jb_config *cfg, jb_error *e) JB_MUST_CHECK;

/* True when some retention.* is set. */
bool jb_retention_enabled(const jb_retention_cfg *r);

/* One pruning pass: every status with a retention, batch after batch until a batch comes back
 * short or *stop (may be NULL) becomes true, then, if something was deleted and
 * retention.vacuum is on, a vacuum. Dry: counts only. Adds to *c. */
jb_err jb_retention_run(jb_retention_store store, const jb_retention_cfg *r, bool dry_run,
                        atomic_bool *stop, jb_prune_counts *c, jb_error *e) JB_MUST_CHECK;

/* Running totals of a pruning loop, for logs and metrics (read at any time, from any thread). */
typedef struct jb_retention_stats {
  atomic_uint_fast64_t runs; /* passes completed while leading */
  atomic_uint_fast64_t completed;
  atomic_uint_fast64_t failed;
  atomic_uint_fast64_t dead_letter;
  atomic_uint_fast64_t attempts;
  atomic_uint_fast64_t outbox;
  atomic_uint_fast64_t errors;
  atomic_bool leading; /* this instance holds the pruning lock now */
} jb_retention_stats;

/* The pruning loop of `jobbridge run`: a thread that prunes every retention.interval_s while
 * this instance leads. */
typedef struct jb_retainer jb_retainer;

/* store and cfg are borrowed and must outlive it. */
jb_err jb_retainer_new(jb_retention_store store, const jb_config *cfg, jb_retainer **out,
                       jb_error *e) JB_MUST_CHECK;
jb_err jb_retainer_start(jb_retainer *r, jb_error *e) JB_MUST_CHECK;
/* Stops the loop (a batch in progress finishes first) and joins the thread. */
void jb_retainer_stop(jb_retainer *r);
void jb_retainer_free(jb_retainer *r);
const jb_retention_stats *jb_retainer_stats(const jb_retainer *r);

#endif
