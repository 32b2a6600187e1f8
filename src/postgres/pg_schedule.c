/* The ScheduleStore port: one row per schedule name with its last fire time. */
#include "postgres/pg_schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "postgres/pg_internal.h"

/* Runs sql with text parameters; *out gets a tuples result (caller clears) or NULL. */
static jb_err run(jb_pg *pg, const char *sql, int n, const char *const *params, PGresult **out,
                  const char *what, jb_error *e) {
  jb_err rc = jb_pg_ensure(pg, e);
  if (rc != JB_OK) return rc;
  PGresult *res = PQexecParams(pg->conn, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    rc = jb_pg_result_error(pg, res, what, e);
    PQclear(res);
    return rc;
  }
  if (out != NULL)
    *out = res;
  else
    PQclear(res);
  return JB_OK;
}

static jb_err last_fire(void *self, const char *name, int64_t *out, bool *found, jb_error *e) {
  const char *params[1] = {name};
  PGresult *res = NULL;
  jb_err rc =
      run(self, "SELECT extract(epoch FROM last_fire)::int8 FROM schedule_state WHERE name = $1", 1,
          params, &res, "reading a schedule's last firing", e);
  if (rc != JB_OK) return rc;
  *found = PQntuples(res) == 1;
  if (*found) *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return JB_OK;
}

static jb_err record_fire(void *self, const char *name, int64_t fire, jb_error *e) {
  char at[32];
  snprintf(at, sizeof at, "%" PRId64, fire);
  const char *params[2] = {name, at};
  return run(self,
             "INSERT INTO schedule_state (name, last_fire) VALUES ($1, to_timestamp($2::int8)) "
             "ON CONFLICT (name) DO UPDATE SET last_fire = GREATEST(schedule_state.last_fire, "
             "EXCLUDED.last_fire), updated_at = now()",
             2, params, NULL, "recording a schedule's firing", e);
}

static const jb_schedule_store_ops ops = {last_fire, record_fire};

jb_schedule_store jb_pg_schedule_store(jb_pg *pg) {
  return (jb_schedule_store){&ops, pg};
}
