/* The JSON parser's edges found in review (issue 11 follow-up): a string cut off right after a
 * backslash is refused, INT64_MIN is an integer, and running out of memory anywhere in a parse
 * is JB_ERR_NOMEM (retried by ingest), never JB_ERR_INVALID (which dead-letters a good event).
 * No server needed. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/json.h"

Test(json_edges, a_string_cut_off_after_a_backslash_is_not_closed) {
  const char *cut[] = {"\"ab\\", "\"\\", "[\"a\\", "{\"k\\", "{\"k\":\"v\\"};
  for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
    json_t *v = NULL;
    jb_error e;
    jb_error_clear(&e);
    cr_expect_eq(jb_json_parse(cut[i], strlen(cut[i]), &v, &e), JB_ERR_INVALID, "%s is refused",
                 cut[i]);
    cr_expect_null(v, "%s gives no value", cut[i]);
    cr_expect(strstr(e.msg, "string not closed") != NULL, "%s: %s", cut[i], e.msg);
    json_decref(v);
  }
}

Test(json_edges, int64_min_and_max_are_integers) {
  struct {
    const char *text;
    json_int_t value;
  } ok[] = {{"-9223372036854775808", INT64_MIN},
            {"9223372036854775807", INT64_MAX},
            {"-9223372036854775807", -INT64_MAX}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    json_t *v = NULL;
    jb_error e;
    cr_assert_eq(jb_json_parse(ok[i].text, strlen(ok[i].text), &v, &e), JB_OK, "%s", e.msg);
    cr_expect(json_is_integer(v), "%s is a json_integer", ok[i].text);
    cr_expect_eq(json_integer_value(v), ok[i].value, "%s", ok[i].text);
    char *back = jb_json_dumps(v, JB_JSON_COMPACT, NULL);
    cr_expect_str_eq(back, ok[i].text);
    free(back);
    json_decref(v);
  }
  /* One past either end stays exact, and is written back as it came. */
  const char *beyond[] = {"-9223372036854775809", "9223372036854775808"};
  for (size_t i = 0; i < 2; i++) {
    json_t *v = NULL;
    jb_error e;
    cr_assert_eq(jb_json_parse(beyond[i], strlen(beyond[i]), &v, &e), JB_OK, "%s", e.msg);
    cr_expect_str_eq(jb_json_exact_text(v), beyond[i]);
    json_decref(v);
  }
}

/* jansson's allocator, failing every call from the n-th on (n < 0: never). */
static long fail_from = -1, calls = 0;
static void *failing_malloc(size_t n) {
  if (fail_from >= 0 && calls++ >= fail_from) return NULL;
  return malloc(n);
}

Test(json_edges, out_of_memory_in_a_parse_is_nomem_never_invalid) {
  const char *doc =
      "{\"event_type\": \"order.created\", \"id\": \"e1\", \"payload\": {\"amount\": 19.99, "
      "\"big\": 12345678901234567890123, \"list\": [1, \"two\", {\"three\": 3}], "
      "\"esc\": \"a\\nb\\u00e9\", \"n\": null, \"t\": true}}";
  json_set_alloc_funcs(failing_malloc, free);
  long total = -1;
  for (long k = 0; k < 1000; k++) {
    fail_from = k;
    calls = 0;
    json_t *v = NULL;
    jb_error e;
    jb_error_clear(&e);
    jb_err rc = jb_json_parse(doc, strlen(doc), &v, &e);
    if (rc == JB_OK) { /* the allocation k was never reached: every one was tried */
      cr_expect_str_eq(json_string_value(json_object_get(v, "id")), "e1");
      json_decref(v);
      total = k;
      break;
    }
    cr_expect_eq(rc, JB_ERR_NOMEM, "allocation %ld failing gives NOMEM, not: %s", k, e.msg);
    cr_expect_null(v);
  }
  fail_from = -1;
  json_set_alloc_funcs(malloc, free);
  cr_expect_gt(total, 5, "the parse allocates (%ld), so failures were injected", total);
}
