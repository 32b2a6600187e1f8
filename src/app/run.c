/* `jobbridge run`: wires the adapters to the service and runs until SIGTERM/SIGINT. */
#include <errno.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "app/args.h"
#include "jobbridge/job_service.h"
#include "jobbridge/log.h"
#include "amqp/mq_trigger.h"
#include "postgres/pg.h"

/* Shutdown stages, advanced only by the signal handler (which does nothing else). */
typedef enum {
  RUN_RUNNING = 0, /* serving */
  RUN_STOPPING,    /* first SIGTERM/SIGINT: stop taking work, finish what is in hand, exit 0 */
} run_stage;

static volatile sig_atomic_t stage = RUN_RUNNING;
static volatile sig_atomic_t reload_requested = 0;

static void on_hup(int sig) {
  (void)sig;
  reload_requested = 1;
}

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

/* Loads the config again for SIGHUP. Only the mapping table changes; a file that is invalid, or
 * whose mappings name a job type the running config does not register, is refused and the old
 * table stays. Returns the new config (owned by the caller) or NULL. */
static jb_config *reload_mappings(const jb_config *running, const char *path) {
  jb_error e;
  jb_config *next = NULL;
  if (jb_config_load(path, &next, &e) != JB_OK) {
    jb_log(JB_LOG_ERROR, "reload refused: the old mapping table stays", "error", e.msg, NULL);
    return NULL;
  }
  for (size_t i = 0; i < next->mappings_len; i++) {
    if (jb_config_job_type(running, next->mappings[i].job_type) == NULL) {
      jb_log(JB_LOG_ERROR, "reload refused: the old mapping table stays", "error",
             "a mapping names a job type the running config does not register; restart to add "
             "job types",
             "job_type", next->mappings[i].job_type, NULL);
      jb_config_free(next);
      return NULL;
    }
  }
  char n[24];
  snprintf(n, sizeof n, "%zu", next->mappings_len);
  jb_log(JB_LOG_INFO, "mapping table reloaded", "mappings", n, NULL);
  return next;
}

/* Runs the triggers until a stop signal: one consumer per ingest.consumers, each with its own
 * database connection and JobService (one connection per thread). */
static int serve(const jb_config *cfg, const char *path) {
  size_t n = (size_t)cfg->ingest_consumers;
  jb_pg **pgs = calloc(n, sizeof *pgs);
  jb_job_service *svcs = calloc(n, sizeof *svcs);
  jb_job_creator *creators = calloc(n, sizeof *creators);
  jb_mq_trigger *trigger = NULL;
  int code = JB_EXIT_OK;
  jb_error e;
  if (pgs == NULL || svcs == NULL || creators == NULL) {
    code = jb_report(&(jb_error){JB_ERR_NOMEM, "out of memory"});
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    /* The database was reachable a moment ago; if it went away, the consumers retry anyway. */
    if (jb_pg_connect(cfg->db_url, cfg->db_schema, &pgs[i], &e) != JB_OK) {
      code = jb_report(&e);
      goto out;
    }
    jb_job_service_init(&svcs[i], jb_pg_queue(pgs[i]), cfg);
    creators[i] = jb_job_service_creator(&svcs[i]);
  }
  if (jb_mq_trigger_new(cfg, creators, n, &trigger, &e) != JB_OK) {
    code = jb_report(&e);
    goto out;
  }
  jb_job_trigger port = jb_mq_trigger_port(trigger);
  if (port.ops->start(port.self, &e) != JB_OK) {
    code = jb_report(&e);
    goto out;
  }
  char safe[512];
  jb_log(JB_LOG_INFO, "running", "amqp", jb_redact_url(cfg->amqp_url, safe, sizeof safe),
         "exchange", cfg->in_exchange, "queue", cfg->in_queue, NULL);
  jb_log(JB_LOG_WARN, "the worker pool is not built yet: jobs are created but not run", NULL);
  while (stage == RUN_RUNNING) {
    sleep_ms(200);
    if (reload_requested) {
      reload_requested = 0;
      jb_config *next = reload_mappings(cfg, path);
      if (next != NULL) jb_mq_trigger_reload(trigger, next);
    }
  }
  jb_log(JB_LOG_INFO, "stopping: finishing the batch in hand", NULL);
  port.ops->stop(port.self);
  jb_mq_stats st = jb_mq_trigger_stats(trigger);
  char v[6][24];
  snprintf(v[0], 24, "%llu", (unsigned long long)st.received);
  snprintf(v[1], 24, "%llu", (unsigned long long)st.jobs_created);
  snprintf(v[2], 24, "%llu", (unsigned long long)st.duplicates);
  snprintf(v[3], 24, "%llu", (unsigned long long)st.dead_lettered);
  snprintf(v[4], 24, "%llu", (unsigned long long)st.rejected);
  snprintf(v[5], 24, "%llu", (unsigned long long)st.acked);
  jb_log(JB_LOG_INFO, "ingest totals", "received", v[0], "jobs_created", v[1], "duplicates", v[2],
         "dead_lettered", v[3], "rejected", v[4], "acked", v[5], NULL);
out:
  jb_mq_trigger_free(trigger);
  for (size_t i = 0; pgs && i < n; i++) jb_pg_close(pgs[i]);
  free(pgs);
  free(svcs);
  free(creators);
  return code;
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
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
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
  code = serve(cfg, path);
  jb_log(JB_LOG_INFO, "stopped", NULL);
out:
  jb_pg_close(pg);
  jb_config_free(cfg);
  return code;
}
