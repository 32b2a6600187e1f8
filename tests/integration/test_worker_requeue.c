/* Issue 11, defect 13 (the worker side): a handler that says the failure is jobbridge's own
 * (requeue: out of descriptors, memory, processes) sends its job back without burning a retry,
 * logs it at error level, and makes its worker pause (1 s, doubling) before it claims again,
 * without delaying shutdown. Against the real PostgreSQL (JOBBRIDGE_DATABASE_URL). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers/handlers.h"
#include "jobbridge/job_service.h"
#include "jobbridge/log.h"
#include "jobbridge/worker_pool.h"
#include "postgres/pg.h"

static jb_pg *pg;
static char schema[64];
static char log_path[] = "/tmp/jb-requeue-log.XXXXXX";

static const char *db_url(void) {
  const char *url = getenv("JOBBRIDGE_DATABASE_URL");
  cr_assert(url != NULL && *url, "JOBBRIDGE_DATABASE_URL is not set: run tests/run.sh");
  return url;
}

/* Each test in its own schema; jobbridge's log (stderr) goes to a file the test reads. */
static void setup(void) {
  snprintf(schema, sizeof schema, "rq_%d_%ld", (int)getpid(), random() % 100000);
  jb_error e;
  cr_assert_eq(jb_pg_connect(db_url(), schema, &pg, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(jb_pg_migrate(pg, NULL, &e), JB_OK, "%s", e.msg);
  int fd = mkstemp(log_path);
  cr_assert(fd >= 0);
  fflush(stderr);
  cr_assert(dup2(fd, 2) == 2);
  close(fd);
}

static void teardown(void) {
  char sql[128];
  snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
  PQclear(PQexec(jb_pg_conn(pg), sql));
  jb_pg_close(pg);
  unlink(log_path);
}

TestSuite(requeue, .init = setup, .fini = teardown, .timeout = 60);

static char *query(const char *sql) {
  PGresult *res = PQexec(jb_pg_conn(pg), sql);
  cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(jb_pg_conn(pg)));
  cr_assert_eq(PQntuples(res), 1);
  char *v = strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

static char *read_log(void) {
  FILE *f = fopen(log_path, "r");
  cr_assert(f != NULL);
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* The handler: "out of file descriptors" for the first `shortages` runs, then success. */
static struct {
  atomic_int calls;
  int shortages;
  int64_t at_ms[16]; /* when each call began */
} h;

static void short_of_descriptors(void *self, const jb_job *job, jb_handler_ctx *ctx,
                                 jb_job_result *r) {
  (void)self, (void)job, (void)ctx;
  int k = atomic_fetch_add(&h.calls, 1);
  if (k < 16) h.at_ms[k] = jb_mono_ms();
  if (k < h.shortages) {
    r->success = false;
    r->retriable = true;
    r->requeue = true;
    r->error_message = strdup("cannot prepare the process: Too many open files");
    return;
  }
  r->success = true;
}

/* A one-worker pool on this schema running short_of_descriptors for job type "email", and one
 * job of that type (max_retries 1) waiting; conns get the pool's two connections. */
static jb_worker_pool *pool_with_one_job(jb_config **cfg, jb_pg *conns[2], char id[37]) {
  jb_error e;
  cr_assert_eq(jb_config_parse("{\"workers\": {\"threads\": 1, \"lease_s\": 30},"
                               " \"job_types\": {\"email\": {\"handler\": \"noop\"}}}",
                               "w.json", cfg, &e),
               JB_OK, "%s", e.msg);
  jb_work_queue queues[2];
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(jb_pg_connect(db_url(), schema, &conns[i], &e), JB_OK, "%s", e.msg);
    queues[i] = jb_pg_work_queue(conns[i]);
  }
  jb_worker_pool *pool = NULL;
  cr_assert_eq(jb_worker_pool_new(*cfg, "t", queues, 2, &pool, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(
      jb_worker_pool_register(pool, "email", jb_callback_handler(short_of_descriptors, NULL), &e),
      JB_OK);
  jb_job_service svc;
  jb_job_service_init(&svc, jb_pg_store(pg), jb_pg_work_queue(pg), *cfg);
  jb_job_creator creator = jb_job_service_creator(&svc);
  json_t *payload = json_object();
  jb_job_request req = {.job_type = "email", .payload = payload};
  req.opts.max_retries = 1;
  jb_create_outcome oc;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK, "%s", e.msg);
  json_decref(payload);
  memcpy(id, oc.id, 37);
  return pool;
}

static void free_pool(jb_worker_pool *pool, jb_config *cfg, jb_pg *conns[2]) {
  jb_worker_pool_free(pool);
  for (int i = 0; i < 2; i++) jb_pg_close(conns[i]);
  jb_config_free(cfg);
}

Test(requeue, a_shortage_of_jobbridge_sends_the_job_back_without_burning_a_retry) {
  h.shortages = 3; /* more than max_retries (1): burning retries would dead-letter the job */
  jb_config *cfg;
  jb_pg *conns[2];
  char id[37];
  jb_worker_pool *pool = pool_with_one_job(&cfg, conns, id);
  jb_error e;
  cr_assert_eq(jb_worker_pool_start(pool, &e), JB_OK, "%s", e.msg);
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT status || ' ' || retry_count || ' ' || coalesce(error_message, '') FROM jobs "
           "WHERE id = '%s'",
           id);
  char *state = NULL;
  for (int i = 0; i < 400; i++) { /* 40 s; the pauses take 1 + 2 + 4 s */
    free(state);
    state = query(sql);
    if (strncmp(state, "COMPLETED", 9) == 0 || strncmp(state, "DEAD_LETTER", 11) == 0) break;
    usleep(100000);
  }
  free_pool(pool, cfg, conns);
  cr_expect_str_eq(state, "COMPLETED 0 cannot prepare the process: Too many open files",
                   "the job ran again until it completed, no retry burnt");
  free(state);
  cr_expect_eq(atomic_load(&h.calls), 4);
  /* The worker paused 1 s, then 2 s, then 4 s before it claimed the job again. */
  for (int k = 1; k < 4; k++)
    cr_expect_geq(h.at_ms[k] - h.at_ms[k - 1], (1000L << (k - 1)) - 50, "pause %d: %lld ms", k,
                  (long long)(h.at_ms[k] - h.at_ms[k - 1]));
  const char *log = read_log();
  cr_expect(strstr(log, "\"level\":\"error\",\"msg\":\"jobbridge is short of a resource") != NULL,
            "logged at error level: %s", log);
  cr_expect(strstr(log, id) != NULL, "the log names the job");
  cr_expect(strstr(log, "\"reason\":\"cannot prepare the process: Too many open files\"") != NULL,
            "the log gives the reason");
}

Test(requeue, a_pausing_worker_does_not_delay_shutdown) {
  h.shortages = 1000;
  jb_config *cfg;
  jb_pg *conns[2];
  char id[37];
  jb_worker_pool *pool = pool_with_one_job(&cfg, conns, id);
  jb_error e;
  cr_assert_eq(jb_worker_pool_start(pool, &e), JB_OK, "%s", e.msg);
  for (int i = 0; i < 300 && atomic_load(&h.calls) < 3; i++) usleep(100000);
  cr_assert_eq(atomic_load(&h.calls), 3, "three shortages within 30 s");
  /* The worker now pauses 4 s: stopping must not wait for that. */
  int64_t t0 = jb_mono_ms();
  jb_worker_pool_stop(pool, 10);
  int64_t took = jb_mono_ms() - t0;
  cr_expect_lt(took, 3000, "stop took %lld ms", (long long)took);
  free_pool(pool, cfg, conns);
}
