/* An outbox row set aside with a reason cut inside a UTF-8 character (the broker's text is cut
 * to a fixed size) is still set aside: the reason is made valid UTF-8 first, instead of
 * PostgreSQL refusing it (22021) and the relay retrying the row forever. Review of issue 11,
 * finding 5. Needs JOBBRIDGE_DATABASE_URL (tests/run.sh). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobbridge/outbox.h"
#include "postgres/migrations.h"
#include "postgres/pg.h"

Test(outbox_set_aside, a_reason_cut_inside_a_character_is_stored) {
  const char *url = getenv("JOBBRIDGE_DATABASE_URL");
  cr_assert(url != NULL && *url, "JOBBRIDGE_DATABASE_URL is not set: run tests/run.sh");
  char schema[64];
  snprintf(schema, sizeof schema, "t_sa_%d", (int)getpid());
  jb_pg *pg;
  jb_error e;
  cr_assert_eq(jb_pg_connect(url, schema, &pg, &e), JB_OK, "%s", e.msg);
  int applied;
  cr_assert_eq(jb_pg_migrate(pg, &applied, &e), JB_OK, "%s", e.msg);
  PGresult *res = PQexec(jb_pg_conn(pg),
                         "INSERT INTO outbox (job_id, event_type, routing_key, data) VALUES "
                         "(gen_random_uuid(), 'job.completed', 'job.completed', '{}') "
                         "RETURNING id");
  cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(jb_pg_conn(pg)));
  long long id = atoll(PQgetvalue(res, 0, 0));
  PQclear(res);
  jb_outbox ob = jb_pg_outbox(pg);
  /* "caf\xc3\xa9" cut after its first byte, and a stray continuation byte. */
  jb_err rc = ob.ops->set_aside(ob.self, id, "broker said: caf\xc3", &e);
  cr_expect_eq(rc, JB_OK, "set aside: %s", e.msg);
  rc = ob.ops->set_aside(ob.self, id, "r\xa9sum\xc3\xa9", &e);
  cr_expect_eq(rc, JB_OK, "set aside: %s", e.msg);
  res = PQexec(jb_pg_conn(pg), "SELECT failed_reason FROM outbox WHERE failed_at IS NOT NULL");
  cr_assert_eq(PQntuples(res), 1);
  cr_expect_str_eq(PQgetvalue(res, 0, 0), "r?sum\xc3\xa9", "valid characters are kept");
  PQclear(res);
  char sql[128];
  snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
  PQclear(PQexec(jb_pg_conn(pg), sql));
  jb_pg_close(pg);
}
