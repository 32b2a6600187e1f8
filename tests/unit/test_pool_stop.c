/* The worker pool stops on an event (issue 12, item 5): an idle worker waiting in the queue's
 * wait is woken by the pool's stop through the descriptor it waits on, instead of finding the
 * stop when its wait times out. The queue is a fake that never has a job; no servers. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "fake_work_queue.h"
#include "handlers/handlers.h"
#include "jobbridge/worker_pool.h"

static struct {
  pthread_mutex_t lock;
  int waits;       /* waits that ended */
  int woken_by_fd; /* ... because the wake descriptor became readable */
} q = {.lock = PTHREAD_MUTEX_INITIALIZER};

static jb_err fake_claim(void *self, const char *owner, char *const *queues, size_t nqueues,
                         char *const *skip, size_t nskip, int max, int lease_s, jb_job **out,
                         size_t *n, jb_error *e) {
  (void)skip, (void)nskip, (void)self, (void)owner, (void)queues, (void)nqueues, (void)max,
      (void)lease_s, (void)e;
  *out = calloc(1, sizeof **out);
  *n = 0;
  return JB_OK;
}

/* Like the PostgreSQL adapter's wait with no notification coming: polls wake_fd until it is
 * readable or timeout_ms passes. */
static jb_err fake_wait(void *self, int timeout_ms, int wake_fd, bool *notified, jb_error *e) {
  (void)self, (void)e;
  struct pollfd p = {wake_fd, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  pthread_mutex_lock(&q.lock);
  q.waits++;
  q.woken_by_fd += r > 0;
  pthread_mutex_unlock(&q.lock);
  if (notified) *notified = false;
  return JB_OK;
}

static const jb_work_queue_ops fake_ops = {.claim = fake_claim,
                                           .renew = fake_renew,
                                           .expired = fake_expired,
                                           .reap = fake_reap,
                                           .wait = fake_wait};

Test(pool_stop, an_idle_worker_is_woken_by_the_stop, .timeout = 60) {
  jb_config *cfg;
  jb_error e;
  cr_assert_eq(
      jb_config_parse("{\"workers\": {\"threads\": 1, \"poll_ms\": 200}}", "t.json", &cfg, &e),
      JB_OK, "%s", e.msg);
  jb_work_queue queues[2] = {{&fake_ops, NULL}, {&fake_ops, NULL}};
  jb_worker_pool *pool = NULL;
  cr_assert_eq(jb_worker_pool_new(cfg, "t", queues, 2, &pool, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(jb_worker_pool_start(pool, &e), JB_OK, "%s", e.msg);
  int waits = 0;
  for (int i = 0; i < 600 && waits < 3; i++) { /* the worker idles: a few waits time out */
    usleep(50000);
    pthread_mutex_lock(&q.lock);
    waits = q.waits;
    pthread_mutex_unlock(&q.lock);
  }
  cr_assert_geq(waits, 3, "the worker waits idle");
  cr_assert_eq(q.woken_by_fd, 0, "nothing but the stop writes its descriptor here");
  jb_worker_pool_stop(pool, 5);
  pthread_mutex_lock(&q.lock);
  int woken = q.woken_by_fd;
  pthread_mutex_unlock(&q.lock);
  jb_worker_pool_free(pool);
  jb_config_free(cfg);
  cr_expect_eq(woken, 1,
               "the wait in progress ended because the stop made its descriptor "
               "readable, not by its timeout");
}
