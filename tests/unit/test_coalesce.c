/* The group-committing JobCreator (jobbridge/coalesce.h) against a recording inner creator (no
 * server): many threads at once each get their own outcomes, groups form under load, a group
 * refused as invalid is retried one caller at a time, a failure reaches every caller of the
 * group, and a stopped coalescer refuses. (Criterion cannot start under TSan: the group commit
 * runs under TSan through integration.http_api, POST /v1/jobs.) */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jobbridge/coalesce.h"

#define THREADS 32
#define ROUNDS 40

/* An inner creator: each request's outcome id is its queue_name (unique per caller and round),
 * so a caller can tell that it got its own; sleeps a little so that callers queue up. */
typedef struct inner {
  atomic_int calls;
  atomic_int max_n;
  jb_err fail;            /* returned for every group of more than one request, when set */
  const char *refuse_tag; /* a group holding this queue_name is refused as invalid */
} inner;

static jb_err inner_create(void *self, const jb_job_request *reqs, size_t n, jb_create_outcome *out,
                           jb_error *e) {
  inner *in = self;
  atomic_fetch_add(&in->calls, 1);
  int m = atomic_load(&in->max_n);
  while ((int)n > m && !atomic_compare_exchange_weak(&in->max_n, &m, (int)n)) continue;
  nanosleep(&(struct timespec){0, 2000000}, NULL);
  for (size_t i = 0; i < n; i++)
    if (in->refuse_tag != NULL && strcmp(reqs[i].queue_name, in->refuse_tag) == 0)
      return jb_fail(e, JB_ERR_DB_REFUSED, "refused: %s", reqs[i].queue_name);
  if (in->fail != JB_OK && n > 1) return jb_fail(e, in->fail, "the database is down");
  for (size_t i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].status = JB_CREATE_CREATED;
    snprintf(out[i].id, sizeof out[i].id, "%s", reqs[i].queue_name);
  }
  return JB_OK;
}

static const jb_job_creator_ops inner_ops = {.create_jobs = inner_create};

static jb_config *cfg;
static jb_job_service validator;
static inner in;
static jb_coalescer *co;

static void setup(void) {
  jb_error e;
  cr_assert_eq(
      jb_config_parse("{\"job_types\": {\"noop\": {\"handler\": \"noop\"}}}", "t.json", &cfg, &e),
      JB_OK, "%s", e.msg);
  memset(&in, 0, sizeof in);
  jb_job_service_init(&validator, (jb_job_store){NULL, NULL}, (jb_work_queue){NULL, NULL}, cfg);
  jb_job_creator inners[2] = {{&inner_ops, &in}, {&inner_ops, &in}};
  cr_assert_eq(jb_coalescer_new(inners, 2, &validator, 1000, &co, &e), JB_OK, "%s", e.msg);
}

static void teardown(void) {
  jb_coalescer_free(co);
  jb_config_free(cfg);
}

TestSuite(coalesce, .init = setup, .fini = teardown, .timeout = 120);

typedef struct caller {
  int index;
  int wrong; /* outcomes that were not this caller's, or failures */
  jb_err last_rc;
} caller;

static void *call_many(void *arg) {
  caller *c = arg;
  jb_job_creator cr = jb_coalescer_creator(co);
  json_t *payload = json_object();
  for (int r = 0; r < ROUNDS; r++) {
    char tag[37];
    snprintf(tag, sizeof tag, "c%d-r%d", c->index, r);
    jb_job_request req = {.job_type = "noop", .queue_name = tag, .payload = payload};
    req.opts.max_retries = -1;
    jb_create_outcome out;
    jb_error e;
    c->last_rc = cr.ops->create_jobs(cr.self, &req, 1, &out, &e);
    if (c->last_rc != JB_OK || out.status != JB_CREATE_CREATED || strcmp(out.id, tag) != 0)
      c->wrong++;
  }
  json_decref(payload);
  return NULL;
}

static void run_callers(caller *cs) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    cs[i] = (caller){.index = i};
    cr_assert_eq(pthread_create(&t[i], NULL, call_many, &cs[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
}

Test(coalesce, every_caller_gets_its_own_outcome_and_groups_form) {
  caller cs[THREADS];
  run_callers(cs);
  for (int i = 0; i < THREADS; i++)
    cr_expect_eq(cs[i].wrong, 0, "caller %d: %d wrong", i, cs[i].wrong);
  jb_coalescer_stats st = jb_coalescer_get_stats(co);
  cr_expect_eq(st.calls, (unsigned long long)THREADS * ROUNDS);
  /* 32 callers against two committers that each take 2 ms: groups of more than one. */
  cr_expect_gt(atomic_load(&in.max_n), 1, "no group ever held more than one request");
  cr_expect_lt(st.groups, st.calls, "%llu inner calls for %llu requests", st.groups, st.calls);
}

Test(coalesce, a_failure_reaches_every_caller_of_the_group) {
  in.fail = JB_ERR_DB;
  caller cs[THREADS];
  run_callers(cs);
  int failed = 0;
  for (int i = 0; i < THREADS; i++) failed += cs[i].wrong;
  cr_expect_gt(failed, 0, "no caller saw the failure of its group");
  /* A caller that went alone succeeded; the others failed: none got anyone else's outcome
   * (an OK answer always carries the caller's own id, checked in call_many). */
}

Test(coalesce, a_refused_group_is_retried_one_caller_at_a_time) {
  in.refuse_tag = "c0-r0";
  caller cs[THREADS];
  run_callers(cs);
  cr_expect_eq(cs[0].wrong, 1, "only c0's first request is refused, not %d", cs[0].wrong);
  for (int i = 1; i < THREADS; i++)
    cr_expect_eq(cs[i].wrong, 0, "caller %d: %d wrong", i, cs[i].wrong);
}

Test(coalesce, a_stopped_coalescer_refuses) {
  jb_coalescer_stop(co);
  json_t *payload = json_object();
  jb_job_request req = {.job_type = "noop", .queue_name = "q", .payload = payload};
  req.opts.max_retries = -1;
  jb_create_outcome out;
  jb_error e;
  jb_job_creator cr = jb_coalescer_creator(co);
  cr_expect_eq(cr.ops->create_jobs(cr.self, &req, 1, &out, &e), JB_ERR_STOPPED);
  cr_expect(strstr(e.msg, "stopping") != NULL, "%s", e.msg);
  json_decref(payload);
}

Test(coalesce, full_groups_leave_the_rest_to_the_next_committer) {
  jb_coalescer_free(co);
  jb_error e;
  jb_job_creator inners[2] = {{&inner_ops, &in}, {&inner_ops, &in}};
  cr_assert_eq(jb_coalescer_new(inners, 2, &validator, 4, &co, &e), JB_OK, "%s", e.msg);
  caller cs[THREADS];
  run_callers(cs);
  for (int i = 0; i < THREADS; i++)
    cr_expect_eq(cs[i].wrong, 0, "caller %d: %d wrong", i, cs[i].wrong);
  cr_expect_leq(atomic_load(&in.max_n), 4, "a group of %d requests, over max_group 4",
                atomic_load(&in.max_n));
}
