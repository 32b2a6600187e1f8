/* WebhookTrigger internals (webhooks.c answers POST /v1/webhooks/{name}): the pure steps it is
 * made of, kept apart from libmicrohttpd so unit tests and the fuzz target (tests/fuzz/fuzz_http.c)
 * can drive them. webhook_sig.c checks signatures; webhook_event.c turns a request into the
 * delivery facts the router reads, finds fallback dedupe keys and reads mode job's body. */
#ifndef JB_HTTP_WEBHOOK_H
#define JB_HTTP_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/config.h"
#include "jobbridge/event.h"
#include "jobbridge/job_creator.h"

/* ---- signatures (webhook_sig.c) ---- */

/* A request header by name (case-insensitive), or NULL. */
typedef const char *(*jb_wh_header_fn)(void *ctx, const char *name);

/* Decodes exactly 64 hex digits (either case) into 32 bytes. False for anything else. */
bool jb_wh_hex32(const char *hex, size_t len, unsigned char out[32]);

#define JB_WH_STRIPE_MAX_V1 8

/* A parsed Stripe-Signature header: "t=<unix seconds>,v1=<hex>[,v1=<hex>...]"; other schemes
 * (v0, ...) are skipped. Pointers into the header. */
typedef struct jb_wh_stripe_sig {
  int64_t t;
  const char *v1[JB_WH_STRIPE_MAX_V1];
  size_t v1_len[JB_WH_STRIPE_MAX_V1];
  size_t nv1;
} jb_wh_stripe_sig;

/* False with `why` (a reason a person can read, quoting nothing secret) when the header has no
 * t, a t that is not a number, no v1, more than JB_WH_STRIPE_MAX_V1 v1, or a part without '='. */
bool jb_wh_stripe_parse(const char *hdr, jb_wh_stripe_sig *out, char *why, size_t whylen);

/* Checks the HMAC signature of a request to webhook w (signature github, stripe or hmac):
 * HMAC-SHA256 of the raw body (stripe: of "<t>.<body>", t within tolerance_s of now_s) with
 * w->secret, compared in constant time. False with `why` (names the header and the problem,
 * never the secret or the expected digest). */
bool jb_wh_verify(const jb_webhook_cfg *w, jb_wh_header_fn hdr, void *ctx, const char *body,
                  size_t len, int64_t now_s, char *why, size_t whylen);

/* ---- requests (webhook_event.c) ---- */

#define JB_WH_MAX_CE_HEADERS 32

/* The facts of one webhook request, as the router reads those of an AMQP delivery. Borrows the
 * request's strings. */
typedef struct jb_wh_facts {
  jb_delivery_facts f;
  jb_header ce[JB_WH_MAX_CE_HEADERS]; /* the request's ce-* headers (CloudEvents binary mode) */
} jb_wh_facts;

/* Builds the facts of a mode-event request from its headers (all of them, n) and body: the
 * Content-Type, the ce-* headers (only those: other HTTP headers are not event attributes), and
 * the Idempotency-Key as the message id (the dedupe key before the event's own id, as an AMQP
 * message_id is). 0 when done; else the HTTP status to refuse with (415: not JSON, or
 * CloudEvents batch mode; 400: too many ce-* headers) and `why`. */
unsigned jb_wh_facts_of(const jb_header *hdrs, size_t n, const char *body, size_t len, jb_time now,
                        jb_wh_facts *out, char *why, size_t whylen);

/* Whether a Content-Type is JSON: application/json, application/cloudevents+json or
 * application/<anything>+json (not CloudEvents batch mode), parameters allowed. */
bool jb_wh_json_type(const char *ct);

/* Rewrites a router's reason for an HTTP caller: the AMQP names of the facts a webhook request
 * fills become the request's ("the AMQP message_id" -> "the Idempotency-Key header", "the AMQP
 * type property" -> "the <type_header> header", or a note that none is configured when
 * type_header is NULL). Into out (always NUL-terminated). */
void jb_wh_reason(const char *reason, const char *type_header, char *out, size_t outlen);

/* The dedupe key of a request that carries none, from w->dedupe: a JSON pointer into `doc` (the
 * body, or a binary-mode event's data) or "header:<Name>". The key is "<webhook>/<value>"
 * (a string, or an integer's digits). *out is NULL when w has no dedupe; a new string otherwise.
 * 0, or 422 with `why` when the pointer or header finds nothing usable; 503 out of memory. */
unsigned jb_wh_fallback_key(const jb_webhook_cfg *w, json_t *doc, jb_wh_header_fn hdr, void *ctx,
                            char **out, char *why, size_t whylen);

/* Reads a mode-job body {job_type, payload, queue_name, priority} into req (borrowing from
 * doc): 0, or the status to refuse with and `why` naming the field (*field): 400 not an object,
 * 422 unknown field, wrong type or missing job_type, 403 a job type w does not allow. */
unsigned jb_wh_job_of(const jb_webhook_cfg *w, json_t *doc, jb_job_request *req, const char **field,
                      char *why, size_t whylen);

#endif
