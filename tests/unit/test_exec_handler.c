/* The exec handler run directly (no servers): its deadline holds when the program closed its
 * output, no process of its tree outlives the run, its environment is an allowlist, and a
 * resource shortage says requeue. Processes are looked for in /proc by a unique marker in their
 * command line (sleep's argument). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handlers/handlers.h"
#include "handlers/shepherd.h"
#include "jobbridge/config.h"

/* A sleep duration unique to this test process, e.g. "1003.012345", to find its processes. */
static void marker(char *buf, size_t len, int base) {
  snprintf(buf, len, "%d.%06d", base, (int)getpid() % 1000000);
}

/* How many `sleep <needle>` processes there are (zombies excluded: they have no command line);
 * each is sent sig first unless sig is 0. */
static int signal_procs(const char *needle, int sig) {
  DIR *d = opendir("/proc");
  int n = 0;
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL) {
    if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
    char path[300], buf[4096];
    snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) continue;
    buf[len] = '\0';
    size_t first = strlen(buf);
    if (strcmp(buf, "sleep") == 0 && (ssize_t)first < len && strcmp(buf + first + 1, needle) == 0) {
      if (sig != 0) kill(atoi(de->d_name), sig);
      n++;
    }
  }
  if (d) closedir(d);
  return n;
}

static int count_procs(const char *needle) {
  return signal_procs(needle, 0);
}

static void use_fork(void) {
  jb_run_use_fork(true);
}

static jb_job test_job(void) {
  jb_job job = {0};
  snprintf(job.id, sizeof job.id, "0190d3e4-0000-7000-8000-000000000001");
  job.job_type = "t";
  job.queue_name = "default";
  job.payload = json_object();
  job.metadata = json_object();
  return job;
}

/* Runs `sh -c script` with the given timeout; returns the seconds it took. */
static double run_sh(const char *script, double timeout_s, jb_handler_ctx *ctx, jb_job_result *r) {
  char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
  jb_job_handler h;
  jb_error e;
  cr_assert_eq(jb_exec_handler_new(argv, timeout_s, &h, &e), JB_OK);
  jb_job job = test_job();
  jb_handler_ctx own = {0};
  int64_t t0 = jb_mono_ms();
  h.ops->handle(h.self, &job, ctx ? ctx : &own, r);
  double took = (double)(jb_mono_ms() - t0) / 1000;
  h.ops->destroy(h.self);
  json_decref(job.payload);
  json_decref(job.metadata);
  return took;
}

static void success_returns_stdout_object_body(void) {
  jb_job_result r = {0};
  run_sh("cat >/dev/null; echo '{\"ok\": true}'", 30, NULL, &r);
  cr_assert(r.success, "%s", r.error_message ? r.error_message : "");
  cr_assert(json_is_true(json_object_get(r.result_data, "ok")));
  jb_job_result_clear(&r);
}

Test(exec, success_returns_stdout_object) {
  success_returns_stdout_object_body();
}

/* The same with the shepherd forked from this process (where jb-shepherd cannot run). */
Test(exec_fork, success_returns_stdout_object, .init = use_fork) {
  success_returns_stdout_object_body();
}

/* Defect 9: the deadline holds although the program closed stdout and stderr. */
Test(exec, timeout_stops_a_program_that_closed_its_output, .timeout = 60) {
  jb_job_result r = {0};
  double took = run_sh("exec >/dev/null 2>&1; sleep 30", 2, NULL, &r);
  cr_assert(!r.success, "a timeout, not success");
  cr_assert(r.retriable);
  cr_assert(strstr(r.error_message, "timed out") != NULL, "%s", r.error_message);
  cr_assert_lt(took, 15, "ended at the deadline, took %.1fs", took);
  jb_job_result_clear(&r);
}

/* Defect 11: a background child of a successful run does not live on. */
static void background_child_of_a_successful_run_is_killed_body(void) {
  char m[32], script[200];
  marker(m, sizeof m, 1005);
  snprintf(script, sizeof script, "sleep %s >/dev/null 2>&1 & sleep %s & echo '{}'", m, m);
  jb_job_result r = {0};
  double took = run_sh(script, 30, NULL, &r);
  cr_assert(r.success, "%s", r.error_message ? r.error_message : "");
  cr_assert_lt(took, 15, "took %.1fs", took);
  cr_assert_eq(count_procs(m), 0, "no process of the run is left");
  jb_job_result_clear(&r);
}

Test(exec, background_child_of_a_successful_run_is_killed, .timeout = 60) {
  background_child_of_a_successful_run_is_killed_body();
}

/* The same with the shepherd forked from this process (where jb-shepherd cannot run). */
Test(exec_fork, background_child_of_a_successful_run_is_killed, .timeout = 60, .init = use_fork) {
  background_child_of_a_successful_run_is_killed_body();
}

/* Defect 10: a grandchild in its own session holding the pipes neither holds the worker past
 * the deadline nor outlives the run. */
Test(exec, grandchild_in_its_own_session_is_bounded_by_the_timeout, .timeout = 60) {
  char m[32], script[200];
  marker(m, sizeof m, 1003);
  snprintf(script, sizeof script, "setsid sleep %s & sleep %s", m, m);
  jb_job_result r = {0};
  double took = run_sh(script, 2, NULL, &r);
  cr_assert(!r.success);
  cr_assert(strstr(r.error_message, "timed out") != NULL, "%s", r.error_message);
  cr_assert_lt(took, 15, "took %.1fs", took);
  cr_assert_eq(count_procs(m), 0, "no process of the run is left");
  jb_job_result_clear(&r);
}

static void *cancel_later(void *arg) {
  jb_handler_ctx *ctx = arg;
  usleep(500 * 1000);
  atomic_store(&ctx->stop, JB_STOP_CANCEL);
  return NULL;
}

/* Defect 10: cancelling stops the whole tree, a setsid grandchild and a program ignoring
 * SIGTERM included (SIGKILL after the grace). */
static void cancel_ends_the_whole_tree_body(void) {
  char m[32], script[200];
  marker(m, sizeof m, 1004);
  snprintf(script, sizeof script, "trap '' TERM; setsid sleep %s & sleep %s & wait", m, m);
  jb_handler_ctx ctx = {0};
  pthread_t t;
  pthread_create(&t, NULL, cancel_later, &ctx);
  jb_job_result r = {0};
  double took = run_sh(script, 300, &ctx, &r);
  pthread_join(t, NULL);
  cr_assert(!r.success);
  cr_assert_str_eq(r.error_message, "Job cancelled");
  cr_assert_lt(took, 20, "took %.1fs", took);
  cr_assert_eq(count_procs(m), 0, "no process of the run is left");
  jb_job_result_clear(&r);
}

Test(exec, cancel_ends_the_whole_tree, .timeout = 60) {
  cancel_ends_the_whole_tree_body();
}

/* The same with the shepherd forked from this process (where jb-shepherd cannot run). */
Test(exec_fork, cancel_ends_the_whole_tree, .timeout = 60, .init = use_fork) {
  cancel_ends_the_whole_tree_body();
}

/* Defect 10: when jobbridge dies, its runs' trees die with it (PR_SET_PDEATHSIG on the
 * shepherd, which then kills everything). */
static void tree_dies_with_the_process_that_ran_it_body(void) {
  char m[32], script[200];
  marker(m, sizeof m, 1007);
  snprintf(script, sizeof script, "setsid sleep %s & sleep %s", m, m);
  pid_t pid = fork();
  if (pid == 0) {
    jb_job_result r = {0};
    run_sh(script, 300, NULL, &r);
    _exit(0);
  }
  for (int i = 0; i < 100 && count_procs(m) < 2; i++) usleep(50 * 1000);
  int started = count_procs(m);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  cr_assert_eq(started, 2, "both sleeps started");
  int left = 1;
  for (int i = 0; i < 100 && (left = count_procs(m)) > 0; i++) usleep(50 * 1000);
  cr_assert_eq(left, 0, "no process of the run outlives its jobbridge");
}

Test(exec, tree_dies_with_the_process_that_ran_it, .timeout = 60) {
  tree_dies_with_the_process_that_ran_it_body();
}

/* The same with the shepherd forked from this process (where jb-shepherd cannot run). */
Test(exec_fork, tree_dies_with_the_process_that_ran_it, .timeout = 60, .init = use_fork) {
  tree_dies_with_the_process_that_ran_it_body();
}

/* Defect 12: the child sees only the allowlist (env's output compared as a set of names). */
Test(exec, environment_holds_exactly_the_allowed_names) {
  setenv("JOBBRIDGE_DATABASE_URL", "postgresql://u:s3cretPW@127.0.0.1/db", 1);
  setenv("JB_SECRET_THING", "s3cretPW", 1);
  setenv("JB_PASSED", "passed-value", 1);
  setenv("LANG", "C.UTF-8", 1);
  unsetenv("TZ");
  char *argv[] = {"/bin/sh", "-c",
                  "cat >/dev/null; printf '{\"env\": \"%s\"}' \"$(env | sort | "
                  "cut -d= -f1 | tr '\\n' ' ')\"; env | grep -q s3cretPW && exit 3; exit 0",
                  NULL};
  char *pass[] = {"JB_PASSED", "JB_UNSET_NAME", NULL};
  json_t *fixed = json_pack("{s:s}", "JB_FIXED", "fixed=value");
  jb_exec_config c = {argv, 30, fixed, pass};
  jb_job_handler h;
  jb_error e;
  cr_assert_eq(jb_exec_handler_create(&c, &h, &e), JB_OK, "%s", e.msg);
  jb_job job = test_job();
  jb_handler_ctx ctx = {0};
  jb_job_result r = {0};
  h.ops->handle(h.self, &job, &ctx, &r);
  cr_assert(r.success, "no secret in the child: %s", r.error_message ? r.error_message : "");
  const char *seen = json_string_value(json_object_get(r.result_data, "env"));
  cr_assert_not_null(seen);
  /* sh itself may add PWD, SHLVL, OLDPWD and _: those are not from jobbridge. */
  static const char *const allowed[] = {"HOME",
                                        "JB_FIXED",
                                        "JB_PASSED",
                                        "JOBBRIDGE_JOB_ID",
                                        "JOBBRIDGE_JOB_TYPE",
                                        "JOBBRIDGE_PROGRESS_FD", /* issue 16 */
                                        "LANG",
                                        "PATH",
                                        "PWD",
                                        "SHLVL",
                                        "OLDPWD",
                                        "_",
                                        NULL};
  char names[2048];
  snprintf(names, sizeof names, "%s", seen);
  for (char *n = strtok(names, " "); n; n = strtok(NULL, " ")) {
    bool ok = false;
    for (int i = 0; allowed[i]; i++) ok = ok || strcmp(n, allowed[i]) == 0;
    cr_expect(ok, "%s is not in the child's allowlist (saw: %s)", n, seen);
  }
  for (int i = 0; i < 7; i++) {
    char want[64];
    snprintf(want, sizeof want, "%s ", allowed[i]);
    cr_expect(strstr(seen, want) != NULL, "%s reaches the child (saw: %s)", allowed[i], seen);
  }
  h.ops->destroy(h.self);
  json_decref(fixed);
  json_decref(job.payload);
  json_decref(job.metadata);
  jb_job_result_clear(&r);
}

Test(exec, bad_env_names_are_refused) {
  char *argv[] = {"/bin/true", NULL};
  char *pass[] = {"A=B", NULL};
  jb_exec_config c = {argv, 30, NULL, pass};
  jb_job_handler h;
  jb_error e;
  cr_assert_eq(jb_exec_handler_create(&c, &h, &e), JB_ERR_INVALID);
  cr_assert(strstr(e.msg, "env_passthrough[0]") != NULL, "%s", e.msg);
  json_t *fixed = json_pack("{s:i}", "N", 1);
  c = (jb_exec_config){argv, 30, fixed, NULL};
  cr_assert_eq(jb_exec_handler_create(&c, &h, &e), JB_ERR_INVALID);
  cr_assert(strstr(e.msg, "\"N\"") != NULL, "%s", e.msg);
  json_decref(fixed);
}

/* Defect 13: out of descriptors is jobbridge's failure, not the job's: requeue, no retry. */
Test(exec, out_of_descriptors_requeues) {
  struct rlimit rl = {32, 32};
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  while (open("/dev/null", O_RDONLY) >= 0) {
  }
  cr_assert_eq(errno, EMFILE);
  jb_job_result r = {0};
  run_sh("true", 30, NULL, &r);
  cr_assert(!r.success);
  cr_assert(r.requeue, "requeue on EMFILE: %s", r.error_message);
  cr_assert(strstr(r.error_message, "Too many open files") != NULL, "%s", r.error_message);
  jb_job_result_clear(&r);
}

/* A missing program stays the job's own retriable failure. */
Test(exec, missing_program_is_a_retriable_failure_not_a_requeue) {
  char *argv[] = {"/nonexistent/program", NULL};
  jb_job_handler h;
  jb_error e;
  cr_assert_eq(jb_exec_handler_new(argv, 30, &h, &e), JB_OK);
  jb_job job = test_job();
  jb_handler_ctx ctx = {0};
  jb_job_result r = {0};
  h.ops->handle(h.self, &job, &ctx, &r);
  cr_assert(!r.success);
  cr_assert(r.retriable);
  cr_assert(!r.requeue);
  cr_assert(strstr(r.error_message, "No such file") != NULL, "%s", r.error_message);
  h.ops->destroy(h.self);
  json_decref(job.payload);
  json_decref(job.metadata);
  jb_job_result_clear(&r);
}

/* check-config: env and env_passthrough names are checked, each error naming its key path. */
static void expect_config_error(const char *job_type_json, const char *want) {
  char text[1024];
  snprintf(text, sizeof text, "{\"job_types\": {\"t\": %s}}", job_type_json);
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse(text, "test.json", &cfg, &e), JB_ERR_CONFIG, "refused: %s",
               job_type_json);
  cr_assert(strstr(e.msg, want) != NULL, "\"%s\" names %s", e.msg, want);
}

Test(exec_config, env_keys_are_validated) {
  const char *base = "\"handler\": \"exec\", \"command\": [\"/bin/true\"]";
  char t[512];
  snprintf(t, sizeof t, "{%s, \"env\": {\"\": \"x\"}}", base);
  expect_config_error(t, "job_types.t.env.: an environment variable name must not be empty");
  snprintf(t, sizeof t, "{%s, \"env\": {\"A=B\": \"x\"}}", base);
  expect_config_error(t, "job_types.t.env.A=B: an environment variable name must not contain");
  snprintf(t, sizeof t, "{%s, \"env\": {\"A\": 1}}", base);
  expect_config_error(t, "job_types.t.env.A: the value must be a string");
  snprintf(t, sizeof t, "{%s, \"env\": {\"A\": \"x\\u0000y\"}}", base);
  expect_config_error(t, "\\u0000 is not allowed"); /* jansson refuses NUL: never cut */
  snprintf(t, sizeof t, "{%s, \"env\": {\"JOBBRIDGE_JOB_ID\": \"x\"}}", base);
  expect_config_error(t, "job_types.t.env.JOBBRIDGE_JOB_ID: jobbridge sets this variable");
  snprintf(t, sizeof t, "{%s, \"env_passthrough\": [\"OK\", \"\"]}", base);
  expect_config_error(t, "job_types.t.env_passthrough[1]: \"\": an environment variable name");
  snprintf(t, sizeof t, "{%s, \"env_passthrough\": [\"A=B\"]}", base);
  expect_config_error(t, "job_types.t.env_passthrough[0]: \"A=B\": an environment variable");
  snprintf(t, sizeof t, "{%s, \"env_passthrough\": [\"A\\u0000B\"]}", base);
  expect_config_error(t, "\\u0000 is not allowed");
  snprintf(t, sizeof t, "{%s, \"env_passthrough\": [\"JOBBRIDGE_DATABASE_URL\"]}", base);
  expect_config_error(t, "job_types.t.env_passthrough[0]: \"JOBBRIDGE_DATABASE_URL\": jobbridge's");
  snprintf(t, sizeof t, "{%s, \"command\": [\"/bin/tr\\u0000ue\"]}", "\"handler\": \"exec\"");
  expect_config_error(t, "\\u0000 is not allowed");
  snprintf(t, sizeof t, "{%s, \"env\": {\"A\": \"1\"}, \"env_passthrough\": [\"B\"]}", base);
  jb_config *cfg = NULL;
  jb_error e;
  char text[1024];
  snprintf(text, sizeof text, "{\"job_types\": {\"t\": %s}}", t);
  cr_assert_eq(jb_config_parse(text, "test.json", &cfg, &e), JB_OK, "%s", e.msg);
  jb_config_free(cfg);
}

/* Review finding 1: a process of the tree the shepherd cannot end (here: it cannot find it,
 * /proc being hidden by a tmpfs in a mount namespace of our own, so a setsid orphan is never
 * signalled) neither holds the shepherd nor the worker: the shepherd gives up after a bounded
 * time and says so, the worker logs it naming the job, and the program's status stands. Runs in
 * a forked child (the namespace is its own); skipped where mount namespaces are not allowed. */
Test(exec, tree_member_the_shepherd_cannot_end_does_not_hold_the_worker, .timeout = 120) {
  char m[32], script[200];
  marker(m, sizeof m, 1011);
  snprintf(script, sizeof script,
           "setsid sleep %s </dev/null >/dev/null 2>&1 & sleep 0.3; echo '{\"ok\": true}'", m);
  int logs[2];
  cr_assert_eq(pipe(logs), 0);
  int64_t t0 = jb_mono_ms();
  pid_t pid = fork();
  if (pid == 0) {
    close(logs[0]);
    if (unshare(CLONE_NEWNS) != 0) _exit(10);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) _exit(10);
    if (mount("none", "/proc", "tmpfs", 0, NULL) != 0) _exit(10);
    dup2(logs[1], STDERR_FILENO); /* jobbridge's log lines */
    close(logs[1]);
    jb_job_result r = {0};
    run_sh(script, 300, NULL, &r);
    _exit(r.success && json_is_true(json_object_get(r.result_data, "ok")) ? 0 : 1);
  }
  close(logs[1]);
  char log[8192];
  size_t len = 0;
  int64_t until = t0 + 30000; /* without the fix the run lasts as long as the orphan: ~17 min */
  for (;;) {
    struct pollfd p = {logs[0], POLLIN, 0};
    int64_t left = until - jb_mono_ms();
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) break;
    ssize_t n = read(logs[0], log + len, sizeof log - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
  }
  log[len] = '\0';
  close(logs[0]);
  int st = 0;
  bool ended = waitpid(pid, &st, WNOHANG) == pid;
  for (int i = 0; !ended && i < 100; i++) { /* end of stderr: the child is exiting */
    usleep(50 * 1000);
    ended = waitpid(pid, &st, WNOHANG) == pid;
  }
  double took = (double)(jb_mono_ms() - t0) / 1000;
  if (!ended) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  int orphans = signal_procs(m, SIGKILL); /* never leave it behind, whatever the outcome */
  if (ended && WIFEXITED(st) && WEXITSTATUS(st) == 10)
    cr_skip_test("mount namespaces are not allowed here: cannot hide /proc");
  cr_assert(ended,
            "the worker returned although a process of the tree could not be ended "
            "(still running after %.1fs)",
            took);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the program's status (success) stands");
  cr_assert_lt(took, 20, "took %.1fs", took);
  cr_assert_eq(orphans, 1, "the orphan the shepherd could not find really was there");
  cr_assert(strstr(log, "processes may remain") != NULL, "logged: %s", log);
  cr_assert(strstr(log, "0190d3e4-0000-7000-8000-000000000001") != NULL, "names the job: %s", log);
}

/* Review finding 3: the job is written to stdin of a program that closed it; the EPIPE must not
 * kill a process that keeps SIGPIPE's default action (jb_exec_handler_create is public API). */
Test(exec, program_that_closed_stdin_does_not_raise_sigpipe, .timeout = 60) {
  signal(SIGPIPE, SIG_DFL);
  char *argv[] = {"/bin/sh", "-c", "exec 0<&-; sleep 0.5; echo '{}'", NULL};
  jb_job_handler h;
  jb_error e;
  cr_assert_eq(jb_exec_handler_new(argv, 30, &h, &e), JB_OK);
  jb_job job = test_job();
  size_t big = 4 << 20; /* far more than a pipe holds */
  char *text = malloc(big + 1);
  cr_assert_not_null(text);
  memset(text, 'x', big);
  text[big] = '\0';
  json_object_set_new(job.payload, "big", json_string(text));
  free(text);
  jb_handler_ctx ctx = {0};
  jb_job_result r = {0};
  h.ops->handle(h.self, &job, &ctx, &r);
  cr_assert(r.success, "%s", r.error_message ? r.error_message : "");
  sigset_t now, pending;
  pthread_sigmask(SIG_SETMASK, NULL, &now);
  cr_assert(!sigismember(&now, SIGPIPE), "the signal mask is restored");
  sigpending(&pending);
  cr_assert(!sigismember(&pending, SIGPIPE), "no SIGPIPE left pending");
  h.ops->destroy(h.self);
  json_decref(job.payload);
  json_decref(job.metadata);
  jb_job_result_clear(&r);
}

/* Review finding 7: a timeout that is not a finite number of seconds above 0 is refused (the
 * deadline in milliseconds would be undefined). */
Test(exec, timeout_must_be_finite_and_positive) {
  char *argv[] = {"/bin/true", NULL};
  const double bad[] = {NAN, INFINITY, -INFINITY, 0, -1, 1e300};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jb_job_handler h;
    jb_error e;
    cr_assert_eq(jb_exec_handler_new(argv, bad[i], &h, &e), JB_ERR_INVALID, "refused: %g", bad[i]);
    cr_assert(strstr(e.msg, "timeout_s") != NULL, "%s", e.msg);
  }
}

/* The program starts with no signal blocked or ignored, whichever way its shepherd started
 * (the program is the shell: /proc/$$/status). */
static void program_signal_state_is_default_body(void) {
  jb_job_result r = {0};
  run_sh(
      "cat >/dev/null; b=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status); "
      "i=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status); "
      "printf '{\"blk\": \"%s\", \"ign\": \"%s\"}' \"$b\" \"$i\"",
      30, NULL, &r);
  cr_assert(r.success, "%s", r.error_message ? r.error_message : "");
  const char *blk = json_string_value(json_object_get(r.result_data, "blk"));
  const char *ign = json_string_value(json_object_get(r.result_data, "ign"));
  cr_assert(blk != NULL && ign != NULL, "the program reported its signal state");
  cr_assert_str_eq(blk, "0000000000000000", "no signal blocked");
  cr_assert_str_eq(ign, "0000000000000000", "no signal ignored: %s", ign);
  jb_job_result_clear(&r);
}

Test(exec, program_signal_state_is_default) {
  program_signal_state_is_default_body();
}

Test(exec_fork, program_signal_state_is_default, .init = use_fork) {
  program_signal_state_is_default_body();
}
