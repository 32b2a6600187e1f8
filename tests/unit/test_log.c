/* Log lines: one JSON object each, and no field dropped for bytes that are not UTF-8. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Runs jb_log with typed pairs between plain ones; returns the line parsed as JSON. */
static json_t *typed_line(uint64_t u, int64_t i, double d, bool b) {
  FILE *tmp = tmpfile();
  cr_assert(tmp != NULL);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  cr_assert(dup2(fileno(tmp), STDERR_FILENO) >= 0);
  jb_log(JB_LOG_ERROR, "typed", "first", "ok", JB_LOG_U64("u", u), JB_LOG_I64("i", i),
         JB_LOG_DBL("d", d), JB_LOG_BOOL("b", b), JB_LOG_STR("s", "text"), "skipped", (char *)NULL,
         "last", "also ok", JB_LOG_END);
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

Test(log, typed_fields_are_json_numbers_and_booleans) {
  json_t *o = typed_line(42, -7, 1.5, true);
  cr_expect(json_is_integer(json_object_get(o, "u")));
  cr_expect_eq(json_integer_value(json_object_get(o, "u")), 42);
  cr_expect(json_is_integer(json_object_get(o, "i")));
  cr_expect_eq(json_integer_value(json_object_get(o, "i")), -7);
  cr_expect(json_is_real(json_object_get(o, "d")));
  cr_expect_float_eq(json_real_value(json_object_get(o, "d")), 1.5, 1e-12);
  cr_expect(json_is_true(json_object_get(o, "b")));
  cr_expect_str_eq(json_string_value(json_object_get(o, "s")), "text");
  cr_expect_null(json_object_get(o, "skipped"), "a NULL string value is skipped");
  /* the plain pairs around the typed ones are read in step */
  cr_expect_str_eq(json_string_value(json_object_get(o, "first")), "ok");
  cr_expect_str_eq(json_string_value(json_object_get(o, "last")), "also ok");
  json_decref(o);
}

Test(log, typed_fields_edge_values) {
  json_t *o = typed_line(UINT64_MAX, INT64_MIN, NAN, false);
  cr_expect_str_eq(json_string_value(json_object_get(o, "u")), "18446744073709551615",
                   "a u64 past INT64_MAX keeps its digits");
  cr_expect_eq(json_integer_value(json_object_get(o, "i")), INT64_MIN);
  cr_expect(json_is_null(json_object_get(o, "d")), "NaN, which JSON cannot hold, is null");
  cr_expect(json_is_false(json_object_get(o, "b")));
  json_decref(o);
  o = typed_line((uint64_t)INT64_MAX, 0, -0.25, true);
  cr_expect_eq(json_integer_value(json_object_get(o, "u")), INT64_MAX);
  cr_expect_float_eq(json_real_value(json_object_get(o, "d")), -0.25, 1e-12);
  json_decref(o);
}

Test(log, typed_fields_take_the_types_of_call_sites) {
  /* size_t, int, long, unsigned and a bool expression all go through the macros' casts */
  size_t zu = 3;
  int neg = -2;
  long l = 1L << 40;
  unsigned code = 312;
  FILE *tmp = tmpfile();
  cr_assert(tmp != NULL);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  cr_assert(dup2(fileno(tmp), STDERR_FILENO) >= 0);
  jb_log(JB_LOG_ERROR, "m", JB_LOG_U64("zu", zu), JB_LOG_I64("neg", neg), JB_LOG_I64("l", l),
         JB_LOG_U64("code", code), JB_LOG_BOOL("yes", zu > 2), JB_LOG_DBL("half", 1 / 2.0),
         JB_LOG_END);
  cr_assert(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  rewind(tmp);
  char line[4096] = "";
  cr_assert(fgets(line, sizeof line, tmp) != NULL);
  fclose(tmp);
  cr_expect(strstr(line,
                   "\"zu\":3,\"neg\":-2,\"l\":1099511627776,\"code\":312,\"yes\":true,"
                   "\"half\":0.5}") != NULL,
            "%s", line);
}
