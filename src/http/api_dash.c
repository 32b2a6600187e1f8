/* The dashboard's reads of the API (all scope read): who the caller is, jobs per minute over
 * the last hour, the mapping table with each row's matches, the job types, and the list's
 * narrowing by time range and by job id, event id or dedupe key. Nothing here is the UI's
 * alone: a script reads the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api_jobs.h"
#include "jobbridge/router.h"

static const char *query(const jb_http_req *req, const char *name) {
  const char *v = jb_http_query(req, name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool query_time(const jb_http_req *req, const char *name, jb_time *out, jb_http_resp *resp) {
  const char *v = query(req, name);
  if (v == NULL) return true;
  if (jb_time_parse(v, out) == JB_OK) return true;
  jb_http_problem(resp, 400, name,
                  "%s \"%.64s\" is not an RFC 3339 time with a zone (e.g. 2026-05-01T12:00:00Z)",
                  name, v);
  return false;
}

bool jb_api_list_narrow(const jb_http_req *req, jb_job_filter *f, jb_http_resp *resp) {
  if (!query_time(req, "created_after", &f->created_after, resp) ||
      !query_time(req, "created_before", &f->created_before, resp))
    return false;
  f->id = query(req, "id");
  if (f->id != NULL && !jb_is_uuid(f->id)) {
    jb_http_problem(resp, 400, "id", "id \"%.64s\" is not a job id (a UUID)", f->id);
    return false;
  }
  f->event_id = query(req, "event_id");
  f->dedupe_key = query(req, "dedupe_key");
  return true;
}

static json_t *time_or_null(jb_time t) {
  char buf[40];
  return t != 0 ? json_string(jb_time_format(t, buf, sizeof buf)) : json_null();
}

/* GET /v1/whoami: the caller's token name and scopes, so a client shows only what it may do. */
static void whoami(jb_http_req *req, jb_http_resp *resp) {
  json_t *scopes = json_array();
  static const struct {
    unsigned bit;
    const char *name;
  } names[] = {{JB_SCOPE_READ, "read"}, {JB_SCOPE_WRITE, "write"}, {JB_SCOPE_ADMIN, "admin"}};
  for (size_t i = 0; scopes != NULL && i < sizeof names / sizeof names[0]; i++)
    if (req->scopes & names[i].bit) json_array_append_new(scopes, json_string(names[i].name));
  json_t *doc = json_pack("{s:s?, s:o?}", "name", req->caller, "scopes", scopes);
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    return;
  }
  jb_http_reply_json(resp, 200, doc);
  json_decref(doc);
}

/* GET /v1/stats/throughput: {"from", "to", "minutes": [{"at", "created", "completed",
 * "failed", "dead_letter"}]}, the last hour's minutes that had jobs, oldest first. */
static void throughput(jb_http_req *req, jb_http_resp *resp) {
  jb_throughput_minute *m = NULL;
  size_t n = 0;
  jb_error e;
  jb_err rc = jb_job_service_throughput(jb_http_service(req), &m, &n, &e);
  if (rc != JB_OK) {
    jb_api_reply_error(resp, rc, &e);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; arr != NULL && i < n; i++)
    json_array_append_new(
        arr, json_pack("{s:o, s:I, s:I, s:I, s:I}", "at", time_or_null(m[i].at), "created",
                       (json_int_t)m[i].created, "completed", (json_int_t)m[i].completed, "failed",
                       (json_int_t)m[i].failed, "dead_letter", (json_int_t)m[i].dead_letter));
  free(m);
  jb_time now = jb_time_now();
  jb_time from = now / 60000000 * 60000000 - 59 * 60000000LL;
  json_t *doc = json_pack("{s:o, s:o, s:o?}", "from", time_or_null(from), "to", time_or_null(now),
                          "minutes", arr);
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    return;
  }
  jb_http_reply_json(resp, 200, doc);
  json_decref(doc);
}

static json_t *mapping_json(const jb_mapping *m, uint64_t matched) {
  json_t *o = json_pack("{s:s, s:s, s:s?, s:i, s:f, s:I}", "event_type", m->event_type, "job_type",
                        m->job_type, "queue", m->queue, "priority", m->priority, "delay_s",
                        m->delay_s, "matched", (json_int_t)matched);
  if (o == NULL) return NULL;
  json_object_set_new(o, "max_retries",
                      m->max_retries >= 0 ? json_integer(m->max_retries) : json_null());
  json_object_set_new(o, "payload", m->payload != NULL ? json_string(m->payload) : json_null());
  return o;
}

/* GET /v1/mappings: {"mappings": [...]}, the table events route through now, in order, each
 * row with the events it matched since the table was loaded. */
static void mappings(jb_http_req *req, jb_http_resp *resp) {
  jb_route_table *t = jb_router_acquire(req->deps->router);
  const jb_config *cfg = jb_route_table_config(t);
  json_t *arr = json_array();
  for (size_t i = 0; arr != NULL && i < cfg->mappings_len; i++)
    json_array_append_new(arr, mapping_json(&cfg->mappings[i], jb_route_table_matched(t, i)));
  jb_router_release(t);
  json_t *doc = json_pack("{s:o?}", "mappings", arr);
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    return;
  }
  jb_http_reply_json(resp, 200, doc);
  json_decref(doc);
}

/* GET /v1/job_types: {"job_types": [{"name", "handler", "timeout_s", "max_retries",
 * "processes"}]}, the registered types (the ones a job may have). */
static void job_types(jb_http_req *req, jb_http_resp *resp) {
  const jb_config *cfg = req->deps->cfg;
  json_t *arr = json_array();
  for (size_t i = 0; arr != NULL && i < cfg->job_types_len; i++) {
    const jb_job_type_cfg *t = &cfg->job_types[i];
    json_array_append_new(arr, json_pack("{s:s, s:s, s:f, s:i, s:i}", "name", t->name, "handler",
                                         t->handler, "timeout_s", t->timeout_s, "max_retries",
                                         t->max_retries, "processes", t->processes));
  }
  json_t *doc = json_pack("{s:o?}", "job_types", arr);
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory for the answer");
    return;
  }
  jb_http_reply_json(resp, 200, doc);
  json_decref(doc);
}

const jb_http_route jb_http_dash_routes[] = {
    {"GET", "/v1/whoami", JB_SCOPE_READ, whoami},
    {"GET", "/v1/stats/throughput", JB_SCOPE_READ, throughput},
    {"GET", "/v1/mappings", JB_SCOPE_READ, mappings},
    {"GET", "/v1/job_types", JB_SCOPE_READ, job_types},
};
const size_t jb_http_dash_nroutes = sizeof jb_http_dash_routes / sizeof jb_http_dash_routes[0];
