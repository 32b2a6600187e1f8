/* The webhook request code of src/http (webhook_sig.c, webhook_event.c): signatures against
 * digests computed outside jobbridge (GitHub's documented example; openssl dgst -hmac for the
 * others), Stripe-Signature parsing, the facts of CloudEvents requests and mode job's body. */
#include <criterion/criterion.h>
#include <string.h>
#include <strings.h>

#include "http/webhook.h"

typedef struct hdrs {
  const char *name, *value;
} hdrs;

static const char *lookup(void *ctx, const char *name) {
  for (hdrs *h = ctx; h->name != NULL; h++)
    if (strcasecmp(h->name, name) == 0) return h->value;
  return NULL;
}

static bool verify(jb_webhook_cfg *w, hdrs *h, const char *body, int64_t now, char *why) {
  return jb_wh_verify(w, lookup, h, body, strlen(body), now, why, 256);
}

Test(webhook_sig, github_documented_example) {
  jb_webhook_cfg w = {.name = "gh", .signature = "github", .secret = "It's a Secret to Everybody"};
  char why[256];
  hdrs ok[] = {{"X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
               {NULL, NULL}};
  cr_assert(verify(&w, ok, "Hello, World!", 0, why), "%s", why);
  cr_assert_not(verify(&w, ok, "Hello, World?", 0, why));
  cr_assert_str_eq(why,
                   "X-Hub-Signature-256 does not match the body (wrong secret, or the body was "
                   "changed)");
  hdrs none[] = {{NULL, NULL}};
  cr_assert_not(verify(&w, none, "Hello, World!", 0, why));
  cr_assert_str_eq(why, "no X-Hub-Signature-256 header");
  hdrs short_[] = {{"X-Hub-Signature-256", "sha256=757107"}, {NULL, NULL}};
  cr_assert_not(verify(&w, short_, "Hello, World!", 0, why));
  cr_assert(strstr(why, "64 hex digits") != NULL);
  cr_assert(strstr(why, "Secret") == NULL, "the secret is never in the reason");
}

Test(webhook_sig, stripe_timestamp_and_several_v1) {
  jb_webhook_cfg w = {
      .name = "st", .signature = "stripe", .secret = "whsec_test", .tolerance_s = 300};
  const char *good = "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789";
  char hv[300], why[256];
  snprintf(hv, sizeof hv, "t=1700000000,v1=%064d,v0=zzz,v1=%s", 0, good);
  hdrs h[] = {{"Stripe-Signature", hv}, {NULL, NULL}};
  cr_assert(verify(&w, h, "{\"a\":1}", 1700000000 + 299, why), "%s", why);
  cr_assert(verify(&w, h, "{\"a\":1}", 1700000000 - 300, why), "%s", why);
  cr_assert_not(verify(&w, h, "{\"a\":1}", 1700000000 + 301, why));
  cr_assert(strstr(why, "tolerance_s (300)") != NULL, "%s", why);
  cr_assert_not(verify(&w, h, "{\"a\":2}", 1700000000, why));
  cr_assert(strstr(why, "no v1 signature matches") != NULL, "%s", why);
}

Test(webhook_sig, stripe_header_parsing) {
  jb_wh_stripe_sig s;
  char why[256];
  cr_assert(jb_wh_stripe_parse("t=12,v1=ab,v1=cd", &s, why, sizeof why));
  cr_assert_eq(s.t, 12);
  cr_assert_eq(s.nv1, 2);
  cr_assert_eq(s.v1_len[1], 2);
  cr_assert_not(jb_wh_stripe_parse("v1=ab", &s, why, sizeof why));
  cr_assert_str_eq(why, "Stripe-Signature: no t= timestamp");
  cr_assert_not(jb_wh_stripe_parse("t=12", &s, why, sizeof why));
  cr_assert_str_eq(why, "Stripe-Signature: no v1 signature");
  cr_assert_not(jb_wh_stripe_parse("t=1.5,v1=ab", &s, why, sizeof why));
  cr_assert_not(jb_wh_stripe_parse("t=12,garbage", &s, why, sizeof why));
  cr_assert_not(
      jb_wh_stripe_parse("t=1,v1=a,v1=a,v1=a,v1=a,v1=a,v1=a,v1=a,v1=a,v1=a", &s, why, sizeof why));
  cr_assert_not(jb_wh_stripe_parse("", &s, why, sizeof why));
}

Test(webhook_sig, hmac_header_and_prefix) {
  jb_webhook_cfg w = {
      .name = "p", .signature = "hmac", .secret = "k", .header = "X-Sig", .prefix = "v1="};
  char why[256];
  hdrs ok[] = {{"x-sig", "v1=C3A92FF9E274CDCCE27A58C15A78EC6DCBBDBD0038A87E7A11BAEF2028FD8BFF"},
               {NULL, NULL}};
  cr_assert(verify(&w, ok, "{\"a\":1}", 0, why), "%s", why);
  hdrs noprefix[] = {{"X-Sig", "c3a92ff9e274cdcce27a58c15a78ec6dcbbdbd0038a87e7a11baef2028fd8bff"},
                     {NULL, NULL}};
  cr_assert_not(verify(&w, noprefix, "{\"a\":1}", 0, why));
  cr_assert_str_eq(why, "X-Sig does not start with \"v1=\"");
}

Test(webhook_event, facts_of_binary_and_structured_requests) {
  jb_header h[] = {{"Content-Type", "application/json; charset=utf-8"},
                   {"ce-type", "a.b"},
                   {"CE-Id", "7"},
                   {"Idempotency-Key", "k1"},
                   {"X-Other", "ignored"}};
  jb_wh_facts wf;
  char why[256];
  cr_assert_eq(jb_wh_facts_of(h, 5, "{}", 2, 1, &wf, why, sizeof why), 0, "%s", why);
  cr_assert_eq(wf.f.n_headers, 2);
  cr_assert_str_eq(wf.f.message_id, "k1");
  jb_header xml[] = {{"Content-Type", "text/xml"}};
  cr_assert_eq(jb_wh_facts_of(xml, 1, "{}", 2, 1, &wf, why, sizeof why), 415);
  jb_header batch[] = {{"Content-Type", "application/cloudevents-batch+json"}};
  cr_assert_eq(jb_wh_facts_of(batch, 1, "[]", 2, 1, &wf, why, sizeof why), 415);
  cr_assert(strstr(why, "batch") != NULL);
  jb_header gh[] = {{"Content-Type", "application/vnd.github+json"}};
  cr_assert_eq(jb_wh_facts_of(gh, 1, "{}", 2, 1, &wf, why, sizeof why), 0, "%s", why);
}

Test(webhook_event, job_body_fields_and_allowlist) {
  char *allowed[] = {"email.send", NULL};
  jb_webhook_cfg w = {
      .name = "d", .mode = "job", .allowed_job_types = allowed, .allowed_job_types_len = 1};
  jb_job_request r;
  const char *field;
  char why[256];
  json_t *ok = json_pack("{s:s, s:{}, s:s, s:i}", "job_type", "email.send", "payload", "queue_name",
                         "mail", "priority", 3);
  cr_assert_eq(jb_wh_job_of(&w, ok, &r, &field, why, sizeof why), 0, "%s", why);
  cr_assert_str_eq(r.queue_name, "mail");
  cr_assert_eq(r.priority, 3);
  json_t *other = json_pack("{s:s}", "job_type", "audit");
  cr_assert_eq(jb_wh_job_of(&w, other, &r, &field, why, sizeof why), 403);
  cr_assert_str_eq(field, "job_type");
  json_t *unknown = json_pack("{s:s, s:i}", "job_type", "email.send", "colour", 1);
  cr_assert_eq(jb_wh_job_of(&w, unknown, &r, &field, why, sizeof why), 422);
  cr_assert_str_eq(field, "colour");
  json_t *arr = json_array();
  cr_assert_eq(jb_wh_job_of(&w, arr, &r, &field, why, sizeof why), 400);
  json_decref(ok);
  json_decref(other);
  json_decref(unknown);
  json_decref(arr);
}

Test(webhook_event, reasons_name_the_http_facts) {
  char out[256];
  jb_wh_reason("the AMQP message_id is not valid UTF-8 (byte 3)", NULL, out, sizeof out);
  cr_assert_str_eq(out, "the Idempotency-Key header is not valid UTF-8 (byte 3)");
  jb_wh_reason("no event type (looked for x, and the AMQP type property)", "X-GitHub-Event", out,
               sizeof out);
  cr_assert_str_eq(out, "no event type (looked for x, and the X-GitHub-Event header)");
  jb_wh_reason("malformed JSON body: x", NULL, out, sizeof out);
  cr_assert_str_eq(out, "malformed JSON body: x");
}
