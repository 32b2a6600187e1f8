/* WebhookTrigger: POST /v1/webhooks/{name}, one per http.webhooks entry. The caller is
 * authenticated (an HMAC signature or a bearer token), then the body is either an event routed
 * through the same mapping table as AMQP events (mode event) or a job request (mode job). Jobs
 * are created through deps->creator, which group-commits concurrent requests. Nothing is
 * dead-lettered: what AMQP would dead-letter is answered 4xx with the same reason. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/api_jobs.h"
#include "http/http.h"
#include "http/webhook.h"
#include "jobbridge/log.h"

static const char *req_header(void *ctx, const char *name) {
  return jb_http_header(ctx, name);
}

static const jb_webhook_cfg *find_webhook(const jb_config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->http.webhooks_len; i++)
    if (strcmp(cfg->http.webhooks[i].name, name) == 0) return &cfg->http.webhooks[i];
  return NULL;
}

/* The signature (or the token) of the request: true to go on, false when resp holds the 401. */
static bool authenticate(jb_http_req *req, const jb_webhook_cfg *w, jb_http_resp *resp) {
  if (strcmp(w->signature, "token") == 0) return jb_http_authorize(req, JB_SCOPE_WRITE, resp);
  char why[256];
  if (jb_wh_verify(w, req_header, req, req->body, req->body_len, jb_time_now() / 1000000, why,
                   sizeof why))
    return true;
  jb_log(JB_LOG_WARN, "webhook request refused: bad signature", "webhook", w->name, "reason", why,
         JB_LOG_END);
  jb_http_problem(resp, 401, "signature", "webhook %s: %s", w->name, why);
  return false;
}

/* Answers created jobs: 202 when any is new, 200 when every one already existed. */
static void reply_jobs(jb_http_resp *resp, const jb_webhook_cfg *w, const char *event_id,
                       const jb_job_request *reqs, const jb_create_outcome *out, size_t n) {
  json_t *jobs = json_array();
  bool created = false;
  for (size_t i = 0; jobs != NULL && i < n; i++) {
    created = created || out[i].status == JB_CREATE_CREATED;
    json_array_append_new(
        jobs, json_pack("{s:s, s:s, s:s, s:s}", "id", out[i].id, "job_type", reqs[i].job_type,
                        "queue", reqs[i].queue_name ? reqs[i].queue_name : "default", "outcome",
                        out[i].status == JB_CREATE_CREATED ? "created" : "duplicate"));
  }
  json_t *doc = json_pack("{s:s, s:o*}", "webhook", w->name, "jobs", jobs);
  if (doc != NULL && event_id != NULL) json_object_set_new(doc, "event_id", json_string(event_id));
  if (doc == NULL) {
    jb_http_problem(resp, 500, NULL, "out of memory writing the answer");
    return;
  }
  jb_http_reply_json(resp, created ? 202 : 200, doc);
  json_decref(doc);
}

/* Creates reqs[0..n) in one call (group-committed with other requests by the creator) and
 * answers. A refusal of the data is the caller's fault (422); anything else (the database is
 * away) is 503 with Retry-After: nothing was created. */
static void create(jb_http_req *req, jb_http_resp *resp, const jb_webhook_cfg *w,
                   const char *event_id, const jb_job_request *reqs, size_t n) {
  jb_create_outcome *out = calloc(n ? n : 1, sizeof *out);
  if (out == NULL) {
    jb_http_problem(resp, 503, NULL, "out of memory for %zu job requests", n);
    jb_http_add_header(resp, "Retry-After", "1");
    return;
  }
  jb_error e;
  jb_error_clear(&e);
  const jb_job_creator *c = &req->deps->creator;
  jb_err rc = c->ops->create_jobs(c->self, reqs, n, out, &e);
  if (rc == JB_OK) {
    reply_jobs(resp, w, event_id, reqs, out, n);
  } else if (rc == JB_ERR_INVALID || rc == JB_ERR_UNREGISTERED || rc == JB_ERR_DB_REFUSED) {
    jb_http_problem(resp, 422, NULL, "job creation refused: %s", e.msg);
  } else {
    jb_api_reply_error(resp, rc, &e); /* the database's reason is logged, not answered */
  }
  free(out);
}

/* ---- mode event ---- */

typedef struct hdr_list {
  jb_header h[JB_WH_MAX_CE_HEADERS + 2];
  size_t n;
  bool overflow;
} hdr_list;

/* Keeps the headers jb_wh_facts_of reads: Content-Type, Idempotency-Key, traceparent,
 * tracestate, ce-*. */
static enum MHD_Result keep_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  (void)kind;
  hdr_list *l = cls;
  if (key == NULL || value == NULL) return MHD_YES;
  if (strcasecmp(key, "Content-Type") != 0 && strcasecmp(key, "Idempotency-Key") != 0 &&
      strcasecmp(key, "traceparent") != 0 && strcasecmp(key, "tracestate") != 0 &&
      strncasecmp(key, "ce-", 3) != 0)
    return MHD_YES;
  if (l->n == sizeof l->h / sizeof l->h[0]) {
    l->overflow = true;
    return MHD_NO;
  }
  l->h[l->n++] = (jb_header){key, value};
  return MHD_YES;
}

/* The reason's HTTP status: the body is not JSON (400), too large (413), else 422 (JSON the
 * mapping table cannot use). */
static unsigned verdict_status(const char *reason) {
  if (strncmp(reason, "malformed JSON", 14) == 0 ||
      strncmp(reason, "body is not valid UTF-8", 23) == 0 || strcmp(reason, "body is empty") == 0)
    return 400;
  if (strstr(reason, "exceeds ingest.max_body_bytes") != NULL) return 413;
  return 422;
}

/* Gives each request the fallback dedupe key (no event id, no Idempotency-Key) and the webhook's
 * name in its metadata. 0 or the status to refuse with. */
static unsigned finish_requests(jb_http_req *req, const jb_webhook_cfg *w, jb_routed *r, char *why,
                                size_t whylen) {
  char *base = NULL;
  if (r->event.dedupe_base == NULL) {
    json_t *doc = r->event.format == JB_EVENT_CE_BINARY ? r->event.data : r->event.body;
    unsigned st = jb_wh_fallback_key(w, doc, req_header, req, &base, why, whylen);
    if (st != 0) return st;
  }
  for (size_t i = 0; i < r->jobs.n; i++) {
    jb_job_request *q = &r->jobs.reqs[i];
    if (base != NULL) {
      size_t len = strlen(base) + strlen(q->job_type) + 2;
      char *key = malloc(len);
      if (key == NULL) { /* never a job without its dedupe key */
        free(base);
        snprintf(why, whylen, "out of memory for the dedupe key");
        return 503;
      }
      snprintf(key, len, "%s|%s", base, q->job_type);
      free((char *)q->opts.dedupe_key);
      q->opts.dedupe_key = key; /* owned by r->jobs, as the router's keys are */
      json_object_del(q->opts.metadata, "dedupe");
    }
    json_object_set_new(q->opts.metadata, "webhook", json_string(w->name));
  }
  free(base);
  return 0;
}

static void event_mode(jb_http_req *req, jb_http_resp *resp, const jb_webhook_cfg *w) {
  hdr_list hl = {.n = 0};
  MHD_get_connection_values(req->conn, MHD_HEADER_KIND, keep_header, &hl);
  char why[512];
  jb_wh_facts wf;
  unsigned st = hl.overflow ? 400 : 0;
  if (hl.overflow) snprintf(why, sizeof why, "more than %d ce-* headers", JB_WH_MAX_CE_HEADERS);
  if (st == 0)
    st = jb_wh_facts_of(hl.h, hl.n, req->body, req->body_len, jb_time_now(), &wf, why, sizeof why);
  if (st != 0) {
    jb_http_problem(resp, st, st == 415 ? "Content-Type" : NULL, "%s", why);
    return;
  }
  if (w->event_type_header != NULL) wf.f.type_property = jb_http_header(req, w->event_type_header);
  jb_route_table *t = jb_router_acquire(req->deps->router);
  jb_routed routed = {0};
  jb_error e;
  jb_error_clear(&e);
  switch (jb_router_route(t, &wf.f, &routed, &e)) {
    case JB_ROUTE_RETRY:
      jb_http_problem(resp, 503, NULL, "out of memory routing the event");
      jb_http_add_header(resp, "Retry-After", "1");
      break;
    case JB_ROUTE_DEAD_LETTER:
      jb_wh_reason(e.msg, w->event_type_header, why, sizeof why);
      jb_http_problem(resp, verdict_status(e.msg), NULL, "%s", why);
      break;
    case JB_ROUTE_JOBS:
      st = finish_requests(req, w, &routed, why, sizeof why);
      if (st != 0) {
        jb_http_problem(resp, st, st == 503 ? NULL : "dedupe", "%s", why);
        if (st == 503) jb_http_add_header(resp, "Retry-After", "1");
      } else {
        create(req, resp, w, routed.event.event_id, routed.jobs.reqs, routed.jobs.n);
      }
      break;
  }
  jb_routed_clear(&routed);
  jb_router_release(t); /* after the requests, which point into the table */
}

/* ---- mode job ---- */

static void job_mode(jb_http_req *req, jb_http_resp *resp, const jb_webhook_cfg *w) {
  const char *ct = jb_http_header(req, "Content-Type");
  if (ct != NULL && !jb_wh_json_type(ct)) {
    jb_http_problem(resp, 415, "Content-Type",
                    "Content-Type %.100s is not JSON (application/json or application/*+json)", ct);
    return;
  }
  json_t *doc = NULL, *payload = NULL, *meta = NULL;
  char *fallback = NULL;
  jb_error e;
  if (jb_json_parse(req->body, req->body_len, &doc, &e) != JB_OK) {
    jb_http_problem(resp, 400, NULL, "malformed JSON body: %s", e.msg);
    return;
  }
  jb_job_request jr;
  const char *field;
  char why[512];
  unsigned st = jb_wh_job_of(w, doc, &jr, &field, why, sizeof why);
  if (st != 0) {
    jb_http_problem(resp, st, field, "%s", why);
    goto out;
  }
  jr.opts.dedupe_key = jb_http_header(req, "Idempotency-Key");
  if (jr.opts.dedupe_key == NULL || *jr.opts.dedupe_key == '\0') {
    st = jb_wh_fallback_key(w, doc, req_header, req, &fallback, why, sizeof why);
    if (st != 0) {
      jb_http_problem(resp, st, st == 503 ? NULL : "dedupe", "%s", why);
      if (st == 503) jb_http_add_header(resp, "Retry-After", "1");
      goto out;
    }
    jr.opts.dedupe_key = fallback;
  }
  if (jr.payload == NULL) jr.payload = payload = json_object(); /* no payload: {} */
  jr.opts.metadata = meta = json_pack("{s:s}", "webhook", w->name);
  if (jr.payload == NULL || meta == NULL) {
    jb_http_problem(resp, 503, NULL, "out of memory");
    jb_http_add_header(resp, "Retry-After", "1");
  } else {
    create(req, resp, w, NULL, &jr, 1);
  }
out:
  free(fallback);
  json_decref(meta);
  json_decref(payload);
  json_decref(doc);
}

static void webhook(jb_http_req *req, jb_http_resp *resp) {
  const jb_webhook_cfg *w = find_webhook(req->deps->cfg, req->params[0]);
  if (w == NULL) {
    jb_http_problem(resp, 404, "name", "no webhook is named \"%s\" (see http.webhooks)",
                    req->params[0]);
    return;
  }
  if (!authenticate(req, w, resp)) return;
  if (strcmp(w->mode, "job") == 0)
    job_mode(req, resp, w);
  else
    event_mode(req, resp, w);
}

const jb_http_route jb_http_webhook_routes[] = {
    {"POST", "/v1/webhooks/{name}", JB_SCOPE_PUBLIC, webhook},
};
const size_t jb_http_webhook_nroutes =
    sizeof jb_http_webhook_routes / sizeof jb_http_webhook_routes[0];
