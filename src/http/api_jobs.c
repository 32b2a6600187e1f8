/* The Jobs API (/v1). */
#include "http/http.h"

#include <stdlib.h>

static void get_job(jb_http_req *req, jb_http_resp *resp) {
  if (!jb_is_uuid(req->params[0])) {
    jb_http_problem(resp, 404, "id", "no job has the id \"%s\" (not a UUID)", req->params[0]);
    return;
  }
  jb_job job;
  jb_error e;
  jb_err rc = jb_job_service_get(jb_http_service(req), req->params[0], &job, &e);
  if (rc == JB_ERR_NOT_FOUND) {
    jb_http_problem(resp, 404, "id", "no job has the id %s", req->params[0]);
    return;
  }
  if (rc != JB_OK) {
    jb_http_problem(resp, 503, NULL, "%s", e.msg);
    jb_http_add_header(resp, "Retry-After", "1");
    return;
  }
  json_t *doc = jb_job_to_json(&job);
  jb_http_reply_json(resp, 200, doc);
  json_decref(doc);
  jb_job_clear(&job);
}

const jb_http_route jb_http_jobs_routes[] = {
    {"GET", "/v1/jobs/{id}", JB_SCOPE_READ, get_job},
};
const size_t jb_http_jobs_nroutes = sizeof jb_http_jobs_routes / sizeof jb_http_jobs_routes[0];
