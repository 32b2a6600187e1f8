/* Issue 12, item 4, against a real PostgreSQL (JOBBRIDGE_DATABASE_URL): the reaper decides in
 * core, with each job type's retry policy and jitter, and the database only applies the
 * decisions, to jobs that are still as they were seen. Each test works in a schema of its own;
 * leases are expired by SQL, not by waiting. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobbridge/outcome.h"
#include "jobbridge/worker_pool.h"
#include "postgres/migrations.h"
#include "postgres/pg.h"

static jb_pg *pg;
static jb_config *cfg;
static char schema[64];

static const char *db_url(void) {
  const char *url = getenv("JOBBRIDGE_DATABASE_URL");
  cr_assert(url != NULL && *url, "JOBBRIDGE_DATABASE_URL is not set: run tests/run.sh");
  return url;
}

static void setup(void) {
  snprintf(schema, sizeof schema, "t_reap_%d_%ld", (int)getpid(), random() % 100000);
  jb_error e;
  cr_assert_eq(jb_pg_connect(db_url(), schema, &pg, &e), JB_OK, "%s", e.msg);
  int applied = -1;
  cr_assert_eq(jb_pg_migrate(pg, &applied, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(jb_config_parse("{\"retry\": {\"base_s\": 2, \"max_s\": 300, \"jitter\": 0},"
                               " \"job_types\": {\"plain\": {\"handler\": \"noop\"},"
                               " \"slow\": {\"handler\": \"noop\", \"retry\": "
                               "{\"base_s\": 1000, \"max_s\": 100000, \"jitter\": 0.5}}}}",
                               "t.json", &cfg, &e),
               JB_OK, "%s", e.msg);
}

static void teardown(void) {
  char sql[128];
  snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
  PQclear(PQexec(jb_pg_conn(pg), sql));
  jb_pg_close(pg);
  jb_config_free(cfg);
}

TestSuite(reaper, .init = setup, .fini = teardown, .timeout = 60);

static void exec_sql(PGconn *c, const char *sql) {
  PGresult *res = PQexec(c, sql);
  cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
            "%s: %s", sql, PQerrorMessage(c));
  PQclear(res);
}

static long number(const char *sql) {
  PGresult *res = PQexec(jb_pg_conn(pg), sql);
  cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(jb_pg_conn(pg)));
  long n = atol(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

/* n RUNNING jobs of a type whose lease ran out a second ago, as a lost worker leaves them. */
static void running_expired(const char *type, int n, int retry_count, int max_retries,
                            bool cancel_requested) {
  char sql[640];
  snprintf(sql, sizeof sql,
           "INSERT INTO jobs (id, job_type, payload, status, retry_count, max_retries, "
           "started_at, locked_by, locked_until, cancel_requested) "
           "SELECT gen_random_uuid(), '%s', '{}', 'RUNNING', %d, %d, now(), 'lost-worker', "
           "now() - interval '1 second', %s FROM generate_series(1, %d)",
           type, retry_count, max_retries, cancel_requested ? "true" : "false", n);
  exec_sql(jb_pg_conn(pg), sql);
}

Test(reaper, decides_with_each_types_policy_and_jitter) {
  running_expired("slow", 40, 0, 3, false);
  running_expired("plain", 5, 1, 3, false);
  running_expired("plain", 2, 0, 3, true);  /* cancellation requested, its worker lost */
  running_expired("plain", 3, 3, 3, false); /* no retries left */
  running_expired("plain", 4, 0, 3, false);
  exec_sql(jb_pg_conn(pg),
           "UPDATE jobs SET locked_until = now() + interval '1 hour' "
           "WHERE id IN (SELECT id FROM jobs WHERE retry_count = 0 AND "
           "job_type = 'plain' AND NOT cancel_requested LIMIT 4)");
  unsigned seed = 12345;
  size_t reaped = 0;
  jb_error e;
  cr_assert_eq(jb_reap_expired(cfg, jb_pg_work_queue(pg), &seed, &reaped, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(reaped, 50, "every expired job, not the 4 whose lease runs: %zu", reaped);
  cr_expect_eq(number("SELECT count(*) FROM jobs WHERE status = 'RUNNING'"), 4);

  /* The type's own policy: 1000 s ± 50%, each delay drawn on its own. */
  const char *slow =
      "FROM jobs WHERE job_type = 'slow' AND status = 'RETRYING' AND "
      "retry_count = 1 AND locked_by IS NULL AND failed_at IS NULL AND "
      "error_message = '" JB_ERROR_LEASE_EXPIRED "'";
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) %s AND scheduled_at BETWEEN updated_at + interval '499.9 s' "
           "AND updated_at + interval '1500.1 s'",
           slow);
  cr_expect_eq(number(sql), 40, "slow jobs retry after 500..1500 s");
  snprintf(sql, sizeof sql, "SELECT count(DISTINCT scheduled_at - updated_at) %s", slow);
  cr_expect_geq(number(sql), 30, "jitter: the delays differ");
  snprintf(sql, sizeof sql, "SELECT count(*) %s AND scheduled_at - updated_at < interval '900 s'",
           slow);
  long low = number(sql);
  cr_expect(low > 0 && low < 40, "the jitter goes both ways (%ld of 40 below 900 s)", low);

  /* The global policy for the other type: 2 s × 2^1, no jitter. */
  cr_expect_eq(number("SELECT count(*) FROM jobs WHERE job_type = 'plain' AND status = "
                      "'RETRYING' AND retry_count = 2 AND scheduled_at - updated_at = "
                      "interval '4 s'"),
               5);
  cr_expect_eq(number("SELECT count(*) FROM jobs WHERE status = 'FAILED' AND error_message = "
                      "'Job cancelled' AND retry_count = 0 AND failed_at IS NOT NULL"),
               2);
  cr_expect_eq(number("SELECT count(*) FROM jobs WHERE status = 'DEAD_LETTER' AND retry_count = "
                      "3 AND failed_at IS NOT NULL AND error_message LIKE 'lease expired%'"),
               3);
  /* Each change wrote its event in the same statement. */
  cr_expect_eq(number("SELECT count(*) FROM outbox"), 50);
  cr_expect_eq(number("SELECT count(*) FROM outbox o JOIN jobs j ON j.id = o.job_id WHERE "
                      "o.event_type = 'job.' || lower(j.status) AND o.data->>'status' = "
                      "j.status AND (o.data->>'retry_count')::int = j.retry_count"),
               50);
}

Test(reaper, goes_on_past_one_batch) {
  running_expired("plain", 1234, 0, 3, false);
  unsigned seed = 1;
  size_t reaped = 0;
  jb_error e;
  cr_assert_eq(jb_reap_expired(cfg, jb_pg_work_queue(pg), &seed, &reaped, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(reaped, 1234);
  cr_expect_eq(number("SELECT count(*) FROM jobs WHERE status = 'RETRYING'"), 1234);
  cr_expect_eq(number("SELECT count(*) FROM outbox"), 1234);
}

/* A decision applies only to the job as it was seen: one that finished, was retried by hand
 * and claimed again (another retry_count), had its cancellation requested, or is locked by a
 * worker recording its outcome right now, is left alone. */
Test(reaper, applies_a_decision_only_to_the_job_as_it_was_seen) {
  running_expired("plain", 5, 0, 3, false);
  jb_work_queue q = jb_pg_work_queue(pg);
  jb_expired_job *seen = NULL;
  size_t n = 0;
  jb_error e;
  cr_assert_eq(q.ops->expired(q.self, 100, &seen, &n, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(n, 5);
  jb_retry_policy policy = jb_config_retry_policy(cfg, "plain");
  jb_finish decided[5];
  for (size_t i = 0; i < n; i++) {
    cr_expect_str_eq(seen[i].job_type, "plain");
    cr_expect_eq(seen[i].retry_count, 0);
    cr_expect_eq(seen[i].max_retries, 3);
    cr_expect(!seen[i].cancel_requested);
    jb_decision d;
    cr_assert_eq(
        jb_decide(JB_STATUS_RUNNING, 0, 3, &policy, JB_RUN_LEASE_EXPIRED, NULL, 0.5, &d, &e),
        JB_OK);
    decided[i] = (jb_finish){
        .status = d.status, .error = d.error, .delay_ms = d.delay_ms, .burn_retry = d.burn_retry};
    memcpy(decided[i].id, seen[i].id, 37);
  }
  char sql[256];
  snprintf(sql, sizeof sql,
           "UPDATE jobs SET status = 'COMPLETED', locked_by = NULL, locked_until = NULL "
           "WHERE id = '%s'",
           seen[0].id);
  exec_sql(jb_pg_conn(pg), sql);
  snprintf(sql, sizeof sql, "UPDATE jobs SET retry_count = 1 WHERE id = '%s'", seen[1].id);
  exec_sql(jb_pg_conn(pg), sql);
  snprintf(sql, sizeof sql, "UPDATE jobs SET cancel_requested = true WHERE id = '%s'", seen[2].id);
  exec_sql(jb_pg_conn(pg), sql);
  jb_pg *other = NULL;
  cr_assert_eq(jb_pg_connect(db_url(), schema, &other, &e), JB_OK, "%s", e.msg);
  exec_sql(jb_pg_conn(other), "BEGIN");
  snprintf(sql, sizeof sql, "SELECT 1 FROM jobs WHERE id = '%s' FOR UPDATE", seen[3].id);
  exec_sql(jb_pg_conn(other), sql);
  size_t applied = 0;
  cr_assert_eq(q.ops->reap(q.self, seen, decided, n, &applied, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(applied, 1, "only the unchanged, unlocked job: %zu", applied);
  exec_sql(jb_pg_conn(other), "ROLLBACK");
  jb_pg_close(other);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'RETRYING'",
           seen[4].id);
  cr_expect_eq(number(sql), 1);
  cr_expect_eq(number("SELECT count(*) FROM jobs WHERE status = 'RUNNING'"), 3);
  cr_expect_eq(number("SELECT count(*) FROM outbox"), 1);
  jb_expired_jobs_free(seen, n);
}
