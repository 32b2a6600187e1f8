/* The array literals of the PostgreSQL adapter: JSON elements must read back as exactly the
 * text of jobbridge's one JSON writer (jb_json_dumps), which is jansson's json_dumps for every
 * value but reals (written in the shortest form that reads back as the same double), and text
 * elements as themselves. No server needed. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/json.h"
#include "postgres/pg_array.h"

/* The elements of a one-dimensional literal of quoted (or NULL) elements, unescaped. */
#define ELEM_MAX 65536

static size_t elements(const char *lit, char out[][ELEM_MAX], size_t max) {
  size_t n = 0;
  cr_assert_eq(*lit, '{', "%s", lit);
  lit++;
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
        cr_assert(k < ELEM_MAX - 1, "element too long for the test");
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

static bool has_real(const json_t *v) {
  const char *key;
  json_t *m;
  if (json_is_real(v)) return true;
  if (json_is_object(v)) json_object_foreach((json_t *)v, key, m) if (has_real(m)) return true;
  for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++)
    if (has_real(json_array_get(v, i))) return true;
  return false;
}

/* The literal's elements are the writer's text; without reals that is jansson's own text, with
 * reals, text that jansson reads back as the same value. */
static void expect_same_as_jansson(json_t *v) {
  char *want = jb_json_dumps(v, JB_JSON_COMPACT, NULL);
  cr_assert_not_null(want);
  char *jansson = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!has_real(v)) cr_expect_str_eq(want, jansson);
  json_t *back = json_loads(want, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  cr_expect(json_equal(back, v), "%s reads back as %s", want, jansson);
  json_decref(back);
  free(jansson);
  jb_pg_array a = {0};
  jb_pg_array_begin(&a);
  jb_pg_array_json(&a, v);
  jb_pg_array_json(&a, v);
  const char *lit = jb_pg_array_end(&a);
  cr_assert_not_null(lit, "encodes %s", want);
  static char got[2][ELEM_MAX];
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

/* A random JSON value of at most `depth` levels, from a fixed seed: strings of random code
 * points (control characters, quotes, backslashes, 2-4 byte UTF-8), integers of every size,
 * reals of every magnitude. */
static json_t *random_json(unsigned *seed, int depth) {
  int kind = rand_r(seed) % (depth > 0 ? 8 : 6);
  switch (kind) {
    case 0: {
      char s[64];
      size_t n = 0;
      int len = rand_r(seed) % 12;
      for (int i = 0; i < len; i++) {
        static const unsigned cps[] = {0x01, 0x1f, '"',  '\\',   '/',
                                       'a',  0x7f, 0xe9, 0x20ac, 0x1f600};
        unsigned cp = cps[rand_r(seed) % 10];
        if (cp < 0x80) {
          s[n++] = (char)cp;
        } else if (cp < 0x800) {
          s[n++] = (char)(0xc0 | cp >> 6);
          s[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
          s[n++] = (char)(0xe0 | cp >> 12);
          s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
          s[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
          s[n++] = (char)(0xf0 | cp >> 18);
          s[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
          s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
          s[n++] = (char)(0x80 | (cp & 0x3f));
        }
      }
      return json_stringn(s, n);
    }
    case 1: { /* any 64-bit pattern (built unsigned: a signed shift could overflow), or small */
      uint64_t u =
          (uint64_t)rand_r(seed) << 33 ^ (uint64_t)rand_r(seed) << 2 ^ (uint64_t)rand_r(seed);
      return json_integer(rand_r(seed) % 2 ? (json_int_t)u : (json_int_t)(rand_r(seed) % 7) - 3);
    }
    case 2: {
      double m = (double)rand_r(seed) / RAND_MAX - 0.5;
      int exp = rand_r(seed) % 600 - 300;
      char num[64];
      snprintf(num, sizeof num, "%.6fe%d", m, exp);
      return json_real(strtod(num, NULL));
    }
    case 3:
      return json_true();
    case 4:
      return json_false();
    case 5:
      return json_null();
    case 6: {
      json_t *o = json_object();
      int n = rand_r(seed) % 5;
      for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d\"%d", i, rand_r(seed) % 100);
        json_object_set_new(o, key, random_json(seed, depth - 1));
      }
      return o;
    }
    default: {
      json_t *a = json_array();
      int n = rand_r(seed) % 5;
      for (int i = 0; i < n; i++) json_array_append_new(a, random_json(seed, depth - 1));
      return a;
    }
  }
}

Test(pg_array, random_json_reads_back_as_jansson_writes_it) {
  unsigned seed = 42;
  for (int i = 0; i < 2000; i++) expect_same_as_jansson(random_json(&seed, 4));
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

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* array_send's header: one dimension of n elements from index 1, of element type oid. */
static const unsigned char *expect_header(const jb_pg_array *a, uint32_t oid, uint32_t n,
                                          bool nulls) {
  const unsigned char *p = (const unsigned char *)a->buf;
  cr_expect_eq(be32(p), 1, "one dimension");
  cr_expect_eq(be32(p + 4), nulls, "has-NULLs flag");
  cr_expect_eq(be32(p + 8), oid, "element type");
  cr_expect_eq(be32(p + 12), n, "length");
  cr_expect_eq(be32(p + 16), 1, "lower bound");
  return p + 20;
}

Test(pg_array, binary_arrays_have_array_sends_layout) {
  jb_pg_array a = {0};
  jb_pg_array_begin_binary(&a, JB_PG_UUID);
  jb_pg_array_text(&a, "01a20695-e5d5-75a1-ab5e-F49A07517A33");
  jb_pg_array_text(&a, NULL);
  cr_assert_not_null(jb_pg_array_end(&a));
  cr_assert_eq(jb_pg_array_len(&a), 20 + 4 + 16 + 4);
  const unsigned char *p = expect_header(&a, 2950, 2, true);
  const unsigned char want[16] = {0x01, 0xa2, 0x06, 0x95, 0xe5, 0xd5, 0x75, 0xa1,
                                  0xab, 0x5e, 0xf4, 0x9a, 0x07, 0x51, 0x7a, 0x33};
  cr_expect_eq(be32(p), 16);
  cr_expect_arr_eq(p + 4, want, 16);
  cr_expect_eq(be32(p + 20), UINT32_MAX, "NULL is length -1");

  jb_pg_array_begin_binary(&a, JB_PG_TEXT);
  jb_pg_array_text(&a, "q\"b\\s");
  cr_assert_not_null(jb_pg_array_end(&a));
  p = expect_header(&a, 25, 1, false);
  cr_expect_eq(be32(p), 5);
  cr_expect_arr_eq(p + 4, "q\"b\\s", 5, "text goes as it is, unescaped");

  jb_pg_array_begin_binary(&a, JB_PG_INT4);
  jb_pg_array_int(&a, -2);
  cr_assert_not_null(jb_pg_array_end(&a));
  p = expect_header(&a, 23, 1, false);
  cr_expect_eq(be32(p), 4);
  cr_expect_eq(be32(p + 4), (uint32_t)-2);

  jb_pg_array_begin_binary(&a, JB_PG_INT8);
  jb_pg_array_int(&a, 1795000000123456LL);
  cr_assert_not_null(jb_pg_array_end(&a));
  p = expect_header(&a, 20, 1, false);
  cr_expect_eq(be32(p), 8);
  cr_expect_eq(((uint64_t)be32(p + 4) << 32 | be32(p + 8)), 1795000000123456ULL);

  json_t *v = json_pack("{s:s}", "k", "a\"b");
  jb_pg_array_begin_binary(&a, JB_PG_JSONB);
  jb_pg_array_json(&a, v);
  cr_assert_not_null(jb_pg_array_end(&a));
  p = expect_header(&a, 3802, 1, false);
  const char *text = "{\"k\":\"a\\\"b\"}";
  cr_expect_eq(be32(p), 1 + strlen(text));
  cr_expect_eq(p[4], 1, "jsonb's version byte");
  cr_expect_arr_eq(p + 5, text, strlen(text), "JSON text without the literal's escaping");
  json_decref(v);

  jb_pg_array_begin_binary(&a, JB_PG_TEXT);
  cr_assert_not_null(jb_pg_array_end(&a));
  cr_expect_eq(jb_pg_array_len(&a), 12, "an empty array has no dimension");
  cr_expect_eq(be32((const unsigned char *)a.buf), 0);
  jb_pg_array_free(&a);
}

Test(pg_array, a_uuid_element_that_is_not_one_is_refused) {
  const char *bad[] = {"", "01a20695-e5d5-75a1-ab5e-f49a07517a3",
                       "01a20695xe5d5-75a1-ab5e-f49a07517a33",
                       "01a20695-e5d5-75a1-ab5e-f49a07517a3g"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jb_pg_array a = {0};
    jb_pg_array_begin_binary(&a, JB_PG_UUID);
    jb_pg_array_text(&a, bad[i]);
    cr_expect_null(jb_pg_array_end(&a), "\"%s\"", bad[i]);
    cr_expect(a.unencodable, "\"%s\" is reported as unencodable", bad[i]);
    jb_pg_array_free(&a);
  }
}
