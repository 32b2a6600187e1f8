/* The dashboard's reads of the JobStore port: jobs created and finished per minute over the
 * last hour. Both halves stay on indexes and inside the hour: creations on jobs_created_idx
 * (created_at DESC, id), finishes on retention's partial indexes of finished rows (migration 9:
 * completed_at of COMPLETED, failed_at of FAILED and of DEAD_LETTER). */
#include <stdio.h>
#include <stdlib.h>

#include "postgres/pg_internal.h"

static const jb_pg_stmt throughput_stmt = {
    ST_THROUGHPUT, "jb_throughput",
    "WITH c AS (SELECT date_trunc('minute', created_at) AS m, count(*) AS n FROM jobs\n"
    "           WHERE created_at >= date_trunc('minute', now()) - interval '59 minutes'\n"
    "           GROUP BY 1),\n"
    /* Finishes along retention's partial indexes (migration 9): completed_at of COMPLETED,
     * failed_at of FAILED and of DEAD_LETTER; no index of its own to write per finish. */
    "     f AS (SELECT m, sum(ok) AS ok, sum(failed) AS failed, sum(dead) AS dead FROM (\n"
    "             SELECT date_trunc('minute', completed_at) AS m, 1 AS ok, 0 AS failed, 0 AS dead\n"
    "             FROM jobs WHERE status = 'COMPLETED'\n"
    "               AND completed_at >= date_trunc('minute', now()) - interval '59 minutes'\n"
    "             UNION ALL\n"
    "             SELECT date_trunc('minute', failed_at), 0, 1, 0 FROM jobs WHERE status = 'FAILED'\n"
    "               AND failed_at >= date_trunc('minute', now()) - interval '59 minutes'\n"
    "             UNION ALL\n"
    "             SELECT date_trunc('minute', failed_at), 0, 0, 1 FROM jobs\n"
    "             WHERE status = 'DEAD_LETTER'\n"
    "               AND failed_at >= date_trunc('minute', now()) - interval '59 minutes') x\n"
    "           GROUP BY 1)\n"
    "SELECT " JB_US("m") ", coalesce(c.n, 0), coalesce(f.ok, 0), coalesce(f.failed, 0),\n"
    "       coalesce(f.dead, 0)\n"
    "FROM c FULL JOIN f USING (m) ORDER BY m",
    0, false};

jb_err jb_pg_throughput(void *self, jb_throughput_minute **out, size_t *n, jb_error *e) {
  jb_pg *pg = self;
  PGresult *res = NULL;
  *out = NULL;
  *n = 0;
  jb_err rc = jb_pg_exec(pg, &throughput_stmt, NULL, &res, e);
  if (rc != JB_OK) return rc;
  int rows = PQntuples(res);
  jb_throughput_minute *m = calloc(rows ? (size_t)rows : 1, sizeof *m);
  if (m == NULL) {
    PQclear(res);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory for the throughput");
  }
  for (int i = 0; i < rows; i++) {
    m[i].at = (jb_time)strtoll(PQgetvalue(res, i, 0), NULL, 10);
    int64_t *cols[] = {&m[i].created, &m[i].completed, &m[i].failed, &m[i].dead_letter};
    for (int c = 0; c < 4; c++) *cols[c] = strtoll(PQgetvalue(res, i, c + 1), NULL, 10);
  }
  PQclear(res);
  *out = m;
  *n = (size_t)rows;
  return JB_OK;
}
