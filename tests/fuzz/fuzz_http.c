/* libFuzzer target for the request side of the webhooks (src/http/webhook_sig.c and
 * webhook_event.c): signature headers (Stripe-Signature, X-Hub-Signature-256, a custom HMAC
 * header), the CloudEvents structured/binary facts of a request and its routing through the
 * mapping table, the fallback dedupe key and mode job's body. Nothing may crash, leak or trip a
 * sanitizer, and a signature is accepted exactly when it is the body's HMAC.
 *
 * Input layout: NUL-separated fields, in order: Stripe-Signature, X-Hub-Signature-256,
 * X-Sig (hmac), Content-Type, ce-type, ce-id, ce-source, Idempotency-Key, then the body (the
 * rest, NULs and all). A missing field is an absent header; an empty one an empty header. */
#include <gnutls/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/webhook.h"
#include "jobbridge/json.h"
#include "jobbridge/router.h"

#define NFIELDS 8
static const char *const names[NFIELDS] = {
    "Stripe-Signature", "X-Hub-Signature-256", "X-Sig", "Content-Type", "ce-type", "ce-id",
    "ce-source",        "Idempotency-Key"};

static jb_config *cfg;
static jb_router *router;
static char secret[] = "fuzz-secret";
static char *allowed[] = {"a", NULL};
static jb_webhook_cfg gh = {.name = "gh",
                            .mode = "event",
                            .signature = "github",
                            .secret = secret,
                            .tolerance_s = 300,
                            .dedupe = "/delivery/id"};
static jb_webhook_cfg st = {.name = "st",
                            .mode = "event",
                            .signature = "stripe",
                            .secret = secret,
                            .tolerance_s = 300,
                            .dedupe = "header:X-Sig"};
static jb_webhook_cfg hm = {.name = "hm",
                            .mode = "job",
                            .signature = "hmac",
                            .secret = secret,
                            .tolerance_s = 300,
                            .header = "X-Sig",
                            .prefix = "v1=",
                            .allowed_job_types = allowed,
                            .allowed_job_types_len = 1};

typedef struct req {
  const char *v[NFIELDS];
} req;

static const char *hdr(void *ctx, const char *name) {
  req *r = ctx;
  for (size_t i = 0; i < NFIELDS; i++)
    if (strcasecmp(names[i], name) == 0) return r->v[i];
  return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  jb_error e;
  const char *text =
      "{\"mappings\": [{\"event_type\": \"#\", \"job_type\": \"a\"},"
      " {\"event_type\": \"a.*\", \"job_type\": \"a\", \"payload\": \"/data\"}],"
      " \"job_types\": {\"a\": {\"handler\": \"noop\"}}}";
  if (jb_config_parse(text, "fuzz", &cfg, &e) != JB_OK) abort();
  if (jb_router_new(cfg, &router, &e) != JB_OK) abort();
  return 0;
}

/* The body's real GitHub signature verifies; with one digit changed it does not. */
static void check_consistency(const char *body, size_t len) {
  unsigned char mac[32];
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, strlen(secret), body, len, mac) < 0) abort();
  char sig[7 + 65];
  memcpy(sig, "sha256=", 7);
  for (size_t i = 0; i < 32; i++) snprintf(sig + 7 + 2 * i, 3, "%02X", mac[i]);
  req r = {{NULL}};
  r.v[1] = sig;
  char why[256];
  if (!jb_wh_verify(&gh, hdr, &r, body, len, 0, why, sizeof why)) abort();
  sig[7 + (len % 64)] = sig[7 + (len % 64)] == '0' ? '1' : '0';
  if (jb_wh_verify(&gh, hdr, &r, body, len, 0, why, sizeof why)) abort();
}

static void route(req *r, const char *body, size_t len) {
  jb_header hs[NFIELDS];
  size_t n = 0;
  for (size_t i = 3; i < NFIELDS; i++)
    if (r->v[i] != NULL) hs[n++] = (jb_header){names[i], r->v[i]};
  jb_wh_facts wf;
  char why[512];
  if (jb_wh_facts_of(hs, n, body, len, 1, &wf, why, sizeof why) != 0) return;
  jb_route_table *t = jb_router_acquire(router);
  jb_routed out = {0};
  jb_error e;
  if (jb_router_route(t, &wf.f, &out, &e) == JB_ROUTE_JOBS && out.event.dedupe_base == NULL) {
    char *key = NULL;
    json_t *doc = out.event.format == JB_EVENT_CE_BINARY ? out.event.data : out.event.body;
    jb_wh_fallback_key(&gh, doc, hdr, r, &key, why, sizeof why);
    free(key);
    jb_wh_fallback_key(&st, doc, hdr, r, &key, why, sizeof why);
    free(key);
  }
  jb_routed_clear(&out);
  jb_router_release(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  req r = {{NULL}};
  size_t at = 0, f = 0;
  for (; f < NFIELDS && at < size; f++) {
    r.v[f] = buf + at;
    char *nul = memchr(buf + at, '\0', size - at);
    if (nul == NULL) {
      at = size;
      break;
    }
    at = (size_t)(nul - buf) + 1;
  }
  const char *body = f == NFIELDS ? buf + at : "";
  size_t len = f == NFIELDS ? size - at : 0;

  char why[256];
  jb_wh_stripe_sig ss;
  if (r.v[0] != NULL) jb_wh_stripe_parse(r.v[0], &ss, why, sizeof why);
  unsigned char out[32];
  if (r.v[1] != NULL) jb_wh_hex32(r.v[1], strlen(r.v[1]), out);
  jb_wh_verify(&gh, hdr, &r, body, len, 1700000000, why, sizeof why);
  jb_wh_verify(&st, hdr, &r, body, len, 1700000000, why, sizeof why);
  jb_wh_verify(&hm, hdr, &r, body, len, 1700000000, why, sizeof why);
  check_consistency(body, len);
  route(&r, body, len);

  json_t *doc;
  jb_error e;
  if (jb_json_parse(body, len, &doc, &e) == JB_OK) {
    jb_job_request jr;
    const char *field;
    jb_wh_job_of(&hm, doc, &jr, &field, why, sizeof why);
    json_decref(doc);
  }
  free(buf);
  return 0;
}
