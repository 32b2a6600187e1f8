/* Event parsing, topic patterns, JSON pointers and the mapping of events to job requests. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/event.h"

static jb_delivery_facts facts(const char *body) {
  return (jb_delivery_facts){.body = body,
                             .body_len = strlen(body),
                             .exchange = "ex",
                             .routing_key = "rk",
                             .received_at = 1795387650000000LL};
}

static void parse_ok(jb_delivery_facts *f, jb_event *ev) {
  jb_error e;
  jb_error_clear(&e);
  cr_assert_eq(jb_event_parse(f, 1 << 20, false, ev, &e), JB_OK, "%s", e.msg);
}

static void parse_bad(jb_delivery_facts *f, size_t max, bool require_id, const char *needle) {
  jb_event ev;
  jb_error e;
  jb_error_clear(&e);
  cr_expect_eq(jb_event_parse(f, max, require_id, &ev, &e), JB_ERR_INVALID, "for %.*s",
               (int)f->body_len, f->body);
  cr_expect(strstr(e.msg, needle) != NULL, "\"%s\" should contain \"%s\"", e.msg, needle);
}

Test(event, plain_json) {
  jb_delivery_facts f = facts(
      "{\"event_type\": \"order.created\", \"id\": \"e1\", "
      "\"payload\": {\"order\": 7}}");
  jb_event ev;
  parse_ok(&f, &ev);
  cr_expect_eq(ev.format, JB_EVENT_PLAIN);
  cr_expect_str_eq(ev.event_type, "order.created");
  cr_expect_str_eq(ev.event_id, "e1");
  cr_expect_str_eq(ev.dedupe_base, "e1");
  cr_expect_eq(json_integer_value(json_object_get(ev.data, "order")), 7);
  jb_event_clear(&ev);
}

Test(event, plain_json_alternatives) {
  jb_delivery_facts f = facts("{\"event_type\": \"a\", \"event_id\": 42, \"data\": {\"x\": 1}}");
  jb_event ev;
  parse_ok(&f, &ev);
  cr_expect_str_eq(ev.event_id, "42", "numeric ids become text");
  cr_expect_not_null(json_object_get(ev.data, "x"), "data when there is no payload");
  jb_event_clear(&ev);
}

Test(event, message_id_wins_for_dedupe) {
  jb_delivery_facts f = facts("{\"event_type\": \"a\", \"id\": \"body-id\"}");
  f.message_id = "msg-1";
  jb_event ev;
  parse_ok(&f, &ev);
  cr_expect_str_eq(ev.dedupe_base, "msg-1");
  cr_expect_null(ev.data);
  jb_event_clear(&ev);
}

Test(event, cloudevents_structured) {
  jb_delivery_facts f = facts(
      "{\"specversion\": \"1.0\", \"type\": \"user.x.updated\", "
      "\"id\": \"c1\", \"source\": \"/users\", \"data\": {\"u\": 1}}");
  f.content_type = "application/cloudevents+json; charset=utf-8";
  jb_event ev;
  parse_ok(&f, &ev);
  cr_expect_eq(ev.format, JB_EVENT_CE_STRUCTURED);
  cr_expect_str_eq(ev.event_type, "user.x.updated");
  cr_expect_str_eq(ev.source, "/users");
  cr_expect_str_eq(ev.dedupe_base, "/users/c1");
  cr_expect_not_null(json_object_get(ev.data, "u"));
  jb_event_clear(&ev);
}

Test(event, cloudevents_binary_header_spellings) {
  const char *names[] = {"ce-type", "cloudEvents:type", "cloudEvents_type", "type"};
  for (int i = 0; i < 4; i++) {
    jb_header h[3] = {{names[i], "thing.done"}, {"ce-id", "b1"}, {"ce-source", "src"}};
    jb_delivery_facts f = facts("{\"k\": \"v\"}");
    f.headers = h;
    f.n_headers = 3;
    jb_event ev;
    parse_ok(&f, &ev);
    cr_expect_eq(ev.format, JB_EVENT_CE_BINARY, "%s", names[i]);
    cr_expect_str_eq(ev.event_type, "thing.done");
    cr_expect_str_eq(ev.dedupe_base, "src/b1");
    cr_expect_str_eq(json_string_value(json_object_get(ev.data, "k")), "v");
    jb_event_clear(&ev);
  }
}

Test(event, amqp_type_property_is_the_fallback) {
  jb_delivery_facts f = facts("{\"payload\": {}}");
  f.type_property = "legacy.event";
  jb_event ev;
  parse_ok(&f, &ev);
  cr_expect_str_eq(ev.event_type, "legacy.event");
  cr_expect_null(ev.dedupe_base, "no id: accepted without dedupe");
  jb_event_clear(&ev);
}

Test(event, bad_input_reasons) {
  jb_delivery_facts f = facts("{\"event_type\": ");
  parse_bad(&f, 1 << 20, false, "malformed JSON");
  f = facts("[1, 2]");
  parse_bad(&f, 1 << 20, false, "not an object");
  f = facts("{\"event_type\": \"a\", \"x\": \"\xff\xfe\"}");
  parse_bad(&f, 1 << 20, false, "not valid UTF-8 (byte 26)");
  f = facts("{\"event_type\": \"\xed\xa0\x80\"}"); /* a UTF-16 surrogate */
  parse_bad(&f, 1 << 20, false, "not valid UTF-8");
  f = facts("{\"event_type\": \"a\", \"pad\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
  parse_bad(&f, 20, false, "exceeds ingest.max_body_bytes (20)");
  f = facts("{\"payload\": {}}");
  parse_bad(&f, 1 << 20, false, "no event type");
  f = facts("{\"event_type\": \"a\"}");
  parse_bad(&f, 1 << 20, true, "event has no id");
  f = facts("{\"event_type\": \"a\", \"id\": 1, \"id\": 2}");
  parse_bad(&f, 1 << 20, false, "duplicate object key");
  char big[400];
  memset(big, 'a', sizeof big);
  memcpy(big, "{\"event_type\": \"", 16);
  memcpy(big + sizeof big - 3, "\"}", 3);
  f = facts(big);
  parse_bad(&f, 1 << 20, false, "longer than 255 bytes");
}

typedef struct match_case {
  const char *pattern, *topic;
  bool want;
} match_case;

Test(topic, match) {
  static const match_case cases[] = {
      {"a.b", "a.b", true},
      {"a.b", "a.c", false},
      {"a.b", "a.b.c", false},
      {"a.b.c", "a.b", false},
      {"a.*", "a.b", true},
      {"a.*", "a", false},
      {"a.*", "a.b.c", false},
      {"*.b", "a.b", true},
      {"*", "a", true},
      {"*", "a.b", false},
      {"#", "a", true},
      {"#", "a.b.c", true},
      {"a.#", "a", true},
      {"a.#", "a.b.c", true},
      {"a.#", "b.a", false},
      {"#.c", "c", true},
      {"#.c", "a.b.c", true},
      {"#.c", "a.b", false},
      {"a.#.c", "a.c", true},
      {"a.#.c", "a.b.b.c", true},
      {"a.#.c", "a.b.d", false},
      {"#.#", "a", true},
      {"a.*.#", "a", false},
      {"a.*.#", "a.b", true},
      {"order.created", "order.created.v2", false},
      {"#.b.#", "a.b.c", true},
      {"user.*.updated", "user.42.updated", true},
      {"user.*.updated", "user.updated", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_expect_eq(jb_topic_match(cases[i].pattern, cases[i].topic), cases[i].want, "%s vs %s",
                 cases[i].pattern, cases[i].topic);
}

Test(json_pointer, rfc6901) {
  json_t *doc = json_loads("{\"a\": {\"b/c\": [10, {\"~d\": 5}]}, \"\": 1}", 0, NULL);
  cr_expect_eq(jb_json_pointer(doc, ""), doc);
  cr_expect_eq(json_integer_value(jb_json_pointer(doc, "/a/b~1c/0")), 10);
  cr_expect_eq(json_integer_value(jb_json_pointer(doc, "/a/b~1c/1/~0d")), 5);
  cr_expect_eq(json_integer_value(jb_json_pointer(doc, "/")), 1);
  cr_expect_null(jb_json_pointer(doc, "/a/b~1c/2"));
  cr_expect_null(jb_json_pointer(doc, "/a/b~1c/01"));
  cr_expect_null(jb_json_pointer(doc, "/a/x"));
  cr_expect_null(jb_json_pointer(doc, "a"));
  cr_expect_null(jb_json_pointer(doc, "/a/~2"));
  json_decref(doc);
}

static jb_config *load(const char *text) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  return cfg;
}

static const char *const MAPCFG =
    "{\"mappings\": ["
    " {\"event_type\": \"order.created\", \"job_type\": \"receipt\", \"queue\": \"email\","
    "  \"priority\": 5, \"max_retries\": 2, \"payload\": \"/payload/order\","
    "  \"metadata\": {\"team\": \"billing\", \"event_type\": \"overridden\"}},"
    " {\"event_type\": \"order.#\", \"job_type\": \"audit\", \"delay_s\": 30},"
    " {\"event_type\": \"user.*\", \"job_type\": \"audit\"}],"
    " \"job_types\": {\"receipt\": {\"handler\": \"noop\"}, \"audit\": {\"handler\": \"noop\"}}}";

Test(mapping, fan_out_with_every_field) {
  jb_config *cfg = load(MAPCFG);
  jb_delivery_facts f = facts(
      "{\"event_type\": \"order.created\", \"id\": \"e9\", "
      "\"payload\": {\"order\": {\"n\": 1}, \"other\": 2}}");
  f.correlation_id = "corr-1";
  jb_event ev;
  parse_ok(&f, &ev);
  jb_mapped m;
  jb_error e;
  cr_assert_eq(jb_event_map(cfg, &ev, &f, &m, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(m.n, 2, "fan-out: two mappings match");
  jb_job_request *r = &m.reqs[0];
  cr_expect_str_eq(r->job_type, "receipt");
  cr_expect_str_eq(r->queue_name, "email");
  cr_expect_eq(r->priority, 5);
  cr_expect_eq(r->opts.max_retries, 2);
  cr_expect_eq(json_integer_value(json_object_get(r->payload, "n")), 1, "pointer selects");
  cr_expect_str_eq(r->opts.dedupe_key, "e9|receipt");
  json_t *md = r->opts.metadata;
  cr_expect_str_eq(json_string_value(json_object_get(md, "team")), "billing");
  cr_expect_str_eq(json_string_value(json_object_get(md, "event_type")), "order.created",
                   "event facts win over static metadata");
  cr_expect_str_eq(json_string_value(json_object_get(md, "event_id")), "e9");
  cr_expect_str_eq(json_string_value(json_object_get(md, "exchange")), "ex");
  cr_expect_str_eq(json_string_value(json_object_get(md, "routing_key")), "rk");
  cr_expect_str_eq(json_string_value(json_object_get(md, "correlation_id")), "corr-1");
  cr_expect_str_eq(json_string_value(json_object_get(md, "received_at")),
                   "2026-11-22T22:47:30.000000Z");
  cr_expect_eq(r->opts.scheduled_at, 0);
  r = &m.reqs[1];
  cr_expect_str_eq(r->job_type, "audit");
  cr_expect_str_eq(r->queue_name, "default");
  cr_expect_eq(r->opts.max_retries, -1);
  cr_expect_not_null(json_object_get(r->payload, "other"), "default payload: the event's");
  cr_expect_eq(r->opts.scheduled_at, f.received_at + 30000000LL, "delay_s");
  cr_expect_str_eq(r->opts.dedupe_key, "e9|audit");
  jb_mapped_clear(&m);
  jb_event_clear(&ev);
  jb_config_free(cfg);
}

static void map_bad(jb_config *cfg, const char *body, const char *needle) {
  jb_delivery_facts f = facts(body);
  jb_event ev;
  parse_ok(&f, &ev);
  jb_mapped m;
  jb_error e;
  jb_error_clear(&e);
  cr_expect_eq(jb_event_map(cfg, &ev, &f, &m, &e), JB_ERR_INVALID, "for %s", body);
  cr_expect(strstr(e.msg, needle) != NULL, "\"%s\" should contain \"%s\"", e.msg, needle);
  cr_expect_eq(m.n, 0);
  jb_event_clear(&ev);
}

Test(mapping, bad_events) {
  jb_config *cfg = load(MAPCFG);
  map_bad(cfg, "{\"event_type\": \"invoice.paid\"}",
          "no mapping matches event type \"invoice.paid\"");
  map_bad(cfg, "{\"event_type\": \"order.created\", \"payload\": {}}",
          "payload pointer \"/payload/order\" finds nothing");
  map_bad(cfg, "{\"event_type\": \"order.created\", \"payload\": {\"order\": 3}}",
          "the payload selected by /payload/order is not a JSON object");
  map_bad(cfg, "{\"event_type\": \"user.x\", \"payload\": [1]}", "is not a JSON object");
  jb_config_free(cfg);
}

Test(mapping, whole_body_when_no_payload_or_data) {
  jb_config *cfg = load(MAPCFG);
  jb_delivery_facts f = facts("{\"event_type\": \"user.x\", \"name\": \"n\"}");
  jb_event ev;
  parse_ok(&f, &ev);
  jb_mapped m;
  jb_error e;
  cr_assert_eq(jb_event_map(cfg, &ev, &f, &m, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(json_string_value(json_object_get(m.reqs[0].payload, "name")), "n");
  cr_expect_null(m.reqs[0].opts.dedupe_key, "no id: no dedupe key");
  jb_mapped_clear(&m);
  jb_event_clear(&ev);
  jb_config_free(cfg);
}
