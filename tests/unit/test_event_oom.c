/* Running out of memory while an event is parsed and mapped (review of issue 11): every failed
 * allocation gives JB_ERR_NOMEM, which ingest retries, never JB_ERR_INVALID (a good event
 * dead-lettered: "no event type") and never a quiet success with a fact missing (no dedupe key,
 * another dedupe key, metadata without its source). Each allocation of a parse+map is made to
 * fail in turn, through a malloc of this program's own that wraps glibc's. No server needed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/event.h"
#include "jobbridge/json.h"

#if defined(__SANITIZE_ADDRESS__)
#define JB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JB_ASAN 1
#endif
#endif

/* glibc's allocator under its exported names; ours fails allocation number fail_at (counting
 * from 0 since the test armed it) and no other. Not under ASan, which owns malloc itself. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static long fail_at = -1, count = 0;
#ifndef JB_ASAN
static bool fail_now(void) {
  return fail_at >= 0 && count++ == fail_at;
}
void *malloc(size_t n) {
  return fail_now() ? NULL : __libc_malloc(n);
}
void *calloc(size_t n, size_t m) {
  return fail_now() ? NULL : __libc_calloc(n, m);
}
void *realloc(void *p, size_t n) {
  return fail_now() ? NULL : __libc_realloc(p, n);
}
void free(void *p) {
  __libc_free(p);
}
#endif

static const char *const CFG =
    "{\"mappings\": ["
    " {\"event_type\": \"order.created\", \"job_type\": \"receipt\", \"payload\": \"/payload\","
    "  \"metadata\": {\"team\": \"billing\"}},"
    " {\"event_type\": \"order.#\", \"job_type\": \"audit\", \"delay_s\": 30}],"
    " \"job_types\": {\"receipt\": {\"handler\": \"noop\"}, \"audit\": {\"handler\": \"noop\"}}}";

typedef struct result {
  jb_err parse_rc, map_rc;
  jb_event ev;
  jb_mapped m;
  char msg[512];
} result;

static void run(const jb_config *cfg, const jb_delivery_facts *f, long fail, result *r) {
  jb_error e;
  jb_error_clear(&e);
  memset(r, 0, sizeof *r);
  r->map_rc = -1;
  fail_at = fail;
  count = 0;
  r->parse_rc = jb_event_parse(f, 1 << 20, false, &r->ev, &e);
  if (r->parse_rc == JB_OK) r->map_rc = jb_event_map(cfg, &r->ev, f, &r->m, &e);
  fail_at = -1;
  snprintf(r->msg, sizeof r->msg, "%s", e.msg);
}

static void same_str(const char *a, const char *b, const char *what, long k) {
  cr_expect((a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0),
            "allocation %ld failing: %s is \"%s\", wanted \"%s\"", k, what, a ? a : "(null)",
            b ? b : "(null)");
}

static void sweep(const jb_delivery_facts *f) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse(CFG, "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  result want;
  run(cfg, f, -1, &want);
  cr_assert_eq(want.parse_rc, JB_OK, "%s", want.msg);
  cr_assert_eq(want.map_rc, JB_OK, "%s", want.msg);
  long k;
  for (k = 0; k < 10000; k++) {
    result got;
    run(cfg, f, k, &got);
    bool reached = count > k;
    if (got.parse_rc != JB_OK || got.map_rc != JB_OK) {
      jb_err rc = got.parse_rc != JB_OK ? got.parse_rc : got.map_rc;
      cr_expect_eq(rc, JB_ERR_NOMEM, "allocation %ld failing gives NOMEM, not %d: %s", k, rc,
                   got.msg);
    } else {
      same_str(got.ev.event_type, want.ev.event_type, "event_type", k);
      same_str(got.ev.event_id, want.ev.event_id, "event_id", k);
      same_str(got.ev.source, want.ev.source, "source", k);
      same_str(got.ev.dedupe_base, want.ev.dedupe_base, "dedupe_base", k);
      same_str(got.ev.dedupe_note, want.ev.dedupe_note, "dedupe_note", k);
      cr_expect_eq(got.m.n, want.m.n, "allocation %ld failing: %zu requests", k, got.m.n);
      for (size_t i = 0; i < got.m.n && i < want.m.n; i++) {
        same_str(got.m.reqs[i].opts.dedupe_key, want.m.reqs[i].opts.dedupe_key, "dedupe_key", k);
        cr_expect(json_equal(got.m.reqs[i].opts.metadata, want.m.reqs[i].opts.metadata),
                  "allocation %ld failing: the metadata of request %zu differs", k, i);
      }
    }
    jb_mapped_clear(&got.m);
    jb_event_clear(&got.ev);
    if (!reached) break; /* every allocation has been made to fail once */
  }
  cr_expect_gt(k, 10, "allocations were made to fail (%ld)", k);
  jb_mapped_clear(&want.m);
  jb_event_clear(&want.ev);
  jb_config_free(cfg);
}

static jb_delivery_facts facts(const char *body) {
  return (jb_delivery_facts){.body = body,
                             .body_len = strlen(body),
                             .exchange = "ex",
                             .routing_key = "order.created",
                             .received_at = 1795387650000000LL};
}

#ifdef JB_ASAN
#define SKIP_UNDER_ASAN() cr_skip_test("needs its own malloc, which ASan does not allow")
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

Test(event_oom, plain_event_with_an_id) {
  SKIP_UNDER_ASAN();
  jb_delivery_facts f =
      facts("{\"event_type\": \"order.created\", \"id\": \"e1\", \"payload\": {\"n\": 19.99}}");
  f.correlation_id = "corr-1";
  sweep(&f);
}

Test(event_oom, cloudevent_structured_with_a_source) {
  SKIP_UNDER_ASAN();
  jb_delivery_facts f = facts(
      "{\"specversion\": \"1.0\", \"type\": \"order.created\", \"id\": \"e2\", "
      "\"source\": \"/shop\", \"payload\": {\"n\": 1}}");
  sweep(&f);
}

Test(event_oom, cloudevent_binary_and_a_message_id) {
  SKIP_UNDER_ASAN();
  jb_header h[] = {{"ce-type", "order.created"}, {"ce-id", "e3"}, {"ce-source", "/shop"}};
  jb_delivery_facts f = facts("{\"payload\": {\"n\": 1}}");
  f.headers = h;
  f.n_headers = 3;
  f.message_id = "m-3";
  sweep(&f);
}

Test(event_oom, type_property_and_an_unusable_id) {
  SKIP_UNDER_ASAN();
  jb_delivery_facts f = facts("{\"id\": {\"x\": 1}, \"payload\": {\"n\": 1}}");
  f.type_property = "order.created";
  sweep(&f);
}
