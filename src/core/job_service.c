/* JobService: validation of job requests, id generation, and the JobCreator port. */
#include "jobbridge/job_service.h"
#include "jobbridge/lifecycle.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uuid/uuid.h>

#include "jobbridge/job_metrics.h"
#include "jobbridge/log.h"
#include "jobbridge/time_metrics.h"
#include "jobbridge/trace.h"

#define JB_MAX_QUEUE_NAME 127
#define JB_MAX_DEDUPE_KEY 1024

void jb_job_service_init(jb_job_service *svc, jb_job_store store, jb_work_queue work,
                         const jb_config *cfg) {
  svc->store = store;
  svc->work = work;
  svc->cfg = cfg;
  svc->cancel_wait_ms = 15000;
  svc->dispatch = (jb_dispatcher){NULL, NULL};
}

void jb_job_service_set_dispatcher(jb_job_service *svc, jb_dispatcher d) {
  svc->dispatch = d;
}

bool jb_is_uuid(const char *s) {
  if (s == NULL || strlen(s) != 36) return false;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!isxdigit((unsigned char)s[i])) {
      return false;
    }
  }
  return true;
}

/* A new job id: a UUID of version 7 (RFC 9562), its first 60 bits the creation time (unix
 * milliseconds, then the fraction of the millisecond in 12 bits), its last 62 bits random.
 * Ids made one after the other sort one after the other, so a job's primary-key entry goes
 * to the end of the index, where the previous one went, instead of to a random page: ingest
 * took 13% more events per second than with random (version 4) ids. The random bytes come
 * from the kernel 32 ids at a time into a per-thread pool (libuuid's uuid_generate_random
 * reseeded and read the kernel on every call, a tenth of the ingest's CPU); libuuid stays the
 * fallback for a kernel without getrandom. */
static void new_job_id(char out[37]) {
  static _Thread_local unsigned char pool[32 * 16];
  static _Thread_local size_t used = sizeof pool;
  uuid_t u;
  if (used == sizeof pool && getrandom(pool, sizeof pool, 0) == (ssize_t)sizeof pool) used = 0;
  if (used < sizeof pool) {
    memcpy(u, pool + used, 16);
    memset(pool + used, 0, 16); /* an id's bytes are not kept around */
    used += 16;
  } else {
    uuid_generate_random(u);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  unsigned frac = (unsigned)((uint64_t)(ts.tv_nsec % 1000000) * 4096 / 1000000);
  for (int i = 0; i < 6; i++) u[i] = (unsigned char)(ms >> (40 - 8 * i));
  u[6] = (unsigned char)(0x70 | (frac >> 8)); /* version 7 */
  u[7] = (unsigned char)(frac & 0xff);
  u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 9562 variant */
  uuid_unparse_lower(u, out);
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
      return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
      return "a boolean";
    case JSON_NULL:
      return "null";
  }
  return "?";
}

jb_err jb_job_service_validate(const jb_job_service *svc, const jb_job_request *req, size_t index,
                               size_t n, jb_error *e) {
  char where[48] = "";
  if (n > 1) snprintf(where, sizeof where, "request %zu: ", index);
  if (req->job_type == NULL || req->job_type[0] == '\0')
    return jb_fail(e, JB_ERR_INVALID, "%sjob type is missing", where);
  if (jb_config_job_type(svc->cfg, req->job_type) == NULL)
    return jb_fail(e, JB_ERR_UNREGISTERED,
                   "%sjob type \"%s\" is not registered (add it to job_types in the config)", where,
                   req->job_type);
  if (req->payload == NULL || !json_is_object(req->payload))
    return jb_fail(e, JB_ERR_INVALID, "%spayload must be a JSON object, got %s", where,
                   req->payload ? json_kind(req->payload) : "nothing");
  if (req->queue_name != NULL &&
      (req->queue_name[0] == '\0' || strlen(req->queue_name) > JB_MAX_QUEUE_NAME))
    return jb_fail(e, JB_ERR_INVALID, "%squeue name must be 1 to %d bytes", where,
                   JB_MAX_QUEUE_NAME);
  if (req->opts.created_by != NULL && !jb_is_uuid(req->opts.created_by))
    return jb_fail(e, JB_ERR_INVALID, "%screated_by \"%s\" is not a UUID", where,
                   req->opts.created_by);
  if (req->opts.metadata != NULL && !json_is_object(req->opts.metadata))
    return jb_fail(e, JB_ERR_INVALID, "%smetadata must be a JSON object, got %s", where,
                   json_kind(req->opts.metadata));
  if (req->opts.dedupe_key != NULL &&
      (req->opts.dedupe_key[0] == '\0' || strlen(req->opts.dedupe_key) > JB_MAX_DEDUPE_KEY))
    return jb_fail(e, JB_ERR_INVALID, "%sdedupe key must be 1 to %d bytes", where,
                   JB_MAX_DEDUPE_KEY);
  if (req->opts.max_retries > 1000)
    return jb_fail(e, JB_ERR_INVALID, "%smax_retries %d is above 1000", where,
                   req->opts.max_retries);
  return JB_OK;
}

/* Reserves idle workers for the jobs due now, highest priority first, one job each: slot[i]
 * gets job i's worker (its run_by and lease are set), or stays -1. */
static void reserve_workers(jb_job_service *svc, jb_new_job *jobs, size_t n, int *slot) {
  const jb_dispatcher *d = &svc->dispatch;
  jb_time now = jb_time_now();
  bool *tried = calloc(n, sizeof *tried);
  if (tried == NULL) return; /* the jobs are stored waiting, as without a dispatcher */
  for (;;) {
    size_t best = n;
    for (size_t i = 0; i < n; i++)
      if (!tried[i] && jobs[i].scheduled_at <= now &&
          (best == n || jobs[i].priority > jobs[best].priority))
        best = i;
    if (best == n) break;
    tried[best] = true;
    int s =
        d->ops->reserve(d->self, jobs[best].queue_name, &jobs[best].run_by, &jobs[best].lease_s);
    if (s < 0) {
      jobs[best].run_by = NULL;
      if (s == -1) break; /* nobody idle; -2: not this queue, another job's may do */
      continue;
    }
    slot[best] = s;
  }
  free(tried);
}

/* The job as the worker would have claimed it: what was stored, RUNNING since `at`. */
static jb_err running_job(const jb_new_job *nj, jb_time at, jb_job *j) {
  memset(j, 0, sizeof *j);
  memcpy(j->id, nj->id, sizeof j->id);
  j->queue_name = strdup(nj->queue_name);
  j->job_type = strdup(nj->job_type);
  j->payload = json_deep_copy(nj->payload);
  j->priority = nj->priority;
  j->max_retries = nj->max_retries;
  j->scheduled_at = nj->scheduled_at != 0 ? nj->scheduled_at : at;
  j->started_at = j->created_at = j->updated_at = at;
  j->status = JB_STATUS_RUNNING;
  if (nj->created_by != NULL) snprintf(j->created_by, sizeof j->created_by, "%s", nj->created_by);
  j->metadata = nj->metadata != NULL ? json_deep_copy(nj->metadata) : json_object();
  j->dedupe_key = nj->dedupe_key != NULL ? strdup(nj->dedupe_key) : NULL;
  j->locked_by = strdup(nj->run_by);
  j->locked_until = at + (jb_time)nj->lease_s * 1000000;
  memcpy(j->traceparent, nj->traceparent, sizeof j->traceparent);
  j->tracestate = nj->tracestate != NULL ? strdup(nj->tracestate) : NULL;
  if (j->queue_name && j->job_type && j->payload && j->metadata && j->locked_by &&
      (nj->dedupe_key == NULL || j->dedupe_key) && (nj->tracestate == NULL || j->tracestate))
    return JB_OK;
  jb_job_clear(j);
  return JB_ERR_NOMEM;
}

/* After the insert: each reserved worker gets its job if it was created, or is let go. */
static void hand_over(jb_job_service *svc, const jb_new_job *jobs, size_t n, const int *slot,
                      jb_err rc, jb_create_outcome *out) {
  const jb_dispatcher *d = &svc->dispatch;
  for (size_t i = 0; i < n; i++) {
    if (slot[i] < 0) continue;
    jb_job job;
    if (rc != JB_OK || out[i].status != JB_CREATE_CREATED) {
      d->ops->release(d->self, slot[i]);
    } else if (running_job(&jobs[i], out[i].created_at, &job) == JB_OK) {
      d->ops->hand(d->self, slot[i], &job);
      out[i].running = true;
    } else {
      d->ops->release(d->self, slot[i]);
      jb_log(JB_LOG_ERROR,
             "out of memory handing a job to its worker; the reaper retries it when its lease "
             "expires",
             "job_id", jobs[i].id, JB_LOG_END);
    }
  }
}

/* The job's trace context: its cause's, or a new trace (logged when the cause's was malformed:
 * the job is created anyway, in a trace of its own). */
static void job_trace(const jb_job_request *r, jb_new_job *nj) {
  if (jb_traceparent_parse(r->opts.traceparent, nj->traceparent)) {
    nj->tracestate = jb_tracestate_valid(r->opts.tracestate) ? r->opts.tracestate : NULL;
    return;
  }
  jb_traceparent_new(nj->traceparent);
  if (r->opts.traceparent != NULL) {
    char id[33];
    jb_trace_id(nj->traceparent, id);
    jb_log(JB_LOG_WARN, "malformed traceparent; the job starts a new trace", "job_id", nj->id,
           "job_type", r->job_type, "traceparent", r->opts.traceparent, "trace_id", id, JB_LOG_END);
  }
}

static jb_err service_create_jobs(void *self, const jb_job_request *reqs, size_t n,
                                  jb_create_outcome *out, jb_error *e) {
  jb_job_service *svc = self;
  if (n == 0) return JB_OK;
  for (size_t i = 0; i < n; i++) {
    jb_err rc = jb_job_service_validate(svc, &reqs[i], i, n, e);
    if (rc != JB_OK) return rc;
  }
  jb_new_job *jobs = calloc(n, sizeof *jobs);
  int *slot = NULL;
  if (jobs == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for %zu jobs", n);
  for (size_t i = 0; i < n; i++) {
    const jb_job_request *r = &reqs[i];
    const jb_job_type_cfg *jt = jb_config_job_type(svc->cfg, r->job_type);
    new_job_id(jobs[i].id);
    jobs[i].job_type = r->job_type;
    jobs[i].queue_name = r->queue_name ? r->queue_name : "default";
    jobs[i].payload = r->payload;
    jobs[i].priority = r->priority;
    jobs[i].max_retries = r->opts.max_retries >= 0 ? r->opts.max_retries : jt->max_retries;
    jobs[i].scheduled_at = r->opts.scheduled_at;
    jobs[i].created_by = r->opts.created_by;
    jobs[i].metadata = r->opts.metadata;
    jobs[i].dedupe_key = r->opts.dedupe_key;
    jobs[i].events = jb_lifecycle_events(svc->cfg, r->job_type);
    job_trace(r, &jobs[i]);
  }
  if (svc->dispatch.ops != NULL && (slot = malloc(n * sizeof *slot)) != NULL) {
    for (size_t i = 0; i < n; i++) slot[i] = -1;
    reserve_workers(svc, jobs, n, slot);
  }
  jb_err rc = svc->store.ops->enqueue(svc->store.self, jobs, n, out, e);
  if (rc == JB_OK) jb_job_metrics_created(jobs, n, out);
  if (rc == JB_OK) jb_lifecycle_metrics_enqueued(jobs, n, out);
  if (slot != NULL) hand_over(svc, jobs, n, slot, rc, out);
  free(slot);
  free(jobs);
  return rc;
}

static const jb_job_creator_ops service_creator_ops = {.create_jobs = service_create_jobs};

jb_job_creator jb_job_service_creator(jb_job_service *svc) {
  return (jb_job_creator){&service_creator_ops, svc};
}

jb_err jb_create_job(const jb_job_creator *c, const jb_job_request *req, jb_create_outcome *out,
                     jb_error *e) {
  return c->ops->create_jobs(c->self, req, 1, out, e);
}

static jb_err check_id(const char *id, jb_error *e) {
  if (jb_is_uuid(id)) return JB_OK;
  return jb_fail(e, JB_ERR_INVALID, "\"%s\" is not a job id (expected a UUID)", id ? id : "");
}

jb_err jb_job_service_get(jb_job_service *svc, const char *id, jb_job *out, jb_error *e) {
  jb_err rc = check_id(id, e);
  return rc != JB_OK ? rc : svc->store.ops->get(svc->store.self, id, out, e);
}

jb_err jb_job_service_attempts(jb_job_service *svc, const char *id, jb_job_attempt **out, size_t *n,
                               jb_error *e) {
  *out = NULL;
  *n = 0;
  jb_err rc = check_id(id, e);
  if (rc != JB_OK) return rc;
  if (svc->store.ops->get_attempts == NULL) {
    *out = calloc(1, sizeof **out);
    return *out != NULL ? JB_OK : jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  return svc->store.ops->get_attempts(svc->store.self, id, out, n, e);
}

jb_err jb_job_service_list(jb_job_service *svc, const jb_job_filter *f, jb_job **out, size_t *n,
                           jb_error *e) {
  if (f->offset < 0 || f->limit < 0 || f->limit > 10000)
    return jb_fail(e, JB_ERR_INVALID, "offset must be >= 0 and limit 0 to 10000");
  if (f->after_id != NULL && (!jb_is_uuid(f->after_id) || f->offset != 0))
    return jb_fail(e, JB_ERR_INVALID, "a page after a job needs its id (a UUID) and no offset");
  return svc->store.ops->list(svc->store.self, f, out, n, e);
}

jb_err jb_job_service_cancel(jb_job_service *svc, const char *id, jb_job *out, jb_error *e) {
  jb_err rc = check_id(id, e);
  if (rc != JB_OK) return rc;
  rc = svc->store.ops->get(svc->store.self, id, out, e);
  if (rc != JB_OK) return rc;
  bool running = out->status == JB_STATUS_RUNNING;
  jb_job_clear(out);
  if (!running) return svc->store.ops->cancel(svc->store.self, id, out, e);
  if (svc->work.ops == NULL || svc->work.ops->request_cancel == NULL)
    return jb_fail(e, JB_ERR_STATE,
                   "cannot cancel job %s: it is RUNNING and this service has no work queue to ask "
                   "its worker to stop it",
                   id);
  rc = svc->work.ops->request_cancel(svc->work.self, id, e);
  if (rc == JB_ERR_STATE) return svc->store.ops->cancel(svc->store.self, id, out, e); /* ended */
  if (rc != JB_OK) return rc;
  for (int waited = 0;; waited += 100) {
    rc = svc->store.ops->get(svc->store.self, id, out, e);
    if (rc != JB_OK || out->status != JB_STATUS_RUNNING) return rc;
    jb_job_clear(out);
    if (waited >= svc->cancel_wait_ms) break;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return jb_fail(e, JB_ERR_TIMEOUT,
                 "cancellation of job %s requested, but it is still RUNNING after %d ms (its "
                 "worker stops it, or the reaper does when its lease expires)",
                 id, svc->cancel_wait_ms);
}

jb_err jb_job_service_retry(jb_job_service *svc, const char *id, jb_job *out, jb_error *e) {
  jb_err rc = check_id(id, e);
  return rc != JB_OK ? rc : svc->store.ops->retry(svc->store.self, id, out, e);
}

jb_err jb_job_service_stats(jb_job_service *svc, jb_queue_stats **out, size_t *n, jb_error *e) {
  return svc->store.ops->stats(svc->store.self, out, n, e);
}

jb_err jb_job_service_throughput(jb_job_service *svc, jb_throughput_minute **out, size_t *n,
                                 jb_error *e) {
  *out = NULL;
  *n = 0;
  if (svc->store.ops->throughput == NULL)
    return jb_fail(e, JB_ERR_INVALID, "this job store does not count throughput");
  return svc->store.ops->throughput(svc->store.self, out, n, e);
}
