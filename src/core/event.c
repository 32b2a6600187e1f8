/* Event parsing (plain JSON, CloudEvents structured and binary), JSON pointers, and the mapping
 * of events to job requests (topic matching is in topic.c). */
#include "jobbridge/event.h"

#include "jobbridge/json.h"
#include "jobbridge/log.h"
#include "jobbridge/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void jb_event_clear(jb_event *ev) {
  if (ev == NULL) return;
  json_decref(ev->body);
  json_decref(ev->data);
  free(ev->event_type);
  free(ev->event_id);
  free(ev->source);
  free(ev->dedupe_base);
  free(ev->dedupe_note);
  memset(ev, 0, sizeof *ev);
}

static const char *header(const jb_delivery_facts *f, const char *const *names) {
  for (; *names != NULL; names++)
    for (size_t i = 0; i < f->n_headers; i++)
      if (f->headers[i].key && f->headers[i].value && strcasecmp(f->headers[i].key, *names) == 0)
        return f->headers[i].value;
  return NULL;
}

/* *out: a copy of s (owned), or NULL when s is NULL. False only when memory ran out. */
static bool dup_or_null(const char *s, char **out) {
  *out = s ? strdup(s) : NULL;
  return s == NULL || *out != NULL;
}

/* *out: a string or integer member as a new string (owned); NULL when absent, empty or of
 * another kind. False only when memory ran out (never taken for "absent": that would turn a
 * good event into one without a type or an id). */
static bool member_text(json_t *obj, const char *key, char **out) {
  json_t *v = json_object_get(obj, key);
  if (json_is_string(v) && jb_json_exact_text(v) == NULL)
    return dup_or_null(json_string_length(v) ? json_string_value(v) : NULL, out);
  if (json_is_integer(v)) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return dup_or_null(buf, out);
  }
  /* An integer beyond int64 (12345678901234567890123) is still an integer: its exact text. */
  const char *exact = jb_json_exact_text(v);
  return dup_or_null(exact != NULL && strpbrk(exact, ".eE") == NULL ? exact : NULL, out);
}

/* Why the member `key` cannot serve as an id (a static phrase), or NULL when it is absent or
 * usable (a non-empty string or an integer). */
static const char *unusable_id(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL) return NULL;
  const char *exact = jb_json_exact_text(v);
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_TRUE:
    case JSON_FALSE:
      return "a boolean";
    case JSON_NULL:
      return "null";
    case JSON_REAL:
      return "a non-integer number";
    case JSON_INTEGER:
      return NULL;
    case JSON_STRING:
      if (exact != NULL) return strpbrk(exact, ".eE") ? "a non-integer number" : NULL;
      return json_string_length(v) == 0 ? "an empty string" : NULL;
  }
  return NULL;
}

/* Refuses a fact from the broker that is not valid UTF-8: it would be dropped from the job's
 * metadata and from the log line (both JSON) without a word. */
static jb_err check_fact(const char *what, const char *s, jb_error *e) {
  if (s == NULL) return JB_OK;
  long bad = jb_utf8_invalid_at((const unsigned char *)s, strlen(s));
  if (bad < 0) return JB_OK;
  return jb_fail(e, JB_ERR_INVALID, "%s is not valid UTF-8 (byte %ld)", what, bad);
}

/* *out: a copy of s when it is not empty, else NULL. False only when memory ran out. */
static bool dup_nonempty(const char *s, char **out) {
  return dup_or_null(s && *s ? s : NULL, out);
}

static const char *const ce_type_headers[] = {"ce-type",          "ce_type", "cloudEvents:type",
                                              "cloudEvents_type", "type",    NULL};
static const char *const ce_id_headers[] = {"ce-id",          "ce_id", "cloudEvents:id",
                                            "cloudEvents_id", "id",    NULL};
static const char *const ce_source_headers[] = {
    "ce-source", "ce_source", "cloudEvents:source", "cloudEvents_source", "source", NULL};

/* Every fact of the delivery that reaches the job's metadata or a log line. */
static jb_err check_facts(const jb_delivery_facts *f, jb_error *e) {
  jb_err rc = JB_OK;
  if (rc == JB_OK) rc = check_fact("the routing key", f->routing_key, e);
  if (rc == JB_OK) rc = check_fact("the exchange name", f->exchange, e);
  if (rc == JB_OK) rc = check_fact("the AMQP type property", f->type_property, e);
  if (rc == JB_OK) rc = check_fact("the AMQP message_id", f->message_id, e);
  if (rc == JB_OK) rc = check_fact("the AMQP correlation_id", f->correlation_id, e);
  if (rc == JB_OK) rc = check_fact("the ce-type header", header(f, ce_type_headers), e);
  if (rc == JB_OK) rc = check_fact("the ce-id header", header(f, ce_id_headers), e);
  if (rc == JB_OK) rc = check_fact("the ce-source header", header(f, ce_source_headers), e);
  return rc;
}

/* The id that makes a redelivery recognisable (the broker's message_id first), or why there is
 * none: refused when require_id, else said in the log and in dedupe_note. id_problem: why the
 * body's id could not be used, NULL if it could or there is none. */
static jb_err set_dedupe(jb_event *out, const jb_delivery_facts *f, const char *id_problem,
                         bool require_id, jb_error *e) {
  if (f->message_id && *f->message_id) {
    out->dedupe_base = strdup(f->message_id);
  } else if (out->event_id && out->source) {
    size_t len = strlen(out->source) + strlen(out->event_id) + 2;
    out->dedupe_base = malloc(len);
    if (out->dedupe_base) snprintf(out->dedupe_base, len, "%s/%s", out->source, out->event_id);
  } else if (out->event_id) {
    out->dedupe_base = strdup(out->event_id);
  } else {
    out->dedupe_base = NULL;
  }
  /* There was an id to deduplicate by: a failed copy must not pass for "no id". */
  if (out->dedupe_base == NULL && ((f->message_id && *f->message_id) || out->event_id))
    return jb_fail(e, JB_ERR_NOMEM, "out of memory for the event's dedupe key");
  if (out->dedupe_base == NULL && id_problem != NULL) {
    if (require_id) {
      return jb_fail(e, JB_ERR_INVALID,
                     "the event's id is %s, and ingest.require_event_id needs a string or an "
                     "integer id (or an AMQP message_id) to deduplicate by",
                     id_problem);
    }
    /* Accepted without deduplication: said in the log and in the job's metadata. */
    char note[64];
    snprintf(note, sizeof note, "none: id is %s", id_problem);
    out->dedupe_note = strdup(note);
    if (out->dedupe_note == NULL) {
      return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    }
    jb_log(JB_LOG_WARN, "event accepted without deduplication", "reason", note, "event_type",
           out->event_type, JB_LOG_END);
  }
  if (out->dedupe_base == NULL && require_id) {
    return jb_fail(e, JB_ERR_INVALID,
                   "event has no id (message_id, CloudEvents id or body id/event_id) and "
                   "ingest.require_event_id is true");
  }
  return JB_OK;
}

jb_err jb_event_parse(const jb_delivery_facts *f, size_t max_body, bool require_id, jb_event *out,
                      jb_error *e) {
  memset(out, 0, sizeof *out);
  if (f->body_len == 0) return jb_fail(e, JB_ERR_INVALID, "body is empty");
  if (f->body_len > max_body)
    return jb_fail(e, JB_ERR_INVALID, "body of %zu bytes exceeds ingest.max_body_bytes (%zu)",
                   f->body_len, max_body);
  long bad = jb_utf8_invalid_at((const unsigned char *)f->body, f->body_len);
  if (bad >= 0) return jb_fail(e, JB_ERR_INVALID, "body is not valid UTF-8 (byte %ld)", bad);
  jb_err rc = check_facts(f, e);
  if (rc != JB_OK) return rc;
  json_t *body;
  jb_error perr;
  if (jb_json_parse(f->body, f->body_len, &body, &perr) != JB_OK)
    return perr.code == JB_ERR_NOMEM
               ? jb_fail(e, JB_ERR_NOMEM, "out of memory while parsing the body")
               : jb_fail(e, perr.code, "malformed JSON body: %s", perr.msg);
  out->body = body;
  bool ok = true; /* false once a copy failed: out of memory, never "absent" */

  const char *id_problem = NULL; /* why the body's id cannot be used, if it cannot */
  const char *bin_type = header(f, ce_type_headers);
  bool structured =
      f->content_type && strncasecmp(f->content_type, "application/cloudevents+json", 28) == 0;
  if (structured || (json_is_object(body) && json_object_get(body, "specversion") && !bin_type)) {
    out->format = JB_EVENT_CE_STRUCTURED;
    if (!json_is_object(body)) goto not_object;
    ok = member_text(body, "type", &out->event_type) && member_text(body, "id", &out->event_id) &&
         member_text(body, "source", &out->source);
    id_problem = unusable_id(body, "id");
    out->data = json_incref(json_object_get(body, "data"));
  } else if (bin_type != NULL) {
    out->format = JB_EVENT_CE_BINARY;
    ok = dup_nonempty(bin_type, &out->event_type) &&
         dup_nonempty(header(f, ce_id_headers), &out->event_id) &&
         dup_nonempty(header(f, ce_source_headers), &out->source);
    out->data = json_incref(body);
  } else {
    out->format = JB_EVENT_PLAIN;
    if (!json_is_object(body)) goto not_object;
    ok = member_text(body, "event_type", &out->event_type) &&
         member_text(body, "id", &out->event_id);
    id_problem = unusable_id(body, "id");
    if (ok && out->event_id == NULL && json_object_get(body, "event_id") != NULL) {
      ok = member_text(body, "event_id", &out->event_id);
      id_problem = unusable_id(body, "event_id");
    }
    json_t *data = json_object_get(body, "payload");
    if (data == NULL) data = json_object_get(body, "data");
    out->data = json_incref(data);
  }
  if (ok && out->event_type == NULL) ok = dup_nonempty(f->type_property, &out->event_type);
  if (!ok) {
    jb_event_clear(out);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory while reading the event");
  }
  if (out->event_type == NULL) {
    jb_event_clear(out);
    return jb_fail(e, JB_ERR_INVALID,
                   "no event type (looked for body event_type or type, a ce-type header, and the "
                   "AMQP type property)");
  }

  /* Like an AMQP routing key, at most 255 bytes; this also bounds the work of matching. */
  if (strlen(out->event_type) > 255) {
    jb_event_clear(out);
    return jb_fail(e, JB_ERR_INVALID, "event type is longer than 255 bytes");
  }

  jb_err drc = set_dedupe(out, f, id_problem, require_id, e);
  if (drc != JB_OK) jb_event_clear(out);
  return drc;

not_object:
  jb_event_clear(out);
  return jb_fail(e, JB_ERR_INVALID, "body is JSON but not an object");
}

json_t *jb_json_pointer(json_t *root, const char *pointer) {
  if (pointer == NULL || *pointer == '\0') return root;
  if (*pointer != '/') return NULL;
  json_t *node = root;
  const char *p = pointer;
  char token[256];
  while (*p == '/' && node != NULL) {
    p++;
    size_t n = 0;
    while (*p && *p != '/') {
      char c = *p++;
      if (c == '~') {
        if (*p == '0')
          c = '~';
        else if (*p == '1')
          c = '/';
        else
          return NULL;
        p++;
      }
      if (n + 1 >= sizeof token) return NULL;
      token[n++] = c;
    }
    token[n] = '\0';
    if (json_is_object(node)) {
      node = json_object_get(node, token);
    } else if (json_is_array(node)) {
      char *end;
      if (n == 0 || (token[0] == '0' && n > 1)) return NULL;
      unsigned long idx = strtoul(token, &end, 10);
      if (*end != '\0') return NULL;
      node = json_array_get(node, idx);
    } else {
      return NULL;
    }
  }
  return node;
}

void jb_mapped_clear(jb_mapped *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->n; i++) {
    json_decref(m->reqs[i].payload);
    json_decref(m->reqs[i].opts.metadata);
    free((char *)m->reqs[i].opts.dedupe_key);
    free((char *)m->reqs[i].opts.traceparent);
    free((char *)m->reqs[i].opts.tracestate);
  }
  free(m->reqs); /* and m->mapping, allocated with it */
  memset(m, 0, sizeof *m);
}

/* Sets o[key] = value when value is not NULL. False only when memory ran out. */
static bool set_str(json_t *o, const char *key, const char *value) {
  return value == NULL || json_object_set_new(o, key, json_string(value)) == 0;
}

static json_t *job_metadata(const jb_mapping *m, const jb_event *ev, const jb_delivery_facts *f) {
  json_t *meta = m->metadata ? json_deep_copy(m->metadata) : json_object();
  if (meta == NULL) return NULL;
  char ts[40];
  /* The facts of the source event win over static metadata of the same name. A fact that
   * cannot be set (out of memory) fails the whole: never metadata with a fact missing. */
  bool ok =
      set_str(meta, "event_id", ev->event_id ? ev->event_id : f->message_id) &&
      set_str(meta, "event_type", ev->event_type) && set_str(meta, "exchange", f->exchange) &&
      set_str(meta, "routing_key", f->routing_key) &&
      set_str(meta, "correlation_id", f->correlation_id ? f->correlation_id : ev->event_id) &&
      set_str(meta, "received_at",
              jb_time_format(f->received_at ? f->received_at : jb_time_now(), ts, sizeof ts)) &&
      set_str(meta, "source", ev->source) && set_str(meta, "message_id", f->message_id) &&
      set_str(meta, "dedupe", ev->dedupe_note);
  if (!ok) {
    json_decref(meta);
    return NULL;
  }
  return meta;
}

static const char *const traceparent_headers[] = {"traceparent", NULL};
static const char *const tracestate_headers[] = {"tracestate", NULL};
static const char *const ce_traceparent_headers[] = {"ce-traceparent", "ce_traceparent",
                                                     "cloudEvents:traceparent", NULL};
static const char *const ce_tracestate_headers[] = {"ce-tracestate", "ce_tracestate",
                                                    "cloudEvents:tracestate", NULL};

/* The event's trace context, first found of: the trigger's own (f->traceparent), the
 * traceparent header, the CloudEvents attribute (structured: the body's member; binary: the
 * ce- header). Borrowed; NULL when none. Validity is the job service's check. */
static void event_trace(const jb_event *ev, const jb_delivery_facts *f, const char **tp,
                        const char **ts) {
  if (f->traceparent != NULL) {
    *tp = f->traceparent;
    *ts = f->tracestate;
    return;
  }
  if (f->n_headers > 0 && (*tp = header(f, traceparent_headers)) != NULL) {
    *ts = header(f, tracestate_headers);
    return;
  }
  if (ev->format == JB_EVENT_CE_STRUCTURED) {
    *tp = json_string_value(json_object_get(ev->body, "traceparent"));
    *ts = json_string_value(json_object_get(ev->body, "tracestate"));
  } else if (ev->format == JB_EVENT_CE_BINARY) {
    *tp = header(f, ce_traceparent_headers);
    *ts = header(f, ce_tracestate_headers);
  }
}

/* Appends the job request of mapping i for ev to out. */
static jb_err map_one(const jb_config *cfg, size_t i, const jb_event *ev,
                      const jb_delivery_facts *f, jb_mapped *out, jb_error *e) {
  const jb_mapping *m = &cfg->mappings[i];
  json_t *payload;
  if (m->payload != NULL) {
    payload = jb_json_pointer(ev->format == JB_EVENT_CE_BINARY ? ev->data : ev->body, m->payload);
    if (payload == NULL) {
      return jb_fail(e, JB_ERR_INVALID,
                     "mappings[%zu] (job type %s): payload pointer \"%s\" "
                     "finds nothing in the event",
                     i, m->job_type, m->payload);
    }
  } else {
    payload = ev->data ? ev->data : ev->body;
  }
  if (!json_is_object(payload)) {
    return jb_fail(e, JB_ERR_INVALID,
                   "mappings[%zu] (job type %s): the payload%s%s is not a JSON object", i,
                   m->job_type, m->payload ? " selected by " : "", m->payload ? m->payload : "");
  }
  out->mapping[out->n] = i;
  jb_job_request *r = &out->reqs[out->n++];
  r->job_type = m->job_type;
  r->queue_name = m->queue;
  r->priority = m->priority;
  r->payload = json_incref(payload);
  r->opts.max_retries = m->max_retries;
  r->opts.metadata = job_metadata(m, ev, f);
  if (m->delay_s > 0)
    r->opts.scheduled_at =
        (f->received_at ? f->received_at : jb_time_now()) + (jb_time)(m->delay_s * 1e6);
  if (ev->dedupe_base) {
    size_t len = strlen(ev->dedupe_base) + strlen(m->job_type) + 2;
    char *key = malloc(len);
    if (key) snprintf(key, len, "%s|%s", ev->dedupe_base, m->job_type);
    r->opts.dedupe_key = key;
  }
  const char *tp = NULL, *ts = NULL;
  event_trace(ev, f, &tp, &ts);
  if (tp != NULL) r->opts.traceparent = strdup(tp);
  if (tp != NULL && ts != NULL) r->opts.tracestate = strdup(ts);
  if (r->opts.metadata == NULL || (ev->dedupe_base && r->opts.dedupe_key == NULL) ||
      (tp != NULL && r->opts.traceparent == NULL) ||
      (tp != NULL && ts != NULL && r->opts.tracestate == NULL)) {
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  return JB_OK;
}

/* The indices of the mappings whose pattern matches type, in table order: through the index
 * compiled when the config was loaded, or (a config built by hand) by testing each. *idx is a
 * new array the caller frees. */
static jb_err matching_mappings(const jb_config *cfg, const char *type, size_t **idx, size_t *n) {
  if (cfg->mapping_index != NULL) return jb_topic_index_match(cfg->mapping_index, type, idx, n);
  *n = 0;
  *idx = malloc((cfg->mappings_len ? cfg->mappings_len : 1) * sizeof **idx);
  if (*idx == NULL) return JB_ERR_NOMEM;
  for (size_t i = 0; i < cfg->mappings_len; i++)
    if (jb_topic_match(cfg->mappings[i].event_type, type)) (*idx)[(*n)++] = i;
  return JB_OK;
}

jb_err jb_event_map(const jb_config *cfg, const jb_event *ev, const jb_delivery_facts *f,
                    jb_mapped *out, jb_error *e) {
  memset(out, 0, sizeof *out);
  size_t *idx = NULL, matches = 0;
  if (matching_mappings(cfg, ev->event_type, &idx, &matches) != JB_OK)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  if (matches == 0) {
    free(idx);
    return jb_fail(e, JB_ERR_INVALID, "no mapping matches event type \"%s\"", ev->event_type);
  }
  _Static_assert(_Alignof(jb_job_request) >= _Alignof(size_t), "size_t indices after requests");
  /* One allocation for both arrays (no extra malloc per event): the mapping indices follow the
   * requests, whose alignment is at least a size_t's. */
  out->reqs = calloc(1, matches * (sizeof *out->reqs + sizeof *out->mapping));
  if (out->reqs == NULL) {
    free(idx);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  out->mapping = (size_t *)(void *)(out->reqs + matches);
  jb_err rc = JB_OK;
  for (size_t k = 0; k < matches && rc == JB_OK; k++) rc = map_one(cfg, idx[k], ev, f, out, e);
  free(idx);
  if (rc != JB_OK) jb_mapped_clear(out);
  return rc;
}
