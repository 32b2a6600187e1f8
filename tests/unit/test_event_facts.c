/* Issue 11, defect 17 (event parsing): an empty body says so, a fact that is not valid UTF-8 is
 * refused by name instead of vanishing from the metadata and the log, and an id that cannot
 * deduplicate is refused (require_event_id) or accepted with the reason recorded. Uses only the
 * event API, so it runs against the code before the fix too. No server needed. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/event.h"

static jb_delivery_facts facts(const char *body) {
  return (jb_delivery_facts){.body = body,
                             .body_len = strlen(body),
                             .exchange = "ex",
                             .routing_key = "order.created",
                             .received_at = 1795387650000000LL};
}

static void expect_refused(const jb_delivery_facts *f, bool require_id, const char *needle) {
  jb_event ev;
  jb_error e;
  jb_error_clear(&e);
  cr_expect_eq(jb_event_parse(f, 1 << 20, require_id, &ev, &e), JB_ERR_INVALID,
               "refused (wants \"%s\")", needle);
  cr_expect(strstr(e.msg, needle) != NULL, "\"%s\" should contain \"%s\"", e.msg, needle);
}

Test(event_facts, an_empty_body_says_so) {
  jb_delivery_facts f = facts("");
  f.body = NULL;
  expect_refused(&f, false, "body is empty");
  f.body = "";
  expect_refused(&f, false, "body is empty");
}

Test(event_facts, invalid_utf8_in_a_fact_is_refused_by_name) {
  const char *bad = "order.\xc3(";
  const char *body = "{\"event_type\": \"order.created\", \"id\": \"e1\"}";
  jb_delivery_facts f = facts(body);
  f.routing_key = bad;
  expect_refused(&f, false, "routing key is not valid UTF-8 (byte 6)");
  f = facts(body);
  f.exchange = bad;
  expect_refused(&f, false, "exchange name is not valid UTF-8");
  f = facts(body);
  f.message_id = bad;
  expect_refused(&f, false, "message_id is not valid UTF-8");
  f = facts(body);
  f.correlation_id = bad;
  expect_refused(&f, false, "correlation_id is not valid UTF-8");
  f = facts("{\"id\": \"e1\"}");
  f.type_property = bad;
  expect_refused(&f, false, "type property is not valid UTF-8");
  const char *names[] = {"ce-type", "ce-id", "ce-source"};
  for (size_t i = 0; i < 3; i++) {
    jb_header h[2] = {{"ce-type", "order.created"}, {names[i], bad}};
    f = facts("{}");
    f.headers = h + (i == 0 ? 1 : 0);
    f.n_headers = i == 0 ? 1 : 2;
    char needle[64];
    snprintf(needle, sizeof needle, "%s header is not valid UTF-8", names[i]);
    expect_refused(&f, false, needle);
  }
}

static const char *const mapping_cfg =
    "{\"job_types\": {\"a\": {\"handler\": \"noop\"}},"
    " \"mappings\": [{\"event_type\": \"order.created\", \"job_type\": \"a\"}]}";

/* Parses and maps body without require_id; returns the job's metadata "dedupe" (or NULL) and
 * its dedupe key through *key (or NULL). */
static char *dedupe_of(const char *body, const char *message_id, char **key) {
  jb_config *cfg;
  jb_error e;
  cr_assert_eq(jb_config_parse(mapping_cfg, "t", &cfg, &e), JB_OK, "%s", e.msg);
  jb_delivery_facts f = facts(body);
  f.message_id = message_id;
  jb_event ev;
  jb_mapped m;
  cr_assert_eq(jb_event_parse(&f, 1 << 20, false, &ev, &e), JB_OK, "%s: %s", body, e.msg);
  cr_assert_eq(jb_event_map(cfg, &ev, &f, &m, &e), JB_OK, "%s", e.msg);
  const char *d = json_string_value(json_object_get(m.reqs[0].opts.metadata, "dedupe"));
  char *out = d ? strdup(d) : NULL;
  *key = m.reqs[0].opts.dedupe_key ? strdup(m.reqs[0].opts.dedupe_key) : NULL;
  jb_mapped_clear(&m);
  jb_event_clear(&ev);
  jb_config_free(cfg);
  return out;
}

Test(event_facts, an_unusable_id_is_accepted_without_dedupe_and_says_so) {
  struct {
    const char *id, *why;
  } cases[] = {
      {"{\"k\": 1}", "none: id is an object"},     {"[1]", "none: id is an array"},
      {"true", "none: id is a boolean"},           {"null", "none: id is null"},
      {"1.5", "none: id is a non-integer number"}, {"\"\"", "none: id is an empty string"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char body[128], *key;
    snprintf(body, sizeof body, "{\"event_type\": \"order.created\", \"id\": %s}", cases[i].id);
    char *d = dedupe_of(body, NULL, &key);
    cr_expect(d != NULL && strcmp(d, cases[i].why) == 0, "%s: dedupe is %s", body,
              d ? d : "(absent)");
    cr_expect_null(key);
    free(d);
    free(key);
    /* CloudEvents structured: the same. */
    snprintf(body, sizeof body,
             "{\"specversion\": \"1.0\", \"type\": \"order.created\", \"id\": %s, \"data\": {}}",
             cases[i].id);
    d = dedupe_of(body, NULL, &key);
    cr_expect(d != NULL && strcmp(d, cases[i].why) == 0, "%s: dedupe is %s", body,
              d ? d : "(absent)");
    free(d);
    free(key);
  }
}

Test(event_facts, usable_ids_deduplicate_with_no_note) {
  char *key;
  char *d =
      dedupe_of("{\"event_type\": \"order.created\", \"id\": 12345678901234567890123}", NULL, &key);
  cr_expect_null(d);
  cr_expect_str_eq(key, "12345678901234567890123|a", "a big integer id still deduplicates");
  free(key);
  d = dedupe_of("{\"event_type\": \"order.created\", \"id\": {\"k\": 1}}", "m-1", &key);
  cr_expect_null(d, "the message_id deduplicates");
  cr_expect_str_eq(key, "m-1|a");
  free(key);
  d = dedupe_of("{\"event_type\": \"order.created\", \"id\": 7}", NULL, &key);
  cr_expect_null(d);
  cr_expect_str_eq(key, "7|a");
  free(key);
}

Test(event_facts, require_event_id_refuses_an_unusable_id_with_the_reason) {
  const char *ids[] = {"{\"k\": 1}", "[1]", "false", "2.5", "1e3"};
  const char *why[] = {"id is an object", "id is an array", "id is a boolean",
                       "id is a non-integer number", "id is a non-integer number"};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    char body[128];
    snprintf(body, sizeof body, "{\"event_type\": \"order.created\", \"id\": %s}", ids[i]);
    jb_delivery_facts f = facts(body);
    expect_refused(&f, true, why[i]);
  }
}
