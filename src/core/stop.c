/* jb_stop: a stop flag with an eventfd that stays readable once the stop is requested. */
#include "jobbridge/stop.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "jobbridge/job.h"

jb_err jb_stop_init(jb_stop *s, jb_error *e) {
  s->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  atomic_init(&s->requested, false);
  if (s->fd < 0)
    return jb_fail(e, JB_ERR_IO, "cannot create a stop descriptor: %s", strerror(errno));
  return JB_OK;
}

void jb_stop_destroy(jb_stop *s) {
  if (s->fd > 0) close(s->fd); /* 0 is stdin, never an eventfd of ours */
  s->fd = -1;
}

void jb_stop_request(jb_stop *s) {
  atomic_store(&s->requested, true);
  uint64_t one = 1;
  /* The counter only grows, and nobody reads it: the descriptor stays readable. A write fails
   * only when the counter is full, and then it is readable already. */
  if (write(s->fd, &one, sizeof one) < 0) {
  }
}

void jb_stop_reset(jb_stop *s) {
  uint64_t count;
  if (read(s->fd, &count, sizeof count) < 0) { /* not requested: nothing to take */
  }
  atomic_store(&s->requested, false);
}

bool jb_stop_requested(jb_stop *s) {
  return atomic_load(&s->requested);
}

int jb_stop_fd(const jb_stop *s) {
  return s->fd;
}

bool jb_stop_wait(jb_stop *s, long ms) {
  int64_t end = ms >= 0 ? jb_mono_ms() + ms : 0;
  while (!jb_stop_requested(s)) {
    long left = ms >= 0 ? (long)(end - jb_mono_ms()) : -1;
    if (ms >= 0 && left <= 0) return false;
    struct pollfd p = {s->fd, POLLIN, 0};
    int r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
    if (r < 0 && errno != EINTR) jb_sleep_ms(left >= 0 && left < 100 ? left : 100); /* no poll */
  }
  return true;
}
