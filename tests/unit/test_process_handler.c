/* The process handler's line reader, and the handler run directly with real processes (no
 * servers): answers, progress passed to the ctx, a process that hangs past timeout_s or exits is
 * replaced and the next job is served by a new one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "handlers/process_internal.h"

typedef struct capture {
  jb_handler_ctx ctx; /* first: the callback gets this pointer */
  int pct, calls;
  char msg[64];
} capture;

static void capture_progress(jb_handler_ctx *ctx, int pct, const char *message) {
  capture *c = (capture *)ctx;
  c->pct = pct;
  c->calls++;
  snprintf(c->msg, sizeof c->msg, "%s", message ? message : "(none)");
}

static int line(const char *text, capture *c, jb_job_result *r) {
  return jb_process_line(text, strlen(text), "j1", &c->ctx, r);
}

Test(process_line, answers_progress_and_garbage) {
  capture c = {.ctx.progress = capture_progress};
  jb_job_result r = {0};
  cr_assert_eq(line("{\"id\":\"j1\",\"progress\":140,\"message\":\"m\"}", &c, &r), 0);
  cr_expect_eq(c.pct, 100, "clamped");
  cr_expect_str_eq(c.msg, "m");
  cr_assert_eq(line("{\"id\":\"j1\",\"ok\":true,\"result\":{\"a\":1}}\r", &c, &r), 1);
  cr_expect(r.success);
  cr_expect_eq(json_integer_value(json_object_get(r.result_data, "a")), 1);
  jb_job_result_clear(&r);
  cr_assert_eq(line("{\"id\":\"j1\",\"ok\":false,\"retry\":false,\"error\":\"bad\"}", &c, &r), 1);
  cr_expect(!r.success);
  cr_expect(!r.retriable);
  cr_expect_str_eq(r.error_message, "bad");
  jb_job_result_clear(&r);
  const char *bad[] = {"not json", "[1]", "{\"id\":\"j2\",\"ok\":true}", "{\"id\":\"j1\"}", NULL};
  for (int i = 0; bad[i]; i++) {
    cr_assert_eq(line(bad[i], &c, &r), -1, "%s", bad[i]);
    cr_expect(!r.success && r.retriable);
    cr_expect_not_null(strstr(r.error_message, "garbage"), "%s", r.error_message);
    jb_job_result_clear(&r);
  }
}

/* A shell worker: answers each job by its payload's "do": ok, progress then ok, hang, exit. */
static const char *WORKER =
    "while read -r line; do\n"
    "  id=$(printf '%s' \"$line\" | sed 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/')\n"
    "  case \"$line\" in\n"
    "  *'\"do\":\"hang\"'*) sleep 30 ;;\n"
    "  *'\"do\":\"exit\"'*) exit 4 ;;\n"
    "  *'\"do\":\"progress\"'*) echo \"{\\\"id\\\":\\\"$id\\\",\\\"progress\\\":30}\" ;;\n"
    "  esac\n"
    "  echo \"{\\\"id\\\":\\\"$id\\\",\\\"ok\\\":true,\\\"result\\\":{\\\"pid\\\":$$}}\"\n"
    "done\n";

static void run(jb_job_handler h, const char *id, const char *what, capture *c, jb_job_result *r) {
  jb_job job = {0};
  snprintf(job.id, sizeof job.id, "%s", id);
  job.job_type = "t";
  job.queue_name = "default";
  job.payload = json_pack("{s:s}", "do", what);
  memset(r, 0, sizeof *r);
  h.ops->handle(h.self, &job, &c->ctx, r);
  json_decref(job.payload);
}

Test(process_handler, replaces_hanging_and_exiting_processes, .timeout = 60) {
  char *argv[] = {"/bin/sh", "-c", (char *)WORKER, NULL};
  jb_process_config pc = {.argv = argv, .processes = 1, .timeout_s = 1, .job_type = "t"};
  jb_job_handler h;
  jb_error e;
  cr_assert_eq(jb_process_handler_create(&pc, &h, &e), JB_OK, "%s", e.msg);
  capture c = {.ctx.progress = capture_progress};
  jb_job_result r;
  run(h, "a1", "progress", &c, &r);
  cr_assert(r.success, "%s", r.error_message ? r.error_message : "");
  cr_expect_eq(c.pct, 30);
  json_int_t pid1 = json_integer_value(json_object_get(r.result_data, "pid"));
  jb_job_result_clear(&r);
  run(h, "a2", "ok", &c, &r);
  cr_expect_eq(json_integer_value(json_object_get(r.result_data, "pid")), pid1, "same process");
  jb_job_result_clear(&r);
  run(h, "a3", "hang", &c, &r);
  cr_expect(!r.success && r.retriable);
  cr_expect_not_null(strstr(r.error_message, "timeout_s"), "%s", r.error_message);
  jb_job_result_clear(&r);
  run(h, "a4", "exit", &c, &r);
  cr_expect(!r.success && r.retriable);
  cr_expect_not_null(strstr(r.error_message, "status 4"), "%s", r.error_message);
  jb_job_result_clear(&r);
  run(h, "a5", "ok", &c, &r);
  cr_assert(r.success, "%s", r.error_message ? r.error_message : "");
  cr_expect_neq(json_integer_value(json_object_get(r.result_data, "pid")), pid1, "replaced");
  jb_job_result_clear(&r);
  jb_job_handler_release(h);
}

Test(process_handler, refuses_bad_config) {
  char *argv[] = {"no-such-program-jb", NULL};
  jb_process_config pc = {.argv = argv, .processes = 1, .timeout_s = 1, .job_type = "t"};
  jb_job_handler h;
  jb_error e;
  cr_expect_eq(jb_process_handler_create(&pc, &h, &e), JB_ERR_INVALID);
  cr_expect_not_null(strstr(e.msg, "no-such-program-jb"), "%s", e.msg);
  pc.processes = 0;
  cr_expect_eq(jb_process_handler_create(&pc, &h, &e), JB_ERR_INVALID);
}
