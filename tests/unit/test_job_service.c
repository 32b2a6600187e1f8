/* JobService validation, against a recording JobStore (no server). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobbridge/job_service.h"

/* A JobStore that records what reaches enqueue. */
typedef struct recorder {
  int calls;
  size_t n;
  jb_new_job jobs[8];
  char payloads[8][128];
} recorder;

static jb_err rec_enqueue(void *self, const jb_new_job *jobs, size_t n, jb_create_outcome *out,
                          jb_error *e) {
  (void)e;
  recorder *r = self;
  r->calls++;
  r->n = n;
  for (size_t i = 0; i < n && i < 8; i++) {
    r->jobs[i] = jobs[i];
    char *text = json_dumps(jobs[i].payload, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(r->payloads[i], sizeof r->payloads[i], "%s", text);
    free(text);
    out[i].status = JB_CREATE_CREATED;
    memcpy(out[i].id, jobs[i].id, sizeof out[i].id);
  }
  return JB_OK;
}

static const jb_job_store_ops rec_ops = {.enqueue = rec_enqueue};

static jb_config *cfg;
static recorder rec;
static jb_job_service svc;
static jb_job_creator creator;

static void setup(void) {
  jb_error e;
  const char *text =
      "{\"job_types\": {\"email\": {\"handler\": \"noop\", \"max_retries\": 7},"
      "                 \"resize\": {\"handler\": \"noop\"}}}";
  cr_assert_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  memset(&rec, 0, sizeof rec);
  jb_job_service_init(&svc, (jb_job_store){&rec_ops, &rec}, (jb_work_queue){NULL, NULL}, cfg);
  creator = jb_job_service_creator(&svc);
}

static void teardown(void) {
  jb_config_free(cfg);
}

TestSuite(job_service, .init = setup, .fini = teardown);

Test(job_service, creates_with_defaults) {
  json_t *payload = json_pack("{s:s}", "to", "a@example.com");
  jb_job_request req = {.job_type = "email", .payload = payload};
  req.opts.max_retries = -1;
  jb_create_outcome oc;
  jb_error e;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK, "%s", e.msg);
  cr_expect_eq(rec.calls, 1);
  cr_expect_str_eq(rec.jobs[0].queue_name, "default");
  cr_expect_eq(rec.jobs[0].max_retries, 7, "the job type's max_retries");
  cr_expect_eq(rec.jobs[0].priority, 0);
  cr_expect(jb_is_uuid(rec.jobs[0].id), "generated id %s", rec.jobs[0].id);
  cr_expect_str_eq(oc.id, rec.jobs[0].id);
  cr_expect_str_eq(rec.payloads[0], "{\"to\":\"a@example.com\"}");
  json_decref(payload);
}

Test(job_service, explicit_options_win) {
  json_t *payload = json_object();
  json_t *meta = json_pack("{s:s}", "k", "v");
  jb_job_request req = {
      .job_type = "resize", .payload = payload, .queue_name = "images", .priority = -3};
  req.opts = (jb_job_opts){.max_retries = 0,
                           .metadata = meta,
                           .dedupe_key = "d1",
                           .created_by = "1de07a1b-676c-45bc-b465-0d67fc9f3fee",
                           .scheduled_at = 42};
  jb_create_outcome oc;
  jb_error e;
  cr_assert_eq(jb_create_job(&creator, &req, &oc, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(rec.jobs[0].queue_name, "images");
  cr_expect_eq(rec.jobs[0].priority, -3);
  cr_expect_eq(rec.jobs[0].max_retries, 0);
  cr_expect_str_eq(rec.jobs[0].dedupe_key, "d1");
  cr_expect_eq(rec.jobs[0].scheduled_at, 42);
  cr_expect_eq(rec.jobs[0].metadata, meta);
  json_decref(payload);
  json_decref(meta);
}

/* The unix milliseconds at the start of a version 7 id. */
static uint64_t id_ms(const char *id) {
  char hex[13];
  memcpy(hex, id, 8);
  memcpy(hex + 8, id + 9, 4);
  hex[12] = '\0';
  return strtoull(hex, NULL, 16);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(job_service, ids_are_unique_time_ordered_version_7_uuids) {
  /* 8 calls of 8: more ids than one refill of the generator's pool. */
  json_t *payload = json_object();
  jb_job_request reqs[8];
  for (int i = 0; i < 8; i++) reqs[i] = (jb_job_request){.job_type = "email", .payload = payload};
  char ids[64][37];
  uint64_t before = now_ms();
  for (int call = 0; call < 8; call++) {
    jb_create_outcome oc[8];
    jb_error e;
    cr_assert_eq(creator.ops->create_jobs(creator.self, reqs, 8, oc, &e), JB_OK);
    for (int i = 0; i < 8; i++) memcpy(ids[call * 8 + i], oc[i].id, 37);
  }
  uint64_t after = now_ms();
  for (int i = 0; i < 64; i++) {
    cr_expect(jb_is_uuid(ids[i]), "%s", ids[i]);
    cr_expect_eq(ids[i][14], '7', "version 7: %s", ids[i]);
    cr_expect(strchr("89ab", ids[i][19]) != NULL, "RFC 9562 variant: %s", ids[i]);
    cr_expect(id_ms(ids[i]) >= before && id_ms(ids[i]) <= after,
              "%s carries its creation time (%llu..%llu ms)", ids[i], (unsigned long long)before,
              (unsigned long long)after);
    /* The first 60 bits are the time: never decreasing from one id to the next (the clock
     * does not step back during a test). */
    if (i > 0) cr_expect(strncmp(ids[i - 1], ids[i], 18) <= 0, "%s then %s", ids[i - 1], ids[i]);
    for (int j = i + 1; j < 64; j++) cr_expect_str_neq(ids[i], ids[j]);
  }
  json_decref(payload);
}

/* Expects create to fail with code and a message containing needle, and nothing stored. */
static void expect_refused(jb_job_request *req, jb_err code, const char *needle) {
  jb_create_outcome oc;
  jb_error e;
  jb_error_clear(&e);
  cr_expect_eq(jb_create_job(&creator, req, &oc, &e), code, "got %s", e.msg);
  cr_expect(strstr(e.msg, needle) != NULL, "\"%s\" should contain \"%s\"", e.msg, needle);
  cr_expect_eq(rec.calls, 0, "nothing reaches the queue");
}

Test(job_service, refuses_unregistered_type) {
  json_t *payload = json_object();
  jb_job_request req = {.job_type = "fax", .payload = payload};
  expect_refused(&req, JB_ERR_UNREGISTERED, "job type \"fax\" is not registered");
  json_decref(payload);
}

Test(job_service, refuses_non_object_payloads) {
  json_t *values[] = {json_pack("[i]", 1), json_string("x"), json_integer(3), json_null()};
  const char *kinds[] = {"got an array", "got a string", "got a number", "got null"};
  for (int i = 0; i < 4; i++) {
    jb_job_request req = {.job_type = "email", .payload = values[i]};
    expect_refused(&req, JB_ERR_INVALID, kinds[i]);
    json_decref(values[i]);
  }
  jb_job_request none = {.job_type = "email"};
  expect_refused(&none, JB_ERR_INVALID, "payload must be a JSON object, got nothing");
}

Test(job_service, refuses_bad_options) {
  json_t *payload = json_object();
  jb_job_request req = {.job_type = "email", .payload = payload, .queue_name = ""};
  expect_refused(&req, JB_ERR_INVALID, "queue name must be 1 to");
  req.queue_name = NULL;
  req.opts.created_by = "bob";
  expect_refused(&req, JB_ERR_INVALID, "created_by \"bob\" is not a UUID");
  req.opts.created_by = NULL;
  json_t *arr = json_array();
  req.opts.metadata = arr;
  expect_refused(&req, JB_ERR_INVALID, "metadata must be a JSON object");
  req.opts.metadata = NULL;
  req.opts.dedupe_key = "";
  expect_refused(&req, JB_ERR_INVALID, "dedupe key must be 1 to");
  req.job_type = NULL;
  expect_refused(&req, JB_ERR_INVALID, "job type is missing");
  json_decref(arr);
  json_decref(payload);
}

Test(job_service, batch_is_all_or_nothing) {
  json_t *good = json_object();
  json_t *bad = json_array();
  jb_job_request reqs[3] = {{.job_type = "email", .payload = good},
                            {.job_type = "email", .payload = good},
                            {.job_type = "email", .payload = bad}};
  jb_create_outcome oc[3];
  jb_error e;
  cr_expect_eq(creator.ops->create_jobs(creator.self, reqs, 3, oc, &e), JB_ERR_INVALID);
  cr_expect(strstr(e.msg, "request 2: payload must be a JSON object") != NULL, "%s", e.msg);
  cr_expect_eq(rec.calls, 0, "no half-written batch");
  json_decref(good);
  json_decref(bad);
}

Test(job_service, bad_ids_are_refused_before_the_queue) {
  jb_job job;
  jb_error e;
  cr_expect_eq(jb_job_service_get(&svc, "nope", &job, &e), JB_ERR_INVALID);
  cr_expect(strstr(e.msg, "\"nope\" is not a job id") != NULL);
  cr_expect_eq(jb_job_service_cancel(&svc, "1de07a1b-676c-45bc-b465-0d67fc9f3fe", &job, &e),
               JB_ERR_INVALID);
  cr_expect(jb_is_uuid("1DE07A1B-676C-45BC-B465-0D67FC9F3FEE"));
  cr_expect(!jb_is_uuid("1de07a1b-676c-45bc-b465-0d67fc9f3feg"));
}

/* Issue 16, item 4: a job keeps a valid traceparent (and its tracestate); a malformed one or
 * none gives it a new trace, and a tracestate without a valid traceparent is dropped. */
Test(job_service, trace_context_kept_or_started) {
  static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  json_t *payload = json_object();
  jb_job_request reqs[3] = {
      {.job_type = "email", .payload = payload, .opts = {.max_retries = -1}},
      {.job_type = "email", .payload = payload, .opts = {.max_retries = -1}},
      {.job_type = "email", .payload = payload, .opts = {.max_retries = -1}},
  };
  reqs[0].opts.traceparent = tp;
  reqs[0].opts.tracestate = "k=v";
  reqs[1].opts.traceparent = "00-garbage";
  reqs[1].opts.tracestate = "k=v";
  jb_create_outcome oc[3];
  jb_error e;
  cr_assert_eq(creator.ops->create_jobs(creator.self, reqs, 3, oc, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(rec.jobs[0].traceparent, tp);
  cr_expect_str_eq(rec.jobs[0].tracestate, "k=v");
  for (int i = 1; i < 3; i++) {
    const char *t = rec.jobs[i].traceparent;
    cr_expect_eq(strlen(t), 55, "a new trace: %s", t);
    cr_expect_eq(strncmp(t, "00-", 3), 0);
    cr_expect_neq(strncmp(t + 3, tp + 3, 32), 0);
    cr_expect_null(rec.jobs[i].tracestate, "no tracestate without its traceparent");
  }
  cr_expect_neq(strcmp(rec.jobs[1].traceparent, rec.jobs[2].traceparent), 0);
  json_decref(payload);
}
