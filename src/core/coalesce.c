/* The group-committing JobCreator (jobbridge/coalesce.h). Callers queue a waiter (on their own
 * stack) and sleep on its semaphore; a committer takes every waiter queued so far (up to
 * max_group requests), makes one inner call for all of them, and hands each waiter its share
 * of the outcomes. While a committer is in its transaction the next group gathers, so the
 * group grows with the load and a lone caller waits for nobody.
 *
 * A committer wakes its group's waiters by their own semaphores, outside the queue's mutex: a
 * condition variable needs its mutex back on waking, so the 64 callers of a group woken under
 * the one queue mutex each blocked on it again, one after another (futex contention was the
 * largest userspace cost of POST /v1/jobs under wrk). */
#include "jobbridge/coalesce.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One create_jobs call waiting for a committer. Lives on the caller's stack; the committer
 * writes rc, e and out, then posts done (which orders those writes before the caller's reads);
 * the waiter may be gone as soon as done is posted. */
typedef struct waiter {
  const jb_job_request *reqs; /* borrowed from the caller */
  size_t n;
  jb_create_outcome *out; /* the caller's, n entries */
  jb_err rc;
  jb_error e;
  sem_t done;
  struct waiter *next;
} waiter;

typedef struct committer {
  jb_coalescer *c;
  jb_job_creator inner;
  pthread_t thread;
  bool started;
  /* The group's combined arrays, grown as needed; this committer's own. */
  jb_job_request *reqs;
  jb_create_outcome *out;
  size_t cap;
} committer;

struct jb_coalescer {
  const jb_job_service *validator;
  size_t max_group;
  pthread_mutex_t mu;
  pthread_cond_t work; /* a waiter was queued, or stopping */
  waiter *head, *tail;
  bool stopping;
  jb_coalescer_stats stats;
  committer *committers;
  size_t ncommitters;
};

/* Takes the waiters of the next group off the queue (mu held, queue not empty): the first one
 * always, then more while the group stays within max_group requests. */
static waiter *take_group(jb_coalescer *c, size_t *total) {
  waiter *first = c->head, *last = first;
  size_t n = first->n;
  while (last->next != NULL && n + last->next->n <= c->max_group) {
    last = last->next;
    n += last->n;
  }
  c->head = last->next;
  if (c->head == NULL) c->tail = NULL;
  last->next = NULL;
  *total = n;
  return first;
}

static bool refused_as_invalid(jb_err rc) {
  return rc == JB_ERR_INVALID || rc == JB_ERR_UNREGISTERED || rc == JB_ERR_DB_REFUSED;
}

/* Each waiter of the group through its own inner call (its own transaction). */
static void commit_singly(committer *m, waiter *group) {
  for (waiter *w = group; w != NULL; w = w->next) {
    jb_error_clear(&w->e);
    w->rc = m->inner.ops->create_jobs(m->inner.self, w->reqs, w->n, w->out, &w->e);
  }
}

/* One inner call for the whole group; on a refusal of the data, one per waiter. */
static void commit_group(committer *m, waiter *group, size_t total, size_t *inner_calls,
                         size_t *singles) {
  if (group->next == NULL) { /* alone: no copy */
    commit_singly(m, group);
    (*inner_calls)++;
    return;
  }
  if (total > m->cap) {
    jb_job_request *r = realloc(m->reqs, total * sizeof *r);
    if (r != NULL) m->reqs = r;
    jb_create_outcome *o = realloc(m->out, total * sizeof *o);
    if (o != NULL) m->out = o;
    if (r == NULL || o == NULL) { /* out of memory for the group: one at a time still works */
      commit_singly(m, group);
      for (waiter *w = group; w != NULL; w = w->next) (*singles)++;
      return;
    }
    m->cap = total;
  }
  size_t at = 0;
  for (waiter *w = group; w != NULL; w = w->next) {
    memcpy(m->reqs + at, w->reqs, w->n * sizeof *w->reqs);
    at += w->n;
  }
  jb_error e;
  jb_error_clear(&e);
  jb_err rc = m->inner.ops->create_jobs(m->inner.self, m->reqs, total, m->out, &e);
  (*inner_calls)++;
  if (refused_as_invalid(rc)) {
    commit_singly(m, group);
    for (waiter *w = group; w != NULL; w = w->next) (*singles)++;
    return;
  }
  at = 0;
  for (waiter *w = group; w != NULL; w = w->next) {
    w->rc = rc;
    w->e = e;
    if (rc == JB_OK) memcpy(w->out, m->out + at, w->n * sizeof *w->out);
    at += w->n;
  }
}

static void *committer_main(void *arg) {
  committer *m = arg;
  jb_coalescer *c = m->c;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (c->head == NULL && !c->stopping) pthread_cond_wait(&c->work, &c->mu);
    if (c->head == NULL) break; /* stopping, and nothing left to serve */
    size_t total = 0, calls = 0, singles = 0;
    waiter *group = take_group(c, &total);
    bool more = c->head != NULL; /* the group was full: another committer may take the rest */
    pthread_mutex_unlock(&c->mu);
    if (more) pthread_cond_signal(&c->work);
    commit_group(m, group, total, &calls, &singles);
    for (waiter *w = group, *next; w != NULL; w = next) {
      next = w->next; /* w may be gone once done is posted */
      sem_post(&w->done);
    }
    pthread_mutex_lock(&c->mu);
    c->stats.groups += calls;
    c->stats.singles += singles;
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static jb_err coalesce_create_jobs(void *self, const jb_job_request *reqs, size_t n,
                                   jb_create_outcome *out, jb_error *e) {
  jb_coalescer *c = self;
  if (n == 0) return JB_OK;
  for (size_t i = 0; i < n; i++) {
    jb_err rc = jb_job_service_validate(c->validator, &reqs[i], i, n, e);
    if (rc != JB_OK) return rc;
  }
  waiter w = {.reqs = reqs, .n = n, .out = out};
  if (sem_init(&w.done, 0, 0) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot make a semaphore to wait for the job creation commit");
  pthread_mutex_lock(&c->mu);
  if (c->stopping) {
    pthread_mutex_unlock(&c->mu);
    sem_destroy(&w.done);
    return jb_fail(e, JB_ERR_STOPPED, "jobbridge is stopping: no new jobs are taken");
  }
  bool was_empty = c->head == NULL;
  if (c->tail != NULL)
    c->tail->next = &w;
  else
    c->head = &w;
  c->tail = &w;
  c->stats.calls++;
  pthread_mutex_unlock(&c->mu);
  /* A committer is woken only for the first waiter of a group (the one it wakes for takes the
   * ones queued behind it), and after the unlock, so that it does not wake only to block on
   * the mutex still held here. Committers test the queue under the mutex before they wait,
   * so no wake-up is lost. */
  if (was_empty) pthread_cond_signal(&c->work);
  while (sem_wait(&w.done) != 0 && errno == EINTR) continue;
  sem_destroy(&w.done);
  if (w.rc != JB_OK && e != NULL) *e = w.e;
  return w.rc;
}

static const jb_job_creator_ops coalesce_ops = {.create_jobs = coalesce_create_jobs};

jb_job_creator jb_coalescer_creator(jb_coalescer *c) {
  return (jb_job_creator){&coalesce_ops, c};
}

jb_coalescer_stats jb_coalescer_get_stats(jb_coalescer *c) {
  pthread_mutex_lock(&c->mu);
  jb_coalescer_stats s = c->stats;
  pthread_mutex_unlock(&c->mu);
  return s;
}

jb_err jb_coalescer_new(const jb_job_creator *inner, size_t ninner, const jb_job_service *validator,
                        size_t max_group, jb_coalescer **out, jb_error *e) {
  *out = NULL;
  if (ninner == 0 || max_group == 0)
    return jb_fail(e, JB_ERR_INVALID, "a coalescer needs at least one inner creator and a group");
  jb_coalescer *c = calloc(1, sizeof *c);
  if (c == NULL || (c->committers = calloc(ninner, sizeof *c->committers)) == NULL) {
    free(c);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory for the job creation group commit");
  }
  c->validator = validator;
  c->max_group = max_group;
  c->ncommitters = ninner;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->work, NULL);
  for (size_t i = 0; i < ninner; i++) {
    committer *m = &c->committers[i];
    m->c = c;
    m->inner = inner[i];
    if (pthread_create(&m->thread, NULL, committer_main, m) != 0) {
      jb_coalescer_free(c);
      return jb_fail(e, JB_ERR_IO, "cannot start a job creation committer thread");
    }
    m->started = true;
  }
  *out = c;
  return JB_OK;
}

void jb_coalescer_stop(jb_coalescer *c) {
  if (c == NULL) return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_broadcast(&c->work);
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < c->ncommitters; i++) {
    committer *m = &c->committers[i];
    if (m->started) pthread_join(m->thread, NULL);
    m->started = false;
  }
}

void jb_coalescer_free(jb_coalescer *c) {
  if (c == NULL) return;
  jb_coalescer_stop(c);
  for (size_t i = 0; i < c->ncommitters; i++) {
    free(c->committers[i].reqs);
    free(c->committers[i].out);
  }
  pthread_cond_destroy(&c->work);
  pthread_mutex_destroy(&c->mu);
  free(c->committers);
  free(c);
}
