/* jb_stop (issue 12, item 5): a stop request is an event a thread can poll with its sockets;
 * a wait on it ends when the stop comes, not when a sleep or a slice runs out. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "jobbridge/job.h"
#include "jobbridge/stop.h"

static void *request_later(void *arg) {
  usleep(100 * 1000);
  jb_stop_request(arg);
  return NULL;
}

Test(stop, a_wait_ends_when_the_stop_is_requested_not_when_its_time_runs_out, .timeout = 60) {
  jb_stop s;
  jb_error e;
  cr_assert_eq(jb_stop_init(&s, &e), JB_OK, "%s", e.msg);
  cr_assert_not(jb_stop_requested(&s));
  pthread_t t;
  pthread_create(&t, NULL, request_later, &s);
  int64_t start = jb_mono_ms();
  cr_assert(jb_stop_wait(&s, 40000), "the wait reports the stop");
  int64_t took = jb_mono_ms() - start;
  pthread_join(t, NULL);
  /* A 40 s wait that ended with a request made after 0.1 s: anything under 20 s is the event
   * (generous for a loaded machine), the old sleep would have run its full time. */
  cr_expect_lt(took, 20000, "woken after %lld ms", (long long)took);
  jb_stop_destroy(&s);
}

Test(stop, the_descriptor_stays_readable_once_requested_and_reset_clears_it) {
  jb_stop s;
  jb_error e;
  cr_assert_eq(jb_stop_init(&s, &e), JB_OK, "%s", e.msg);
  struct pollfd p = {jb_stop_fd(&s), POLLIN, 0};
  cr_expect_eq(poll(&p, 1, 0), 0, "not readable before the request");
  cr_expect_not(jb_stop_wait(&s, 20), "a wait without a stop runs out and says so");
  jb_stop_request(&s);
  jb_stop_request(&s); /* idempotent */
  for (int i = 0; i < 3; i++) {
    p.revents = 0;
    cr_expect_eq(poll(&p, 1, 0), 1, "readable after the request, every time it is polled");
  }
  cr_expect(jb_stop_requested(&s));
  cr_expect(jb_stop_wait(&s, 0));
  jb_stop_reset(&s);
  p.revents = 0;
  cr_expect_eq(poll(&p, 1, 0), 0, "not readable after a reset");
  cr_expect_not(jb_stop_requested(&s));
  jb_stop_destroy(&s);
}
