/* `jobbridge run`: wires the adapters to the service and runs until SIGTERM/SIGINT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "app/args.h"
#include "jobbridge/job_service.h"
#include "jobbridge/log.h"
#include "postgres/pg.h"

/* Shutdown stages, advanced only by the signal handler (which does nothing else). */
typedef enum {
  RUN_RUNNING = 0, /* serving */
  RUN_STOPPING,    /* first SIGTERM/SIGINT: stop taking work, finish what is in hand, exit 0 */
} run_stage;

static volatile sig_atomic_t stage = RUN_RUNNING;

static void on_stop_signal(int sig) {
  (void)sig;
  if (stage == RUN_STOPPING) _exit(1); /* a second signal: exit at once, leases cover the rest */
  stage = RUN_STOPPING;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && stage == RUN_RUNNING) {
  }
}

/* Connects and migrates, retrying with capped exponential backoff until it works or a signal
 * asks us to stop. A config error is not retried. */
static jb_err connect_db(const jb_config *cfg, jb_pg **pg, jb_error *e) {
  long delay_ms = 250;
  for (;;) {
    jb_err rc = jb_pg_connect(cfg->db_url, cfg->db_schema, pg, e);
    if (rc == JB_OK) {
      rc = jb_pg_migrate(*pg, NULL, e);
      if (rc == JB_OK) return JB_OK;
      jb_pg_close(*pg);
      *pg = NULL;
    }
    if (rc != JB_ERR_DB_CONN) return rc;
    char delay[32];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    jb_log(JB_LOG_WARN, "database unavailable, retrying", "error", e->msg, "retry_in_ms", delay,
           NULL);
    sleep_ms(delay_ms);
    if (stage != RUN_RUNNING) return jb_fail(e, JB_ERR_STOPPED, "stopped before the database came up");
    delay_ms = delay_ms * 2 > 30000 ? 30000 : delay_ms * 2;
  }
}

int jb_cmd_run(int argc, char **argv) {
  static const char help[] =
      "usage: jobbridge run [--config FILE]\n"
      "Runs the service: migrates the database, then serves until SIGTERM or SIGINT.\n";
  static const jb_opt_spec specs[] = {{"config", true}, {"help", false}};
  jb_args a;
  char err[256];
  if (!jb_args_parse(argc, argv, specs, 2, &a, err, sizeof err) || a.npos != 0) {
    fprintf(stderr, "jobbridge: %s\n\n%s", a.npos ? "run takes no arguments" : err, help);
    return JB_EXIT_USAGE;
  }
  if (jb_args_get(&a, specs, 2, "help")) {
    fputs(help, stdout);
    return JB_EXIT_OK;
  }
  jb_error e;
  jb_error_clear(&e);
  jb_config *cfg = NULL;
  const char *path = jb_config_path(jb_args_get(&a, specs, 2, "config"));
  if (jb_config_load(path, &cfg, &e) != JB_OK) {
    jb_log(JB_LOG_ERROR, "refusing to start: invalid configuration", "error", e.msg, NULL);
    fprintf(stderr, "jobbridge: %s\n", e.msg);
    return JB_EXIT_USAGE;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  char safe[512];
  jb_log(JB_LOG_INFO, "starting", "config", path, "database",
         jb_redact_url(cfg->db_url, safe, sizeof safe), NULL);
  jb_pg *pg = NULL;
  int code = JB_EXIT_OK;
  if (connect_db(cfg, &pg, &e) != JB_OK) {
    code = e.code == JB_ERR_STOPPED ? JB_EXIT_OK : jb_report(&e);
    goto out;
  }
  jb_log(JB_LOG_INFO, "database ready", "schema", cfg->db_schema, NULL);
  /* Until the AMQP trigger and the worker pool exist, `run` serves nothing but the schema:
   * say so plainly rather than pretend. */
  jb_log(JB_LOG_WARN,
         "no triggers or workers are built yet: jobs can be managed with `jobbridge jobs`, "
         "but events are not consumed and jobs are not run",
         NULL);
  while (stage == RUN_RUNNING) sleep_ms(200);
  jb_log(JB_LOG_INFO, "stopped", NULL);
out:
  jb_pg_close(pg);
  jb_config_free(cfg);
  return code;
}
