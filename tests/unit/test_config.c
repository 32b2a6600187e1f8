/* Config validation: the example file, defaults, and each kind of bad file naming its key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/config.h"

static void unset_env(void) {
  unsetenv("JOBBRIDGE_AMQP_URL");
  unsetenv("JOBBRIDGE_DATABASE_URL");
}

TestSuite(config, .init = unset_env);

static char *source_path(const char *rel) {
  const char *dir = getenv("JB_SOURCE_DIR");
  cr_assert(dir != NULL, "JB_SOURCE_DIR must point at the source tree (ctest sets it)");
  char *p = malloc(strlen(dir) + strlen(rel) + 2);
  sprintf(p, "%s/%s", dir, rel);
  return p;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Parses text, expecting failure with a message containing `needle`. */
static void expect_bad(const char *text, const char *needle) {
  jb_config *cfg = NULL;
  jb_error e;
  jb_error_clear(&e);
  jb_err rc = jb_config_parse(text, "t.json", &cfg, &e);
  cr_expect_eq(rc, JB_ERR_CONFIG, "expected a config error for %s", text);
  cr_expect_null(cfg);
  cr_expect(strstr(e.msg, needle) != NULL, "message \"%s\" should contain \"%s\"", e.msg, needle);
  jb_config_free(cfg);
}

#define JT "\"job_types\": {\"a\": {\"handler\": \"noop\"}}"

Test(config, example_file_loads) {
  char *path = source_path("config/jobbridge.example.json");
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_load(path, &cfg, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(cfg->mappings_len, 3);
  cr_expect_str_eq(cfg->mappings[0].event_type, "order.created");
  cr_expect_str_eq(cfg->mappings[0].payload, "/data");
  cr_expect_eq(cfg->mappings[0].priority, 10);
  cr_expect_eq(cfg->job_types_len, 5);
  const jb_job_type_cfg *jt = jb_config_job_type(cfg, "sync_profile");
  cr_assert_not_null(jt);
  cr_expect_str_eq(jt->handler, "exec");
  cr_expect_eq(jt->command_len, 1);
  cr_expect_str_eq(jt->command[0], "/bin/cat");
  cr_expect_null(jt->command[1]);
  jt = jb_config_job_type(cfg, "notify_crm");
  cr_assert_not_null(jt);
  cr_expect_str_eq(jt->handler, "http");
  cr_expect_str_eq(jt->method, "POST");
  cr_expect_str_eq(json_string_value(json_object_get(jt->headers, "Authorization")),
                   "Bearer change-me");
  /* The signing secret is a password: the effective config shows only that it is set. */
  json_t *dump = jb_config_to_json(cfg);
  json_t *shown = json_object_get(json_object_get(dump, "job_types"), "notify_crm");
  cr_expect_str_eq(json_string_value(json_object_get(shown, "signing_secret")), "(set)");
  cr_expect_str_eq(
      json_string_value(json_object_get(json_object_get(shown, "headers"), "Authorization")),
      "(set)", "a header may hold a credential");
  json_decref(dump);
  jb_config_free(cfg);
  free(path);
}

Test(config, defaults_fill_an_empty_file) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse("{}", "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(cfg->amqp.prefetch, 1000);
  cr_expect_eq(cfg->amqp.heartbeat_s, 15);
  cr_expect_str_eq(cfg->amqp.input.exchange_type, "topic");
  cr_expect_str_eq(cfg->database.schema, "jobbridge");
  cr_expect_eq(cfg->ingest.max_body_bytes, 1048576);
  cr_expect_eq(cfg->amqp.input.bindings_len, 1);
  cr_expect_str_eq(cfg->amqp.input.bindings[0], "#");
  cr_expect_eq(cfg->workers.queues_len, 0);
  cr_expect_eq(cfg->mappings_len, 0);
  jb_config_free(cfg);
}

Test(config, mapping_defaults) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(
      jb_config_parse("{\"mappings\": [{\"event_type\": \"x.*\", \"job_type\": \"a\"}], " JT "}",
                      "t.json", &cfg, &e),
      JB_OK, "%s", e.msg);
  cr_expect_str_eq(cfg->mappings[0].queue, "default");
  cr_expect_eq(cfg->mappings[0].max_retries, -1);
  cr_expect_null(cfg->mappings[0].payload);
  cr_expect_null(cfg->mappings[0].metadata);
  cr_expect_eq(cfg->job_types[0].max_retries, 3);
  jb_config_free(cfg);
}

Test(config, env_overrides_urls) {
  setenv("JOBBRIDGE_AMQP_URL", "amqp://u:secret@h:1", 1);
  setenv("JOBBRIDGE_DATABASE_URL", "postgresql://u:secret@h/db", 1);
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse("{\"amqp\": {\"url\": \"amqp://x\"}}", "t.json", &cfg, &e), JB_OK);
  cr_expect_str_eq(cfg->amqp.url, "amqp://u:secret@h:1");
  cr_expect_str_eq(cfg->database.url, "postgresql://u:secret@h/db");
  json_t *dump = jb_config_to_json(cfg);
  char *text = json_dumps(dump, 0);
  cr_expect(strstr(text, "secret") == NULL, "passwords redacted in the dump: %s", text);
  cr_expect(strstr(text, "amqp://u:***@h:1") != NULL);
  free(text);
  json_decref(dump);
  jb_config_free(cfg);
}

Test(config, malformed_json_names_line_and_column) {
  expect_bad("{\n  \"amqp\": {\n    \"prefetch\": 5,,\n  }\n}", "t.json: line 3, column");
}

Test(config, unknown_key_names_path) {
  expect_bad("{\"amqp\": {\"input\": {\"exchnage\": \"x\"}}}", "amqp.input.exchnage: unknown key");
  expect_bad("{\"bogus\": 1}", "bogus: unknown key");
  expect_bad("{\"mappings\": [{\"event_type\": \"a\", \"job_type\": \"a\", \"qeue\": \"q\"}], " JT
             "}",
             "mappings[0].qeue: unknown key");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\", \"timeout\": 3}}}",
             "job_types.a.timeout: unknown key");
}

Test(config, wrong_type_names_path) {
  expect_bad("{\"amqp\": {\"prefetch\": \"many\"}}",
             "amqp.prefetch: expected an integer, got \"many\"");
  expect_bad("{\"amqp\": 5}", "amqp: expected an object");
  expect_bad("{\"amqp\": {\"input\": {\"bindings\": [\"a\", 3]}}}", "amqp.input.bindings[1]");
  expect_bad("{\"ingest\": {\"require_event_id\": 1}}",
             "ingest.require_event_id: expected true or false");
  expect_bad("{\"mappings\": {}}", "mappings: expected an array of mapping objects");
  expect_bad("{\"mappings\": [{\"event_type\": \"a\", \"job_type\": \"a\", \"metadata\": [1]}], " JT
             "}",
             "mappings[0].metadata: expected a JSON object");
  expect_bad("[]", "top level must be a JSON object");
}

Test(config, out_of_range) {
  expect_bad("{\"amqp\": {\"prefetch\": 0}}", "amqp.prefetch: 0 is out of range");
  expect_bad("{\"retry\": {\"jitter\": 2}}", "retry.jitter: 2 is out of range");
  expect_bad("{\"retry\": {\"base_s\": 10, \"max_s\": 5}}", "retry.max_s: 5 is below retry.base_s");
}

Test(config, mapping_to_unregistered_job_type) {
  expect_bad("{\"mappings\": [{\"event_type\": \"a\", \"job_type\": \"nope\"}], " JT "}",
             "mappings[0].job_type: job type \"nope\" is not registered in job_types");
}

Test(config, required_mapping_keys) {
  expect_bad("{\"mappings\": [{\"job_type\": \"a\"}], " JT "}",
             "mappings[0].event_type: required key is missing");
  expect_bad("{\"mappings\": [{\"event_type\": \"a\", \"job_type\": \"\"}], " JT "}",
             "mappings[0].job_type: must not be empty");
}

Test(config, bad_values) {
  expect_bad("{\"mappings\": [{\"event_type\": \"a..b\", \"job_type\": \"a\"}], " JT "}",
             "mappings[0].event_type: \"a..b\" is not a valid pattern");
  expect_bad("{\"mappings\": [{\"event_type\": \"a.b*\", \"job_type\": \"a\"}], " JT "}",
             "is not a valid pattern");
  expect_bad(
      "{\"mappings\": [{\"event_type\": \"a\", \"job_type\": \"a\", \"payload\": \"data\"}], " JT
      "}",
      "mappings[0].payload: \"data\" is not a JSON pointer");
  expect_bad("{\"amqp\": {\"input\": {\"exchange_type\": \"fan\"}}}", "amqp.input.exchange_type");
  expect_bad("{\"amqp\": {\"input\": {\"queue_type\": \"stream\"}}}", "amqp.input.queue_type");
  expect_bad("{\"database\": {\"schema\": \"Job-Bridge\"}}", "database.schema");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"python\"}}}",
             "job_types.a.handler: \"python\" is not noop, exec, process or http");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"exec\"}}}",
             "job_types.a.command: the exec handler needs a command");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"http\"}}}",
             "job_types.a.url: the http handler needs a url");
  expect_bad("{\"job_types\": {\"a\": {}}}", "job_types.a.handler: required key is missing");
  expect_bad("{\"amqp\": {\"prefetch\": 5, \"prefetch\": 6}}", "duplicate object key");
}

Test(config, missing_file_is_io_error) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_expect_eq(jb_config_load("/nonexistent/jb.json", &cfg, &e), JB_ERR_IO);
  cr_expect(strstr(e.msg, "/nonexistent/jb.json: cannot open config file") != NULL, "%s", e.msg);
}

/* Every declared key is documented: present in the example config and in README.md. */
Test(config, every_key_is_in_the_example_and_readme) {
  jb_config_key_info keys[128];
  size_t n = jb_config_keys(keys, 128);
  cr_assert_gt(n, 30);
  char *example_path = source_path("config/jobbridge.example.json");
  char *readme_path = source_path("README.md");
  char *readme = slurp(readme_path);
  json_t *example = json_load_file(example_path, 0, NULL);
  cr_assert_not_null(example);
  for (size_t i = 0; i < n; i++) {
    char want[sizeof keys[i].path + 2];
    snprintf(want, sizeof want, "`%.*s`", (int)sizeof keys[i].path - 1, keys[i].path);
    cr_expect(strstr(readme, want) != NULL, "README.md documents %s", want);
    cr_expect(keys[i].doc != NULL && keys[i].doc[0] != '\0', "%s has a doc line", keys[i].path);
    /* Find the key in the example: walk dotted parts; [] means "in the first mapping",
     * .*. means "in some job type". */
    json_t *node = example;
    char path[sizeof keys[i].path];
    memcpy(path, keys[i].path, sizeof path);
    for (char *part = strtok(path, "."); part && node; part = strtok(NULL, ".")) {
      size_t len = strlen(part);
      if (len > 2 && strcmp(part + len - 2, "[]") == 0) {
        part[len - 2] = '\0';
        node = json_array_get(json_object_get(node, part), 0);
      } else if (strcmp(part, "*") == 0) {
        const char *rest = strtok(NULL, ".");
        const char *name;
        json_t *jt, *found = NULL;
        json_object_foreach(node, name, jt) if (json_object_get(jt, rest)) found = jt;
        node = found ? json_object_get(found, rest) : NULL;
      } else {
        node = json_object_get(node, part);
      }
    }
    cr_expect_not_null(node, "config/jobbridge.example.json shows %s", keys[i].path);
  }
  json_decref(example);
  free(readme);
  free(example_path);
  free(readme_path);
}
