/* The Jobs API's reads and state changes: GET /v1/jobs/{id}, /v1/jobs/{id}/status, the list
 * with its filters and keyset cursor, cancel, retry, /v1/queues, and the OpenAPI document. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api_jobs.h"
#include "jobbridge/job_service.h"
#include "jobbridge/log.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* The database's own message names its host, port, user and database and quotes PostgreSQL:
 * for the operator's log, not for a caller (a webhook's sender is anyone who can sign). */
void jb_api_reply_unavailable(jb_http_resp *resp, const char *who, const jb_error *e) {
  jb_log(JB_LOG_WARN, "http: database unavailable, answered 503", "route", who, "error", e->msg,
         JB_LOG_END);
  jb_http_problem(resp, 503, NULL,
                  "the database is unavailable now; nothing was changed, retry after Retry-After "
                  "(the reason is in jobbridge's log)");
  jb_http_add_header(resp, "Retry-After", "1");
}

void jb_api_reply_error(jb_http_resp *resp, jb_err rc, const jb_error *e) {
  switch (rc) {
    case JB_ERR_NOT_FOUND:
      jb_http_problem(resp, 404, "id", "%s", e->msg);
      return;
    case JB_ERR_STATE:
      jb_http_problem(resp, 409, "status", "%s", e->msg);
      return;
    case JB_ERR_INVALID:
    case JB_ERR_UNREGISTERED:
    case JB_ERR_DB_REFUSED:
      jb_http_problem(resp, 422, NULL, "%s", e->msg);
      return;
    case JB_ERR_STOPPED:
      jb_http_problem(resp, 503, NULL, "%s", e->msg);
      jb_http_add_header(resp, "Retry-After", "1");
      return;
    case JB_ERR_DB:
    case JB_ERR_DB_CONN:
    case JB_ERR_TIMEOUT:
      jb_api_reply_unavailable(resp, "the Jobs API", e);
      return;
    default:
      jb_log(JB_LOG_ERROR, "http: request failed", "error", e->msg, JB_LOG_END);
      jb_http_problem(resp, 500, NULL, "the request failed (the reason is in jobbridge's log)");
  }
}

void jb_api_reply_job(jb_http_resp *resp, unsigned status, jb_job *job) {
  json_t *doc = jb_job_to_json(job);
  jb_job_clear(job);
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    return;
  }
  jb_http_reply_json(resp, status, doc);
  json_decref(doc);
}

/* The {id} of the path, when it is a UUID (404 otherwise: no job has such an id). */
static const char *path_id(const jb_http_req *req, jb_http_resp *resp) {
  if (jb_is_uuid(req->params[0])) return req->params[0];
  jb_http_problem(resp, 404, "id", "no job has the id \"%s\" (a job id is a UUID)", req->params[0]);
  return NULL;
}

/* Reads the job of the path into *job; false with resp set. */
static bool read_job(jb_http_req *req, jb_job *job, jb_http_resp *resp) {
  const char *id = path_id(req, resp);
  if (id == NULL) return false;
  jb_error e;
  jb_err rc = jb_job_service_get(jb_http_service(req), id, job, &e);
  if (rc == JB_OK) return true;
  jb_api_reply_error(resp, rc, &e);
  return false;
}

void jb_api_get_job(jb_http_req *req, jb_http_resp *resp) {
  jb_job job;
  if (read_job(req, &job, resp)) jb_api_reply_job(resp, 200, &job);
}

/* The seed's small status view of a job. */
void jb_api_job_status(jb_http_req *req, jb_http_resp *resp) {
  jb_job job;
  if (!read_job(req, &job, resp)) return;
  json_t *full = jb_job_to_json(&job), *doc = json_object();
  jb_job_clear(&job);
  static const char *const keep[] = {
      "id",           "status",     "progress",     "progress_message",
      "created_at",   "updated_at", "scheduled_at", "started_at",
      "completed_at", "failed_at",  "error_message"};
  for (size_t i = 0; full != NULL && doc != NULL && i < sizeof keep / sizeof keep[0]; i++)
    json_object_set(doc, keep[i], json_object_get(full, keep[i]));
  if (full == NULL || doc == NULL)
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
  else
    jb_http_reply_json(resp, 200, doc);
  json_decref(full);
  json_decref(doc);
}

/* ---- the list's cursor: base64url of "<created_at in microseconds>,<id>" ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void cursor_encode(const jb_job *last, char *out, size_t len) {
  char raw[64];
  int n = snprintf(raw, sizeof raw, "%" PRId64 ",%s", (int64_t)last->created_at, last->id);
  size_t o = 0;
  for (int i = 0; i < n && o + 5 < len; i += 3) {
    unsigned v = (unsigned char)raw[i] << 16;
    if (i + 1 < n) v |= (unsigned char)raw[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)raw[i + 2];
    out[o++] = b64[(v >> 18) & 63];
    out[o++] = b64[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = b64[(v >> 6) & 63];
    if (i + 2 < n) out[o++] = b64[v & 63];
  }
  out[o] = '\0';
}

/* Decodes a cursor into f (its id in idbuf); false if it is not one of ours. */
static bool cursor_decode(const char *c, jb_job_filter *f, char idbuf[37]) {
  char raw[64];
  size_t o = 0, len = strlen(c);
  unsigned acc = 0;
  int bits = 0;
  if (len > 80) return false;
  for (size_t i = 0; i < len; i++) {
    const char *p = strchr(b64, c[i]);
    if (p == NULL || c[i] == '\0') return false;
    acc = (acc << 6) | (unsigned)(p - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o + 1 >= sizeof raw) return false;
      raw[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  raw[o] = '\0';
  char *comma = strchr(raw, ',');
  if (comma == NULL || comma == raw) return false;
  *comma = '\0';
  char *end;
  long long us = strtoll(raw, &end, 10);
  if (*end != '\0' || !jb_is_uuid(comma + 1)) return false;
  f->after_created_at = (jb_time)us;
  memcpy(idbuf, comma + 1, 37);
  f->after_id = idbuf;
  return true;
}

/* A query parameter, NULL when absent or empty. */
static const char *query(const jb_http_req *req, const char *name) {
  const char *v = jb_http_query(req, name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool query_long(const jb_http_req *req, const char *name, long min, long max, long *out,
                       jb_http_resp *resp) {
  const char *v = query(req, name);
  if (v == NULL) return true;
  char *end;
  long long n = strtoll(v, &end, 10);
  if (*end == '\0' && end != v && n >= min && n <= max) {
    *out = (long)n;
    return true;
  }
  jb_http_problem(resp, 400, name, "%s \"%s\" must be a whole number from %ld to %ld", name, v, min,
                  max);
  return false;
}

/* The list's query into f; false with resp set, naming the parameter at fault. */
static bool list_filter(const jb_http_req *req, jb_job_filter *f, char idbuf[37],
                        jb_http_resp *resp) {
  *f = (jb_job_filter){.status = -1, .limit = LIST_DEFAULT};
  const char *st = query(req, "status");
  jb_job_status s;
  if (st != NULL && jb_status_parse(st, &s) != JB_OK) {
    jb_http_problem(resp, 400, "status",
                    "status \"%s\" is not one of PENDING SCHEDULED RUNNING COMPLETED FAILED "
                    "RETRYING DEAD_LETTER",
                    st);
    return false;
  }
  if (st != NULL) f->status = (int)s;
  f->job_type = query(req, "job_type");
  f->queue_name = query(req, "queue");
  if (!query_long(req, "limit", 1, LIST_MAX, &f->limit, resp) ||
      !query_long(req, "offset", 0, 1000000000L, &f->offset, resp))
    return false;
  if (!jb_api_list_narrow(req, f, resp)) return false;
  const char *cursor = query(req, "cursor");
  if (cursor != NULL && f->offset != 0) {
    jb_http_problem(resp, 400, "cursor", "give cursor or offset, not both");
    return false;
  }
  if (cursor != NULL && !cursor_decode(cursor, f, idbuf)) {
    jb_http_problem(
        resp, 400, "cursor",
        "cursor \"%.64s\" is not one this API gave (use next_cursor of a page as it is)", cursor);
    return false;
  }
  return true;
}

/* GET /v1/jobs: {"jobs": [...], "next_cursor": "..." or null}. */
void jb_api_list_jobs(jb_http_req *req, jb_http_resp *resp) {
  jb_job_filter f;
  char idbuf[37];
  if (!list_filter(req, &f, idbuf, resp)) return;
  jb_job *jobs = NULL;
  size_t n = 0;
  jb_error e;
  jb_err rc = jb_job_service_list(jb_http_service(req), &f, &jobs, &n, &e);
  if (rc != JB_OK) {
    jb_api_reply_error(resp, rc, &e);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; arr != NULL && i < n; i++)
    json_array_append_new(arr, jb_job_to_json(&jobs[i]));
  char next[128] = "";
  if (n > 0 && n == (size_t)f.limit) cursor_encode(&jobs[n - 1], next, sizeof next);
  jb_jobs_free(jobs, n);
  json_t *doc = json_pack("{s:o?, s:o}", "jobs", arr, "next_cursor",
                          next[0] ? json_string(next) : json_null());
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    return;
  }
  jb_http_reply_json(resp, 200, doc);
  json_decref(doc);
}

/* POST /v1/jobs/{id}/cancel: a waiting job 200 (FAILED "Job cancelled"); a running one 202
 * (its worker is asked to stop it: poll the job); a finished one 409. The HTTP services do not
 * wait for a running job to stop (serve.c sets their cancel_wait_ms to 0). */
void jb_api_cancel_job(jb_http_req *req, jb_http_resp *resp) {
  const char *id = path_id(req, resp);
  if (id == NULL) return;
  jb_job job;
  jb_error e;
  jb_job_service *svc = jb_http_service(req);
  jb_err rc = jb_job_service_cancel(svc, id, &job, &e);
  if (rc == JB_OK) {
    jb_api_reply_job(resp, job.status == JB_STATUS_RUNNING ? 202 : 200, &job);
    return;
  }
  if (rc == JB_ERR_TIMEOUT) { /* requested; the worker stops it */
    rc = jb_job_service_get(svc, id, &job, &e);
    if (rc == JB_OK) {
      jb_api_reply_job(resp, 202, &job);
      return;
    }
  }
  jb_api_reply_error(resp, rc, &e);
}

/* POST /v1/jobs/{id}/retry: a FAILED or DEAD_LETTER job back to PENDING; 409 otherwise. */
void jb_api_retry_job(jb_http_req *req, jb_http_resp *resp) {
  const char *id = path_id(req, resp);
  if (id == NULL) return;
  jb_job job;
  jb_error e;
  jb_err rc = jb_job_service_retry(jb_http_service(req), id, &job, &e);
  if (rc == JB_OK)
    jb_api_reply_job(resp, 200, &job);
  else
    jb_api_reply_error(resp, rc, &e);
}

/* GET /v1/queues: the QueueStats array, as `jobbridge stats` prints it. */
void jb_api_queues(jb_http_req *req, jb_http_resp *resp) {
  jb_queue_stats *s = NULL;
  size_t n = 0;
  jb_error e;
  jb_err rc = jb_job_service_stats(jb_http_service(req), &s, &n, &e);
  if (rc != JB_OK) {
    jb_api_reply_error(resp, rc, &e);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; arr != NULL && i < n; i++)
    json_array_append_new(arr, jb_queue_stats_to_json(&s[i]));
  free(s);
  if (arr == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    return;
  }
  jb_http_reply_json(resp, 200, arr);
  json_decref(arr);
}

void jb_api_openapi(jb_http_req *req, jb_http_resp *resp) {
  (void)req;
  jb_http_reply_text(resp, 200, "application/json", jb_openapi_json, (size_t)jb_openapi_json_len);
}
