/* Log lines: one JSON object each, and no field dropped for bytes that are not UTF-8. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobbridge/log.h"

/* Runs jb_log with stderr sent to a temporary file; returns the line parsed as JSON. */
static json_t *log_line(const char *msg, const char *key, const char *val) {
  FILE *tmp = tmpfile();
  cr_assert(tmp != NULL);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  cr_assert(dup2(fileno(tmp), STDERR_FILENO) >= 0);
  jb_log(JB_LOG_ERROR, msg, "first", "ok", key, val, "last", "also ok", JB_LOG_END);
  cr_assert(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  rewind(tmp);
  char line[4096] = "";
  cr_assert(fgets(line, sizeof line, tmp) != NULL, "no log line written");
  fclose(tmp);
  json_error_t err;
  json_t *o = json_loads(line, 0, &err);
  cr_assert(o != NULL, "not one JSON object: %s (%s)", line, err.text);
  return o;
}

Test(log, invalid_utf8_field_is_escaped_not_dropped) {
  json_t *o = log_line("event dead-lettered", "reason",
                       "ce-type \"order.\xff\xfe\" is not UTF-8; caf\xc3\xa9 stays");
  const char *reason = json_string_value(json_object_get(o, "reason"));
  cr_assert(reason != NULL, "the reason field was dropped");
  cr_expect_str_eq(reason, "ce-type \"order.\\xFF\\xFE\" is not UTF-8; caf\xc3\xa9 stays");
  cr_expect_str_eq(json_string_value(json_object_get(o, "first")), "ok");
  cr_expect_str_eq(json_string_value(json_object_get(o, "last")), "also ok");
  json_decref(o);
}

Test(log, invalid_utf8_message_is_escaped) {
  json_t *o = log_line("bad \xc0\xaf msg", "k", "v");
  cr_expect_str_eq(json_string_value(json_object_get(o, "msg")), "bad \\xC0\\xAF msg");
  json_decref(o);
}

Test(log, utf8_escape_rules) {
  struct {
    const char *in, *want;
  } cases[] = {
      {"plain", "plain"},
      {"\xe2\x82\xac euro, \xf0\x9f\x98\x80 emoji", "\xe2\x82\xac euro, \xf0\x9f\x98\x80 emoji"},
      {"cut \xe2\x82", "cut \\xE2\\x82"},           /* a sequence cut short */
      {"\xed\xa0\x80", "\\xED\\xA0\\x80"},          /* a UTF-16 surrogate */
      {"\xf4\x90\x80\x80", "\\xF4\\x90\\x80\\x80"}, /* past U+10FFFF */
      {"\xe0\x80\xaf", "\\xE0\\x80\\xAF"},          /* an overlong form */
      {"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = jb_utf8_escape(cases[i].in);
    cr_expect_str_eq(got, cases[i].want, "case %zu", i);
    free(got);
  }
}
