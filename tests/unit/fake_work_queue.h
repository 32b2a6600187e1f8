/* The parts of a fake WorkQueue that the worker-pool unit tests share: nothing held is ever
 * cancelled, nothing expires, and a wait with no notification sleeps (at most 50 ms a call).
 * Each test writes its own claim and finish (and its own wait when it watches the wake fd). */
#ifndef JB_TEST_FAKE_WORK_QUEUE_H
#define JB_TEST_FAKE_WORK_QUEUE_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobbridge/work_queue.h"

static inline jb_err fake_renew(void *self, const jb_held_job *held, size_t n, int lease_s,
                                char (**cancel)[37], size_t *ncancel, jb_error *e) {
  (void)self, (void)held, (void)n, (void)lease_s, (void)e;
  *cancel = malloc(sizeof **cancel); /* malloc: test_worker_nomem wraps calloc */
  *ncancel = 0;
  return JB_OK;
}

static inline jb_err fake_expired(void *self, int max, jb_expired_job **out, size_t *n,
                                  jb_error *e) {
  (void)self, (void)max, (void)e;
  *out = NULL; /* none expired */
  *n = 0;
  return JB_OK;
}

static inline jb_err fake_reap(void *self, const jb_expired_job *seen, const jb_finish *decided,
                               size_t n, size_t *applied, jb_error *e) {
  (void)self, (void)seen, (void)decided, (void)n, (void)e;
  *applied = 0;
  return JB_OK;
}

static inline jb_err fake_wait_sleeping(void *self, int timeout_ms, int wake_fd, bool *notified,
                                        jb_error *e) {
  (void)self, (void)wake_fd, (void)e;
  usleep((useconds_t)(timeout_ms < 50 ? timeout_ms : 50) * 1000);
  if (notified) *notified = false;
  return JB_OK;
}

/* Fills *j (zeroed by the caller) as a claim returns a job: RUNNING, of type "email" in queue
 * "default", empty payload and metadata, locked by owner. */
static inline void fake_running_job(jb_job *j, const char *id, const char *owner) {
  snprintf(j->id, sizeof j->id, "%s", id);
  j->job_type = strdup("email");
  j->queue_name = strdup("default");
  j->payload = json_object();
  j->metadata = json_object();
  j->status = JB_STATUS_RUNNING;
  j->max_retries = 3;
  j->locked_by = strdup(owner);
}

#endif
