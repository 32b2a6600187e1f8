/* jobbridge's JSON parser and writer (jobbridge/json.h): numbers come back exactly as they
 * arrived, and bad input is refused with the place and the reason. No server needed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/json.h"

static json_t *parse_ok(const char *text) {
  json_t *v = NULL;
  jb_error e;
  jb_error_clear(&e);
  cr_assert_eq(jb_json_parse(text, strlen(text), &v, &e), JB_OK, "%s: %s", text, e.msg);
  cr_assert_not_null(v);
  return v;
}

/* text parsed and written back (compact) must be text itself. */
static void expect_round_trip(const char *text) {
  json_t *v = parse_ok(text);
  char *back = jb_json_dumps(v, JB_JSON_COMPACT, NULL);
  cr_assert_not_null(back, "%s writes", text);
  cr_expect_str_eq(back, text);
  free(back);
  json_decref(v);
}

Test(json, the_numbers_of_issue_11_round_trip_exactly) {
  const char *nums[] = {"19.99",
                        "0.1",
                        "-0.0",
                        "1.50",
                        "1e400",
                        "12345678901234567890123",
                        "-0",
                        "1E+2",
                        "1e-7",
                        "100.0",
                        "0",
                        "-9223372036854775808",
                        "9223372036854775807",
                        "9223372036854775808",
                        "0.30000000000000004",
                        "1.7976931348623157e308",
                        "5e-324",
                        "1e-400",
                        "2.50e+03",
                        "-12.3400"};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    char doc[128];
    expect_round_trip(nums[i]);
    snprintf(doc, sizeof doc, "{\"amount\":%s,\"list\":[%s,%s]}", nums[i], nums[i], nums[i]);
    expect_round_trip(doc);
  }
}

Test(json, numbers_are_integers_reals_or_exact_as_documented) {
  json_t *v =
      parse_ok("[42, -7, 19.99, 0.1, -0.0, 1.50, -0, 1E+2, 1e400, 12345678901234567890123]");
  cr_expect(json_is_integer(json_array_get(v, 0)));
  cr_expect_eq(json_integer_value(json_array_get(v, 1)), -7);
  cr_expect(json_is_real(json_array_get(v, 2)));
  cr_expect_eq(json_real_value(json_array_get(v, 2)), 19.99);
  cr_expect(json_is_real(json_array_get(v, 3)));
  cr_expect(json_is_real(json_array_get(v, 4)));
  cr_expect(signbit(json_real_value(json_array_get(v, 4))));
  const char *exact[] = {"1.50", "-0", "1E+2", "1e400", "12345678901234567890123"};
  for (size_t i = 0; i < 5; i++) {
    json_t *x = json_array_get(v, 5 + i);
    cr_expect_str_eq(jb_json_exact_text(x), exact[i]);
    cr_expect(jb_json_is_number(x));
    cr_expect(!json_is_number(x), "an exact number is not a jansson number");
  }
  double d;
  cr_expect(jb_json_number_value(json_array_get(v, 5), &d) && d == 1.5);
  cr_expect(jb_json_number_value(json_array_get(v, 7), &d) && d == 100.0);
  cr_expect(jb_json_number_value(json_array_get(v, 8), &d) && d == HUGE_VAL);
  cr_expect(jb_json_number_value(json_array_get(v, 2), &d) && d == 19.99);
  json_t *s1 = json_string("19.99"), *s2 = json_string("1.50");
  cr_expect(!jb_json_number_value(s1, &d));
  cr_expect_null(jb_json_exact_text(s2), "a string is not an exact number");
  json_decref(s1);
  json_decref(s2);
  json_decref(v);
}

/* Random number texts of the whole RFC 8259 grammar: leading minus, zero or digits, fraction
 * with trailing zeros, exponents of both cases, signs and leading zeros. */
static void random_number(unsigned *seed, char *out, size_t cap) {
  size_t n = 0;
  if (rand_r(seed) % 2) out[n++] = '-';
  int digits = 1 + rand_r(seed) % 25;
  if (rand_r(seed) % 5 == 0) {
    out[n++] = '0';
  } else {
    out[n++] = (char)('1' + rand_r(seed) % 9);
    for (int i = 1; i < digits && n < cap - 40; i++) out[n++] = (char)('0' + rand_r(seed) % 10);
  }
  if (rand_r(seed) % 2) {
    out[n++] = '.';
    int frac = 1 + rand_r(seed) % 20;
    for (int i = 0; i < frac && n < cap - 20; i++) out[n++] = (char)('0' + rand_r(seed) % 10);
  }
  if (rand_r(seed) % 3 == 0) {
    out[n++] = rand_r(seed) % 2 ? 'e' : 'E';
    int sign = rand_r(seed) % 3;
    if (sign == 1) out[n++] = '+';
    if (sign == 2) out[n++] = '-';
    n += (size_t)snprintf(out + n, cap - n, "%0*d", 1 + rand_r(seed) % 3, rand_r(seed) % 500);
  }
  out[n] = '\0';
}

Test(json, random_numbers_round_trip_exactly) {
  unsigned seed = 11;
  for (int i = 0; i < 20000; i++) {
    char num[128], doc[160];
    random_number(&seed, num, sizeof num);
    snprintf(doc, sizeof doc, "{\"n\":%s}", num);
    expect_round_trip(doc);
  }
  /* And the doubles a program computes: the shortest text, which reads back as the double. */
  for (int i = 0; i < 20000; i++) {
    double d = ((double)rand_r(&seed) / RAND_MAX - 0.5) * pow(10, rand_r(&seed) % 600 - 300);
    json_t *v = json_real(d);
    char *text = jb_json_dumps(v, JB_JSON_COMPACT, NULL);
    cr_assert_not_null(text);
    cr_expect_eq(strtod(text, NULL), d, "%s", text);
    json_t *back = parse_ok(text);
    cr_expect(json_is_real(back), "%s is held as the double it came from", text);
    free(text);
    json_decref(back);
    json_decref(v);
  }
}

static void expect_refused(const char *text, size_t n, const char *what) {
  json_t *v = NULL;
  jb_error e;
  jb_error_clear(&e);
  cr_expect_eq(jb_json_parse(text, n, &v, &e), JB_ERR_INVALID, "%s is refused", what);
  cr_expect_null(v);
  cr_expect(strstr(e.msg, "line ") != NULL && strstr(e.msg, "byte ") != NULL,
            "%s: the message gives the place: %s", what, e.msg);
}

Test(json, bad_input_is_refused_with_the_place) {
  const char *bad[] = {
      "",        "   ",         "{",           "{\"a\" 1}",   "{\"a\":1,}", "[1,]",
      "[01]",    "[1.]",        "[.5]",        "[1e]",        "[+1]",       "[-]",
      "[NaN]",   "[Infinity]",  "[tru]",       "\"a",         "\"\\x\"",    "{a:1}",
      "[1] [2]", "\"\\ud800\"", "\"\\udc00\"", "\"\\u00zz\"", "'a'",        "[\"tab\there\"]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_refused(bad[i], strlen(bad[i]), bad[i]);
  expect_refused("\"a\xc3(\"", 5, "invalid UTF-8");
  expect_refused("\"\xed\xa0\x80\"", 5, "an encoded surrogate");
  expect_refused("[1\0]", 4, "a raw NUL byte");
}

Test(json, the_message_names_line_column_byte_and_what) {
  json_t *v;
  jb_error e;
  cr_assert_eq(jb_json_parse("{\n  \"a\": 1,\n  \"b\" 2\n}", 20, &v, &e), JB_ERR_INVALID);
  cr_expect_str_eq(e.msg, "line 3, column 7 (byte 18): expected ':' after an object key");
}

Test(json, duplicate_keys_and_nul_are_refused) {
  json_t *v;
  jb_error e;
  cr_expect_eq(jb_json_parse("{\"a\":1,\"b\":{},\"a\":2}", 21, &v, &e), JB_ERR_INVALID);
  cr_expect(strstr(e.msg, "duplicate object key \"a\"") != NULL, "%s", e.msg);
  cr_expect_eq(jb_json_parse("{\"k\\u0041\":1,\"kA\":2}", 20, &v, &e), JB_ERR_INVALID,
               "a key spelled with an escape is the same key");
  cr_expect_eq(jb_json_parse("{\"a\\u0000b\":1}", 14, &v, &e), JB_ERR_INVALID);
  cr_expect(strstr(e.msg, "\\u0000") != NULL, "%s", e.msg);
  cr_expect_eq(jb_json_parse("[\"a\\u0000\"]", 11, &v, &e), JB_ERR_INVALID);
}

Test(json, strings_and_escapes_decode) {
  json_t *v = parse_ok(
      "[\"h\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\", \"plain \xc3\xa9\"]");
  cr_expect_str_eq(json_string_value(json_array_get(v, 0)),
                   "h\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ / \b\f\n\r\t");
  cr_expect_str_eq(json_string_value(json_array_get(v, 1)), "plain \xc3\xa9");
  char *back = jb_json_dumps(v, JB_JSON_COMPACT, NULL);
  cr_expect_str_eq(
      back, "[\"h\xc3\xa9 \xf0\x9f\x98\x80 \\\"q\\\" \\\\ / \\b\\f\\n\\r\\t\",\"plain \xc3\xa9\"]");
  free(back);
  json_decref(v);
}

Test(json, nesting_is_bounded) {
  size_t n = JB_JSON_MAX_DEPTH + 10;
  char *deep = malloc(2 * n);
  memset(deep, '[', n);
  memset(deep + n, ']', n);
  json_t *v;
  jb_error e;
  cr_expect_eq(jb_json_parse(deep, 2 * n, &v, &e), JB_ERR_INVALID);
  cr_expect(strstr(e.msg, "nested deeper") != NULL, "%s", e.msg);
  free(deep);
}

Test(json, indented_output_for_people) {
  json_t *v = parse_ok("{\"a\":[1,2.50,{}],\"b\":{\"c\":null},\"d\":[]}");
  char *text = jb_json_dumps(v, JB_JSON_INDENT, NULL);
  cr_expect_str_eq(text,
                   "{\n  \"a\": [\n    1,\n    2.50,\n    {}\n  ],\n  \"b\": {\n    \"c\": null\n"
                   "  },\n  \"d\": []\n}");
  free(text);
  json_decref(v);
}

Test(json, a_hand_made_exact_number_is_checked) {
  cr_expect_null(jb_json_exact_number("1.2.3", 5));
  cr_expect_null(jb_json_exact_number("", 0));
  json_t *x = jb_json_exact_number("1.50", 4);
  cr_expect_str_eq(jb_json_exact_text(x), "1.50");
  json_decref(x);
  /* A string that only looks tagged, built by hand, is not written as a number. */
  json_t *fake = json_stringn_nocheck("\xff\"x\"", 4);
  cr_expect_null(jb_json_dumps(fake, JB_JSON_COMPACT, NULL));
  cr_expect_null(json_dumps(fake, JSON_ENCODE_ANY), "jansson's writer refuses it too");
  json_decref(fake);
}
