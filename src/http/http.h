/* The HTTP adapter (libmicrohttpd): one server, and the route modules that answer on it (the Jobs
 * API, webhooks, health and metrics). This header is the adapter's internal interface: a route
 * module is a table of jb_http_route answering a parsed jb_http_req with a jb_http_resp, and
 * reaches the rest of jobbridge only through the ports in jb_http_deps.
 *
 * Threads: each connection is served by a thread of its own (MHD_USE_THREAD_PER_CONNECTION), so
 * a handler may block (on the database, on the group commit of jb_http_deps.creator) without
 * holding up other clients. http.max_connections bounds the threads. */
#ifndef JB_HTTP_HTTP_H
#define JB_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/config.h"
#include "jobbridge/err.h"
#include "jobbridge/job_creator.h"
#include "jobbridge/job_service.h"
#include "jobbridge/json.h"
#include "jobbridge/router.h"

struct MHD_Connection;

/* What a route needs of the caller (bit set). A route of scope JB_SCOPE_PUBLIC is answered
 * without a token (health, readiness, webhooks, which authenticate themselves). */
enum {
  JB_SCOPE_PUBLIC = 0,
  JB_SCOPE_READ = 1u << 0,
  JB_SCOPE_WRITE = 1u << 1,
  JB_SCOPE_ADMIN = 1u << 2,
};

/* What jobbridge lends the HTTP server. Everything is borrowed and outlives the server. */
typedef struct jb_http_deps {
  const jb_config *cfg;
  const char *instance; /* this process's name (locked_by, events' source) */
  jb_router *router;    /* the mapping table webhook events route through, as AMQP events do */
  /* Creates jobs; callable from any thread at once. Concurrent calls are group-committed (one
   * transaction for the requests of many connections). */
  jb_job_creator creator;
  /* Reads, cancel, retry, stats: each service has its own database connection and is used by
   * one request at a time (jb_http_service lends one and takes it back at the request's end). */
  jb_job_service *svcs;
  size_t nsvcs;
} jb_http_deps;

typedef struct jb_http_server jb_http_server;

#define JB_HTTP_MAX_PARAMS 4

/* One request, as a route handler sees it. Everything is borrowed for the handler's call. */
typedef struct jb_http_req {
  struct MHD_Connection *conn;
  const char *method;
  const char *path;                       /* the URL's path, percent-decoded, no query */
  const char *params[JB_HTTP_MAX_PARAMS]; /* the segments matched by {name} in the pattern */
  size_t nparams;
  const char *body; /* the raw body, body_len bytes (NUL-terminated after them), "" if none */
  size_t body_len;
  const char *route;  /* the matched route's pattern (set by dispatch), NULL when none */
  const char *caller; /* the token's name, or NULL on a public route */
  unsigned scopes;    /* the caller's scopes */
  jb_http_server *srv;
  const jb_http_deps *deps;
  void *call; /* the server's own state of this request */
} jb_http_req;

#define JB_HTTP_MAX_HEADERS 6

/* The answer a handler fills in. The server sends it and frees what it owns. A handler that
 * sets nothing answers 500. */
typedef struct jb_http_resp {
  unsigned status;
  char *body; /* owned (malloc'd), body_len bytes */
  size_t body_len;
  const char *content_type;              /* static string */
  char *headers[JB_HTTP_MAX_HEADERS][2]; /* extra headers, name and value owned */
  size_t nheaders;
} jb_http_resp;

typedef void (*jb_http_handler)(jb_http_req *req, jb_http_resp *resp);

/* One route: method, a pattern of literal segments and {name} segments ("/v1/jobs/{id}"), the
 * scope a caller needs, and the handler. */
typedef struct jb_http_route {
  const char *method;
  const char *pattern;
  unsigned scope;
  jb_http_handler handle;
} jb_http_route;

/* The route modules. Each file defines its table; server.c serves them all, in this order. */
extern const jb_http_route jb_http_ops_routes[]; /* ops.c: /healthz, /readyz, /metrics */
extern const size_t jb_http_ops_nroutes;
extern const jb_http_route jb_http_jobs_routes[]; /* api_jobs.c: /v1/jobs..., /v1/queues */
extern const size_t jb_http_jobs_nroutes;
extern const jb_http_route jb_http_attempts_routes[]; /* api_attempts.c: /v1/jobs/{id}/attempts */
extern const size_t jb_http_attempts_nroutes;
extern const jb_http_route jb_http_webhook_routes[]; /* webhooks.c: /v1/webhooks/{name} */
extern const size_t jb_http_webhook_nroutes;
extern const jb_http_route jb_http_progress_routes[]; /* api_progress.c */
extern const size_t jb_http_progress_nroutes;
extern const jb_http_route jb_http_metrics_routes[]; /* metrics.c: /metrics */
extern const size_t jb_http_metrics_nroutes;
extern const jb_http_route jb_http_dash_routes[]; /* api_dash.c: the dashboard's /v1 reads */
extern const size_t jb_http_dash_nroutes;
extern const jb_http_route jb_http_ui_routes[]; /* ui.c: the dashboard's page, / and /ui/... */
extern const size_t jb_http_ui_nroutes;

/* Counts an answered request in the HTTP metrics (metrics.c): by method, req->route and
 * resp->status, with its duration since t0 (jb_time_now() when dispatch began). */
void jb_http_metrics_observe(const jb_http_req *req, const jb_http_resp *resp, jb_time t0);

/* ---- the server ---- */

/* Builds a server for cfg->http (listen address, limits, tokens, TLS). deps is borrowed. Binds
 * nothing yet. */
jb_err jb_http_server_new(const jb_http_deps *deps, jb_http_server **out,
                          jb_error *e) JB_MUST_CHECK;
/* Binds http.listen and starts serving. Logs "http listening" with the URL (and the port the
 * kernel chose when the configured port is 0). */
jb_err jb_http_server_start(jb_http_server *s, jb_error *e) JB_MUST_CHECK;
/* The bound port (after start), e.g. when http.listen asked for port 0. */
unsigned jb_http_server_port(const jb_http_server *s);
/* Stops accepting, waits for requests in progress to be answered. Idempotent. */
void jb_http_server_stop(jb_http_server *s);
void jb_http_server_free(jb_http_server *s);

/* ---- for route handlers ---- */

/* A request header (case-insensitive name) or query argument; NULL when absent. Borrowed. */
const char *jb_http_header(const jb_http_req *req, const char *name);
const char *jb_http_query(const jb_http_req *req, const char *name);

/* Checks the caller's bearer token for a route needing `scope` (auth.c): true to go on; false
 * when resp holds the refusal (401 without a valid token, 403 without the scope). Sets
 * req->caller and req->scopes. */
bool jb_http_authorize(jb_http_req *req, unsigned scope, jb_http_resp *resp);

/* Lends the request a job service (waits for one to be free); it is taken back when the
 * request has been answered. The same one is returned on every call during one request. */
jb_job_service *jb_http_service(jb_http_req *req);

/* Checks that the request's body is JSON by its Content-Type: application/json or any
 * application/<x>+json (application/cloudevents+json, ...), parameters such as "; charset=utf-8"
 * allowed, case-insensitive. True to go on; false when resp holds the 415 problem naming the
 * Content-Type received (or its absence). */
bool jb_http_require_json(const jb_http_req *req, jb_http_resp *resp);

/* Answers with a JSON document (written by jb_json_write: exact numbers stay exact). */
void jb_http_reply_json(jb_http_resp *resp, unsigned status, const json_t *doc);
/* Answers with text of the given content type (copied). */
void jb_http_reply_text(jb_http_resp *resp, unsigned status, const char *content_type,
                        const char *text, size_t len);
/* Answers with an RFC 9457 problem (application/problem+json): {"type", "title", "status",
 * "detail"} and, when `field` is not NULL, "field": the key, field or header at fault. */
void jb_http_problem(jb_http_resp *resp, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds a header to the answer (both copied). */
void jb_http_add_header(jb_http_resp *resp, const char *name, const char *value);

#endif
