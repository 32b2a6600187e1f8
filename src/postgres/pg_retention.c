/* The PostgreSQL adapter's RetentionStore port (jobbridge/retention.h): the pruning lock, and
 * finished jobs deleted in batches along the partial indexes of migration 9, with their
 * attempts and set-aside outbox rows. Each batch is one statement, so one short transaction. */
#include <stdio.h>
#include <stdlib.h>

#include "jobbridge/retention.h"
#include "postgres/pg_internal.h"

/* The oldest `$2` jobs of one finished status older than $1 seconds, locked (SKIP LOCKED: a
 * manual retry in progress holds its job), deleted only if still in that status. Outbox rows
 * still to be published are kept: their events go out whatever happens to the job. */
#define PRUNE(status, col)                                                                    \
  "WITH del AS (DELETE FROM jobs WHERE id = ANY(ARRAY(\n"                                     \
  "    SELECT id FROM jobs WHERE status = '" status "' AND " col                              \
  " < now() - $1::int8 * interval '1 second'\n"                                               \
  "    ORDER BY " col                                                                         \
  " LIMIT $2::int FOR UPDATE SKIP LOCKED))\n"                                                 \
  "  AND status = '" status                                                                   \
  "' RETURNING id),\n"                                                                        \
  "a AS (DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM del) RETURNING 1),\n"       \
  "o AS (DELETE FROM outbox WHERE job_id IN (SELECT id FROM del) AND failed_at IS NOT NULL\n" \
  "  RETURNING 1)\n"                                                                          \
  "SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM a), (SELECT count(*) FROM o)"

/* Planned at every run: the tables' sizes swing, and the status must reach the planner as a
 * constant for the partial indexes to match. */
static const jb_pg_stmt st_prune[] = {
    {ST_PRUNE_COMPLETED, "jb_prune_completed", PRUNE("COMPLETED", "completed_at"), 2, true},
    {ST_PRUNE_FAILED, "jb_prune_failed", PRUNE("FAILED", "failed_at"), 2, true},
    {ST_PRUNE_DEAD_LETTER, "jb_prune_dead_letter", PRUNE("DEAD_LETTER", "failed_at"), 2, true},
};

/* The dry run: with $2 a constant, the planner folds the CASE and the matching partial index
 * serves the scan. */
static const jb_pg_stmt st_prune_count = {
    ST_PRUNE_COUNT, "jb_prune_count",
    "WITH ids AS (SELECT id FROM jobs WHERE status = $2::text\n"
    "  AND (($2::text = 'COMPLETED' AND completed_at < now() - $1::int8 * interval '1 second')\n"
    "    OR ($2::text <> 'COMPLETED' AND failed_at < now() - $1::int8 * interval '1 second')))\n"
    "SELECT (SELECT count(*) FROM ids),\n"
    "  (SELECT count(*) FROM job_attempts WHERE job_id IN (SELECT id FROM ids)),\n"
    "  (SELECT count(*) FROM outbox WHERE job_id IN (SELECT id FROM ids)\n"
    "    AND failed_at IS NOT NULL)",
    2, true};

static const jb_pg_stmt st_prune_lead = {
    ST_PRUNE_LEAD, "jb_prune_lead",
    "SELECT pg_try_advisory_lock(hashtext('jobbridge.retention.' || current_schema()))", 0, false};

static jb_err rt_try_lead(void *self, bool *leader, jb_error *e) {
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &st_prune_lead, NULL, &res, e);
  if (rc != JB_OK) return rc;
  *leader = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return JB_OK;
}

static uint64_t *status_count(jb_prune_counts *c, jb_job_status s) {
  return s == JB_STATUS_COMPLETED ? &c->completed
         : s == JB_STATUS_FAILED  ? &c->failed
                                  : &c->dead_letter;
}

static void add_counts(PGresult *res, jb_prune_counts *c, jb_job_status s, uint64_t *jobs) {
  uint64_t n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  *status_count(c, s) += n;
  c->attempts += strtoull(PQgetvalue(res, 0, 1), NULL, 10);
  c->outbox += strtoull(PQgetvalue(res, 0, 2), NULL, 10);
  if (jobs != NULL) *jobs = n;
}

static jb_err rt_prune(void *self, jb_job_status status, int64_t older_than_s, int batch,
                       jb_prune_counts *c, uint64_t *jobs, jb_error *e) {
  const jb_pg_stmt *st = status == JB_STATUS_COMPLETED     ? &st_prune[0]
                         : status == JB_STATUS_FAILED      ? &st_prune[1]
                         : status == JB_STATUS_DEAD_LETTER ? &st_prune[2]
                                                           : NULL;
  if (st == NULL)
    return jb_fail(e, JB_ERR_INVALID, "cannot prune jobs in status %s: only finished ones",
                   jb_status_name(status));
  char secs[24], lim[16];
  snprintf(secs, sizeof secs, "%lld", (long long)older_than_s);
  snprintf(lim, sizeof lim, "%d", batch);
  const char *params[2] = {secs, lim};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, st, params, &res, e);
  if (rc != JB_OK) return rc;
  add_counts(res, c, status, jobs);
  PQclear(res);
  return JB_OK;
}

static jb_err rt_count(void *self, jb_job_status status, int64_t older_than_s, jb_prune_counts *c,
                       jb_error *e) {
  if (!jb_status_is_final(status))
    return jb_fail(e, JB_ERR_INVALID, "cannot prune jobs in status %s: only finished ones",
                   jb_status_name(status));
  char secs[24];
  snprintf(secs, sizeof secs, "%lld", (long long)older_than_s);
  const char *params[2] = {secs, jb_status_name(status)};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &st_prune_count, params, &res, e);
  if (rc != JB_OK) return rc;
  add_counts(res, c, status, NULL);
  PQclear(res);
  return JB_OK;
}

static jb_err rt_vacuum(void *self, jb_error *e) {
  jb_err rc = jb_pg_ensure(self, e);
  if (rc != JB_OK) return rc;
  return jb_pg_simple(self, "VACUUM (SKIP_LOCKED) jobs, job_attempts, outbox",
                      "vacuum after pruning", e);
}

static const jb_retention_store_ops retention_ops = {
    .try_lead = rt_try_lead,
    .prune = rt_prune,
    .count = rt_count,
    .vacuum = rt_vacuum,
};

jb_retention_store jb_pg_retention(jb_pg *pg) {
  return (jb_retention_store){&retention_ops, pg};
}
