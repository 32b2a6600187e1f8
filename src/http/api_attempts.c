/* The Jobs API's attempt history: GET /v1/jobs/{id}/attempts (read scope), a job's finished
 * attempts oldest first, as `jobbridge jobs get` shows them (jb_job_attempts_to_json):
 * {"id", "status", "attempts": [{attempt, worker, started_at, finished_at, duration_ms,
 * outcome, error}]}. An unknown or malformed id is 404, like GET /v1/jobs/{id}. */
#include "http/api_jobs.h"
#include "jobbridge/job_service.h"
#include "jobbridge/job_store.h"

static void get_attempts(jb_http_req *req, jb_http_resp *resp) {
  const char *id = req->params[0];
  if (!jb_is_uuid(id)) {
    jb_http_problem(resp, 404, "id", "no job has the id \"%s\" (a job id is a UUID)", id);
    return;
  }
  jb_job_service *svc = jb_http_service(req);
  jb_job job;
  jb_job_attempt *at = NULL;
  size_t n = 0;
  json_t *doc = NULL;
  jb_error e;
  /* The job first: it answers 404 for an unknown id (its attempts would be an empty list). */
  jb_err rc = jb_job_service_get(svc, id, &job, &e);
  if (rc != JB_OK) {
    jb_api_reply_error(resp, rc, &e);
    return;
  }
  rc = jb_job_service_attempts(svc, id, &at, &n, &e);
  if (rc != JB_OK) {
    jb_api_reply_error(resp, rc, &e);
    goto out;
  }
  json_t *list = jb_job_attempts_to_json(at, n);
  doc = list != NULL ? json_pack("{s:s, s:s, s:o}", "id", job.id, "status",
                                 jb_status_name(job.status), "attempts", list)
                     : NULL;
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the attempts of job %s", id);
    goto out;
  }
  jb_http_reply_json(resp, 200, doc);
out:
  json_decref(doc);
  jb_job_attempts_free(at, n);
  jb_job_clear(&job);
}

const jb_http_route jb_http_attempts_routes[] = {
    {"GET", "/v1/jobs/{id}/attempts", JB_SCOPE_READ, get_attempts},
};
const size_t jb_http_attempts_nroutes =
    sizeof jb_http_attempts_routes / sizeof jb_http_attempts_routes[0];
