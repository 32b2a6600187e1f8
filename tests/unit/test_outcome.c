/* Issue 12, item 4: the one outcome decision (every status × every run outcome), the one backoff
 * function, and the per-job-type retry policy (config and its use by the worker's decision).
 * No servers. */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "jobbridge/config.h"
#include "jobbridge/outcome.h"
#include "jobbridge/worker_pool.h"

static const jb_retry_policy POLICY = {.base_s = 2, .max_s = 30, .jitter = 0.25};

/* What a RUNNING job with retry_count 1 of max_retries 3 (retries left) and one with 3 of 3
 * (none left) become, for each outcome, with rnd 0.5 (no jitter). */
typedef struct row {
  jb_run_outcome outcome;
  jb_job_status left, none_left; /* the new status with retries left / with none left */
  int count_left;                /* the new retry_count with retries left (1 before) */
  int64_t delay_left;            /* the delay with retries left */
  const char *error;             /* the error recorded ("boom" is the run's own) */
} row;

static const row TABLE[] = {
    {JB_RUN_SUCCEEDED, JB_STATUS_COMPLETED, JB_STATUS_COMPLETED, 1, 0, NULL},
    {JB_RUN_FAILED_RETRIABLE, JB_STATUS_RETRYING, JB_STATUS_DEAD_LETTER, 2, 4000, "boom"},
    {JB_RUN_FAILED_FINAL, JB_STATUS_FAILED, JB_STATUS_FAILED, 1, 0, "boom"},
    {JB_RUN_CANCELLED, JB_STATUS_FAILED, JB_STATUS_FAILED, 1, 0, "Job cancelled"},
    {JB_RUN_INTERRUPTED, JB_STATUS_RETRYING, JB_STATUS_RETRYING, 1, 0, "interrupted by shutdown"},
    {JB_RUN_REQUEUED, JB_STATUS_RETRYING, JB_STATUS_RETRYING, 1, JB_REQUEUE_DELAY_MS, "boom"},
    {JB_RUN_LEASE_EXPIRED, JB_STATUS_RETRYING, JB_STATUS_DEAD_LETTER, 2, 4000,
     "lease expired: the worker running the job was lost"},
};

Test(decide, the_table_covers_every_outcome) {
  cr_assert_eq(sizeof TABLE / sizeof TABLE[0], (size_t)JB_RUN_OUTCOME_COUNT);
  for (int o = 0; o < JB_RUN_OUTCOME_COUNT; o++) cr_expect_eq(TABLE[o].outcome, (jb_run_outcome)o);
}

Test(decide, every_status_and_outcome) {
  for (int s = 0; s < JB_STATUS_COUNT; s++) {
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++) {
      const row *r = &TABLE[i];
      const char *what = jb_run_outcome_name(r->outcome);
      for (int left = 0; left <= 1; left++) {
        int count = left ? 1 : 3;
        jb_decision d = {.status = JB_STATUS_COUNT, .retry_count = -7};
        jb_error e;
        jb_error_clear(&e);
        jb_err rc = jb_decide((jb_job_status)s, count, 3, &POLICY, r->outcome, "boom", 0.5, &d, &e);
        if (s != JB_STATUS_RUNNING) {
          /* Only a running job has a run: refused, nothing decided. */
          cr_expect_eq(rc, JB_ERR_STATE, "%s job, %s: refused", jb_status_name(s), what);
          cr_expect(strstr(e.msg, "illegal job status transition") != NULL, "%s", e.msg);
          cr_expect(strstr(e.msg, jb_status_name(s)) != NULL, "names the status: %s", e.msg);
          cr_expect_eq(d.status, JB_STATUS_COUNT, "untouched on refusal");
          cr_expect_eq(d.retry_count, -7);
          continue;
        }
        cr_assert_eq(rc, JB_OK, "RUNNING, %s: %s", what, e.msg);
        jb_job_status want = left ? r->left : r->none_left;
        cr_expect_eq(d.status, want, "%s, %s: %s", what, left ? "retries left" : "none left",
                     jb_status_name(d.status));
        cr_expect_eq(jb_status_transition(JB_STATUS_RUNNING, d.status, &e), JB_OK);
        bool retry = d.status == JB_STATUS_RETRYING;
        int want_count = left ? r->count_left : 3; /* none left: nothing burns one */
        cr_expect_eq(d.retry_count, want_count, "%s: retry_count %d", what, d.retry_count);
        cr_expect_eq(d.burn_retry, d.retry_count == count + 1, "%s: burn_retry", what);
        cr_expect_eq(d.delay_ms, retry ? r->delay_left : 0, "%s: %lld ms", what,
                     (long long)d.delay_ms);
        if (r->error == NULL)
          cr_expect_null(d.error, "%s: the old error stays", what);
        else
          cr_expect_str_eq(d.error, r->error, "%s", what);
      }
    }
  }
}

Test(decide, a_missing_error_is_failed_and_an_unknown_outcome_is_refused) {
  jb_decision d;
  jb_error e;
  cr_assert_eq(jb_decide(JB_STATUS_RUNNING, 0, 3, &POLICY, JB_RUN_FAILED_FINAL, NULL, 0.5, &d, &e),
               JB_OK);
  cr_expect_str_eq(d.error, "failed");
  cr_expect_eq(jb_decide(JB_STATUS_RUNNING, 0, 3, &POLICY, JB_RUN_OUTCOME_COUNT, NULL, 0.5, &d, &e),
               JB_ERR_STATE);
  cr_expect(strstr(e.msg, "unknown run outcome") != NULL, "%s", e.msg);
}

Test(decide, no_retries_at_all_dead_letters_the_first_failure) {
  jb_decision d;
  jb_error e;
  cr_assert_eq(jb_decide(JB_STATUS_RUNNING, 0, 0, &POLICY, JB_RUN_LEASE_EXPIRED, NULL, 0.5, &d, &e),
               JB_OK);
  cr_expect_eq(d.status, JB_STATUS_DEAD_LETTER);
  cr_expect_eq(d.retry_count, 0);
}

/* ---- the backoff ---- */

Test(backoff, doubles_from_the_base_up_to_the_cap) {
  int64_t want[] = {2000, 4000, 8000, 16000, 30000, 30000, 30000};
  for (int n = 0; n < 7; n++)
    cr_expect_eq(jb_retry_delay_ms(&POLICY, n, 0.5), want[n], "retry %d", n);
  cr_expect_eq(jb_retry_delay_ms(&POLICY, -5, 0.5), 2000, "a negative count counts as 0");
}

Test(backoff, jitter_stays_within_its_fraction) {
  for (int n = 0; n < 12; n++) {
    int64_t mid = jb_retry_delay_ms(&POLICY, n, 0.5);
    for (double rnd = 0.0; rnd < 1.0; rnd += 0.0625) {
      int64_t d = jb_retry_delay_ms(&POLICY, n, rnd);
      cr_expect_geq(d, mid * 3 / 4, "retry %d rnd %g: %lld", n, rnd, (long long)d);
      cr_expect_leq(d, mid * 5 / 4, "retry %d rnd %g: %lld", n, rnd, (long long)d);
    }
    cr_expect_eq(jb_retry_delay_ms(&POLICY, n, 0.0), mid * 3 / 4, "the low end: -25%%");
    cr_expect_geq(jb_retry_delay_ms(&POLICY, n, 0.999999), mid * 5 / 4 - 1, "the high end");
  }
  cr_expect_eq(jb_retry_delay_ms(&POLICY, 0, -3.0), 1500, "rnd below 0 is clamped");
  cr_expect_leq(jb_retry_delay_ms(&POLICY, 0, 7.0), 2500, "rnd above 1 is clamped");
}

Test(backoff, large_retry_counts_give_the_cap_without_overflow) {
  int counts[] = {30, 31, 62, 63, 64, 100, 1000, 1023, 1024, 1025, 5000, INT_MAX};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
    cr_expect_eq(jb_retry_delay_ms(&POLICY, counts[i], 0.5), 30000, "retry %d", counts[i]);
    int64_t hi = jb_retry_delay_ms(&POLICY, counts[i], 0.999999);
    cr_expect(hi >= 37499 && hi <= 37500, "retry %d with jitter: %lld", counts[i], (long long)hi);
  }
  jb_retry_policy week = {.base_s = 86400, .max_s = 604800, .jitter = 1};
  cr_expect_eq(jb_retry_delay_ms(&week, INT_MAX, 0.5), 604800000LL);
  cr_expect_leq(jb_retry_delay_ms(&week, INT_MAX, 0.999999), 2 * 604800000LL);
  cr_expect_eq(jb_retry_delay_ms(&week, INT_MAX, 0.0), 0, "jitter 1 may take it all");
}

Test(backoff, a_zero_base_retries_at_once) {
  jb_retry_policy zero = {.base_s = 0, .max_s = 0, .jitter = 0.5};
  for (int n = 0; n < 2000; n += 97) cr_expect_eq(jb_retry_delay_ms(&zero, n, 0.9), 0);
}

/* ---- the per-job-type policy ---- */

static jb_config *parse(const char *text) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  return cfg;
}

static void expect_bad(const char *text, const char *needle) {
  jb_config *cfg = NULL;
  jb_error e;
  jb_error_clear(&e);
  cr_expect_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_ERR_CONFIG, "%s", text);
  cr_expect_null(cfg);
  cr_expect(strstr(e.msg, needle) != NULL, "\"%s\" should contain \"%s\"", e.msg, needle);
  jb_config_free(cfg);
}

#define GLOBAL "\"retry\": {\"base_s\": 2, \"max_s\": 30, \"jitter\": 0.25}"

Test(retry_policy, each_unset_field_is_the_global_one) {
  jb_config *cfg = parse("{" GLOBAL
                         ", \"job_types\": {"
                         "\"plain\": {\"handler\": \"noop\"},"
                         "\"slow\": {\"handler\": \"noop\", \"retry\": {\"base_s\": 10}},"
                         "\"all\": {\"handler\": \"noop\", \"retry\": {\"base_s\": 0.5, "
                         "\"max_s\": 4, \"jitter\": 0}},"
                         "\"nulls\": {\"handler\": \"noop\", \"retry\": {\"base_s\": null, "
                         "\"max_s\": null, \"jitter\": null}}}}");
  jb_retry_policy p = jb_config_retry_policy(cfg, "plain");
  cr_expect(p.base_s == 2 && p.max_s == 30 && p.jitter == 0.25);
  p = jb_config_retry_policy(cfg, "slow");
  cr_expect(p.base_s == 10 && p.max_s == 30 && p.jitter == 0.25);
  p = jb_config_retry_policy(cfg, "all");
  cr_expect(p.base_s == 0.5 && p.max_s == 4 && p.jitter == 0);
  p = jb_config_retry_policy(cfg, "nulls");
  cr_expect(p.base_s == 2 && p.max_s == 30 && p.jitter == 0.25);
  p = jb_config_retry_policy(cfg, "unregistered");
  cr_expect(p.base_s == 2 && p.max_s == 30 && p.jitter == 0.25, "the global policy");
  p = jb_config_retry_policy(cfg, NULL);
  cr_expect(p.base_s == 2 && p.max_s == 30 && p.jitter == 0.25);
  /* The effective config shows every type's resolved policy. */
  json_t *dump = jb_config_to_json(cfg);
  json_t *slow =
      json_object_get(json_object_get(json_object_get(dump, "job_types"), "slow"), "retry");
  cr_expect_eq(json_real_value(json_object_get(slow, "base_s")), 10);
  cr_expect_eq(json_real_value(json_object_get(slow, "max_s")), 30);
  json_decref(dump);
  jb_config_free(cfg);
}

Test(retry_policy, the_worker_decides_with_its_types_policy) {
  jb_config *cfg = parse("{" GLOBAL
                         ", \"job_types\": {"
                         "\"plain\": {\"handler\": \"noop\"},"
                         "\"slow\": {\"handler\": \"noop\", \"retry\": {\"base_s\": 60, "
                         "\"max_s\": 3600, \"jitter\": 0}}}}");
  jb_job j;
  memset(&j, 0, sizeof j);
  strcpy(j.id, "1de07a1b-676c-45bc-b465-0d67fc9f3fee");
  j.retry_count = 2;
  j.max_retries = 5;
  jb_job_result r = {.success = false, .retriable = true, .error_message = "boom"};
  j.job_type = "slow";
  jb_finish f = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.9);
  cr_expect_eq(f.status, JB_STATUS_RETRYING);
  cr_expect_eq(f.delay_ms, 240000, "60 s × 2², no jitter: %lld", (long long)f.delay_ms);
  j.job_type = "plain";
  f = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5);
  cr_expect_eq(f.delay_ms, 8000, "the global 2 s × 2²");
  j.retry_count = 10;
  j.max_retries = 20;
  j.job_type = "slow";
  cr_expect_eq(jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5).delay_ms, 3600000, "its cap");
  jb_config_free(cfg);
}

/* Issue 16: a handler's Retry-After replaces the backoff, capped by the type's retry.max_s; it
 * never turns a job whose retries are spent into a retry. */
Test(retry_policy, a_handlers_retry_after_is_capped_by_the_types_max) {
  jb_config *cfg = parse("{" GLOBAL
                         ", \"job_types\": {"
                         "\"h\": {\"handler\": \"noop\", \"retry\": {\"base_s\": 1, "
                         "\"max_s\": 60, \"jitter\": 0}}}}");
  jb_job j;
  memset(&j, 0, sizeof j);
  strcpy(j.id, "1de07a1b-676c-45bc-b465-0d67fc9f3fee");
  j.job_type = "h";
  j.max_retries = 3;
  jb_job_result r = {.retriable = true, .error_message = "HTTP 429", .retry_after_ms = 7000};
  jb_finish f = jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5);
  cr_expect_eq(f.status, JB_STATUS_RETRYING);
  cr_expect_eq(f.delay_ms, 7000, "Retry-After 7 s, not the 1 s backoff: %lld",
               (long long)f.delay_ms);
  r.retry_after_ms = 3600000;
  cr_expect_eq(jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5).delay_ms, 60000, "the cap");
  j.retry_count = 3;
  cr_expect_eq(jb_decide_outcome(cfg, &j, &r, JB_STOP_NONE, 0.5).status, JB_STATUS_DEAD_LETTER);
  jb_config_free(cfg);
}

Test(retry_policy, bad_values_name_the_key) {
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": {\"base_s\": -1}}}}",
             "job_types.a.retry.base_s: -1 is out of range");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": {\"jitter\": 1.5}}}}",
             "job_types.a.retry.jitter: 1.5 is out of range (0 to 1)");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": {\"max_s\": \"1\"}}}}",
             "job_types.a.retry.max_s: expected a number");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": {\"base\": 1}}}}",
             "job_types.a.retry.base: unknown key");
  expect_bad("{\"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": 5}}}",
             "job_types.a.retry: expected an object");
  /* The cap below the base, wherever each comes from. */
  expect_bad(
      "{\"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": {\"base_s\": 10, "
      "\"max_s\": 5}}}}",
      "job_types.a.retry: max_s 5 (job_types.a.retry.max_s) is below base_s 10 "
      "(job_types.a.retry.base_s)");
  expect_bad("{" GLOBAL
             ", \"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": "
             "{\"base_s\": 600}}}}",
             "job_types.a.retry: max_s 30 (retry.max_s) is below base_s 600 "
             "(job_types.a.retry.base_s)");
  expect_bad("{" GLOBAL
             ", \"job_types\": {\"a\": {\"handler\": \"noop\", \"retry\": "
             "{\"max_s\": 1}}}}",
             "job_types.a.retry: max_s 1 (job_types.a.retry.max_s) is below base_s 2 "
             "(retry.base_s)");
}
