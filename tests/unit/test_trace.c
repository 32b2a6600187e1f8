/* Issue 16, item 4: W3C trace context: what a valid traceparent is, new traces, and where an
 * event's trace context is found (the trigger's own, the traceparent header, the CloudEvents
 * attribute of a structured or a binary event). No server needed. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/event.h"
#include "jobbridge/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Test(trace, valid_traceparents) {
  char out[JB_TRACEPARENT_LEN + 1];
  cr_expect(jb_traceparent_parse(TP, out));
  cr_expect_str_eq(out, TP);
  cr_expect(jb_traceparent_parse("  " TP " ", out), "blanks around are ignored");
  cr_expect(
      jb_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ext", out),
      "a later version may go on");
  cr_expect_str_eq(out, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

Test(trace, malformed_traceparents) {
  const char *bad[] = {
      NULL,
      "",
      "garbage",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 is exactly 55 */
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent id */
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
  };
  char out[JB_TRACEPARENT_LEN + 1] = "untouched";
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    cr_expect(!jb_traceparent_parse(bad[i], out), "refused: %s", bad[i] ? bad[i] : "NULL");
  cr_expect_str_eq(out, "untouched");
}

Test(trace, new_traces_are_valid_and_differ) {
  char a[JB_TRACEPARENT_LEN + 1], b[JB_TRACEPARENT_LEN + 1], c[JB_TRACEPARENT_LEN + 1];
  jb_traceparent_new(a);
  jb_traceparent_new(b);
  cr_expect(jb_traceparent_parse(a, c), "%s", a);
  cr_expect_eq(strncmp(a, "00-", 3), 0);
  cr_expect_eq(strcmp(a + 53, "01"), 0, "sampled");
  cr_expect_neq(strcmp(a, b), 0);
  char id[33];
  jb_trace_id(a, id);
  cr_expect_eq(strlen(id), 32);
  cr_expect_eq(strncmp(id, a + 3, 32), 0);
  jb_trace_id("", id);
  cr_expect_str_eq(id, "");
}

Test(trace, tracestate) {
  cr_expect(jb_tracestate_valid("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
  cr_expect(!jb_tracestate_valid(""));
  cr_expect(!jb_tracestate_valid(NULL));
  cr_expect(!jb_tracestate_valid("a=b\nc=d"));
  char big[600];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  cr_expect(!jb_tracestate_valid(big));
}

/* ---- where an event's trace context comes from ---- */

static jb_config *cfg;

static void setup(void) {
  jb_error e;
  cr_assert_eq(jb_config_parse("{\"mappings\": [{\"event_type\": \"o.#\", \"job_type\": \"t\"}],"
                               "\"job_types\": {\"t\": {\"handler\": \"noop\"}}}",
                               "t.json", &cfg, &e),
               JB_OK, "%s", e.msg);
}

static void teardown(void) {
  jb_config_free(cfg);
}

/* The traceparent and tracestate the event's job request carries ("" for none). */
static void map(jb_delivery_facts *f, char *tp, char *ts) {
  jb_event ev;
  jb_mapped m;
  jb_error e;
  f->body_len = strlen(f->body);
  f->received_at = 1795387650000000LL;
  cr_assert_eq(jb_event_parse(f, 1 << 20, false, &ev, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(jb_event_map(cfg, &ev, f, &m, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(m.n, 1);
  snprintf(tp, 128, "%s", m.reqs[0].opts.traceparent ? m.reqs[0].opts.traceparent : "");
  snprintf(ts, 128, "%s", m.reqs[0].opts.tracestate ? m.reqs[0].opts.tracestate : "");
  jb_mapped_clear(&m);
  jb_event_clear(&ev);
}

#define TP2 "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"

Test(trace_sources, header_attribute_and_trigger, .init = setup, .fini = teardown) {
  char tp[128], ts[128];
  jb_delivery_facts f = {.body = "{\"event_type\": \"o.a\", \"id\": \"1\", \"payload\": {}}"};
  map(&f, tp, ts);
  cr_expect_str_eq(tp, "", "none: the job service starts a trace");

  jb_header h[2] = {{"traceparent", TP}, {"tracestate", "k=v"}};
  f.headers = h;
  f.n_headers = 2;
  map(&f, tp, ts);
  cr_expect_str_eq(tp, TP, "the AMQP header");
  cr_expect_str_eq(ts, "k=v");

  jb_delivery_facts s = {.body =
                             "{\"specversion\": \"1.0\", \"type\": \"o.a\", \"id\": \"1\", "
                             "\"source\": \"s\", \"traceparent\": \"" TP2 "\", \"data\": {}}"};
  map(&s, tp, ts);
  cr_expect_str_eq(tp, TP2, "the structured CloudEvent's attribute");
  s.headers = h;
  s.n_headers = 1;
  map(&s, tp, ts);
  cr_expect_str_eq(tp, TP, "the header first");

  jb_header bh[3] = {{"ce-type", "o.a"}, {"ce-id", "2"}, {"ce-traceparent", TP2}};
  jb_delivery_facts b = {.body = "{}", .headers = bh, .n_headers = 3};
  map(&b, tp, ts);
  cr_expect_str_eq(tp, TP2, "the binary CloudEvent's ce-traceparent");

  b.traceparent = TP; /* a webhook's own header */
  map(&b, tp, ts);
  cr_expect_str_eq(tp, TP, "the trigger's own first");

  jb_header bad[1] = {{"traceparent", "not-a-trace"}};
  f.headers = bad;
  f.n_headers = 1;
  map(&f, tp, ts);
  cr_expect_str_eq(tp, "not-a-trace", "passed on: the job service checks it (and logs)");
}
