/* The PostgreSQL JobStore and WorkQueue against a real server (JOBBRIDGE_DATABASE_URL, from
 * tests/run.sh). Each test works in a schema of its own, so tests are independent. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers/handlers.h"
#include "jobbridge/job_service.h"
#include "jobbridge/worker_pool.h"
#include "postgres/migrations.h"
#include "postgres/pg.h"

static jb_pg *pg;
static jb_config *cfg;
static jb_job_service svc;
static jb_job_creator creator;
static char schema[64];

static const char *db_url(void) {
  const char *url = getenv("JOBBRIDGE_DATABASE_URL");
  cr_assert(url != NULL && *url, "JOBBRIDGE_DATABASE_URL is not set: run tests/run.sh");
  return url;
}

static void setup(void) {
  snprintf(schema, sizeof schema, "t_%d_%ld", (int)getpid(), random() % 100000);
  jb_error e;
  cr_assert_eq(jb_pg_connect(db_url(), schema, &pg, &e), JB_OK, "%s", e.msg);
  int applied = -1;
  cr_assert_eq(jb_pg_migrate(pg, &applied, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(applied, jb_migrations_len);
  cr_assert_eq(jb_config_parse("{\"job_types\": {\"email\": {\"handler\": \"noop\"},"
                               " \"resize\": {\"handler\": \"noop\", \"max_retries\": 9}}}",
                               "t.json", &cfg, &e),
               JB_OK);
  jb_job_service_init(&svc, jb_pg_store(pg), jb_pg_work_queue(pg), cfg);
  creator = jb_job_service_creator(&svc);
}

static void teardown(void) {
  char sql[128];
  snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
  PQclear(PQexec(jb_pg_conn(pg), sql));
  jb_pg_close(pg);
  jb_config_free(cfg);
}

TestSuite(pg_queue, .init = setup, .fini = teardown, .timeout = 30);

static long count(const char *where) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE %s", where);
  PGresult *res = PQexec(jb_pg_conn(pg), sql);
  cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(jb_pg_conn(pg)));
  long n = atol(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

static void exec_sql(const char *sql) {
  PGresult *res = PQexec(jb_pg_conn(pg), sql);
  cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(jb_pg_conn(pg)));
  PQclear(res);
}

/* Creates one job and returns its id in `id`. */
static void create(const char *type, const char *queue, int priority, const char *dedupe,
                   char id[37]) {
  json_t *payload = json_pack("{s:s, s:i}", "name", "Zoë \"quoted\" \\ ✓", "n", priority);
  jb_job_request req = {
      .job_type = type, .payload = payload, .queue_name = queue, .priority = priority};
  req.opts.max_retries = -1;
  req.opts.dedupe_key = dedupe;
  jb_create_outcome oc;
  jb_error e;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK, "%s", e.msg);
  memcpy(id, oc.id, 37);
  json_decref(payload);
}

Test(pg_queue, migrations_are_idempotent) {
  jb_error e;
  int applied = -1;
  cr_assert_eq(jb_pg_migrate(pg, &applied, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(applied, 0, "a second run applies nothing");
  PGresult *res = PQexec(jb_pg_conn(pg), "SELECT version FROM schema_migrations");
  cr_expect_eq(PQntuples(res), jb_migrations_len);
  PQclear(res);
  /* A second connection migrating the same schema also finds nothing to do. */
  jb_pg *other;
  cr_assert_eq(jb_pg_connect(db_url(), schema, &other, &e), JB_OK);
  cr_assert_eq(jb_pg_migrate(other, &applied, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(applied, 0);
  jb_pg_close(other);
  /* The partial index on waiting jobs exists. */
  res = PQexec(jb_pg_conn(pg),
               "SELECT indexdef FROM pg_indexes WHERE indexname = 'jobs_waiting_idx' "
               "AND schemaname = current_schema()");
  cr_assert_eq(PQntuples(res), 1);
  cr_expect(strstr(PQgetvalue(res, 0, 0), "WHERE") != NULL, "partial: %s", PQgetvalue(res, 0, 0));
  PQclear(res);
  /* Dedupe keys stay unique (migration 4 indexes only the rows that have one). */
  res = PQexec(jb_pg_conn(pg),
               "INSERT INTO jobs (id, job_type, payload, status, dedupe_key) VALUES "
               "(gen_random_uuid(), 'email', '{}', 'PENDING', 'mig-k'), "
               "(gen_random_uuid(), 'email', '{}', 'PENDING', 'mig-k')");
  cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "a repeated key is refused");
  cr_expect_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23505");
  PQclear(res);
  res = PQexec(jb_pg_conn(pg),
               "INSERT INTO jobs (id, job_type, payload, status) VALUES "
               "(gen_random_uuid(), 'email', '{}', 'PENDING'), "
               "(gen_random_uuid(), 'email', '{}', 'PENDING') RETURNING id");
  cr_expect_eq(PQntuples(res), 2, "jobs without a key: %s", PQresultErrorMessage(res));
  PQclear(res);
  PQclear(PQexec(jb_pg_conn(pg), "DELETE FROM jobs"));
}

Test(pg_queue, round_trip_of_every_field) {
  char id[37];
  create("resize", "images", 4, "rt-1", id);
  jb_job job;
  jb_error e;
  cr_assert_eq(jb_job_service_get(&svc, id, &job, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(job.id, id);
  cr_expect_str_eq(job.job_type, "resize");
  cr_expect_str_eq(job.queue_name, "images");
  cr_expect_eq(job.priority, 4);
  cr_expect_eq(job.max_retries, 9, "job type default");
  cr_expect_eq(job.retry_count, 0);
  cr_expect_eq(job.status, JB_STATUS_PENDING);
  cr_expect_str_eq(json_string_value(json_object_get(job.payload, "name")), "Zoë \"quoted\" \\ ✓");
  cr_expect_str_eq(job.dedupe_key, "rt-1");
  cr_expect_gt(job.created_at, 0);
  cr_expect_geq(job.scheduled_at, job.created_at);
  cr_expect(json_is_object(job.metadata) && json_object_size(job.metadata) == 0);
  cr_expect_null(job.result);
  cr_expect_null(job.error_message);
  jb_job_clear(&job);
}

Test(pg_queue, batch_insert_with_dedupe) {
  char first[37];
  create("email", NULL, 0, "dup-old", first);
  json_t *payload = json_object();
  /* 0: new, 1: new key, 2: same key as 1 (in-batch duplicate), 3: already stored, 4: no key. */
  const char *keys[5] = {"k0", "k1", "k1", "dup-old", NULL};
  jb_job_request reqs[5];
  for (int i = 0; i < 5; i++) {
    reqs[i] = (jb_job_request){.job_type = "email", .payload = payload};
    reqs[i].opts.max_retries = -1;
    reqs[i].opts.dedupe_key = keys[i];
  }
  jb_create_outcome oc[5];
  jb_error e;
  cr_assert_eq(creator.ops->create_jobs(creator.self, reqs, 5, oc, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(oc[0].status, JB_CREATE_CREATED);
  cr_expect_eq(oc[1].status, JB_CREATE_CREATED);
  cr_expect_eq(oc[2].status, JB_CREATE_DUPLICATE);
  cr_expect_str_eq(oc[2].id, oc[1].id, "the in-batch duplicate reports the first's id");
  cr_expect_eq(oc[3].status, JB_CREATE_DUPLICATE);
  cr_expect_str_eq(oc[3].id, first, "the stored duplicate reports the stored id");
  cr_expect_eq(oc[4].status, JB_CREATE_CREATED);
  cr_expect_eq(count("true"), 4);
  /* The same batch again: all duplicates except the one without a key. */
  cr_assert_eq(creator.ops->create_jobs(creator.self, reqs, 5, oc, &e), JB_OK, "%s", e.msg);
  for (int i = 0; i < 4; i++) cr_expect_eq(oc[i].status, JB_CREATE_DUPLICATE, "request %d", i);
  cr_expect_eq(oc[4].status, JB_CREATE_CREATED);
  cr_expect_eq(count("true"), 5);
  json_decref(payload);
}

Test(pg_queue, large_batch_is_one_transaction) {
  enum { N = 1000 };
  json_t *payload = json_pack("{s:i}", "x", 1);
  jb_job_request *reqs = calloc(N, sizeof *reqs);
  jb_create_outcome *oc = calloc(N, sizeof *oc);
  char(*keys)[16] = calloc(N, 16);
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], 16, "big-%d", i);
    reqs[i] = (jb_job_request){.job_type = "email", .payload = payload};
    reqs[i].opts.max_retries = -1;
    reqs[i].opts.dedupe_key = keys[i];
  }
  /* A trigger makes the last row fail inside the database: the whole batch must roll back. */
  exec_sql(
      "CREATE FUNCTION fail_last() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.dedupe_key = 'big-999' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$");
  exec_sql(
      "CREATE TRIGGER fail_last BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION fail_last()");
  jb_error e;
  cr_expect_eq(creator.ops->create_jobs(creator.self, reqs, N, oc, &e), JB_ERR_DB);
  cr_expect(strstr(e.msg, "boom") != NULL, "%s", e.msg);
  cr_expect_eq(count("true"), 0, "nothing of the failed batch is stored");
  exec_sql("DROP TRIGGER fail_last ON jobs");
  cr_assert_eq(creator.ops->create_jobs(creator.self, reqs, N, oc, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(count("true"), N);
  free(reqs);
  free(oc);
  free(keys);
  json_decref(payload);
}

Test(pg_queue, scheduled_in_the_future) {
  json_t *payload = json_object();
  jb_job_request req = {.job_type = "email", .payload = payload};
  req.opts.max_retries = -1;
  req.opts.scheduled_at = jb_time_now() + 3600LL * 1000000;
  jb_create_outcome oc;
  jb_error e;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK, "%s", e.msg);
  jb_job job;
  cr_assert_eq(jb_job_service_get(&svc, oc.id, &job, &e), JB_OK);
  cr_expect_eq(job.status, JB_STATUS_SCHEDULED);
  cr_expect_eq(job.scheduled_at, req.opts.scheduled_at, "microsecond precision kept");
  jb_job_clear(&job);
  req.opts.scheduled_at = jb_time_now() - 1000000;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK);
  cr_assert_eq(jb_job_service_get(&svc, oc.id, &job, &e), JB_OK);
  cr_expect_eq(job.status, JB_STATUS_PENDING, "a past time runs now");
  jb_job_clear(&job);
  json_decref(payload);
}

Test(pg_queue, list_filters) {
  char id[37];
  for (int i = 0; i < 3; i++) create("email", "mail", i, NULL, id);
  for (int i = 0; i < 2; i++) create("resize", "images", i, NULL, id);
  jb_job job;
  jb_error e;
  cr_assert_eq(jb_job_service_cancel(&svc, id, &job, &e), JB_OK, "%s", e.msg);
  jb_job_clear(&job);
  struct {
    jb_job_filter f;
    size_t want;
  } cases[] = {
      {{.status = -1}, 5},
      {{.status = -1, .job_type = "email"}, 3},
      {{.status = -1, .queue_name = "images"}, 2},
      {{.status = JB_STATUS_FAILED}, 1},
      {{.status = JB_STATUS_PENDING, .job_type = "resize"}, 1},
      {{.status = -1, .limit = 2}, 2},
      {{.status = -1, .offset = 4}, 1},
      {{.status = -1, .job_type = "nope"}, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    jb_job *jobs = NULL;
    size_t n = 99;
    cr_assert_eq(jb_job_service_list(&svc, &cases[c].f, &jobs, &n, &e), JB_OK, "%s", e.msg);
    cr_expect_eq(n, cases[c].want, "case %zu: %zu jobs, want %zu", c, n, cases[c].want);
    for (size_t i = 0; i < n; i++) {
      if (cases[c].f.job_type) cr_expect_str_eq(jobs[i].job_type, cases[c].f.job_type);
      if (cases[c].f.queue_name) cr_expect_str_eq(jobs[i].queue_name, cases[c].f.queue_name);
      if (cases[c].f.status >= 0) cr_expect_eq((int)jobs[i].status, cases[c].f.status);
      if (i > 0) cr_expect_leq(jobs[i].created_at, jobs[i - 1].created_at, "newest first");
    }
    jb_jobs_free(jobs, n);
  }
}

Test(pg_queue, cancel) {
  char id[37];
  create("email", NULL, 0, NULL, id);
  jb_job job;
  jb_error e;
  cr_assert_eq(jb_job_service_cancel(&svc, id, &job, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(job.status, JB_STATUS_FAILED);
  cr_expect_str_eq(job.error_message, "Job cancelled");
  cr_expect_gt(job.failed_at, 0);
  jb_job_clear(&job);
  cr_expect_eq(jb_job_service_cancel(&svc, id, &job, &e), JB_ERR_STATE, "already FAILED");
  cr_expect(strstr(e.msg, "it is FAILED") != NULL, "%s", e.msg);
  /* A running job with no worker to stop it: the request is recorded, the call times out. */
  svc.cancel_wait_ms = 300;
  char run_id[37];
  create("email", NULL, 0, NULL, run_id);
  char sql[160];
  snprintf(sql, sizeof sql, "UPDATE jobs SET status = 'RUNNING' WHERE id = '%s'", run_id);
  exec_sql(sql);
  cr_expect_eq(jb_job_service_cancel(&svc, run_id, &job, &e), JB_ERR_TIMEOUT);
  cr_expect(strstr(e.msg, "still RUNNING") != NULL, "%s", e.msg);
  cr_expect_eq(count("status = 'RUNNING' AND cancel_requested"), 1, "requested, still running");
  cr_expect_eq(jb_job_service_cancel(&svc, "00000000-0000-0000-0000-000000000000", &job, &e),
               JB_ERR_NOT_FOUND);
  /* SCHEDULED and RETRYING are waiting states too. */
  const char *waiting[] = {"SCHEDULED", "RETRYING"};
  for (int i = 0; i < 2; i++) {
    create("email", NULL, 0, NULL, id);
    snprintf(sql, sizeof sql, "UPDATE jobs SET status = '%s' WHERE id = '%s'", waiting[i], id);
    exec_sql(sql);
    cr_expect_eq(jb_job_service_cancel(&svc, id, &job, &e), JB_OK, "%s: %s", waiting[i], e.msg);
    jb_job_clear(&job);
  }
}

Test(pg_queue, retry) {
  char id[37];
  create("email", NULL, 0, NULL, id);
  jb_job job;
  jb_error e;
  cr_expect_eq(jb_job_service_retry(&svc, id, &job, &e), JB_ERR_STATE, "PENDING cannot retry");
  cr_assert_eq(jb_job_service_cancel(&svc, id, &job, &e), JB_OK);
  jb_job_clear(&job);
  cr_assert_eq(jb_job_service_retry(&svc, id, &job, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(job.status, JB_STATUS_PENDING);
  cr_expect_eq(job.failed_at, 0);
  jb_job_clear(&job);
  char sql[200];
  snprintf(sql, sizeof sql,
           "UPDATE jobs SET status = 'DEAD_LETTER', retry_count = 3 WHERE id = '%s'", id);
  exec_sql(sql);
  cr_assert_eq(jb_job_service_retry(&svc, id, &job, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(job.status, JB_STATUS_PENDING);
  cr_expect_eq(job.retry_count, 0, "a manual retry gets its retries back");
  jb_job_clear(&job);
  snprintf(sql, sizeof sql, "UPDATE jobs SET status = 'COMPLETED' WHERE id = '%s'", id);
  exec_sql(sql);
  cr_expect_eq(jb_job_service_retry(&svc, id, &job, &e), JB_ERR_STATE);
  cr_expect(strstr(e.msg, "COMPLETED -> PENDING") != NULL, "%s", e.msg);
}

Test(pg_queue, stats_per_queue) {
  char id[37];
  for (int i = 0; i < 3; i++) create("email", "mail", 0, NULL, id);
  create("resize", "images", 0, NULL, id);
  jb_job job;
  jb_error e;
  cr_assert_eq(jb_job_service_cancel(&svc, id, &job, &e), JB_OK);
  jb_job_clear(&job);
  exec_sql(
      "UPDATE jobs SET status = 'RUNNING' WHERE id = (SELECT id FROM jobs "
      "WHERE queue_name = 'mail' LIMIT 1)");
  exec_sql(
      "INSERT INTO jobs (id, job_type, payload, status, queue_name) VALUES "
      "(gen_random_uuid(), 'email', '{}', 'DEAD_LETTER', 'mail'), "
      "(gen_random_uuid(), 'email', '{}', 'COMPLETED', 'mail'), "
      "(gen_random_uuid(), 'email', '{}', 'RETRYING', 'mail'), "
      "(gen_random_uuid(), 'email', '{}', 'SCHEDULED', 'images')");
  jb_queue_stats *s = NULL;
  size_t n = 0;
  cr_assert_eq(jb_job_service_stats(&svc, &s, &n, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(n, 2);
  cr_expect_str_eq(s[0].queue_name, "images");
  cr_expect_eq(s[0].failed, 1);
  cr_expect_eq(s[0].scheduled, 1);
  cr_expect_eq(s[0].total, 2);
  cr_expect_str_eq(s[1].queue_name, "mail");
  cr_expect_eq(s[1].pending, 2);
  cr_expect_eq(s[1].running, 1);
  cr_expect_eq(s[1].completed, 1);
  cr_expect_eq(s[1].dead_letter, 1);
  cr_expect_eq(s[1].retrying, 1);
  cr_expect_eq(s[1].total, 6);
  free(s);
}

Test(pg_queue, status_check_constraint_holds) {
  PGresult *res = PQexec(jb_pg_conn(pg),
                         "INSERT INTO jobs (id, job_type, payload, status) "
                         "VALUES (gen_random_uuid(), 'x', '{}', 'DONE')");
  cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
  cr_expect_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
  PQclear(res);
}

Test(pg_queue_conn, unreachable_server_is_a_clear_error, .timeout = 30) {
  jb_pg *p = NULL;
  jb_error e;
  jb_err rc = jb_pg_connect("postgresql://bob:hunter2@127.0.0.1:1/db?connect_timeout=2",
                            "jobbridge", &p, &e);
  cr_expect_eq(rc, JB_ERR_DB_CONN);
  cr_expect_null(p);
  cr_expect(
      strstr(e.msg, "cannot connect to PostgreSQL at postgresql://bob:***@127.0.0.1:1") != NULL,
      "%s", e.msg);
  cr_expect(strstr(e.msg, "hunter2") == NULL, "no password in: %s", e.msg);
}

/* ---- a worker whose handler returns a result the queue cannot store ---- */

static void unstorable_result(void *self, const jb_job *job, jb_handler_ctx *ctx,
                              jb_job_result *r) {
  (void)self;
  (void)job;
  (void)ctx;
  r->success = true;
  r->result_data = json_object();
  /* Not UTF-8: jansson holds it (nocheck) but refuses to encode it. */
  json_object_set_new(r->result_data, "bad", json_string_nocheck("\xff\xfe"));
}

/* A one-worker pool for this test's schema, built from a config's JSON; conns get its two
 * connections (the worker's and the maintenance thread's). */
static jb_worker_pool *one_worker_pool(const char *json, jb_config **wcfg, jb_pg *conns[2]) {
  jb_error e;
  cr_assert_eq(jb_config_parse(json, "w.json", wcfg, &e), JB_OK, "%s", e.msg);
  jb_work_queue queues[2];
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(jb_pg_connect(db_url(), schema, &conns[i], &e), JB_OK, "%s", e.msg);
    queues[i] = jb_pg_work_queue(conns[i]);
  }
  jb_worker_pool *pool = NULL;
  cr_assert_eq(jb_worker_pool_new(*wcfg, "t", queues, 2, &pool, &e), JB_OK, "%s", e.msg);
  /* The handlers of the config's job types, as `jobbridge run` wires them. */
  jb_job_handler *hs = NULL;
  cr_assert_eq(jb_handlers_from_config(*wcfg, &hs, &e), JB_OK, "%s", e.msg);
  for (size_t i = 0; i < (*wcfg)->job_types_len; i++)
    cr_assert_eq(jb_worker_pool_register(pool, (*wcfg)->job_types[i].name, hs[i], &e), JB_OK);
  free(hs);
  return pool;
}

static void free_pool(jb_worker_pool *pool, jb_config *wcfg, jb_pg *conns[2]) {
  jb_worker_pool_free(pool);
  for (int i = 0; i < 2; i++) jb_pg_close(conns[i]);
  jb_config_free(wcfg);
}

/* The count of jobs matching `where` once it reaches want, or after 10 s. */
static long wait_count(const char *where, long want) {
  long got = 0;
  for (int i = 0; i < 200 && (got = count(where)) < want; i++) usleep(50000);
  return got;
}

Test(pg_queue, a_result_that_cannot_be_stored_still_completes_the_job) {
  jb_error e;
  jb_config *wcfg = NULL;
  jb_pg *conns[2];
  jb_worker_pool *pool = one_worker_pool(
      "{\"workers\": {\"threads\": 1}, \"job_types\": {\"email\": {\"handler\": \"noop\"}}}", &wcfg,
      conns);
  cr_assert_eq(
      jb_worker_pool_register(pool, "email", jb_callback_handler(unstorable_result, NULL), &e),
      JB_OK);
  json_t *payload = json_object();
  jb_job_request req = {.job_type = "email", .payload = payload};
  req.opts.max_retries = -1;
  jb_create_outcome oc;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK, "%s", e.msg);
  json_decref(payload);
  cr_assert_eq(jb_worker_pool_start(pool, &e), JB_OK, "%s", e.msg);
  wait_count("status = 'COMPLETED'", 1);
  free_pool(pool, wcfg, conns);
  cr_expect_eq(count("status = 'COMPLETED' AND result IS NULL"), 1,
               "the job completed, without the result it could not store");
  cr_expect_eq(count("true"), 1);
}

/* A notification on jobbridge_<what>_<schema> within five seconds, and, once it is there, the
 * number of rows `sql` counts as seen by the listener's own session. -1: no notification. */
static long notified_then_count(PGconn *listener, const char *what, const char *sql) {
  char channel[160];
  snprintf(channel, sizeof channel, "jobbridge_%s_%s", what, schema);
  for (int i = 0; i < 50; i++) {
    struct pollfd pfd = {PQsocket(listener), POLLIN, 0};
    poll(&pfd, 1, 100);
    PQconsumeInput(listener);
    PGnotify *n;
    bool mine = false;
    while ((n = PQnotifies(listener)) != NULL) {
      mine = mine || strcmp(n->relname, channel) == 0;
      PQfreemem(n);
    }
    if (mine) {
      PGresult *res = PQexec(listener, sql);
      long rows = atol(PQgetvalue(res, 0, 0));
      PQclear(res);
      return rows;
    }
  }
  return -1;
}

/* Idle workers and the relay are woken by notifications sent once the data has committed: the
 * listener sees the new job, and then the outbox event, when its notification arrives. */
Test(pg_queue, notifications_follow_the_commit) {
  PGconn *listener = PQconnectdb(db_url());
  cr_assert_eq(PQstatus(listener), CONNECTION_OK, "%s", PQerrorMessage(listener));
  char sql[512];
  snprintf(sql, sizeof sql,
           "SET search_path TO %s; LISTEN \"jobbridge_jobs_%s\"; "
           "LISTEN \"jobbridge_outbox_%s\"",
           schema, schema, schema);
  PGresult *res = PQexec(listener, sql);
  cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(listener));
  PQclear(res);

  char id[37];
  create("email", "default", 0, NULL, id);
  cr_expect_eq(notified_then_count(listener, "jobs", "SELECT count(*) FROM jobs"), 1,
               "the new job is visible when its notification arrives");

  jb_work_queue q = jb_pg_work_queue(pg);
  jb_job *jobs = NULL;
  size_t n = 0;
  jb_error e;
  cr_assert_eq(q.ops->claim(q.self, "t/w0", NULL, 0, NULL, 0, 10, 60, &jobs, &n, &e), JB_OK, "%s",
               e.msg);
  cr_assert_eq(n, 1);
  jb_finish f = {.status = JB_STATUS_COMPLETED};
  memcpy(f.id, jobs[0].id, sizeof f.id);
  size_t applied = 0;
  cr_assert_eq(q.ops->finish(q.self, "t/w0", &f, 1, &applied, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(applied, 1);
  jb_jobs_free(jobs, n);
  cr_expect_eq(notified_then_count(listener, "outbox", "SELECT count(*) FROM outbox"), 1,
               "the job.completed event is visible when its notification arrives");

  /* An outcome that changes nothing (the job is no longer ours) wakes nobody. */
  cr_assert_eq(q.ops->finish(q.self, "t/w0", &f, 1, &applied, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(applied, 0);
  cr_expect_eq(notified_then_count(listener, "outbox", "SELECT 1"), -1);
  PQfinish(listener);
}

/* 1 if job `id` was handed to a worker by the transaction that created it (that transaction
 * also started it), 0 if a claim started it, -1 if it has not started. */
static int handed_over(const char *id) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT CASE WHEN started_at IS NULL THEN -1 WHEN started_at = created_at THEN 1 "
           "ELSE 0 END FROM jobs WHERE id = '%s'",
           id);
  PGresult *res = PQexec(jb_pg_conn(pg), sql);
  cr_assert_eq(PQntuples(res), 1, "job %s: %s", id, PQerrorMessage(jb_pg_conn(pg)));
  int v = atoi(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

/* A job due now, created while a worker that serves its queue is idle, goes straight to it:
 * stored RUNNING under the worker's lease and run without a claim. Jobs not due, duplicates,
 * and jobs of queues no worker serves are stored as before, and the worker stays available. */
Test(pg_queue, jobs_created_while_a_worker_is_idle_go_straight_to_it) {
  jb_error e;
  jb_config *wcfg = NULL;
  jb_pg *conns[2];
  jb_worker_pool *pool = one_worker_pool(
      "{\"workers\": {\"threads\": 1, \"queues\": [\"default\"]},"
      " \"job_types\": {\"email\": {\"handler\": \"noop\"}}}",
      &wcfg, conns);
  jb_job_service_set_dispatcher(&svc, jb_worker_pool_dispatcher(pool));
  cr_assert_eq(jb_worker_pool_start(pool, &e), JB_OK, "%s", e.msg);

  /* The worker is idle once its first claim found nothing; until then a job is claimed. */
  char id[37];
  int how = 0;
  for (int i = 0; i < 20 && how != 1; i++) {
    usleep(100000);
    create("email", "default", 0, i == 0 ? "first" : NULL, id);
    cr_assert_eq(wait_count("status = 'COMPLETED'", i + 1), i + 1, "job %d completed", i);
    how = handed_over(id);
  }
  cr_expect_eq(how, 1, "a job created while the worker was idle was handed to it");
  long done = count("status = 'COMPLETED'");

  /* Each of these leaves the worker idle: the next due job still goes straight to it. */
  char later[37], dup[37], other[37];
  json_t *payload = json_object();
  jb_job_request req = {.job_type = "email", .payload = payload};
  req.opts.max_retries = -1;
  req.opts.scheduled_at = jb_time_now() + 3600 * 1000000LL;
  jb_create_outcome oc;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK, "%s", e.msg);
  memcpy(later, oc.id, 37);
  json_decref(payload);
  create("email", "default", 0, "first", dup);
  create("email", "elsewhere", 0, NULL, other);
  /* The jobs stored waiting sent notifications: let the worker's claim that answers them find
   * nothing and the worker go idle again, as the loop above does before each job. */
  usleep(100000);
  create("email", "default", 0, NULL, id);
  cr_expect_eq(wait_count("status = 'COMPLETED'", done + 1), done + 1);
  cr_expect_eq(handed_over(id), 1, "the worker was still free for the next due job");
  cr_expect_eq(handed_over(later), -1);
  cr_expect_eq(count("status = 'SCHEDULED'"), 1, "a job due later waits");
  cr_expect_eq(count("status = 'PENDING' AND queue_name = 'elsewhere'"), 1,
               "a job of a queue the worker does not serve waits");
  cr_expect_eq(count("status = 'RUNNING'"), 0, "no job is left RUNNING without its worker");
  cr_expect_eq(count("dedupe_key = 'first'"), 1);

  free_pool(pool, wcfg, conns);
  jb_job_service_set_dispatcher(&svc, (jb_dispatcher){NULL, NULL});
}
