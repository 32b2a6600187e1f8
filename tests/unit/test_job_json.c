/* jb_job_write_json writes exactly the text of jb_json_dumps(jb_job_to_json(job), compact), for
 * jobs with every field unset, every field set, and strings that need escaping. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/job_json.h"

static void expect_same(const jb_job *job) {
  json_t *tree = jb_job_to_json(job);
  cr_assert_not_null(tree);
  char *want = jb_json_dumps(tree, JB_JSON_COMPACT, NULL);
  json_decref(tree);
  cr_assert_not_null(want);
  jb_json_buf b = {0};
  cr_assert(jb_job_write_json(&b, job));
  char *got = strndup(b.data, b.len);
  cr_expect_str_eq(got, want);
  free(got);
  free(want);
  free(b.data);
}

Test(job_json, an_empty_job) {
  jb_job j = {0};
  expect_same(&j);
}

Test(job_json, a_created_job) {
  jb_job j = {0};
  strcpy(j.id, "0190b7e4-1d2c-7a3b-8c4d-5e6f708192a3");
  j.queue_name = "default";
  j.job_type = "noop";
  j.payload = json_pack("{s:i, s:[s, f, b, n]}", "n", 1, "list", "x", 2.5, 1);
  j.priority = -7;
  j.max_retries = 3;
  j.created_at = j.updated_at = j.scheduled_at = 1764547200123456;
  j.status = JB_STATUS_PENDING;
  expect_same(&j);
  json_decref(j.payload);
}

Test(job_json, every_field_and_escapes) {
  jb_job j = {0};
  strcpy(j.id, "0190b7e4-1d2c-7a3b-8c4d-5e6f708192a3");
  j.queue_name = "q \"quoted\" \\ back";
  j.job_type = "t\u00e9st\n\t\x01";
  j.payload = json_pack("{s:s}", "k\"ey", "v\u2603");
  j.priority = 1000000;
  j.max_retries = 1000;
  j.retry_count = 2;
  j.scheduled_at = 1;
  j.started_at = 2000000;
  j.completed_at = 253402300799000000;
  j.failed_at = 3;
  j.created_at = 4;
  j.updated_at = 5;
  j.status = JB_STATUS_DEAD_LETTER;
  j.error_message = "boom: \"x\"";
  strcpy(j.created_by, "0190b7e4-1d2c-7a3b-8c4d-5e6f708192a4");
  j.metadata = json_pack("{s:{s:i}}", "m", "deep", 2);
  j.result = json_pack("[i, s]", 1, "two");
  j.progress = 100;
  j.progress_message = "done";
  j.dedupe_key = "order-1";
  j.locked_by = "host:1:w2";
  j.locked_until = 6;
  expect_same(&j);
  json_decref(j.payload);
  json_decref(j.metadata);
  json_decref(j.result);
}

Test(job_json, refuses_what_is_not_utf8) {
  jb_job j = {0};
  j.job_type = "bad \xff";
  jb_json_buf b = {0};
  cr_expect_not(jb_job_write_json(&b, &j));
  cr_expect_null(jb_job_to_json(&j));
  free(b.data);
}
