/* Issue 11, defect 6: an event's numbers reach the jsonb parameter exactly as they arrived
 * (19.99 stayed 19.989999999999998, 1e400 and big integers were refused as malformed). Uses
 * only the event and array APIs, so it runs against the code before the fix too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "jobbridge/event.h"
#include "postgres/pg_array.h"

static jb_config *config(void) {
  jb_config *cfg;
  jb_error e;
  const char *text =
      "{\"job_types\": {\"a\": {\"handler\": \"noop\"}},"
      " \"mappings\": [{\"event_type\": \"order.created\", \"job_type\": \"a\"}]}";
  cr_assert_eq(jb_config_parse(text, "test", &cfg, &e), JB_OK, "%s", e.msg);
  return cfg;
}

/* The payload of the one job `body` maps to, as the jsonb array element ingest sends. */
static void expect_payload_text(const char *num) {
  char body[512], want[512];
  snprintf(body, sizeof body,
           "{\"event_type\": \"order.created\", \"payload\": {\"amount\": %s, \"l\": [%s]}}", num,
           num);
  snprintf(want, sizeof want, "{\\\"amount\\\":%s,\\\"l\\\":[%s]}", num, num);
  jb_delivery_facts f = {.body = body, .body_len = strlen(body)};
  jb_config *cfg = config();
  jb_event ev;
  jb_mapped m;
  jb_error e;
  cr_assert_eq(jb_event_parse(&f, 65536, false, &ev, &e), JB_OK, "%s: %s", num, e.msg);
  cr_assert_eq(jb_event_map(cfg, &ev, &f, &m, &e), JB_OK, "%s: %s", num, e.msg);
  cr_assert_eq(m.n, 1);
  jb_pg_array a = {0};
  jb_pg_array_begin(&a);
  jb_pg_array_json(&a, m.reqs[0].payload);
  const char *lit = jb_pg_array_end(&a);
  cr_assert_not_null(lit);
  char expect[600];
  snprintf(expect, sizeof expect, "{\"%s\"}", want);
  cr_expect_str_eq(lit, expect, "%s arrives as written", num);
  jb_pg_array_free(&a);
  jb_mapped_clear(&m);
  jb_event_clear(&ev);
  jb_config_free(cfg);
}

Test(event_numbers, reals_reach_the_database_as_written) {
  const char *nums[] = {"19.99", "0.1", "-0.0", "1.50", "1E+2", "-0", "2.5e-3"};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) expect_payload_text(nums[i]);
}

Test(event_numbers, numbers_beyond_double_and_int64_are_not_malformed) {
  const char *nums[] = {"1e400", "12345678901234567890123", "-1e-400", "9223372036854775808"};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) expect_payload_text(nums[i]);
}
