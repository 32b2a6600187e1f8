/* Operations routes: liveness (/healthz) and readiness (/readyz), from the health registry
 * (jobbridge/health.h). Both are public: they name threads and components, never a secret. */
#include "http/http.h"

#include "jobbridge/health.h"

/* 200 while every registered thread beat within its interval; 503 naming the wedged ones. */
static void healthz(jb_http_req *req, jb_http_resp *resp) {
  (void)req;
  json_t *doc = NULL;
  bool ok = jb_health_live(&doc);
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory writing the liveness report");
    return;
  }
  jb_http_reply_json(resp, ok ? 200 : 503, doc);
  json_decref(doc);
}

/* 200 when the database, every AMQP consumer and the relay are ready; 503 naming what is
 * down (Retry-After: the state is checked again on the next request). */
static void readyz(jb_http_req *req, jb_http_resp *resp) {
  (void)req;
  json_t *doc = NULL;
  bool ok = jb_health_readiness(&doc);
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory writing the readiness report");
    return;
  }
  jb_http_reply_json(resp, ok ? 200 : 503, doc);
  if (!ok) jb_http_add_header(resp, "Retry-After", "1");
  json_decref(doc);
}

const jb_http_route jb_http_ops_routes[] = {
    {"GET", "/healthz", JB_SCOPE_PUBLIC, healthz},
    {"GET", "/readyz", JB_SCOPE_PUBLIC, readyz},
};
const size_t jb_http_ops_nroutes = sizeof jb_http_ops_routes / sizeof jb_http_ops_routes[0];
