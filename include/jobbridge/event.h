/* Domain events: parsing an incoming message (plain JSON, CloudEvents structured or binary) and
 * mapping it to job requests through the mapping table. Pure code: no broker, no database. */
#ifndef JOBBRIDGE_EVENT_H
#define JOBBRIDGE_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/config.h"
#include "jobbridge/job_creator.h"
#include "jobbridge/topic.h" /* jb_topic_match */

/* A message header with a string value (other header kinds are not consulted). Borrowed. */
typedef struct jb_header {
  const char *key;
  const char *value;
} jb_header;

/* What the broker told us about one message. Every pointer is borrowed; strings may be NULL. */
typedef struct jb_delivery_facts {
  const char *body;
  size_t body_len;
  const char *content_type;
  const char *type_property; /* the AMQP `type` property */
  const char *message_id;
  const char *correlation_id;
  const char *exchange;
  const char *routing_key;
  const jb_header *headers;
  size_t n_headers;
  jb_time received_at;
  /* W3C trace context a trigger read from its own transport (the HTTP webhook's headers);
   * NULL: looked up in `headers` (traceparent, tracestate), then in the CloudEvents
   * distributed-tracing attribute (the body's, or a ce-traceparent header). */
  const char *traceparent;
  const char *tracestate;
} jb_delivery_facts;

typedef enum {
  JB_EVENT_PLAIN = 0,
  JB_EVENT_CE_STRUCTURED,
  JB_EVENT_CE_BINARY,
} jb_event_format;

/* A parsed event. Everything is owned; release with jb_event_clear. */
typedef struct jb_event {
  jb_event_format format;
  json_t *body; /* the parsed body */
  json_t *data; /* the event's payload/data (a reference), or NULL */
  char *event_type;
  char *event_id;    /* the id as the producer gave it, or NULL */
  char *source;      /* CloudEvents source, or NULL */
  char *dedupe_base; /* message_id, else source + "/" + id, else id; NULL when none */
  char *dedupe_note; /* "none: id is an object" when the body's id could not be used (and no
                        message_id stood in): the job is not deduplicated, and its metadata's
                        "dedupe" says why; NULL otherwise */
} jb_event;

void jb_event_clear(jb_event *ev);

/* Parses one message. Failures (JB_ERR_INVALID) carry a reason a person can read in e->msg:
 * body empty or too large, invalid UTF-8 (in the body, or in a fact that reaches the job's
 * metadata: routing key, exchange, type property, message_id, correlation_id, the ce-type,
 * ce-id and ce-source headers; the reason names it), malformed JSON, not an object, no event
 * type, no id when require_id, or (when require_id) an id that is an object, an array, a
 * boolean, null, an empty string or a non-integer number. Without require_id such an id is
 * accepted without deduplication: a warning is logged and dedupe_note says why. */
jb_err jb_event_parse(const jb_delivery_facts *f, size_t max_body, bool require_id, jb_event *out,
                      jb_error *e) JB_MUST_CHECK;

/* RFC 6901 JSON pointer ("" is the whole document). Returns a borrowed reference or NULL. */
json_t *jb_json_pointer(json_t *root, const char *pointer);

/* The job requests one event becomes: one per matching mapping. Owns what the requests point
 * to; release with jb_mapped_clear. */
typedef struct jb_mapped {
  jb_job_request *reqs;
  size_t *mapping; /* mapping[i]: the mapping table row reqs[i] came from (in reqs' block) */
  size_t n;
} jb_mapped;

void jb_mapped_clear(jb_mapped *m);

/* Maps an event through cfg's mapping table. JB_ERR_INVALID with a reason when no mapping
 * matches, a payload pointer finds nothing, or the payload is not a JSON object. */
jb_err jb_event_map(const jb_config *cfg, const jb_event *ev, const jb_delivery_facts *f,
                    jb_mapped *out, jb_error *e) JB_MUST_CHECK;

#endif
