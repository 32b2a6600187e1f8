/* Issue 12, item 9: a worker without memory for a batch's outcome arrays (the calloc of fin and
 * res in run_batch) still runs and records every job of the batch, one at a time, instead of
 * leaving them RUNNING for the reaper. calloc is wrapped at link time (-Wl,--wrap=calloc): it
 * fails for arrays of jb_finish while `fail_finish` is set. A fake queue; no servers. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake_work_queue.h"
#include "handlers/handlers.h"
#include "jobbridge/worker_pool.h"

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

static atomic_bool fail_finish;
static atomic_int failed_callocs;

void *__wrap_calloc(size_t n, size_t size) {
  if (size == sizeof(jb_finish) && atomic_load(&fail_finish)) {
    atomic_fetch_add(&failed_callocs, 1);
    return NULL;
  }
  return __real_calloc(n, size);
}

#define NJOBS 3

static struct {
  pthread_mutex_t lock;
  bool claimed;
  int recorded;
  jb_job_status status[NJOBS];
} db = {.lock = PTHREAD_MUTEX_INITIALIZER};

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
  *out = malloc(NJOBS * sizeof **out);
  memset(*out, 0, NJOBS * sizeof **out);
  for (size_t i = 0; i < *n; i++) {
    char id[37] = "1de07a1b-676c-45bc-b465-0d67fc9f3fe0";
    id[35] = (char)('0' + i);
    fake_running_job(&(*out)[i], id, owner);
  }
  return JB_OK;
}

static jb_err fake_finish(void *self, const char *owner, const jb_finish *items, size_t n,
                          size_t *applied, jb_error *e) {
  (void)self, (void)owner, (void)e;
  pthread_mutex_lock(&db.lock);
  for (size_t i = 0; i < n; i++) {
    int k = items[i].id[35] - '0';
    db.status[k] = items[i].status;
    db.recorded++;
  }
  pthread_mutex_unlock(&db.lock);
  *applied = n;
  return JB_OK;
}

static const jb_work_queue_ops fake_ops = {.claim = fake_claim,
                                           .finish = fake_finish,
                                           .renew = fake_renew,
                                           .expired = fake_expired,
                                           .reap = fake_reap,
                                           .wait = fake_wait_sleeping};

static void handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  (void)self, (void)job, (void)ctx;
  r->success = true;
}

Test(worker_nomem, a_batch_without_memory_for_its_outcomes_is_still_run_and_recorded,
     .timeout = 60) {
  jb_config *cfg;
  jb_error e;
  cr_assert_eq(
      jb_config_parse("{\"workers\": {\"threads\": 1, \"lease_s\": 300}}", "t.json", &cfg, &e),
      JB_OK, "%s", e.msg);
  jb_work_queue queues[2] = {{&fake_ops, NULL}, {&fake_ops, NULL}};
  jb_worker_pool *pool = NULL;
  cr_assert_eq(jb_worker_pool_new(cfg, "t", queues, 2, &pool, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(jb_worker_pool_register(pool, "email", jb_callback_handler(handle, NULL), &e),
               JB_OK);
  atomic_store(&fail_finish, true);
  cr_assert_eq(jb_worker_pool_start(pool, &e), JB_OK, "%s", e.msg);
  int recorded = 0;
  for (int i = 0; i < 400 && recorded < NJOBS; i++) { /* 20 s; it takes milliseconds */
    usleep(50000);
    pthread_mutex_lock(&db.lock);
    recorded = db.recorded;
    pthread_mutex_unlock(&db.lock);
  }
  jb_worker_pool_free(pool);
  atomic_store(&fail_finish, false);
  jb_config_free(cfg);
  cr_expect_gt(atomic_load(&failed_callocs), 0, "the outcome arrays were refused");
  cr_expect_eq(recorded, NJOBS, "every job of the batch was recorded, not left for the reaper");
  for (int k = 0; k < NJOBS; k++)
    cr_expect_eq(db.status[k], JB_STATUS_COMPLETED, "job %d completed", k);
}
