/* A webhook request as the router and the JobCreator see it: the delivery facts of mode event
 * (CloudEvents structured or binary, or plain JSON), the fallback dedupe key, and mode job's
 * body. Pure: no libmicrohttpd, no database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/webhook.h"

/* Content types a mode-event body may have: JSON (plain events, binary-mode data) or a
 * structured CloudEvent. Parameters (;charset=utf-8) are allowed. */
bool jb_wh_json_type(const char *ct) {
  size_t n = strcspn(ct, "; \t");
  if (n == 28 && strncasecmp(ct, "application/cloudevents+json", 28) == 0) return true;
  if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return true;
  /* application/<anything>+json (e.g. application/vnd.github+json) */
  return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
         strncasecmp(ct + n - 5, "+json", 5) == 0 &&
         strncasecmp(ct, "application/cloudevents-batch", 29) != 0;
}

unsigned jb_wh_facts_of(const jb_header *hdrs, size_t n, const char *body, size_t len, jb_time now,
                        jb_wh_facts *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  jb_delivery_facts *f = &out->f;
  f->body = body;
  f->body_len = len;
  f->received_at = now;
  size_t nce = 0;
  for (size_t i = 0; i < n; i++) {
    const char *k = hdrs[i].key, *v = hdrs[i].value;
    if (k == NULL || v == NULL) continue;
    if (strcasecmp(k, "Content-Type") == 0) {
      f->content_type = v;
    } else if (strcasecmp(k, "Idempotency-Key") == 0) {
      f->message_id = v;
    } else if (strcasecmp(k, "traceparent") == 0) { /* W3C Trace Context over HTTP */
      f->traceparent = v;
    } else if (strcasecmp(k, "tracestate") == 0) {
      f->tracestate = v;
    } else if (strncasecmp(k, "ce-", 3) == 0) {
      if (nce == JB_WH_MAX_CE_HEADERS) {
        snprintf(why, whylen, "more than %d ce-* headers", JB_WH_MAX_CE_HEADERS);
        return 400;
      }
      out->ce[nce++] = hdrs[i];
    }
  }
  f->headers = out->ce;
  f->n_headers = nce;
  if (f->content_type != NULL &&
      strncasecmp(f->content_type, "application/cloudevents-batch", 29) == 0) {
    snprintf(why, whylen, "CloudEvents batch mode is not accepted: send one event per request");
    return 415;
  }
  if (f->content_type != NULL && !jb_wh_json_type(f->content_type)) {
    snprintf(why, whylen,
             "Content-Type %.100s is not JSON (application/json, application/cloudevents+json "
             "or application/*+json)",
             f->content_type);
    return 415;
  }
  return 0;
}

void jb_wh_reason(const char *reason, const char *type_header, char *out, size_t outlen) {
  static const char *const amqp[] = {"the AMQP message_id", "the AMQP type property"};
  char th[160];
  if (type_header != NULL)
    snprintf(th, sizeof th, "the %.140s header", type_header);
  else
    snprintf(th, sizeof th, "the webhook's event_type_header (none is configured)");
  const char *http[] = {"the Idempotency-Key header", th};
  for (size_t i = 0; i < 2; i++) {
    const char *at = strstr(reason, amqp[i]);
    if (at != NULL) {
      snprintf(out, outlen, "%.*s%s%s", (int)(at - reason), reason, http[i], at + strlen(amqp[i]));
      return;
    }
  }
  snprintf(out, outlen, "%s", reason);
}

unsigned jb_wh_fallback_key(const jb_webhook_cfg *w, json_t *doc, jb_wh_header_fn hdr, void *ctx,
                            char **out, char *why, size_t whylen) {
  *out = NULL;
  if (w->dedupe == NULL) return 0;
  char num[32];
  const char *v = NULL;
  if (w->dedupe[0] == '/') {
    json_t *at = doc != NULL ? jb_json_pointer(doc, w->dedupe) : NULL;
    if (json_is_integer(at)) {
      snprintf(num, sizeof num, "%lld", (long long)json_integer_value(at));
      v = num;
    } else if (json_is_string(at) && json_string_length(at) > 0 &&
               strlen(json_string_value(at)) == json_string_length(at)) {
      v = json_string_value(at);
    }
    if (v == NULL) {
      snprintf(why, whylen,
               "the event has no id and the dedupe pointer %.200s finds no non-empty string or "
               "integer in the body",
               w->dedupe);
      return 422;
    }
  } else {
    v = hdr(ctx, w->dedupe + 7);
    if (v == NULL || *v == '\0') {
      snprintf(why, whylen, "the event has no id and there is no %.200s header to deduplicate by",
               w->dedupe + 7);
      return 422;
    }
  }
  size_t n = strlen(w->name) + strlen(v) + 2;
  *out = malloc(n);
  if (*out == NULL) {
    snprintf(why, whylen, "out of memory");
    return 503;
  }
  snprintf(*out, n, "%s/%s", w->name, v);
  return 0;
}

static bool allowed(const jb_webhook_cfg *w, const char *job_type) {
  for (size_t i = 0; i < w->allowed_job_types_len; i++)
    if (strcmp(w->allowed_job_types[i], job_type) == 0) return true;
  return false;
}

unsigned jb_wh_job_of(const jb_webhook_cfg *w, json_t *doc, jb_job_request *req, const char **field,
                      char *why, size_t whylen) {
  memset(req, 0, sizeof *req);
  req->opts.max_retries = -1;
  *field = NULL;
  if (!json_is_object(doc)) {
    snprintf(why, whylen,
             "the body must be a JSON object {job_type, payload, queue_name, priority}");
    return 400;
  }
  const char *key;
  json_t *v;
  json_object_foreach(doc, key, v) {
    *field = key;
    if (strcmp(key, "job_type") == 0 && json_is_string(v) && json_string_length(v) > 0) {
      req->job_type = json_string_value(v);
    } else if (strcmp(key, "payload") == 0 && json_is_object(v)) {
      req->payload = v;
    } else if (strcmp(key, "queue_name") == 0 && json_is_string(v) && json_string_length(v) > 0) {
      req->queue_name = json_string_value(v);
    } else if (strcmp(key, "priority") == 0 && json_is_integer(v) &&
               json_integer_value(v) >= -1000000 && json_integer_value(v) <= 1000000) {
      req->priority = (int)json_integer_value(v);
    } else if (strcmp(key, "job_type") == 0 || strcmp(key, "queue_name") == 0) {
      snprintf(why, whylen, "%s must be a non-empty string", key);
      return 422;
    } else if (strcmp(key, "payload") == 0) {
      snprintf(why, whylen, "payload must be a JSON object");
      return 422;
    } else if (strcmp(key, "priority") == 0) {
      snprintf(why, whylen, "priority must be an integer from -1000000 to 1000000");
      return 422;
    } else {
      snprintf(why, whylen,
               "unknown field \"%.100s\" (a job request has job_type, payload, queue_name, "
               "priority)",
               key);
      return 422;
    }
  }
  *field = "job_type";
  if (req->job_type == NULL) {
    snprintf(why, whylen, "job_type is required");
    return 422;
  }
  if (!allowed(w, req->job_type)) {
    snprintf(why, whylen, "webhook %.100s may not create jobs of type \"%.100s\"", w->name,
             req->job_type);
    return 403;
  }
  *field = NULL;
  return 0;
}
