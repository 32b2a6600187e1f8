/* POST /v1/jobs/{id}/progress: a service running a job reports its progress, {"progress":
 * 0..100, "message": "..."}. The caller shows either the job's progress token (header
 * Jobbridge-Progress-Token: progress_token.h, good for that job only) or a bearer token with the
 * write scope. The job must be RUNNING (409 otherwise); the report is stored at once (one
 * statement) with a job.progress event when the job's type has progress_events. */
#include <string.h>
#include <strings.h>

#include "http/api_jobs.h"
#include "jobbridge/job_service.h"
#include "jobbridge/progress_token.h"

#define TOKEN_HEADER JB_PROGRESS_TOKEN_HEADER

/* The progress token when one is sent (401 when it is not this job's), else the bearer token's
 * write scope. */
static bool authorize(jb_http_req *req, jb_http_resp *resp) {
  const char *token = jb_http_header(req, TOKEN_HEADER);
  if (token == NULL) return jb_http_authorize(req, JB_SCOPE_WRITE, resp);
  if (jb_progress_token_check(req->params[0], token)) {
    req->caller = "progress-token";
    req->scopes = 0;
    return true;
  }
  jb_http_problem(resp, 401, TOKEN_HEADER,
                  "the " TOKEN_HEADER
                  " is not the token of job %s (each job has its own, "
                  "handed to its handler with the job)",
                  req->params[0]);
  return false;
}

/* The body into *pct and *message (borrowed from *doc, which the caller frees); false with
 * resp set naming what is wrong. */
static bool parse(const jb_http_req *req, json_t **doc, int *pct, const char **message,
                  jb_http_resp *resp) {
  const char *ct = jb_http_header(req, "Content-Type");
  size_t n = ct != NULL ? strcspn(ct, "; \t") : 0;
  if (ct == NULL || n != 16 || strncasecmp(ct, "application/json", 16) != 0) {
    jb_http_problem(resp, 415, "Content-Type",
                    "the body must be JSON: send Content-Type: application/json (got %s)",
                    ct != NULL ? ct : "none");
    return false;
  }
  jb_error e;
  if (jb_json_parse(req->body, req->body_len, doc, &e) != JB_OK) {
    jb_http_problem(resp, 400, "body", "the body is not valid JSON: %s", e.msg);
    return false;
  }
  if (!json_is_object(*doc)) {
    jb_http_problem(resp, 422, "body",
                    "the body must be a JSON object: {\"progress\": 0..100, \"message\": \"...\"}");
    return false;
  }
  const char *key;
  json_t *v;
  *pct = -1;
  *message = NULL;
  json_object_foreach(*doc, key, v) {
    if (strcmp(key, "progress") == 0) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100) {
        jb_http_problem(resp, 422, "progress", "progress must be a whole number from 0 to 100");
        return false;
      }
      *pct = (int)json_integer_value(v);
    } else if (strcmp(key, "message") == 0) {
      if (!json_is_string(v) && !json_is_null(v)) {
        jb_http_problem(resp, 422, "message", "message must be a string or null");
        return false;
      }
      if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v)) {
        jb_http_problem(resp, 422, "message", "message must not hold a NUL character");
        return false;
      }
      *message = json_is_string(v) ? json_string_value(v) : NULL;
    } else {
      jb_http_problem(resp, 422, key,
                      "unknown field \"%s\" (a progress report has progress and message)", key);
      return false;
    }
  }
  if (*pct < 0) {
    jb_http_problem(resp, 422, "progress", "progress is missing (a whole number from 0 to 100)");
    return false;
  }
  return true;
}

static void report_progress(jb_http_req *req, jb_http_resp *resp) {
  if (!authorize(req, resp)) return;
  json_t *doc = NULL;
  int pct;
  const char *message;
  if (parse(req, &doc, &pct, &message, resp)) {
    jb_job job;
    jb_error e;
    jb_err rc =
        jb_job_service_progress(jb_http_service(req), req->params[0], pct, message, &job, &e);
    if (rc == JB_OK)
      jb_api_reply_job(resp, 200, &job);
    else if (rc == JB_ERR_INVALID)
      jb_http_problem(resp, 422, "message", "%s", e.msg);
    else
      jb_api_reply_error(resp, rc, &e);
  }
  json_decref(doc);
}

/* The route is public to the server's bearer check: report_progress authorizes itself, as the
 * progress token stands in for a bearer token. */
const jb_http_route jb_http_progress_routes[] = {
    {"POST", "/v1/jobs/{id}/progress", JB_SCOPE_PUBLIC, report_progress},
};
const size_t jb_http_progress_nroutes =
    sizeof jb_http_progress_routes / sizeof jb_http_progress_routes[0];
