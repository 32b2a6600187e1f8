/* The Jobs API (/v1): the route table, and job creation (POST /v1/jobs, POST /v1/jobs/batch)
 * through the group-committing creator of jb_http_deps. The answer to a created job is built
 * from the request and its outcome (no read back: the creation path stays one transaction
 * shared with other connections); a duplicate is read back, as it is someone else's job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api_jobs.h"
#include "jobbridge/job_json.h"
#include "jobbridge/job_service.h"

#define MAX_BATCH 1000
#define PRIORITY_LIMIT 1000000

/* Parses the body as one JSON value: 400 with line and column when it is not JSON. */
static json_t *parse_body(const jb_http_req *req, jb_http_resp *resp) {
  json_t *doc = NULL;
  jb_error e;
  if (jb_json_parse(req->body, req->body_len, &doc, &e) != JB_OK) {
    jb_http_problem(resp, 400, "body", "the body is not valid JSON: %s", e.msg);
    return NULL;
  }
  return doc;
}

static bool field_int(json_t *v, const char *prefix, const char *name, long min, long max, int *out,
                      jb_http_resp *resp) {
  if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
    jb_http_problem(resp, 422, name, "%s%s must be a whole number from %ld to %ld", prefix, name,
                    min, max);
    return false;
  }
  *out = (int)json_integer_value(v);
  return true;
}

static bool field_string(json_t *v, const char *prefix, const char *name, const char **out,
                         jb_http_resp *resp) {
  if (!json_is_string(v)) {
    jb_http_problem(resp, 422, name, "%s%s must be a string", prefix, name);
    return false;
  }
  *out = json_string_value(v);
  return true;
}

static bool field_time(json_t *v, const char *prefix, jb_time *out, jb_http_resp *resp) {
  jb_error e;
  if (json_is_integer(v)) {
    json_int_t s = json_integer_value(v);
    if (s >= JB_TIME_MIN_S && s <= JB_TIME_MAX_S) {
      *out = (jb_time)s * 1000000;
      return true;
    }
  } else if (json_is_string(v)) {
    if (jb_time_parse_err(json_string_value(v), out, &e) == JB_OK) return true;
    jb_http_problem(resp, 422, "scheduled_at", "%sscheduled_at \"%s\" %s", prefix,
                    json_string_value(v), e.msg);
    return false;
  }
  jb_http_problem(resp, 422, "scheduled_at",
                  "%sscheduled_at must be an RFC 3339 time with a zone "
                  "(\"2026-11-22T10:00:00Z\") or whole epoch seconds, years 1 to 9999",
                  prefix);
  return false;
}

/* One member of a job object into r (strings and JSON borrowed from the document). */
static bool job_member(const jb_http_req *req, const char *key, json_t *v, const char *prefix,
                       jb_job_request *r, jb_http_resp *resp) {
  if (strcmp(key, "job_type") == 0) {
    if (!field_string(v, prefix, key, &r->job_type, resp)) return false;
    if (jb_config_job_type(req->deps->cfg, r->job_type) != NULL) return true;
    jb_http_problem(resp, 422, key,
                    "%sjob_type \"%s\" is not registered (the config's job_types lists the ones "
                    "this service runs)",
                    prefix, r->job_type);
    return false;
  }
  if (strcmp(key, "payload") == 0 || strcmp(key, "metadata") == 0) {
    if (!json_is_object(v)) {
      jb_http_problem(resp, 422, key, "%s%s must be a JSON object", prefix, key);
      return false;
    }
    *(key[0] == 'p' ? &r->payload : &r->opts.metadata) = v;
    return true;
  }
  if (strcmp(key, "queue_name") == 0) return field_string(v, prefix, key, &r->queue_name, resp);
  if (strcmp(key, "dedupe_key") == 0)
    return field_string(v, prefix, key, &r->opts.dedupe_key, resp);
  if (strcmp(key, "created_by") == 0)
    return field_string(v, prefix, key, &r->opts.created_by, resp);
  if (strcmp(key, "priority") == 0)
    return field_int(v, prefix, key, -PRIORITY_LIMIT, PRIORITY_LIMIT, &r->priority, resp);
  if (strcmp(key, "max_retries") == 0)
    return field_int(v, prefix, key, 0, 1000, &r->opts.max_retries, resp);
  if (strcmp(key, "scheduled_at") == 0) return field_time(v, prefix, &r->opts.scheduled_at, resp);
  jb_http_problem(resp, 422, key,
                  "%sunknown field \"%s\" (a job has job_type, payload, queue_name, priority, "
                  "scheduled_at, max_retries, metadata, created_by, dedupe_key)",
                  prefix, key);
  return false;
}

/* A job object of a request body into r; false when resp holds the refusal naming the field. */
static bool parse_job(const jb_http_req *req, json_t *obj, const char *prefix, jb_job_request *r,
                      jb_http_resp *resp) {
  memset(r, 0, sizeof *r);
  r->opts.max_retries = -1;
  if (!json_is_object(obj)) {
    jb_http_problem(resp, 422, "body", "%sa job must be a JSON object", prefix);
    return false;
  }
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (json_is_null(v) && strcmp(key, "job_type") != 0 && strcmp(key, "payload") != 0)
      continue; /* an optional field set to null: its default */
    if (!job_member(req, key, v, prefix, r, resp)) return false;
  }
  if (r->job_type == NULL || r->payload == NULL) {
    const char *f = r->job_type == NULL ? "job_type" : "payload";
    jb_http_problem(resp, 422, f, "%s%s is required", prefix, f);
    return false;
  }
  if (r->opts.created_by != NULL && !jb_is_uuid(r->opts.created_by)) {
    jb_http_problem(resp, 422, "created_by", "%screated_by \"%s\" is not a UUID", prefix,
                    r->opts.created_by);
    return false;
  }
  return true;
}

/* The job as it was stored, from the request and its outcome (strings and JSON borrowed from
 * the request: *j must not be cleared). */
static void created_job(const jb_config *cfg, const jb_job_request *r, const jb_create_outcome *oc,
                        jb_job *out) {
  const jb_job_type_cfg *jt = jb_config_job_type(cfg, r->job_type);
  jb_job j = {0};
  memcpy(j.id, oc->id, sizeof j.id);
  j.queue_name = (char *)(r->queue_name != NULL ? r->queue_name : "default");
  j.job_type = (char *)r->job_type;
  j.payload = r->payload;
  j.priority = r->priority;
  j.max_retries = r->opts.max_retries >= 0 ? r->opts.max_retries : (jt ? jt->max_retries : 3);
  j.created_at = j.updated_at = oc->created_at;
  j.scheduled_at = r->opts.scheduled_at != 0 ? r->opts.scheduled_at : oc->created_at;
  if (oc->running) {
    j.status = JB_STATUS_RUNNING;
    j.started_at = oc->created_at;
  } else {
    j.status = j.scheduled_at > oc->created_at ? JB_STATUS_SCHEDULED : JB_STATUS_PENDING;
  }
  if (r->opts.created_by != NULL)
    snprintf(j.created_by, sizeof j.created_by, "%s", r->opts.created_by);
  j.metadata = r->opts.metadata; /* NULL: written as {} */
  j.dedupe_key = (char *)r->opts.dedupe_key;
  *out = j;
}

static json_t *created_json(const jb_config *cfg, const jb_job_request *r,
                            const jb_create_outcome *oc) {
  jb_job j;
  created_job(cfg, r, oc, &j);
  return jb_job_to_json(&j);
}

/* 202 with the created job, its text written straight from the request and outcome (no JSON
 * tree: building and freeing one was a fifth of this route's CPU). false: resp untouched. */
static bool reply_created(jb_http_req *req, const jb_job_request *r, const jb_create_outcome *oc,
                          jb_http_resp *resp) {
  jb_job j;
  created_job(req->deps->cfg, r, oc, &j);
  jb_json_buf b = {0};
  if (!jb_job_write_json(&b, &j)) {
    free(b.data);
    return false;
  }
  free(resp->body);
  resp->body = b.data; /* owned by resp now */
  resp->body_len = b.len;
  resp->status = 202;
  resp->content_type = "application/json";
  return true;
}

/* The answer for one job of a request: the created job, or the existing one (read back) for a
 * duplicate. NULL with resp set on failure. */
static json_t *outcome_json(jb_http_req *req, const jb_job_request *r, const jb_create_outcome *oc,
                            jb_http_resp *resp) {
  if (oc->status == JB_CREATE_CREATED) return created_json(req->deps->cfg, r, oc);
  jb_job job;
  jb_error e;
  jb_err rc = jb_job_service_get(jb_http_service(req), oc->id, &job, &e);
  if (rc != JB_OK) {
    jb_api_reply_error(resp, rc, &e);
    return NULL;
  }
  json_t *doc = jb_job_to_json(&job);
  jb_job_clear(&job);
  return doc;
}

static jb_err create(jb_http_req *req, const jb_job_request *reqs, size_t n, jb_create_outcome *out,
                     jb_http_resp *resp) {
  jb_error e;
  jb_error_clear(&e);
  jb_err rc = req->deps->creator.ops->create_jobs(req->deps->creator.self, reqs, n, out, &e);
  if (rc != JB_OK) jb_api_reply_error(resp, rc, &e);
  return rc;
}

/* POST /v1/jobs: 202 with the job; a repeated Idempotency-Key 200 with the existing job. */
static void create_job(jb_http_req *req, jb_http_resp *resp) {
  if (!jb_http_require_json(req, resp)) return;
  json_t *doc = parse_body(req, resp);
  if (doc == NULL) return;
  jb_job_request r;
  jb_create_outcome oc;
  json_t *answer = NULL;
  if (!json_is_object(doc)) {
    jb_http_problem(resp, 400, "body", "the body must be a JSON object (a job)");
    goto out;
  }
  if (!parse_job(req, doc, "", &r, resp)) goto out;
  const char *key = jb_http_header(req, "Idempotency-Key");
  if (key != NULL && r.opts.dedupe_key != NULL && strcmp(key, r.opts.dedupe_key) != 0) {
    jb_http_problem(resp, 422, "Idempotency-Key",
                    "the Idempotency-Key header and the body's dedupe_key differ (send one)");
    goto out;
  }
  if (key != NULL) r.opts.dedupe_key = key;
  if (create(req, &r, 1, &oc, resp) != JB_OK) goto out;
  if (oc.status != JB_CREATE_CREATED || !reply_created(req, &r, &oc, resp)) {
    if ((answer = outcome_json(req, &r, &oc, resp)) == NULL) goto out;
    jb_http_reply_json(resp, oc.status == JB_CREATE_CREATED ? 202 : 200, answer);
  }
  char location[64];
  snprintf(location, sizeof location, "/v1/jobs/%s", oc.id);
  jb_http_add_header(resp, "Location", location);
out:
  json_decref(answer);
  json_decref(doc);
}

/* The batch's jobs into reqs; false with resp set. */
static bool parse_batch(jb_http_req *req, json_t *doc, jb_job_request **reqs, size_t *n,
                        jb_http_resp *resp) {
  json_t *jobs = json_is_object(doc) ? json_object_get(doc, "jobs") : NULL;
  if (jobs == NULL || !json_is_array(jobs) || json_object_size(doc) != 1) {
    jb_http_problem(resp, 400, "jobs", "the body must be {\"jobs\": [job, ...]} and nothing else");
    return false;
  }
  *n = json_array_size(jobs);
  if (*n == 0 || *n > MAX_BATCH) {
    jb_http_problem(resp, *n ? 413 : 422, "jobs", "a batch holds 1 to %d jobs, this one %zu",
                    MAX_BATCH, *n);
    return false;
  }
  if ((*reqs = calloc(*n, sizeof **reqs)) == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for %zu jobs", *n);
    return false;
  }
  for (size_t i = 0; i < *n; i++) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "jobs[%zu].", i);
    if (!parse_job(req, json_array_get(jobs, i), prefix, &(*reqs)[i], resp)) return false;
  }
  return true;
}

/* POST /v1/jobs/batch: up to 1,000 jobs in one transaction, all or none. */
static void create_batch(jb_http_req *req, jb_http_resp *resp) {
  if (!jb_http_require_json(req, resp)) return;
  json_t *doc = parse_body(req, resp);
  if (doc == NULL) return;
  jb_job_request *reqs = NULL;
  jb_create_outcome *out = NULL;
  json_t *answer = NULL, *arr = NULL;
  size_t n = 0, created = 0;
  if (!parse_batch(req, doc, &reqs, &n, resp)) goto out;
  if ((out = calloc(n, sizeof *out)) == NULL || (arr = json_array()) == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for %zu jobs", n);
    goto out;
  }
  if (create(req, reqs, n, out, resp) != JB_OK) goto out;
  for (size_t i = 0; i < n; i++) {
    json_t *j = outcome_json(req, &reqs[i], &out[i], resp);
    if (j == NULL) goto out;
    json_array_append_new(arr, j);
    created += out[i].status == JB_CREATE_CREATED;
  }
  answer = json_pack("{s:I, s:I, s:O}", "created", (json_int_t)created, "duplicates",
                     (json_int_t)(n - created), "jobs", arr);
  if (answer == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    goto out;
  }
  jb_http_reply_json(resp, created > 0 ? 202 : 200, answer);
out:
  json_decref(answer);
  json_decref(arr);
  free(out);
  free(reqs);
  json_decref(doc);
}

const jb_http_route jb_http_jobs_routes[] = {
    {"POST", "/v1/jobs", JB_SCOPE_WRITE, create_job},
    {"GET", "/v1/jobs", JB_SCOPE_READ, jb_api_list_jobs},
    {"POST", "/v1/jobs/batch", JB_SCOPE_WRITE, create_batch},
    {"GET", "/v1/jobs/{id}", JB_SCOPE_READ, jb_api_get_job},
    {"GET", "/v1/jobs/{id}/status", JB_SCOPE_READ, jb_api_job_status},
    {"POST", "/v1/jobs/{id}/cancel", JB_SCOPE_WRITE, jb_api_cancel_job},
    {"POST", "/v1/jobs/{id}/retry", JB_SCOPE_WRITE, jb_api_retry_job},
    {"GET", "/v1/queues", JB_SCOPE_READ, jb_api_queues},
    {"GET", "/v1/openapi.json", JB_SCOPE_PUBLIC, jb_api_openapi},
};
const size_t jb_http_jobs_nroutes = sizeof jb_http_jobs_routes / sizeof jb_http_jobs_routes[0];
