/* The array literals of the PostgreSQL adapter: JSON elements must read back as exactly the
 * text jansson's json_dumps writes, and text elements as themselves. No server needed. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postgres/pg_array.h"

/* The elements of a one-dimensional literal of quoted (or NULL) elements, unescaped. */
static size_t elements(const char *lit, char out[][4096], size_t max) {
  size_t n = 0;
  cr_assert_eq(*lit++, '{', "%s", lit);
  while (*lit != '}' && n < max) {
    if (strncmp(lit, "NULL", 4) == 0) {
      strcpy(out[n++], "(null)");
      lit += 4;
    } else {
      cr_assert_eq(*lit++, '"');
      size_t k = 0;
      while (*lit != '"') {
        if (*lit == '\\') lit++;
        cr_assert(*lit != '\0', "unterminated element");
        out[n][k++] = *lit++;
      }
      out[n++][k] = '\0';
      lit++;
    }
    if (*lit == ',') lit++;
  }
  cr_assert_str_eq(lit, "}");
  return n;
}

static void expect_same_as_jansson(json_t *v) {
  char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  cr_assert_not_null(want);
  jb_pg_array a = {0};
  jb_pg_array_begin(&a);
  jb_pg_array_json(&a, v);
  jb_pg_array_json(&a, v);
  const char *lit = jb_pg_array_end(&a);
  cr_assert_not_null(lit, "encodes %s", want);
  static char got[2][4096];
  cr_assert_eq(elements(lit, got, 2), 2);
  cr_expect_str_eq(got[0], want, "literal %s", lit);
  cr_expect_str_eq(got[1], want);
  free(want);
  jb_pg_array_free(&a);
  json_decref(v);
}

Test(pg_array, json_elements_read_back_as_jansson_writes_them) {
  const char *docs[] = {
      "{}",
      "[]",
      "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"},\"\":\"\"}",
      "{\"quote\\\"key\":\"back\\\\slash \\\" quote\",\"ctl\":\"\\b\\f\\n\\r\\t\\u0001\\u001f\"}",
      "{\"nul\":\"a\\u0000b\",\"del\":\"\\u007f\",\"slash\":\"/\"}",
      "{\"utf8\":\"h\\u00e9 \\u20ac \\ud83d\\ude00 \\u2028\"}",
      "[0,-1,9223372036854775807,-9223372036854775808]",
      "[0.1,1.5,-0.0,123.0,1e-05,1e+20,1.5e300,2.5e-300,3.0000000000000004]",
      "[[[[[[{\"deep\":[1,[2,[3]]]}]]]]]]",
      "\"a lone string\"",
      "42",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    json_error_t err;
    json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    cr_assert_not_null(v, "%s: %s", docs[i], err.text);
    expect_same_as_jansson(v);
  }
  expect_same_as_jansson(json_real(1.0 / 3.0));
  expect_same_as_jansson(json_real(1e21));
  expect_same_as_jansson(json_real(-2.5e-7));
}

Test(pg_array, json_keeps_the_order_of_object_keys) {
  json_t *o = json_object();
  json_object_set_new(o, "zeta", json_integer(1));
  json_object_set_new(o, "alpha", json_integer(2));
  json_object_set_new(o, "mid", json_integer(3));
  expect_same_as_jansson(o);
}

Test(pg_array, invalid_utf8_is_unencodable_not_a_crash) {
  const char *bad[] = {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *o = json_pack("{s:o}", "k", json_stringn_nocheck(bad[i], strlen(bad[i])));
    cr_assert_null(json_dumps(o, JSON_COMPACT), "jansson refuses case %zu too", i);
    jb_pg_array a = {0};
    jb_pg_array_begin(&a);
    jb_pg_array_json(&a, o);
    cr_expect_null(jb_pg_array_end(&a), "case %zu", i);
    cr_expect(a.unencodable, "case %zu is reported as unencodable, not out of memory", i);
    /* The buffer is usable again for the next batch. */
    jb_pg_array_begin(&a);
    jb_pg_array_json(&a, json_object_get(o, "missing"));
    cr_expect_str_eq(jb_pg_array_end(&a), "{NULL}");
    jb_pg_array_free(&a);
    json_decref(o);
  }
}

Test(pg_array, text_and_int_elements) {
  jb_pg_array a = {0};
  jb_pg_array_begin(&a);
  jb_pg_array_text(&a, "plain");
  jb_pg_array_text(&a, "q\"b\\s,{}");
  jb_pg_array_text(&a, NULL);
  jb_pg_array_int(&a, INT64_MIN);
  cr_assert_str_eq(jb_pg_array_end(&a), "{\"plain\",\"q\\\"b\\\\s,{}\",NULL,-9223372036854775808}");
  jb_pg_array_free(&a);
}
