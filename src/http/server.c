/* The HTTP server: libmicrohttpd with a thread per connection, the request body gathered up to
 * http.max_body_bytes, and dispatch over the route modules' tables (http.h). */
#include "http/http.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "jobbridge/job.h"
#include "jobbridge/log.h"
#include "jobbridge/utf8.h"

struct jb_http_server {
  const jb_http_deps *deps;
  struct MHD_Daemon *daemon;
  struct sockaddr_storage addr;
  unsigned port;
  /* The job services lent to requests: lent[i] while svcs[i] serves a request. */
  pthread_mutex_t mu;
  pthread_cond_t freed;
  bool *lent;
  /* HTTPS: the PEM texts of http.tls.cert and .key, read at build (NULL: plain HTTP). */
  char *tls_cert, *tls_key;
  /* The slow-client guard (guard.c's part of the server): every open connection and the time
   * by which its request must be in; a thread cuts off the late ones. */
  pthread_mutex_t wmu;
  pthread_cond_t wcv;
  struct conn_watch *watched;
  pthread_t guard;
  bool guard_running, guard_stop;
};

/* An open connection, watched by the guard. deadline_ms (jb_mono_ms clock): by when the
 * request's line and headers (or its body) must be in; 0 while a handler answers. Set by the
 * connection's thread without wmu (three times a request: the one server-wide mutex was
 * contended by every connection), read and cleared by the guard with a compare-and-swap; the
 * list links are under wmu. */
typedef struct conn_watch {
  int fd;
  _Atomic int64_t deadline_ms;
  struct conn_watch *prev, *next;
} conn_watch;

/* One request in progress (MHD's per-request context). */
typedef struct http_call {
  char *body;
  size_t len, cap;
  bool too_large;
  bool started;
  jb_job_service *svc; /* lent to this request, or NULL */
  size_t svc_index;
} http_call;

typedef struct route_table {
  const jb_http_route *routes;
  const size_t *n;
} route_table;

static const route_table tables[] = {
    {jb_http_ops_routes, &jb_http_ops_nroutes},
    {jb_http_jobs_routes, &jb_http_jobs_nroutes},
    {jb_http_attempts_routes, &jb_http_attempts_nroutes},
    {jb_http_webhook_routes, &jb_http_webhook_nroutes},
    {jb_http_metrics_routes, &jb_http_metrics_nroutes},
    {jb_http_dash_routes, &jb_http_dash_nroutes},
    {jb_http_ui_routes, &jb_http_ui_nroutes},
    {jb_http_progress_routes, &jb_http_progress_nroutes},
};

/* ---- answers ---- */

static void resp_clear(jb_http_resp *r) {
  free(r->body);
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->headers[i][0]);
    free(r->headers[i][1]);
  }
  memset(r, 0, sizeof *r);
}

void jb_http_reply_text(jb_http_resp *resp, unsigned status, const char *content_type,
                        const char *text, size_t len) {
  free(resp->body);
  resp->body = malloc(len ? len : 1);
  resp->body_len = resp->body != NULL ? len : 0;
  if (resp->body != NULL) memcpy(resp->body, text, len);
  resp->status = resp->body != NULL ? status : 500;
  resp->content_type = content_type;
}

void jb_http_reply_json(jb_http_resp *resp, unsigned status, const json_t *doc) {
  size_t len = 0;
  char *text = jb_json_dumps(doc, JB_JSON_COMPACT, &len);
  if (text == NULL) {
    jb_http_reply_text(resp, 500, "text/plain", "cannot write the answer\n", 24);
    return;
  }
  free(resp->body);
  resp->body = text;
  resp->body_len = len;
  resp->status = status;
  resp->content_type = "application/json";
}

static const char *status_title(unsigned status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

/* Replaces each byte of s that does not begin a valid UTF-8 sequence by '?'. A detail quotes the
 * client's bytes (a percent-decoded path, a header) and may be cut mid-character at its end;
 * JSON strings must be UTF-8, or the problem itself could not be written. */
static void scrub_utf8(char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t len = jb_utf8_seq((const unsigned char *)s + i, n - i);
    if (len == 0) {
      s[i++] = '?';
      continue;
    }
    i += len;
  }
}

void jb_http_problem(jb_http_resp *resp, unsigned status, const char *field, const char *fmt, ...) {
  char detail[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  scrub_utf8(detail);
  json_t *doc = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
                          status_title(status), "status", (int)status, "detail", detail);
  if (doc != NULL && field != NULL) json_object_set_new(doc, "field", json_string(field));
  if (doc == NULL) {
    jb_http_reply_text(resp, 500, "text/plain", "out of memory\n", 14);
    return;
  }
  jb_http_reply_json(resp, status, doc);
  resp->content_type = "application/problem+json";
  json_decref(doc);
}

void jb_http_add_header(jb_http_resp *resp, const char *name, const char *value) {
  if (resp->nheaders == JB_HTTP_MAX_HEADERS) return;
  char *n = strdup(name), *v = strdup(value);
  if (n == NULL || v == NULL) {
    free(n);
    free(v);
    return;
  }
  resp->headers[resp->nheaders][0] = n;
  resp->headers[resp->nheaders][1] = v;
  resp->nheaders++;
}

const char *jb_http_header(const jb_http_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *jb_http_query(const jb_http_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* True when the media type `ct` (up to ';' or the end, blanks trimmed) is application/json or
 * application/<x>+json. */
static bool is_json_type(const char *ct) {
  while (*ct == ' ' || *ct == '\t') ct++;
  size_t n = strcspn(ct, ";");
  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
  static const char app[] = "application/";
  size_t al = sizeof app - 1;
  if (n <= al || strncasecmp(ct, app, al) != 0) return false;
  const char *sub = ct + al;
  size_t sl = n - al;
  if (sl == 4 && strncasecmp(sub, "json", 4) == 0) return true;
  return sl > 5 && strncasecmp(sub + sl - 5, "+json", 5) == 0;
}

bool jb_http_require_json(const jb_http_req *req, jb_http_resp *resp) {
  const char *ct = jb_http_header(req, "Content-Type");
  if (ct != NULL && is_json_type(ct)) return true;
  if (ct == NULL)
    jb_http_problem(resp, 415, "Content-Type",
                    "the request has no Content-Type; send the body as application/json");
  else
    jb_http_problem(resp, 415, "Content-Type",
                    "Content-Type \"%.100s\" is not JSON; send the body as application/json", ct);
  return false;
}

/* ---- the job services lent to requests ---- */

jb_job_service *jb_http_service(jb_http_req *req) {
  jb_http_server *s = req->srv;
  http_call *call = req->call;
  if (call->svc != NULL) return call->svc;
  pthread_mutex_lock(&s->mu);
  size_t i;
  for (;;) {
    for (i = 0; i < s->deps->nsvcs && s->lent[i]; i++) continue;
    if (i < s->deps->nsvcs) break;
    pthread_cond_wait(&s->freed, &s->mu);
  }
  s->lent[i] = true;
  pthread_mutex_unlock(&s->mu);
  call->svc = &s->deps->svcs[i];
  call->svc_index = i;
  return call->svc;
}

static void give_back(jb_http_server *s, http_call *call) {
  if (call->svc == NULL) return;
  pthread_mutex_lock(&s->mu);
  s->lent[call->svc_index] = false;
  pthread_cond_signal(&s->freed);
  pthread_mutex_unlock(&s->mu);
  call->svc = NULL;
}

/* ---- dispatch ---- */

/* Matches path against pattern ("/v1/jobs/{id}"): literal segments equal, {x} any one
 * non-empty segment, copied into params (NUL-terminated in buf). */
static bool match(const char *pattern, const char *path, jb_http_req *req, char *buf,
                  size_t buflen) {
  size_t used = 0, np = 0;
  const char *p = pattern, *u = path;
  while (*p == '/' && *u == '/') {
    p++;
    u++;
    size_t pl = strcspn(p, "/"), ul = strcspn(u, "/");
    if (pl > 1 && p[0] == '{' && p[pl - 1] == '}') {
      if (ul == 0 || np == JB_HTTP_MAX_PARAMS || used + ul + 1 > buflen) return false;
      memcpy(buf + used, u, ul);
      buf[used + ul] = '\0';
      req->params[np++] = buf + used;
      used += ul + 1;
    } else if (pl != ul || memcmp(p, u, pl) != 0) {
      return false;
    }
    p += pl;
    u += ul;
  }
  if (*p != '\0' || *u != '\0') return false;
  req->nparams = np;
  return true;
}

/* Finds the route of req; fills allow[] with the methods the path has when none matches the
 * method (405), leaves it empty when the path is unknown (404). HEAD is answered by a GET route
 * (RFC 9110 9.3.2: libmicrohttpd sends the headers of the answer and drops its body). */
static const jb_http_route *find_route(jb_http_req *req, char *buf, size_t buflen, char *allow,
                                       size_t allowlen) {
  bool head = strcmp(req->method, "HEAD") == 0;
  allow[0] = '\0';
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
    for (size_t i = 0; i < *tables[t].n; i++) {
      const jb_http_route *r = &tables[t].routes[i];
      if (!match(r->pattern, req->path, req, buf, buflen)) continue;
      if (strcmp(r->method, req->method) == 0 || (head && strcmp(r->method, "GET") == 0)) return r;
      if (strstr(allow, r->method) == NULL) {
        size_t at = strlen(allow);
        bool get = strcmp(r->method, "GET") == 0;
        snprintf(allow + at, allowlen - at, "%s%s%s", at ? ", " : "", r->method,
                 get ? ", HEAD" : "");
      }
    }
  }
  return NULL;
}

/* Answers req: 404, 405 with Allow, or the route's handler. Authentication of scoped routes is
 * jb_http_authorize's (auth.c). */
static void dispatch(jb_http_req *req, jb_http_resp *resp) {
  char params[1024], allow[128];
  const jb_http_route *r = find_route(req, params, sizeof params, allow, sizeof allow);
  if (r == NULL && allow[0] != '\0') {
    jb_http_problem(resp, 405, NULL, "%s is not allowed on %s; allowed: %s", req->method, req->path,
                    allow);
    jb_http_add_header(resp, "Allow", allow);
    return;
  }
  if (r == NULL) {
    jb_http_problem(resp, 404, NULL, "no such route: %s %s", req->method, req->path);
    return;
  }
  req->route = r->pattern;
  if (r->scope != JB_SCOPE_PUBLIC && !jb_http_authorize(req, r->scope, resp)) return;
  r->handle(req, resp);
  if (resp->status == 0) jb_http_problem(resp, 500, NULL, "the handler gave no answer");
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, jb_http_resp *r) {
  struct MHD_Response *m =
      MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
  if (m == NULL) return MHD_NO;
  r->body = NULL; /* MHD frees it */
  if (r->content_type != NULL) MHD_add_response_header(m, "Content-Type", r->content_type);
  for (size_t i = 0; i < r->nheaders; i++)
    MHD_add_response_header(m, r->headers[i][0], r->headers[i][1]);
  enum MHD_Result rc = MHD_queue_response(conn, r->status, m);
  MHD_destroy_response(m);
  return rc;
}

/* Gathers the body (at most http.max_body_bytes; more is read and dropped, then 413). */
static bool gather(http_call *call, const char *data, size_t n, size_t max) {
  if (call->too_large || call->len + n > max) {
    call->too_large = true;
    return true;
  }
  if (call->len + n + 1 > call->cap) {
    size_t cap = call->cap ? call->cap : 4096;
    while (cap < call->len + n + 1) cap *= 2;
    char *b = realloc(call->body, cap);
    if (b == NULL) return false;
    call->body = b;
    call->cap = cap;
  }
  memcpy(call->body + call->len, data, n);
  call->len += n;
  call->body[call->len] = '\0';
  return true;
}

/* ---- the slow-client guard ----
 * libmicrohttpd closes a connection only when it is idle for http.request_timeout_s; a client
 * sending a byte a second is never idle. The guard gives each request a deadline: its line and
 * headers within http.header_timeout_s of the connection opening, its body within
 * http.request_timeout_s of its headers, the next request on a kept-alive connection within
 * http.request_timeout_s of the previous answer. A late connection's socket is shut down, which
 * ends it in its own thread; the handler of a request never runs for it. */

static conn_watch *watch_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci != NULL ? ci->socket_context : NULL;
}

static void set_deadline(jb_http_server *s, struct MHD_Connection *conn, int64_t in_ms) {
  (void)s;
  conn_watch *w = watch_of(conn);
  if (w == NULL) return;
  atomic_store_explicit(&w->deadline_ms, in_ms > 0 ? jb_mono_ms() + in_ms : 0,
                        memory_order_relaxed);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  jb_http_server *s = cls;
  conn_watch *w = *socket_context;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL || (w = calloc(1, sizeof *w)) == NULL) return; /* unwatched: idle timeout */
    w->fd = ci->connect_fd;
    atomic_init(&w->deadline_ms,
                jb_mono_ms() + (int64_t)s->deps->cfg->http.header_timeout_s * 1000);
    pthread_mutex_lock(&s->wmu);
    w->next = s->watched;
    if (s->watched != NULL) s->watched->prev = w;
    s->watched = w;
    pthread_mutex_unlock(&s->wmu);
    *socket_context = w;
    return;
  }
  if (w == NULL) return;
  /* Closed: libmicrohttpd closes the socket after this, so the guard never shuts down an fd
   * that another connection reuses. */
  pthread_mutex_lock(&s->wmu);
  if (w->prev != NULL) w->prev->next = w->next;
  if (w->next != NULL) w->next->prev = w->prev;
  if (s->watched == w) s->watched = w->next;
  pthread_mutex_unlock(&s->wmu);
  free(w);
  *socket_context = NULL;
}

static void *guard_main(void *arg) {
  jb_http_server *s = arg;
  pthread_mutex_lock(&s->wmu);
  while (!s->guard_stop) {
    int64_t now = jb_mono_ms();
    size_t cut = 0;
    for (conn_watch *w = s->watched; w != NULL; w = w->next) {
      int64_t d = atomic_load_explicit(&w->deadline_ms, memory_order_relaxed);
      if (d == 0 || now < d) continue;
      /* Cut only if the deadline is still the one that passed: a handler that began
       * answering meanwhile set 0, and its connection is not cut. */
      if (!atomic_compare_exchange_strong(&w->deadline_ms, &d, 0)) continue;
      shutdown(w->fd, SHUT_RDWR);
      cut++;
    }
    if (cut > 0)
      jb_log(JB_LOG_WARN, "http: cut off connections too slow to send their request",
             JB_LOG_U64("connections", cut), JB_LOG_END);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 250000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->wcv, &s->wmu, &until);
  }
  pthread_mutex_unlock(&s->wmu);
  return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **ctx) {
  (void)version;
  jb_http_server *s = cls;
  size_t max = (size_t)s->deps->cfg->http.max_body_bytes;
  http_call *call = *ctx;
  jb_http_resp resp = {0};
  if (call == NULL) {
    call = calloc(1, sizeof *call);
    if (call == NULL) return MHD_NO;
    *ctx = call;
    set_deadline(s, conn, (int64_t)s->deps->cfg->http.request_timeout_s * 1000); /* the body */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl == NULL || strtoull(cl, NULL, 10) <= max) return MHD_YES;
    call->too_large = true; /* answered at once: the body is never read */
  } else if (*data_size != 0) {
    bool ok = gather(call, data, *data_size, max);
    *data_size = 0;
    return ok ? MHD_YES : MHD_NO;
  }
  set_deadline(s, conn, 0); /* answering */
  if (call->too_large) {
    jb_http_problem(&resp, 413, NULL, "the request body is larger than http.max_body_bytes (%zu)",
                    max);
  } else {
    jb_http_req req = {.conn = conn,
                       .method = method,
                       .path = url,
                       .body = call->body != NULL ? call->body : "",
                       .body_len = call->len,
                       .srv = s,
                       .deps = s->deps,
                       .call = call};
    jb_time t0 = jb_time_now();
    dispatch(&req, &resp);
    jb_http_metrics_observe(&req, &resp, t0);
    give_back(s, call);
  }
  enum MHD_Result rc = send_resp(conn, &resp);
  resp_clear(&resp);
  return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why) {
  (void)why;
  jb_http_server *s = cls;
  /* Kept alive: the next request must come within http.request_timeout_s. */
  set_deadline(s, conn, (int64_t)s->deps->cfg->http.request_timeout_s * 1000);
  http_call *call = *ctx;
  if (call == NULL) return;
  give_back(cls, call);
  free(call->body);
  free(call);
  *ctx = NULL;
}

static int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes %HH in a URL's path and in its query's keys and values, as libmicrohttpd does, except
 * %00: a NUL would end the C string early, so "/healthz%00x" would be answered as /healthz and
 * "/v1/jobs/<id>%00junk" as that job. It stays "%00", which matches no route and no id. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls;
  (void)conn;
  char *o = s;
  for (const char *p = s; *p != '\0';) {
    int hi = p[0] == '%' ? unhex(p[1]) : -1, lo = hi >= 0 ? unhex(p[2]) : -1;
    if (lo < 0 || (hi | lo) == 0) {
      *o++ = *p++;
      continue;
    }
    *o++ = (char)(hi * 16 + lo);
    p += 3;
  }
  *o = '\0';
  return (size_t)(o - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\n")] = '\0';
  jb_log(JB_LOG_WARN, "http server", "detail", msg, JB_LOG_END);
}

/* ---- life cycle ---- */

/* "host:port" or "[v6]:port" into s->addr. */
static jb_err parse_listen(jb_http_server *s, const char *listen, jb_error *e) {
  char host[256];
  const char *colon = strrchr(listen, ':');
  const char *h = listen;
  size_t hl = colon != NULL ? (size_t)(colon - listen) : 0;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  char *end = NULL;
  long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
  if (colon == NULL || hl == 0 || hl >= sizeof host || end == colon + 1 || *end != '\0' ||
      port < 0 || port > 65535)
    return jb_fail(e, JB_ERR_CONFIG,
                   "http.listen: \"%s\" is not host:port (e.g. 127.0.0.1:8080 or [::1]:8080)",
                   listen);
  memcpy(host, h, hl);
  host[hl] = '\0';
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | AI_PASSIVE},
                  *ai = NULL;
  char ps[8];
  snprintf(ps, sizeof ps, "%ld", port);
  int gai = getaddrinfo(host, ps, &hints, &ai);
  if (gai != 0)
    return jb_fail(e, JB_ERR_CONFIG, "http.listen: cannot resolve \"%s\": %s", host,
                   gai_strerror(gai));
  memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  return JB_OK;
}

/* Reads a PEM file whole (NUL-terminated) into *out. */
static jb_err read_pem(const char *path, const char *key, char **out, jb_error *e) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return jb_fail(e, JB_ERR_CONFIG, "%s: cannot read \"%s\": %s", key, path, strerror(errno));
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[4096];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *b = realloc(buf, cap);
      if (b == NULL) break;
      buf = b;
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  bool bad = ferror(f) || n > 0;
  fclose(f);
  if (bad || buf == NULL) {
    free(buf);
    return jb_fail(e, JB_ERR_CONFIG, "%s: cannot read \"%s\" (empty, or a read error)", key, path);
  }
  buf[len] = '\0';
  *out = buf;
  return JB_OK;
}

/* Reads http.tls.cert and .key and checks with GnuTLS that they are PEM and belong together,
 * so a bad pair is a config error at start, not a silent handshake failure later. */
static jb_err load_tls(jb_http_server *s, const jb_http_cfg *c, jb_error *e) {
  jb_err rc = read_pem(c->tls_cert, "http.tls.cert", &s->tls_cert, e);
  if (rc == JB_OK) rc = read_pem(c->tls_key, "http.tls.key", &s->tls_key, e);
  if (rc != JB_OK) return rc;
  gnutls_certificate_credentials_t cred;
  if (gnutls_certificate_allocate_credentials(&cred) != 0)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory checking http.tls");
  gnutls_datum_t cd = {(unsigned char *)s->tls_cert, (unsigned)strlen(s->tls_cert)};
  gnutls_datum_t kd = {(unsigned char *)s->tls_key, (unsigned)strlen(s->tls_key)};
  int g = gnutls_certificate_set_x509_key_mem(cred, &cd, &kd, GNUTLS_X509_FMT_PEM);
  gnutls_certificate_free_credentials(cred);
  if (g < 0)
    return jb_fail(e, JB_ERR_CONFIG,
                   "http.tls: \"%s\" and \"%s\" are not a PEM certificate and its private key: %s",
                   c->tls_cert, c->tls_key, gnutls_strerror(g));
  return JB_OK;
}

jb_err jb_http_server_new(const jb_http_deps *deps, jb_http_server **out, jb_error *e) {
  *out = NULL;
  jb_http_server *s = calloc(1, sizeof *s);
  if (s == NULL || (s->lent = calloc(deps->nsvcs ? deps->nsvcs : 1, sizeof *s->lent)) == NULL) {
    free(s);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory building the HTTP server");
  }
  s->deps = deps;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->freed, NULL);
  pthread_mutex_init(&s->wmu, NULL);
  pthread_cond_init(&s->wcv, NULL);
  jb_err rc = parse_listen(s, deps->cfg->http.listen, e);
  if (rc == JB_OK && deps->cfg->http.tls_cert != NULL) rc = load_tls(s, &deps->cfg->http, e);
  if (rc != JB_OK) {
    jb_http_server_free(s);
    return rc;
  }
  *out = s;
  return JB_OK;
}

jb_err jb_http_server_start(jb_http_server *s, jb_error *e) {
  const jb_http_cfg *c = &s->deps->cfg->http;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_ERROR_LOG | MHD_USE_POLL;
  if (s->addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  if (s->tls_cert != NULL) flags |= MHD_USE_TLS;
  struct MHD_OptionItem opts[] = {
      {MHD_OPTION_SOCK_ADDR, 0, &s->addr},
      {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
      {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
      {MHD_OPTION_CONNECTION_LIMIT, c->max_connections, NULL},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->max_connections_per_ip, NULL},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, c->max_header_bytes, NULL},
      {MHD_OPTION_CONNECTION_TIMEOUT, c->request_timeout_s, NULL},
      {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
      {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL},
      {s->tls_cert != NULL ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
      {MHD_OPTION_END, 0, NULL},
  };
  s->guard_stop = false;
  if (pthread_create(&s->guard, NULL, guard_main, s) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot start the HTTP slow-client guard thread");
  s->guard_running = true;
  s->daemon =
      /* The logger first: libmicrohttpd logs its own way until it knows it. */
      MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                       NULL, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
  if (s->daemon == NULL) {
    jb_http_server_stop(s);
    return jb_fail(e, JB_ERR_IO,
                   "http.listen: cannot listen on %s (in use, or not an address "
                   "of this machine?)",
                   c->listen);
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info != NULL ? info->port : 0;
  char url[300];
  const char *colon = strrchr(c->listen, ':');
  snprintf(url, sizeof url, "%s://%.*s:%u", s->tls_cert != NULL ? "https" : "http",
           (int)(colon - c->listen), c->listen, s->port);
  jb_log(JB_LOG_INFO, "http listening", "url", url, JB_LOG_U64("port", s->port), JB_LOG_END);
  if (c->tokens_len == 0)
    jb_log(JB_LOG_WARN,
           "http.tokens is empty: the Jobs API is open to every local user of this machine "
           "(allowed on a loopback http.listen only; README: HTTP tokens)",
           JB_LOG_END);
  return JB_OK;
}

unsigned jb_http_server_port(const jb_http_server *s) {
  return s->port;
}

void jb_http_server_stop(jb_http_server *s) {
  if (s == NULL) return;
  if (s->daemon != NULL) MHD_stop_daemon(s->daemon);
  s->daemon = NULL;
  if (!s->guard_running) return;
  pthread_mutex_lock(&s->wmu);
  s->guard_stop = true;
  pthread_cond_signal(&s->wcv);
  pthread_mutex_unlock(&s->wmu);
  pthread_join(s->guard, NULL);
  s->guard_running = false;
}

void jb_http_server_free(jb_http_server *s) {
  if (s == NULL) return;
  jb_http_server_stop(s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->freed);
  pthread_mutex_destroy(&s->wmu);
  pthread_cond_destroy(&s->wcv);
  free(s->tls_cert);
  free(s->tls_key);
  free(s->lent);
  free(s);
}
