/* GET /metrics: the registry in the Prometheus text format (scope read), and the HTTP request
 * metrics the server records for every request it dispatches. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "jobbridge/metrics.h"

static void metrics(jb_http_req *req, jb_http_resp *resp) {
  (void)req;
  size_t len = 0;
  char *text = jb_metrics_render(jb_metrics_global(), &len);
  if (text == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory rendering the metrics");
    return;
  }
  free(resp->body);
  resp->body = text;
  resp->body_len = len;
  resp->status = 200;
  resp->content_type = JB_METRICS_CONTENT_TYPE;
}

const jb_http_route jb_http_metrics_routes[] = {
    {"GET", "/metrics", JB_SCOPE_READ, metrics},
};
const size_t jb_http_metrics_nroutes =
    sizeof jb_http_metrics_routes / sizeof jb_http_metrics_routes[0];

/* ---- the requests' own metrics ---- */

static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};

static jb_metric_family *requests, *durations;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void make_families(void) {
  static const char *const route_code[] = {"method", "route", "code", NULL};
  static const char *const route[] = {"method", "route", NULL};
  jb_metrics *m = jb_metrics_global();
  requests = jb_metrics_counter(
      m, "jobbridge_http_requests_total",
      "HTTP requests answered, by method, route pattern (\"unmatched\" for none) and status code.",
      route_code);
  durations = jb_metrics_histogram(
      m, "jobbridge_http_request_duration_seconds",
      "From dispatching an HTTP request to its answer being ready, by method and route pattern.",
      route, bounds, sizeof bounds / sizeof bounds[0]);
}

/* Methods outside this set are counted as "other" (the label's values stay a closed set). */
static const char *method_label(const char *m) {
  static const char *const known[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(m, known[i]) == 0) return known[i];
  return "other";
}

void jb_http_metrics_observe(const jb_http_req *req, const jb_http_resp *resp, jb_time t0) {
  pthread_once(&once, make_families);
  const char *route = req->route != NULL ? req->route : "unmatched";
  const char *method = method_label(req->method);
  char code[8];
  snprintf(code, sizeof code, "%u", resp->status);
  const char *v[3] = {method, route, code};
  jb_metric_inc(jb_metric_get(requests, v));
  jb_metric_observe(jb_metric_get2(durations, method, route), (double)(jb_time_now() - t0) / 1e6);
}
