/* The database's readiness probe (jobbridge/health.h): reachable, and at the migration version
 * this build expects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres/migrations.h"
#include "postgres/pg.h"

bool jb_pg_schema_ready(void *self, char *why, size_t len) {
  jb_pg *pg = self;
  jb_error e;
  jb_error_clear(&e);
  if (jb_pg_ensure(pg, &e) != JB_OK) {
    snprintf(why, len, "database unreachable: %s", e.msg);
    return false;
  }
  int want = jb_migrations[jb_migrations_len - 1].version;
  PGresult *res = PQexec(jb_pg_conn(pg), "SELECT coalesce(max(version), 0) FROM schema_migrations");
  bool ok = false;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    snprintf(why, len, "database unreachable: the migration version query failed: %s",
             PQerrorMessage(jb_pg_conn(pg)));
    why[strcspn(why, "\n")] = '\0';
  } else {
    int have = atoi(PQgetvalue(res, 0, 0));
    ok = have == want;
    if (!ok)
      snprintf(why, len,
               "database at migration version %d, this build expects %d (run jobbridge migrate)",
               have, want);
  }
  PQclear(res);
  return ok;
}
