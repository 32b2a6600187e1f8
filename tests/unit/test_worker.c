/* The worker pool's outcome rules: what one run of a job leads to (no servers). */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/worker_pool.h"

static jb_config *cfg;

static void setup(void) {
  jb_error e;
  cr_assert_eq(jb_config_parse("{\"retry\": {\"base_s\": 2, \"max_s\": 30, \"jitter\": 0.25}}",
                               "t.json", &cfg, &e),
               JB_OK, "%s", e.msg);
}

static void teardown(void) {
  jb_config_free(cfg);
}

TestSuite(outcome, .init = setup, .fini = teardown);

static jb_job job_with(int retry_count, int max_retries) {
  jb_job j;
  memset(&j, 0, sizeof j);
  strcpy(j.id, "1de07a1b-676c-45bc-b465-0d67fc9f3fee");
  j.retry_count = retry_count;
  j.max_retries = max_retries;
  return j;
}

Test(outcome, success_completes_with_the_result) {
  jb_job j = job_with(0, 3);
  json_t *data = json_object();
  jb_job_result r = {.success = true, .result_data = data};
  jb_finish f = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5);
  cr_expect_eq(f.status, JB_STATUS_COMPLETED);
  cr_expect_eq(f.result, data);
  cr_expect_str_eq(f.id, j.id);
  json_decref(data);
}

Test(outcome, retriable_failure_backs_off_exponentially_with_a_cap) {
  jb_job_result r = {.success = false, .retriable = true, .error_message = "boom"};
  int64_t want[] = {2000, 4000, 8000, 16000, 30000, 30000};
  for (int rc = 0; rc < 6; rc++) {
    jb_job j = job_with(rc, 10);
    jb_finish f = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5); /* 0.5: no jitter */
    cr_expect_eq(f.status, JB_STATUS_RETRYING);
    cr_expect(f.burn_retry);
    cr_expect_eq(f.delay_ms, want[rc], "retry %d: %lld ms", rc, (long long)f.delay_ms);
    cr_expect_str_eq(f.error, "boom");
  }
}

Test(outcome, jitter_stays_within_its_fraction) {
  jb_job j = job_with(1, 10); /* 4 s before jitter */
  jb_job_result r = {.success = false, .retriable = true};
  jb_finish lo = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.0);
  jb_finish hi = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.999999);
  cr_expect_eq(lo.delay_ms, 3000);
  cr_expect_geq(hi.delay_ms, 4999);
  cr_expect_leq(hi.delay_ms, 5000);
}

Test(outcome, exhausted_retries_dead_letter) {
  jb_job j = job_with(3, 3);
  jb_job_result r = {.success = false, .retriable = true, .error_message = "again"};
  jb_finish f = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5);
  cr_expect_eq(f.status, JB_STATUS_DEAD_LETTER);
  cr_expect_str_eq(f.error, "again");
}

Test(outcome, non_retriable_fails_at_once) {
  jb_job j = job_with(0, 3);
  jb_job_result r = {.success = false, .retriable = false, .error_message = "exit status 65"};
  cr_expect_eq(jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5).status, JB_STATUS_FAILED);
}

Test(outcome, cancel_and_shutdown) {
  jb_job j = job_with(3, 3);
  jb_job_result failed = {.success = false, .retriable = true};
  jb_finish c = jb_decide_outcome(cfg, &j, &failed, JB_STOP_CANCEL, 0.5);
  cr_expect_eq(c.status, JB_STATUS_FAILED);
  cr_expect_str_eq(c.error, "Job cancelled");
  jb_finish s = jb_decide_outcome(cfg, &j, &failed, JB_STOP_SHUTDOWN, 0.5);
  cr_expect_eq(s.status, JB_STATUS_RETRYING, "even with no retries left: not the job's fault");
  cr_expect(!s.burn_retry);
  cr_expect_eq(s.delay_ms, 0);
  jb_job_result ok = {.success = true};
  cr_expect_eq(jb_decide_outcome(cfg, &j, &ok, JB_STOP_SHUTDOWN, 0.5).status, JB_STATUS_COMPLETED,
               "a handler that finished despite the stop completed");
}

Test(outcome, every_outcome_is_a_legal_transition_from_running) {
  jb_job_result results[] = {{.success = true}, {.retriable = true}, {.retriable = false}};
  jb_stop_reason stops[] = {JB_STOP_NONE, JB_STOP_CANCEL, JB_STOP_SHUTDOWN};
  for (int rc = 0; rc <= 3; rc++)
    for (size_t a = 0; a < 3; a++)
      for (size_t b = 0; b < 3; b++) {
        jb_job j = job_with(rc, 3);
        jb_finish f = jb_decide_outcome(cfg, &j, &results[a], stops[b], 0.3);
        jb_error e;
        cr_expect_eq(jb_status_transition(JB_STATUS_RUNNING, f.status, &e), JB_OK, "%s", e.msg);
      }
}
