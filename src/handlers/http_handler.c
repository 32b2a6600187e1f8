/* The http handler: each job is one HTTP request (libcurl). Every http job type has one engine
 * thread driving one curl multi handle. The worker pool starts requests asynchronously
 * (http_start): a worker queues the request and moves on, and the engine answers through the
 * job's completion when the transfer ends; so any number of requests are in flight on one
 * thread and no worker waits on a slow endpoint (handle, the synchronous way, is kept for other
 * callers), and connections are kept alive and reused (the multi handle's connection cache).
 * A job type's engine serves only that type: a slow endpoint delays only its own requests. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "handlers/exec_env.h"
#include "handlers/handlers.h"
#include "handlers/http_handler.h"
#include "jobbridge/log.h"
#include "jobbridge/progress_token.h"
#include "jobbridge/trace.h"

#define MAX_RESPONSE (1 << 20) /* larger bodies are cut here (and are no result) */
#define WAIT_SLICE_MS 100      /* how often a waiting worker looks at its stop switch */

/* One request in flight. Owned by the worker that made it; the engine borrows it from the
 * moment it is queued until it sets `done` (under the engine's lock). */
typedef struct http_req {
  CURL *easy;
  struct curl_slist *headers;
  char *url, *body;
  char *resp;
  size_t resp_len;
  bool resp_cut;
  char retry_after[128];
  char errbuf[CURL_ERROR_SIZE];
  CURLcode cc;
  long status;
  bool added;   /* engine: in the multi handle */
  bool abandon; /* worker: stop it (cancel, shutdown) */
  bool done;
  pthread_cond_t done_cv;
  struct http_req *next; /* engine's list of queued or running requests, or of answered ones */
  /* Started asynchronously (http_start): owned by the engine once queued; it answers through
   * ctx and frees the request. job and ctx are borrowed from the pool until then. */
  bool async;
  const jb_job *job;
  jb_handler_ctx *ctx;
} http_req;

typedef struct http_handler {
  char *name, *url, *method, *ca_file, *secret;
  struct curl_slist *static_headers; /* "Name: value" */
  long timeout_ms;
  CURLM *multi;
  pthread_t thread;
  pthread_mutex_t lock;
  http_req *reqs;     /* queued or running (lock) */
  http_req *answered; /* asynchronous ones finished, to answer outside the lock (lock) */
  bool stopping;      /* lock */
} http_handler;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- libcurl callbacks (engine thread) ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  http_req *r = ud;
  size_t len = size * n, room = MAX_RESPONSE - r->resp_len;
  if (len > room) {
    r->resp_cut = true;
    len = room;
  }
  if (len > 0) {
    char *grown = realloc(r->resp, r->resp_len + len + 1);
    if (grown == NULL) return 0; /* the transfer fails: CURLE_WRITE_ERROR */
    r->resp = grown;
    memcpy(r->resp + r->resp_len, p, len);
    r->resp_len += len;
    r->resp[r->resp_len] = '\0';
  }
  return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  http_req *r = ud;
  size_t len = size * n;
  static const char name[] = "retry-after:";
  if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
    size_t vlen = len - (sizeof name - 1);
    if (vlen >= sizeof r->retry_after) vlen = sizeof r->retry_after - 1;
    memcpy(r->retry_after, p + sizeof name - 1, vlen);
    r->retry_after[vlen] = '\0';
    char *end = r->retry_after + strlen(r->retry_after);
    while (end > r->retry_after && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
      *--end = '\0';
  }
  return len;
}

/* ---- the engine thread ---- */

static void finish_req(http_handler *h, http_req *r, CURLcode cc) {
  if (r->added) curl_multi_remove_handle(h->multi, r->easy);
  r->added = false;
  r->cc = cc;
  if (cc == CURLE_OK) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
  /* Unlinked by the caller; done last, under the lock: the worker may free r right after. */
  r->done = true;
  if (r->async) { /* answered by the engine after it lets go of the lock */
    r->next = h->answered;
    h->answered = r;
    return;
  }
  pthread_cond_signal(&r->done_cv);
}

/* Adds new requests to the multi handle and ends abandoned ones (lock held). */
static void take_requests(http_handler *h) {
  for (http_req **pp = &h->reqs; *pp;) {
    http_req *r = *pp;
    if (r->abandon || h->stopping || (r->async && atomic_load(&r->ctx->stop) != JB_STOP_NONE)) {
      *pp = r->next;
      finish_req(h, r, CURLE_ABORTED_BY_CALLBACK);
      continue;
    }
    if (!r->added) {
      CURLMcode mc = curl_multi_add_handle(h->multi, r->easy);
      if (mc != CURLM_OK) {
        snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_multi_strerror(mc));
        *pp = r->next;
        finish_req(h, r, CURLE_FAILED_INIT);
        continue;
      }
      r->added = true;
    }
    pp = &r->next;
  }
}

/* Hands finished transfers back to their workers (lock held). */
static void collect_done(http_handler *h) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    http_req *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode cc = m->data.result;
    for (http_req **pp = &h->reqs; *pp; pp = &(*pp)->next)
      if (*pp == r) {
        *pp = r->next;
        finish_req(h, r, cc);
        break;
      }
  }
}

static void answer_all(http_handler *h, http_req *list);

/* Takes the answered asynchronous requests (lock held). */
static http_req *take_answered(http_handler *h) {
  http_req *a = h->answered;
  h->answered = NULL;
  return a;
}

/* The engine waits at most this long for its transfers, so that it sees a stop switch of an
 * asynchronous job (cancel, shutdown) within it. */
#define ENGINE_POLL_MS 100

static void *engine_main(void *arg) {
  http_handler *h = arg;
  for (;;) {
    pthread_mutex_lock(&h->lock);
    take_requests(h);
    bool stop = h->stopping;
    http_req *ans = take_answered(h);
    pthread_mutex_unlock(&h->lock);
    answer_all(h, ans);
    if (stop) break;
    int running = 0;
    curl_multi_perform(h->multi, &running);
    pthread_mutex_lock(&h->lock);
    collect_done(h);
    ans = take_answered(h);
    pthread_mutex_unlock(&h->lock);
    answer_all(h, ans);
    curl_multi_poll(h->multi, NULL, 0, ENGINE_POLL_MS, NULL);
  }
  return NULL;
}

/* ---- the worker's side ---- */

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *value,
                                     bool *ok) {
  char line[JB_TRACESTATE_MAX + 64]; /* the longest: a tracestate */
  snprintf(line, sizeof line, "%s: %s", name, value);
  struct curl_slist *n = curl_slist_append(l, line);
  if (n == NULL) *ok = false;
  return n ? n : l;
}

/* Builds r's easy handle for job; false when out of memory. */
static bool prepare(http_handler *h, const jb_job *job, http_req *r) {
  r->url = jb_http_url_expand(h->url, job->id, job->job_type);
  r->body = jb_exec_job_input(job);
  r->easy = curl_easy_init();
  if (r->url == NULL || r->body == NULL || r->easy == NULL) return false;
  bool ok = true;
  for (struct curl_slist *s = h->static_headers; s && ok; s = s->next) {
    struct curl_slist *n = curl_slist_append(r->headers, s->data);
    if (n == NULL) ok = false;
    r->headers = n ? n : r->headers;
  }
  r->headers = add_header(r->headers, "Content-Type", "application/json", &ok);
  r->headers = add_header(r->headers, "Idempotency-Key", job->id, &ok);
  if (job->traceparent[0] != '\0') {
    r->headers = add_header(r->headers, "traceparent", job->traceparent, &ok);
    if (job->tracestate != NULL)
      r->headers = add_header(r->headers, "tracestate", job->tracestate, &ok);
  }
  /* The service may report progress with POST /v1/jobs/{id}/progress and this token (scoped to
   * this job: an HMAC of its id, jobbridge/progress_token.h). */
  char token[JB_PROGRESS_TOKEN_LEN];
  jb_error pe;
  if (jb_progress_token(job->id, token, &pe) != JB_OK) return false;
  r->headers = add_header(r->headers, JB_PROGRESS_TOKEN_HEADER, token, &ok);
  r->headers = add_header(r->headers, "Expect", "", &ok); /* no 100-continue round trip */
  if (h->secret != NULL) {
    char sig[JB_HTTP_SIGNATURE_LEN];
    if (!jb_http_sign(h->secret, time(NULL), r->body, strlen(r->body), sig, sizeof sig))
      return false;
    r->headers = add_header(r->headers, "Jobbridge-Signature", sig, &ok);
  }
  if (!ok) return false;
  CURL *c = r->easy;
  curl_easy_setopt(c, CURLOPT_URL, r->url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, h->method);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (h->ca_file != NULL) curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)r);
  return true;
}

/* Queues r and waits until the engine is done with it; a stop switch set meanwhile abandons
 * it (the engine ends the transfer at once). */
static void submit_and_wait(http_handler *h, http_req *r, jb_handler_ctx *ctx) {
  pthread_mutex_lock(&h->lock);
  if (h->stopping) {
    r->cc = CURLE_ABORTED_BY_CALLBACK;
    snprintf(r->errbuf, sizeof r->errbuf, "the http handler is shutting down");
    pthread_mutex_unlock(&h->lock);
    return;
  }
  r->next = h->reqs;
  h->reqs = r;
  pthread_mutex_unlock(&h->lock);
  curl_multi_wakeup(h->multi);
  pthread_mutex_lock(&h->lock);
  while (!r->done) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&r->done_cv, &h->lock, &until);
    if (!r->done && !r->abandon && atomic_load(&ctx->stop) != JB_STOP_NONE) {
      r->abandon = true;
      curl_multi_wakeup(h->multi);
    }
  }
  pthread_mutex_unlock(&h->lock);
}

__attribute__((format(printf, 3, 4))) static void set_error(jb_job_result *r, bool retriable,
                                                            const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->success = false;
  r->retriable = retriable;
  r->error_message = strdup(msg);
}

static void outcome(http_handler *h, const jb_job *job, http_req *q, jb_job_result *r) {
  if (q->cc == CURLE_OK) {
    jb_http_result(q->status, q->resp, q->resp_len, q->retry_after[0] ? q->retry_after : NULL,
                   time(NULL), r);
    if (r->success && q->resp_cut && r->result_data == NULL) {
      char tid[33];
      jb_trace_id(job->traceparent, tid);
      jb_log(JB_LOG_WARN, "http handler: a response body over 1 MiB is not taken as the result",
             "job_id", job->id, "job_type", h->name, "trace_id", tid[0] ? tid : NULL, JB_LOG_END);
    }
    return;
  }
  const char *why = q->errbuf[0] ? q->errbuf : curl_easy_strerror(q->cc);
  if (q->cc == CURLE_OPERATION_TIMEDOUT) {
    char t[64];
    snprintf(t, sizeof t, "%.3g s", (double)h->timeout_ms / 1000.0);
    set_error(r, true, "http request timed out after %s (%s)", t, why);
  } else if (q->cc == CURLE_OUT_OF_MEMORY) {
    set_error(r, false, "http handler: out of memory");
    r->requeue = true;
  } else if (q->cc == CURLE_UNSUPPORTED_PROTOCOL || q->cc == CURLE_URL_MALFORMAT) {
    set_error(r, false, "http request to %s cannot be made: %s", q->url, why);
  } else {
    set_error(r, true, "http request to %s failed: %s", q->url, why);
  }
}

static void req_init(http_req *q) {
  memset(q, 0, sizeof *q);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->done_cv, &ca);
  pthread_condattr_destroy(&ca);
}

/* Frees what q holds (not q itself). */
static void req_clear(http_req *q) {
  if (q->easy) curl_easy_cleanup(q->easy);
  curl_slist_free_all(q->headers);
  free(q->url);
  free(q->body);
  free(q->resp);
  pthread_cond_destroy(&q->done_cv);
}

static void http_handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  http_handler *h = self;
  http_req q;
  req_init(&q);
  if (!prepare(h, job, &q)) {
    set_error(r, false, "http handler: out of memory preparing the request");
    r->requeue = true;
    goto out;
  }
  submit_and_wait(h, &q, ctx);
  outcome(h, job, &q, r);
out:
  req_clear(&q);
}

/* Answers each asynchronous request of list through its job's ctx and frees it (engine thread,
 * lock not held: the pool's completion takes its own locks). */
static void answer_all(http_handler *h, http_req *list) {
  while (list != NULL) {
    http_req *q = list;
    list = q->next;
    jb_job_result r = {0};
    outcome(h, q->job, q, &r);
    jb_job_complete(q->ctx, &r);
    req_clear(q);
    free(q);
  }
}

/* The asynchronous way (jb_job_handler_ops.start): queues the request with the engine and
 * returns; the engine answers through ctx when the transfer ends or ctx->stop is set. */
static void http_start(void *self, const jb_job *job, jb_handler_ctx *ctx) {
  http_handler *h = self;
  jb_job_result r = {0};
  http_req *q = malloc(sizeof *q);
  if (q != NULL) req_init(q);
  if (q == NULL || !prepare(h, job, q)) {
    set_error(&r, false, "http handler: out of memory preparing the request");
    r.requeue = true;
    goto fail;
  }
  q->async = true;
  q->job = job;
  q->ctx = ctx;
  pthread_mutex_lock(&h->lock);
  if (h->stopping) {
    pthread_mutex_unlock(&h->lock);
    set_error(&r, true, "the http handler is shutting down");
    goto fail;
  }
  q->next = h->reqs;
  h->reqs = q;
  pthread_mutex_unlock(&h->lock);
  curl_multi_wakeup(h->multi);
  return;
fail:
  if (q != NULL) {
    req_clear(q);
    free(q);
  }
  jb_job_complete(ctx, &r);
}

static void http_destroy(void *self) {
  http_handler *h = self;
  if (h == NULL) return;
  if (h->multi != NULL) {
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_mutex_unlock(&h->lock);
    curl_multi_wakeup(h->multi);
    pthread_join(h->thread, NULL);
    curl_multi_cleanup(h->multi);
  }
  pthread_mutex_destroy(&h->lock);
  curl_slist_free_all(h->static_headers);
  free(h->name);
  free(h->url);
  free(h->method);
  free(h->ca_file);
  free(h->secret);
  free(h);
}

static const jb_job_handler_ops http_ops = {
    .handle = http_handle, .start = http_start, .destroy = http_destroy};

static char *dup_opt(const char *s, bool *ok) {
  if (s == NULL) return NULL;
  char *d = strdup(s);
  if (d == NULL) *ok = false;
  return d;
}

/* The static headers as "Name: value" lines; a problem names the header. */
static jb_err copy_headers(http_handler *h, const json_t *headers, jb_error *e) {
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)headers, name, v) {
    const char *problem = NULL;
    if (*name == '\0' || strpbrk(name, ": \t\r\n") != NULL)
      problem = "is not a header name";
    else if (!json_is_string(v))
      problem = "must be a string";
    else if (strpbrk(json_string_value(v), "\r\n") != NULL ||
             strlen(json_string_value(v)) != json_string_length(v))
      problem = "must not contain a line break or a NUL byte";
    if (problem != NULL) return jb_fail(e, JB_ERR_INVALID, "headers.%s: %s", name, problem);
    size_t len = strlen(name) + json_string_length(v) + 3;
    char *line = malloc(len);
    if (line == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    snprintf(line, len, "%s: %s", name, json_string_value(v));
    struct curl_slist *n = curl_slist_append(h->static_headers, line);
    free(line);
    if (n == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    h->static_headers = n;
  }
  return JB_OK;
}

static jb_err check_config(const jb_http_config *c, jb_error *e) {
  if (c->url == NULL ||
      (strncasecmp(c->url, "http://", 7) != 0 && strncasecmp(c->url, "https://", 8) != 0))
    return jb_fail(e, JB_ERR_INVALID, "url: \"%s\" is not an http:// or https:// URL",
                   c->url ? c->url : "(none)");
  const char *m = c->method ? c->method : "POST";
  if (*m == '\0' || strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(m))
    return jb_fail(e, JB_ERR_INVALID, "method: \"%s\" is not an HTTP method (upper-case letters)",
                   m);
  if (!(c->timeout_s > 0 && c->timeout_s < 1e7))
    return jb_fail(e, JB_ERR_INVALID, "timeout_s: %g is out of range", c->timeout_s);
  return JB_OK;
}

static jb_err start_engine(http_handler *h, jb_error *e) {
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK)
    return jb_fail(e, JB_ERR_IO, "libcurl cannot start: %s", curl_easy_strerror(curl_init_rc));
  if ((h->multi = curl_multi_init()) == NULL)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory starting libcurl");
  curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 1024L);
  int err = pthread_create(&h->thread, NULL, engine_main, h);
  if (err != 0) {
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    return jb_fail(e, JB_ERR_IO, "cannot start the http handler's thread: %s", strerror(err));
  }
  return JB_OK;
}

jb_err jb_http_handler_create(const jb_http_config *c, jb_job_handler *out, jb_error *e) {
  jb_err rc = check_config(c, e);
  if (rc != JB_OK) return rc;
  http_handler *h = calloc(1, sizeof *h);
  if (h == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&h->lock, NULL);
  bool ok = true;
  h->name = dup_opt(c->name ? c->name : "http", &ok);
  h->url = dup_opt(c->url, &ok);
  h->method = dup_opt(c->method ? c->method : "POST", &ok);
  h->ca_file = dup_opt(c->ca_file, &ok);
  h->secret = c->signing_secret && *c->signing_secret ? dup_opt(c->signing_secret, &ok) : NULL;
  h->timeout_ms = (long)(c->timeout_s * 1000.0);
  if (h->timeout_ms < 1) h->timeout_ms = 1;
  rc = ok ? JB_OK : jb_fail(e, JB_ERR_NOMEM, "out of memory");
  if (rc == JB_OK && c->headers != NULL) rc = copy_headers(h, c->headers, e);
  if (rc == JB_OK) rc = start_engine(h, e);
  if (rc != JB_OK) {
    http_destroy(h);
    return rc;
  }
  *out = (jb_job_handler){&http_ops, h};
  return JB_OK;
}
