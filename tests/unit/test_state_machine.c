/* The job status state machine: every one of the 49 (from, to) pairs, legal or not. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/job.h"

enum {
  P = JB_STATUS_PENDING,
  S = JB_STATUS_SCHEDULED,
  R = JB_STATUS_RUNNING,
  C = JB_STATUS_COMPLETED,
  F = JB_STATUS_FAILED,
  T = JB_STATUS_RETRYING,
  D = JB_STATUS_DEAD_LETTER
};

/* legal[from][to], written out by hand from DESIGN.md's lifecycle. */
static const bool legal[JB_STATUS_COUNT][JB_STATUS_COUNT] = {
    /*            P      S      R      C      F      T      D   */
    [P] = {false, false, true, false, true, false, false},
    [S] = {false, false, true, false, true, false, false},
    [R] = {false, false, false, true, true, true, true},
    [C] = {false, false, false, false, false, false, false},
    [F] = {true, false, false, false, false, false, false},
    [T] = {false, false, true, false, true, false, false},
    [D] = {true, false, false, false, false, false, false},
};

Test(state_machine, every_pair) {
  int checked = 0;
  for (int from = 0; from < JB_STATUS_COUNT; from++) {
    for (int to = 0; to < JB_STATUS_COUNT; to++) {
      jb_error e;
      jb_error_clear(&e);
      jb_err rc = jb_status_transition((jb_job_status)from, (jb_job_status)to, &e);
      if (legal[from][to]) {
        cr_expect_eq(rc, JB_OK, "%s -> %s should be legal", jb_status_name(from),
                     jb_status_name(to));
      } else {
        cr_expect_eq(rc, JB_ERR_STATE, "%s -> %s should be illegal", jb_status_name(from),
                     jb_status_name(to));
        cr_expect(strstr(e.msg, jb_status_name(from)) && strstr(e.msg, jb_status_name(to)),
                  "message names both states: %s", e.msg);
      }
      checked++;
    }
  }
  cr_assert_eq(checked, 49);
}

Test(state_machine, out_of_range_is_illegal) {
  jb_error e;
  cr_expect_eq(jb_status_transition((jb_job_status)99, JB_STATUS_RUNNING, &e), JB_ERR_STATE);
  cr_expect_eq(jb_status_transition(JB_STATUS_PENDING, (jb_job_status)-1, &e), JB_ERR_STATE);
  cr_expect_eq(jb_status_transition(JB_STATUS_RUNNING, JB_STATUS_COUNT, NULL), JB_ERR_STATE);
}

Test(status, names_round_trip) {
  const char *names[] = {"PENDING", "SCHEDULED", "RUNNING",    "COMPLETED",
                         "FAILED",  "RETRYING",  "DEAD_LETTER"};
  for (int i = 0; i < JB_STATUS_COUNT; i++) {
    cr_expect_str_eq(jb_status_name((jb_job_status)i), names[i]);
    jb_job_status s;
    cr_expect_eq(jb_status_parse(names[i], &s), JB_OK);
    cr_expect_eq(s, i);
  }
  jb_job_status s;
  cr_expect_eq(jb_status_parse("dead_letter", &s), JB_OK, "case-insensitive");
  cr_expect_eq(s, JB_STATUS_DEAD_LETTER);
  cr_expect_eq(jb_status_parse("DONE", &s), JB_ERR_INVALID);
  cr_expect_eq(jb_status_parse(NULL, &s), JB_ERR_INVALID);
  cr_expect_str_eq(jb_status_name((jb_job_status)42), "UNKNOWN");
}

Test(status, waiting_and_final) {
  cr_expect(jb_status_is_waiting(JB_STATUS_PENDING));
  cr_expect(jb_status_is_waiting(JB_STATUS_SCHEDULED));
  cr_expect(jb_status_is_waiting(JB_STATUS_RETRYING));
  cr_expect(!jb_status_is_waiting(JB_STATUS_RUNNING));
  cr_expect(jb_status_is_final(JB_STATUS_COMPLETED));
  cr_expect(jb_status_is_final(JB_STATUS_FAILED));
  cr_expect(jb_status_is_final(JB_STATUS_DEAD_LETTER));
  cr_expect(!jb_status_is_final(JB_STATUS_RETRYING));
}

Test(time, format_reuses_the_date_only_within_its_second) {
  char buf[40], small[12];
  cr_expect_str_eq(jb_time_format(1795387650000001LL, buf, sizeof buf),
                   "2026-11-22T22:47:30.000001Z");
  cr_expect_str_eq(jb_time_format(1795387650999999LL, buf, sizeof buf),
                   "2026-11-22T22:47:30.999999Z");
  cr_expect_str_eq(jb_time_format(1795387651000000LL, buf, sizeof buf),
                   "2026-11-22T22:47:31.000000Z", "the next second");
  cr_expect_str_eq(jb_time_format(-1, buf, sizeof buf), "1969-12-31T23:59:59.999999Z");
  cr_expect_str_eq(jb_time_format(1795387651000000LL, small, sizeof small), "2026-11-22T",
                   "a small buffer gets a truncated string");
}

Test(time, format_and_parse) {
  jb_time t;
  cr_assert_eq(jb_time_parse("2026-11-22T22:47:30.123456Z", &t), JB_OK);
  cr_expect_eq(t, 1795387650123456LL);
  char buf[40];
  cr_expect_str_eq(jb_time_format(t, buf, sizeof buf), "2026-11-22T22:47:30.123456Z");
  cr_assert_eq(jb_time_parse("2026-11-22T23:47:30.123456+01:00", &t), JB_OK);
  cr_expect_eq(t, 1795387650123456LL, "offsets are applied");
  cr_assert_eq(jb_time_parse("1795387650", &t), JB_OK);
  cr_expect_eq(t, 1795387650000000LL, "epoch seconds");
  cr_expect_eq(jb_time_parse("2026-11-22T22:47:30", &t), JB_ERR_INVALID, "no zone: ambiguous");
  cr_expect_eq(jb_time_parse("2026-13-01T00:00:00Z", &t), JB_ERR_INVALID);
  cr_expect_eq(jb_time_parse("tomorrow", &t), JB_ERR_INVALID);
  cr_expect_eq(jb_time_parse("", &t), JB_ERR_INVALID);
  cr_assert_eq(jb_time_parse("1970-01-01T00:00:00Z", &t), JB_OK);
  cr_expect_eq(t, 0);
}

Test(job, to_json_has_every_contract_field) {
  jb_job job;
  memset(&job, 0, sizeof job);
  strcpy(job.id, "1de07a1b-676c-45bc-b465-0d67fc9f3fee");
  job.queue_name = strdup("default");
  job.job_type = strdup("t");
  job.payload = json_pack("{s:i}", "a", 1);
  job.metadata = json_object();
  job.status = JB_STATUS_RETRYING;
  job.created_at = 1795387650123456LL;
  json_t *o = jb_job_to_json(&job);
  const char *fields[] = {"id",         "queue_name",   "job_type",        "payload",
                          "priority",   "max_retries",  "retry_count",     "scheduled_at",
                          "started_at", "completed_at", "failed_at",       "created_at",
                          "updated_at", "status",       "error_message",   "created_by",
                          "metadata",   "result",       "progress",        "dedupe_key",
                          "locked_by",  "locked_until", "progress_message"};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    cr_expect(json_object_get(o, fields[i]) != NULL, "field %s", fields[i]);
  cr_expect_eq(json_object_size(o), sizeof fields / sizeof fields[0]);
  cr_expect_str_eq(json_string_value(json_object_get(o, "status")), "RETRYING");
  cr_expect_str_eq(json_string_value(json_object_get(o, "created_at")),
                   "2026-11-22T22:47:30.123456Z");
  cr_expect(json_is_null(json_object_get(o, "started_at")));
  json_decref(o);
  jb_job_clear(&job);
}

Test(errors, strerror_covers_every_code) {
  cr_expect_str_eq(jb_strerror(JB_OK), "ok");
  cr_expect_str_eq(jb_strerror(JB_ERR_NOT_FOUND), "not found");
  cr_expect_str_eq(jb_strerror((jb_err)-999), "unknown error");
}
