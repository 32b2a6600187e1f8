/* The config's sections as nested structs (cfg->amqp.input.queue ...), and mappings[] and
 * job_types.* read by the one generic mechanism for arrays and maps of tables. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/config.h"

static void unset_env(void) {
  unsetenv("JOBBRIDGE_AMQP_URL");
  unsetenv("JOBBRIDGE_DATABASE_URL");
}

TestSuite(config_sections, .init = unset_env);

static jb_config *parse_ok(const char *text) {
  jb_config *cfg = NULL;
  jb_error e;
  jb_error_clear(&e);
  cr_assert_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  return cfg;
}

static void expect_bad(const char *text, const char *needle) {
  jb_config *cfg = NULL;
  jb_error e;
  jb_error_clear(&e);
  cr_assert_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_ERR_CONFIG, "accepted: %s", text);
  cr_expect(strstr(e.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", e.msg, needle);
  cr_expect_null(cfg);
}

Test(config_sections, every_section_lands_in_its_struct) {
  jb_config *cfg = parse_ok(
      "{\"amqp\": {\"url\": \"amqp://u@h:1/v\", \"heartbeat_s\": 7, \"prefetch\": 9,"
      " \"input\": {\"exchange\": \"ix\", \"exchange_type\": \"fanout\", \"queue\": \"iq\","
      "  \"bindings\": [\"a.#\", \"b\"], \"queue_type\": \"quorum\","
      "  \"dead_letter_exchange\": \"dlx\"},"
      " \"output\": {\"exchange\": \"ox\", \"exchange_type\": \"direct\","
      "  \"alternate_exchange\": \"ae\"}},"
      " \"database\": {\"url\": \"postgresql://d@h/db\", \"schema\": \"s1\"},"
      " \"ingest\": {\"batch_max\": 3, \"batch_wait_ms\": 4, \"consumers\": 5,"
      "  \"max_body_bytes\": 6, \"require_event_id\": true},"
      " \"workers\": {\"enabled\": false, \"threads\": 2, \"queues\": [\"q\"], \"lease_s\": 11,"
      "  \"poll_ms\": 12, \"shutdown_grace_s\": 1.5},"
      " \"retry\": {\"base_s\": 2, \"max_s\": 20, \"jitter\": 0.1}}");
  const jb_amqp_cfg *a = &cfg->amqp;
  cr_expect_str_eq(a->url, "amqp://u@h:1/v");
  cr_expect_eq(a->heartbeat_s, 7);
  cr_expect_eq(a->prefetch, 9);
  cr_expect_str_eq(a->input.exchange, "ix");
  cr_expect_str_eq(a->input.exchange_type, "fanout");
  cr_expect_str_eq(a->input.queue, "iq");
  cr_assert_eq(a->input.bindings_len, 2);
  cr_expect_str_eq(a->input.bindings[1], "b");
  cr_expect_null(a->input.bindings[2]);
  cr_expect_str_eq(a->input.queue_type, "quorum");
  cr_expect_str_eq(a->input.dead_letter_exchange, "dlx");
  cr_expect_str_eq(a->output.exchange, "ox");
  cr_expect_str_eq(a->output.exchange_type, "direct");
  cr_expect_str_eq(a->output.alternate_exchange, "ae");
  cr_expect_str_eq(cfg->database.url, "postgresql://d@h/db");
  cr_expect_str_eq(cfg->database.schema, "s1");
  cr_expect_eq(cfg->ingest.batch_max, 3);
  cr_expect_eq(cfg->ingest.batch_wait_ms, 4);
  cr_expect_eq(cfg->ingest.consumers, 5);
  cr_expect_eq(cfg->ingest.max_body_bytes, 6);
  cr_expect(cfg->ingest.require_event_id);
  cr_expect(!cfg->workers.enabled);
  cr_expect_eq(cfg->workers.threads, 2);
  cr_assert_eq(cfg->workers.queues_len, 1);
  cr_expect_str_eq(cfg->workers.queues[0], "q");
  cr_expect_eq(cfg->workers.lease_s, 11);
  cr_expect_eq(cfg->workers.poll_ms, 12);
  cr_expect_float_eq(cfg->workers.shutdown_grace_s, 1.5, 1e-12);
  cr_expect_float_eq(cfg->retry.base_s, 2, 1e-12);
  cr_expect_float_eq(cfg->retry.max_s, 20, 1e-12);
  cr_expect_float_eq(cfg->retry.jitter, 0.1, 1e-12);
  jb_retry_policy p = jb_config_retry_policy(cfg, "not registered");
  cr_expect_float_eq(p.max_s, 20, 1e-12, "an unregistered type gets retry.*");
  jb_config_free(cfg);
}

Test(config_sections, arrays_and_maps_of_tables) {
  jb_config *cfg = parse_ok(
      "{\"job_types\": {\"a\": {\"handler\": \"noop\"},"
      "                 \"b\": {\"handler\": \"noop\", \"max_retries\": 5,"
      "                         \"retry\": {\"base_s\": 3}}},"
      " \"mappings\": [{\"event_type\": \"x.*\", \"job_type\": \"a\"},"
      "              {\"event_type\": \"y.#\", \"job_type\": \"b\", \"queue\": \"q2\","
      "               \"priority\": 4}]}");
  cr_assert_eq(cfg->job_types_len, 2);
  const jb_job_type_cfg *b = jb_config_job_type(cfg, "b");
  cr_assert_not_null(b);
  cr_expect_str_eq(b->name, "b");
  cr_expect_eq(b->max_retries, 5);
  cr_expect_float_eq(b->retry.base_s, 3, 1e-12);
  cr_expect_float_eq(b->retry.max_s, 300, 1e-12, "its unset retry.max_s is the global one");
  cr_expect_eq(jb_config_job_type(cfg, "a")->max_retries, 3, "the element's defaults apply");
  cr_assert_eq(cfg->mappings_len, 2);
  cr_expect_str_eq(cfg->mappings[0].queue, "default");
  cr_expect_str_eq(cfg->mappings[1].event_type, "y.#");
  cr_expect_str_eq(cfg->mappings[1].queue, "q2");
  cr_expect_eq(cfg->mappings[1].priority, 4);
  /* The effective config shows both in their JSON shapes, keyed as in the file. */
  json_t *o = jb_config_to_json(cfg);
  cr_expect_eq(json_array_size(json_object_get(o, "mappings")), 2);
  cr_expect_str_eq(json_string_value(
                       json_object_get(json_array_get(json_object_get(o, "mappings"), 1), "queue")),
                   "q2");
  json_t *jt = json_object_get(json_object_get(o, "job_types"), "b");
  cr_expect_eq(json_integer_value(json_object_get(jt, "max_retries")), 5);
  cr_expect_null(json_object_get(jt, "name"), "the name is the key, not a member");
  cr_expect_str_eq(json_string_value(json_object_get(json_object_get(o, "amqp"), "url")),
                   "amqp://guest:***@127.0.0.1:5672");
  json_decref(o);
  jb_config_free(cfg);
}

Test(config_sections, element_errors_name_the_element) {
  expect_bad("{\"mappings\": [1]}", "t.json: mappings[0]: expected a mapping object");
  expect_bad("{\"mappings\": {}}", "t.json: mappings: expected an array of mapping objects");
  expect_bad("{\"job_types\": []}", "t.json: job_types: expected an object of job types");
  expect_bad("{\"job_types\": {\"a\": 1}}", "t.json: job_types.a: expected a job type object");
  expect_bad("{\"job_types\": {\"\": {\"handler\": \"noop\"}}}",
             "t.json: job_types: a job type name is empty");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\"}, \"b\": {}}}",
             "t.json: job_types.b.handler: required key is missing");
  expect_bad(
      "{\"job_types\": {\"a\": {\"handler\": \"noop\"}},"
      " \"mappings\": [{\"event_type\": \"x\", \"job_type\": \"a\"}, {\"job_type\": \"a\"}]}",
      "t.json: mappings[1].event_type: required key is missing");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\", \"bogus\": 1}}}",
             "t.json: job_types.a.bogus: unknown key");
}

Test(config_sections, keys_list_the_element_tables_after_the_root) {
  jb_config_key_info keys[128];
  size_t n = jb_config_keys(keys, 128);
  cr_assert(n < 128);
  bool mapping = false, job_type = false;
  size_t last_root = 0, first_sub = n;
  for (size_t i = 0; i < n; i++) {
    bool sub = strncmp(keys[i].path, "mappings[].", 11) == 0 ||
               strncmp(keys[i].path, "job_types.*.", 12) == 0 ||
               strncmp(keys[i].path, "schedules[].", 12) == 0;
    if (sub && first_sub == n) first_sub = i;
    if (!sub) last_root = i;
    mapping = mapping || strcmp(keys[i].path, "mappings[].event_type") == 0;
    job_type = job_type || strcmp(keys[i].path, "job_types.*.retry.jitter") == 0;
  }
  cr_expect(mapping && job_type);
  cr_expect_lt(last_root, first_sub, "the root's keys come first");
}
