/* How the worker pool records outcomes when the database fails (issue 11, defect 13's worker
 * side and the database-error review): a passing error (JB_ERR_DB: statement timeout, deadlock,
 * read-only standby) is retried with nothing dropped; a refusal of the data (JB_ERR_DB_REFUSED)
 * is narrowed to the outcome at fault, which is recorded without what the database refused.
 * The queue is a fake that answers the way the PostgreSQL adapter does; no servers. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake_work_queue.h"
#include "handlers/handlers.h"
#include "jobbridge/worker_pool.h"

#define NJOBS 2
static const char *const ids[NJOBS] = {"1de07a1b-676c-45bc-b465-0d67fc9f3fe0",
                                       "1de07a1b-676c-45bc-b465-0d67fc9f3fe1"};

/* What the fake database holds; guarded by lock (the worker and the test thread read it). */
static struct {
  pthread_mutex_t lock;
  bool claimed;
  int finish_calls;
  int transient_left; /* finish calls still to fail with JB_ERR_DB */
  bool seen[NJOBS];   /* the job was in a finish call after the passing errors */
  bool kept[NJOBS];   /* ... and that first call still carried its result */
  bool recorded[NJOBS];
  bool with_result[NJOBS];
  jb_job_status status[NJOBS];
} db = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int job_index(const char *id) {
  for (int i = 0; i < NJOBS; i++)
    if (strcmp(ids[i], id) == 0) return i;
  return -1;
}

static jb_err fake_claim(void *self, const char *owner, char *const *queues, size_t nqueues,
                         char *const *skip, size_t nskip, int max, int lease_s, jb_job **out,
                         size_t *n, jb_error *e) {
  (void)skip, (void)nskip, (void)self, (void)queues, (void)nqueues, (void)max, (void)lease_s,
      (void)e;
  pthread_mutex_lock(&db.lock);
  bool first = !db.claimed;
  db.claimed = true;
  pthread_mutex_unlock(&db.lock);
  *n = first ? NJOBS : 0;
  *out = calloc(NJOBS, sizeof **out);
  for (size_t i = 0; i < *n; i++) {
    fake_running_job(&(*out)[i], ids[i], owner);
  }
  return JB_OK;
}

/* Fails the first calls as a passing error would; then refuses any batch holding the result
 * {"bad": true} (as PostgreSQL refuses a string jsonb cannot hold), and records the others. */
static jb_err fake_finish(void *self, const char *owner, const jb_finish *items, size_t n,
                          size_t *applied, jb_error *e) {
  (void)self, (void)owner;
  pthread_mutex_lock(&db.lock);
  jb_err rc = JB_OK;
  db.finish_calls++;
  if (db.transient_left > 0) {
    db.transient_left--;
    rc = jb_fail(e, JB_ERR_DB, "canceling statement due to statement timeout (SQLSTATE 57014)");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    int k = job_index(items[i].id);
    if (!db.seen[k]) db.kept[k] = items[i].result != NULL;
    db.seen[k] = true;
  }
  for (size_t i = 0; i < n; i++)
    if (items[i].result != NULL && json_object_get(items[i].result, "bad") != NULL) {
      rc = jb_fail(e, JB_ERR_DB_REFUSED, "unsupported Unicode escape sequence (SQLSTATE 22P05)");
      goto out;
    }
  for (size_t i = 0; i < n; i++) {
    int k = job_index(items[i].id);
    db.recorded[k] = true;
    db.with_result[k] = items[i].result != NULL;
    db.status[k] = items[i].status;
  }
  *applied = n;
out:
  pthread_mutex_unlock(&db.lock);
  return rc;
}

static const jb_work_queue_ops fake_ops = {.claim = fake_claim,
                                           .finish = fake_finish,
                                           .renew = fake_renew,
                                           .expired = fake_expired,
                                           .reap = fake_reap,
                                           .wait = fake_wait_sleeping};

/* Succeeds with {"bad": true} for the first job, {"ok": true} for the second. */
static void handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  (void)self, (void)ctx;
  r->success = true;
  r->result_data = json_pack("{s:b}", job_index(job->id) == 0 ? "bad" : "ok", 1);
}

Test(worker_record, passing_errors_are_retried_and_a_refusal_drops_only_what_was_refused,
     .timeout = 30) {
  db.transient_left = 2;
  jb_config *cfg;
  jb_error e;
  cr_assert_eq(jb_config_parse("{\"workers\": {\"threads\": 1}}", "t.json", &cfg, &e), JB_OK, "%s",
               e.msg);
  jb_work_queue queues[2] = {{&fake_ops, NULL}, {&fake_ops, NULL}};
  jb_worker_pool *pool = NULL;
  cr_assert_eq(jb_worker_pool_new(cfg, "t", queues, 2, &pool, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(jb_worker_pool_register(pool, "email", jb_callback_handler(handle, NULL), &e),
               JB_OK);
  cr_assert_eq(jb_worker_pool_start(pool, &e), JB_OK, "%s", e.msg);
  bool done = false;
  for (int i = 0; i < 200 && !done; i++) { /* 10 s: the retries take 0.3 s */
    usleep(50000);
    pthread_mutex_lock(&db.lock);
    done = db.recorded[0] && db.recorded[1];
    pthread_mutex_unlock(&db.lock);
  }
  jb_worker_pool_free(pool);
  jb_config_free(cfg);
  cr_assert(done, "both outcomes recorded (after %d finish calls)", db.finish_calls);
  cr_expect(db.kept[0] && db.kept[1],
            "a passing error drops nothing: the retry still carries both results");
  cr_expect_eq(db.status[0], JB_STATUS_COMPLETED, "the job whose result was refused completes");
  cr_expect_not(db.with_result[0], "without the result the database refused");
  cr_expect_eq(db.status[1], JB_STATUS_COMPLETED);
  cr_expect(db.with_result[1], "the other job of the batch keeps its result");
}
