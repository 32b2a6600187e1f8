/* `jobbridge run`: wires the adapters to the service and runs until SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "app/args.h"
#include "app/notify.h"
#include "app/serve.h"
#include "jobbridge/log.h"

/* Shutdown stages, advanced only by the signal handler. */
typedef enum {
  RUN_RUNNING = 0, /* serving */
  RUN_STOPPING,    /* first SIGTERM/SIGINT: stop taking work, finish what is in hand, exit 0 */
} run_stage;

/* Signals are read in one place: the handlers only advance `stage` and write a byte to this
 * pipe (a self-pipe: 'T' stop, 'H' reload), and the main thread, which waits on nothing else,
 * reads it (wait_signals). The components never see a signal: serve() stops them. */
static volatile sig_atomic_t stage = RUN_RUNNING;
static int sig_pipe[2] = {-1, -1};    /* [0] read by the main thread, [1] written by handlers */
static bool reload_requested = false; /* main thread only */

static void signal_byte(char c) {
  int saved = errno;
  if (write(sig_pipe[1], &c, 1) < 0) { /* the pipe is full: a byte is there to wake us already */
  }
  errno = saved;
}

static void on_hup(int sig) {
  (void)sig;
  signal_byte('H');
}

static void on_stop_signal(int sig) {
  (void)sig;
  if (stage == RUN_STOPPING) _exit(1); /* a second signal: exit at once, leases cover the rest */
  stage = RUN_STOPPING;
  signal_byte('T');
}

/* Waits up to ms (< 0: without end) for a signal, then takes every byte the handlers wrote:
 * a reload is noted in reload_requested, a stop is in `stage` already. Returns early on any
 * signal, so a stop is acted on at once. */
static void wait_signals(long ms) {
  struct pollfd p = {sig_pipe[0], POLLIN, 0};
  if (poll(&p, 1, ms < 0 ? -1 : (ms > INT_MAX ? INT_MAX : (int)ms)) <= 0) return;
  char buf[64];
  ssize_t n;
  while ((n = read(sig_pipe[0], buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; i++) reload_requested |= buf[i] == 'H';
}

/* Installs the handlers of SIGTERM, SIGINT and SIGHUP over a fresh self-pipe; ignores SIGPIPE. */
static jb_err install_signals(jb_error *e) {
  if (pipe(sig_pipe) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot create the signal pipe: %s", strerror(errno));
  for (int i = 0; i < 2; i++) { /* never blocks a handler; not inherited by exec'd programs */
    fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) | O_NONBLOCK);
    fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  return JB_OK;
}

/* Connects and migrates, retrying with capped exponential backoff until it works or a signal
 * asks us to stop. A config error is not retried. */
static jb_err connect_db(const jb_config *cfg, jb_pg **pg, jb_error *e) {
  long delay_ms = 250;
  for (;;) {
    jb_err rc = jb_pg_connect(cfg->database.url, cfg->database.schema, pg, e);
    if (rc == JB_OK) {
      rc = jb_pg_migrate(*pg, NULL, e);
      if (rc == JB_OK) return JB_OK;
      jb_pg_close(*pg);
      *pg = NULL;
    }
    if (rc != JB_ERR_DB_CONN) return rc;
    jb_log(JB_LOG_WARN, "database unavailable, retrying", "error", e->msg,
           JB_LOG_I64("retry_in_ms", delay_ms), JB_LOG_END);
    wait_signals(delay_ms);
    if (stage != RUN_RUNNING)
      return jb_fail(e, JB_ERR_STOPPED, "stopped before the database came up");
    delay_ms = jb_backoff_next(delay_ms, 30000);
  }
}

/* Loads the config again for SIGHUP. Only the mapping table changes; a file that is invalid, or
 * whose mappings name a job type the running config does not register, is refused and the old
 * table stays. Returns the new config (owned by the caller) or NULL. */
static jb_config *reload_mappings(const jb_config *running, const char *path) {
  jb_error e;
  jb_config *next = NULL;
  if (jb_config_load(path, &next, &e) != JB_OK) {
    jb_log(JB_LOG_ERROR, "reload refused: the old mapping table stays", "error", e.msg, JB_LOG_END);
    return NULL;
  }
  for (size_t i = 0; i < next->mappings_len; i++) {
    if (jb_config_job_type(running, next->mappings[i].job_type) == NULL) {
      jb_log(JB_LOG_ERROR, "reload refused: the old mapping table stays", "error",
             "a mapping names a job type the running config does not register; restart to add "
             "job types",
             "job_type", next->mappings[i].job_type, JB_LOG_END);
      jb_config_free(next);
      return NULL;
    }
  }
  jb_log(JB_LOG_INFO, "mapping table reloaded", JB_LOG_U64("mappings", next->mappings_len),
         JB_LOG_END);
  return next;
}

/* Opens n connections into pgs[] (all or none). */
static jb_err open_conns(const jb_config *cfg, jb_pg **pgs, size_t n, jb_error *e) {
  for (size_t i = 0; i < n; i++) {
    jb_err rc = jb_pg_connect(cfg->database.url, cfg->database.schema, &pgs[i], e);
    if (rc != JB_OK) {
      for (size_t j = 0; j < i; j++) jb_pg_close(pgs[j]);
      return rc;
    }
  }
  return JB_OK;
}

/* This process's name in locked_by and in the events' source: host:pid:random. */
static void instance_name(char *buf, size_t len) {
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  srand((unsigned)(time(NULL) ^ getpid()));
  snprintf(buf, len, "%s:%d:%04x", host, (int)getpid(), rand() & 0xffff);
}

/* Stops every started component, stage by stage (README's "Shutdown" order). */
static void stop_components(jb_wiring *w, size_t started) {
  for (int st = STOP_INTAKE; st <= STOP_EVENTS_OUT; st++)
    for (size_t i = 0; i < started; i++)
      if ((int)jb_components[i].stage == st) jb_components[i].stop(w);
}

/* Runs every component (src/app/serve.c) until a stop signal. Each gets its own database
 * connections, one per thread: a slice of pgs, in list order. */
static int serve(const jb_config *cfg, const char *path) {
  size_t total = 0, created = 0, started = 0;
  for (size_t i = 0; i < jb_ncomponents; i++) total += jb_components[i].connections(cfg);
  jb_wiring w = {.cfg = cfg};
  instance_name(w.instance, sizeof w.instance);
  bool opened = false;
  int code = JB_EXIT_OK;
  jb_error e;
  w.pgs = calloc(total ? total : 1, sizeof *w.pgs);
  if (w.pgs == NULL) {
    code = jb_report(&(jb_error){JB_ERR_NOMEM, "out of memory"});
    goto out;
  }
  /* The database was reachable a moment ago; if it goes away later, every thread retries. */
  if (open_conns(cfg, w.pgs, total, &e) != JB_OK) {
    code = jb_report(&e);
    goto out;
  }
  opened = true;
  for (size_t at = 0; created < jb_ncomponents; created++) {
    const jb_component *c = &jb_components[created];
    jb_err rc = c->create(&w, w.pgs + at, &e);
    at += c->connections(cfg);
    if (rc != JB_OK) {
      created++; /* destroy what it built */
      code = jb_report(&e);
      goto out;
    }
  }
  for (; started < jb_ncomponents; started++)
    if (jb_components[started].start(&w, &e) != JB_OK) {
      code = jb_report(&e);
      goto out;
    }
  char safe[512];
  jb_log(JB_LOG_INFO, "running", "instance", w.instance, "amqp",
         jb_redact_url(cfg->amqp.url, safe, sizeof safe), "exchange", cfg->amqp.input.exchange,
         "queue", cfg->amqp.input.queue, "output_exchange", cfg->amqp.output.exchange, JB_LOG_END);
  jb_notify_ready("serving");
  long ping_ms = jb_notify_watchdog_ms();
  while (stage == RUN_RUNNING) {
    jb_notify_watchdog(true);
    wait_signals(ping_ms);
    if (reload_requested) {
      reload_requested = false;
      jb_notify_reloading();
      jb_config *next = reload_mappings(cfg, path);
      if (next != NULL && jb_schedule_trigger_reload(w.schedules, next, &e) != JB_OK)
        jb_log(JB_LOG_ERROR, "schedule reload refused: the old schedules stay", "error", e.msg,
               JB_LOG_END);
      if (next != NULL && jb_router_reload(w.router, next, &e) != JB_OK)
        jb_log(JB_LOG_ERROR, "mapping reload failed", "error", e.msg, JB_LOG_END);
      jb_notify_ready("serving (reloaded)");
    }
  }
  jb_notify_stopping("stopping: finishing the work in hand");
  /* Shutdown, in the order that loses nothing: no new events in (the batch in hand is
   * committed and acked), no new claims (running handlers get the grace period, then return
   * their jobs to RETRYING), then the outbox is flushed. */
  stop_components(&w, started);
out:
  while (created > 0) jb_components[--created].destroy(&w);
  for (size_t i = 0; opened && i < total; i++) jb_pg_close(w.pgs[i]);
  free(w.pgs);
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
  /* A URL that cannot be parsed is a config error like any other: exit 2 now, never retried. */
  if (jb_config_load(path, &cfg, &e) != JB_OK || jb_check_db_url(cfg, path, &e) != JB_OK) {
    jb_log(JB_LOG_ERROR, "refusing to start: invalid configuration", "error", e.msg, JB_LOG_END);
    fprintf(stderr, "jobbridge: %s\n", e.msg);
    jb_config_free(cfg);
    return JB_EXIT_USAGE;
  }
  if (install_signals(&e) != JB_OK) {
    jb_config_free(cfg);
    return jb_report(&e);
  }

  char safe[512];
  jb_log(JB_LOG_INFO, "starting", "config", path, "database",
         jb_redact_url(cfg->database.url, safe, sizeof safe), JB_LOG_END);
  jb_pg *pg = NULL;
  int code = JB_EXIT_OK;
  if (connect_db(cfg, &pg, &e) != JB_OK) {
    code = e.code == JB_ERR_STOPPED ? JB_EXIT_OK : jb_report(&e);
    goto out;
  }
  jb_log(JB_LOG_INFO, "database ready", "schema", cfg->database.schema, JB_LOG_END);
  code = serve(cfg, path);
  jb_log(JB_LOG_INFO, "stopped", JB_LOG_END);
out:
  jb_pg_close(pg);
  jb_config_free(cfg);
  return code;
}
