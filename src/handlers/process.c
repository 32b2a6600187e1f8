/* The process handler: long-lived programs, one per slot, each run under a shepherd
 * (shepherd.c), speaking one JSON object per line on stdin and stdout (see handlers.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handlers/exec_env.h"
#include "handlers/handlers.h"
#include "handlers/process_internal.h"
#include "handlers/shepherd.h"
#include "jobbridge/json.h"
#include "jobbridge/log.h"

#define KILL_GRACE_MS 2000    /* a process being replaced: SIGTERM, then SIGKILL this much later */
#define SHEPHERD_WAIT_MS 8000 /* the longest wait for its shepherd to end the tree */
#define MAX_TIMEOUT_S 1e9

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* SIGPIPE stays blocked in a thread that writes to processes: a write to a process that died
 * fails with EPIPE, and the pending signal is taken then (so one write per job, no mask change
 * around it). */
static _Thread_local bool sigpipe_blocked;

static void block_sigpipe(void) {
  if (sigpipe_blocked) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  sigpipe_blocked = true;
}

static void take_sigpipe(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  struct timespec zero = {0, 0};
  while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
  }
}

/* Reaps the shepherd of a process that is being replaced: SIGTERM to its tree (SIGKILL after
 * the grace), a bounded wait for its report pipe to end, then waitpid (SIGKILL to the shepherd
 * itself if it lingers). Leaves p stopped. */
static void proc_stop(jb_proc *p, const char *job_id) {
  if (p->run.shepherd <= 0) return;
  close_fd(&p->run.in_fd); /* a well-behaved program ends on end-of-file */
  kill(p->run.shepherd, SIGTERM);
  int64_t until = jb_mono_ms() + SHEPHERD_WAIT_MS;
  while (p->run.msg_fd >= 0 && jb_mono_ms() < until) {
    struct pollfd pf[3] = {
        {p->run.msg_fd, POLLIN, 0}, {p->run.out_fd, POLLIN, 0}, {p->run.err_fd, POLLIN, 0}};
    if (poll(pf, 3, 100) <= 0) continue;
    char chunk[4096];
    for (int i = 1; i < 3; i++) /* what it still writes is dropped */
      if (pf[i].revents && read(pf[i].fd, chunk, sizeof chunk) <= 0) {
        if (i == 1) close_fd(&p->run.out_fd);
        if (i == 2) close_fd(&p->run.err_fd);
      }
    if (pf[0].revents && read(p->run.msg_fd, chunk, sizeof chunk) <= 0) close_fd(&p->run.msg_fd);
  }
  if (p->run.msg_fd >= 0) {
    jb_log(JB_LOG_ERROR, "a process handler's shepherd did not end its tree in time; killed",
           "job_id", job_id, JB_LOG_END);
    kill(p->run.shepherd, SIGKILL);
  }
  for (int i = 0; i < 300; i++) {
    pid_t r = waitpid(p->run.shepherd, NULL, i < 200 ? WNOHANG : 0);
    if (r == p->run.shepherd || (r < 0 && errno != EINTR)) break;
    if (i == 199) kill(p->run.shepherd, SIGKILL);
    usleep(10000);
  }
  close_fd(&p->run.in_fd);
  close_fd(&p->run.out_fd);
  close_fd(&p->run.err_fd);
  close_fd(&p->run.msg_fd);
  p->run.shepherd = 0;
  p->len = 0;
}

/* Fails the run with the message head + detail + tail. */
static void fail(jb_job_result *r, bool retriable, const char *head, const char *detail,
                 const char *tail) {
  char msg[600];
  snprintf(msg, sizeof msg, "%s%s%s", head, detail, tail);
  r->success = false;
  r->retriable = retriable;
  r->error_message = strdup(msg);
}

/* Starts slot p's process: 0, or an errno value. */
static int proc_start(const jb_process_handler *h, jb_proc *p) {
  block_sigpipe();
  int e = jb_run_start(h->path, h->argv, h->envp, KILL_GRACE_MS, false, &p->run);
  if (e != 0) {
    p->run.shepherd = 0;
    return e;
  }
  fcntl(p->run.out_fd, F_SETFL, O_NONBLOCK);
  fcntl(p->run.err_fd, F_SETFL, O_NONBLOCK);
  fcntl(p->run.msg_fd, F_SETFL, O_NONBLOCK);
  p->starts++;
  return 0;
}

/* Writes the whole line to the process; false when it cannot take it (it died) or the deadline
 * passed while its stdin was full. */
static bool write_line(jb_proc *p, const char *line, size_t len, int64_t deadline) {
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(p->run.in_fd, line + done, len - done);
    if (w > 0) {
      done += (size_t)w;
    } else if (w < 0 && errno == EAGAIN) {
      int64_t left = deadline - jb_mono_ms();
      if (left <= 0) return false;
      struct pollfd pf = {p->run.in_fd, POLLOUT, 0};
      poll(&pf, 1, left > 100 ? 100 : (int)left);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      if (errno == EPIPE) take_sigpipe();
      return false;
    }
  }
  return true;
}

/* Logs what the process wrote on stderr, line by line, with the job it was running. */
static void log_stderr(jb_proc *p, const jb_job *job) {
  char chunk[4096];
  ssize_t n = read(p->run.err_fd, chunk, sizeof chunk - 1);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) close_fd(&p->run.err_fd);
  if (n <= 0) return;
  chunk[n] = '\0';
  for (char *line = chunk, *end; line < chunk + n; line = end + 1) {
    end = strchr(line, '\n');
    if (end == NULL) end = chunk + n;
    *end = '\0';
    if (*line != '\0')
      jb_log(JB_LOG_WARN, "process handler stderr", "job_id", job->id, "job_type", job->job_type,
             "stderr", line, JB_LOG_END);
  }
}

/* What the shepherd reports: why the process is gone, in why (empty while it runs). */
static void read_reports(jb_proc *p, char *why, size_t cap) {
  jb_run_msg m;
  ssize_t n = read(p->run.msg_fd, &m, sizeof m);
  if (n == (ssize_t)sizeof m) {
    if (m.kind == JB_RUN_EXITED && WIFSIGNALED(m.value))
      snprintf(why, cap, "the process was killed by signal %d", WTERMSIG(m.value));
    else if (m.kind == JB_RUN_EXITED)
      snprintf(why, cap, "the process exited with status %d", WEXITSTATUS(m.value));
    else if (m.kind == JB_RUN_EXEC_FAILED || m.kind == JB_RUN_START_FAILED)
      snprintf(why, cap, "cannot run %s: %s", "the process", strerror(m.value));
  } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_fd(&p->run.msg_fd);
    if (why[0] == '\0') snprintf(why, cap, "the process ended");
  }
}

/* Reads what stdout has; false at end-of-file. */
static bool read_out(jb_proc *p) {
  if (p->len + 65536 > p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 131072;
    char *b = realloc(p->buf, cap);
    if (b == NULL) return true; /* try again later */
    p->buf = b;
    p->cap = cap;
  }
  ssize_t n = read(p->run.out_fd, p->buf + p->len, p->cap - p->len - 1);
  if (n > 0) p->len += (size_t)n;
  return !(n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR));
}

/* Waits for the job's answer (progress lines on the way): 1 answered (r filled), 0 still
 * waiting, -1 the process must be replaced (r filled with the reason). */
static int take_lines(jb_proc *p, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  size_t start = 0;
  int done = 0;
  while (done == 0 && start < p->len) { /* nothing read yet: buf may still be NULL */
    char *nl = memchr(p->buf + start, '\n', p->len - start);
    if (nl == NULL) break;
    size_t llen = (size_t)(nl - (p->buf + start));
    done = jb_process_line(p->buf + start, llen, job->id, ctx, r);
    start += llen + 1;
  }
  if (start > 0) { /* nothing taken: buf may still be NULL */
    memmove(p->buf, p->buf + start, p->len - start);
    p->len -= start;
  }
  if (done == 0 && p->len > JB_PROCESS_MAX_LINE) {
    fail(r, true, "the process wrote garbage: a line longer than ", "1048576", " bytes");
    done = -1;
  }
  return done;
}

/* Sends the job and waits for its answer. Returns whether the process must be replaced. */
static bool converse(const jb_process_handler *h, jb_proc *p, const jb_job *job,
                     jb_handler_ctx *ctx, jb_job_result *r) {
  int64_t deadline = jb_mono_ms() + (int64_t)(h->timeout_s * 1000);
  char *line = jb_exec_job_input(job);
  if (line == NULL) {
    fail(r, true, "out of memory preparing the job for the process", "", "");
    r->requeue = true;
    return false;
  }
  size_t len = strlen(line);
  line[len] = '\n'; /* over the NUL: the line is sent with its end */
  bool sent = write_line(p, line, len + 1, deadline);
  free(line);
  char why[200] = "";
  while (sent) {
    int got = take_lines(p, job, ctx, r);
    if (got != 0) return got < 0;
    int64_t left = deadline - jb_mono_ms();
    int stop = atomic_load(&ctx->stop);
    if (stop != JB_STOP_NONE) {
      fail(r, true, stop == JB_STOP_CANCEL ? "Job cancelled" : "stopped by shutdown", "", "");
      return true;
    }
    if (left <= 0) {
      char t[64];
      snprintf(t, sizeof t, "%g", h->timeout_s);
      fail(r, true, "the process did not answer within timeout_s (", t, "s); it is restarted");
      return true;
    }
    struct pollfd pf[3] = {
        {p->run.out_fd, POLLIN, 0}, {p->run.err_fd, POLLIN, 0}, {p->run.msg_fd, POLLIN, 0}};
    if (poll(pf, 3, left > 100 ? 100 : (int)left) <= 0) continue;
    if (pf[1].revents) log_stderr(p, job);
    if (pf[2].revents) read_reports(p, why, sizeof why);
    if (pf[0].revents && !read_out(p)) break;
    if (p->run.msg_fd < 0 || why[0] != '\0') break;
  }
  /* Whatever it answered before it went is taken (an answer, then an exit, counts). */
  if (p->run.out_fd >= 0) read_out(p);
  if (take_lines(p, job, ctx, r) > 0) return true;
  jb_job_result_clear(r);
  /* Its stdout ended first: the shepherd's report of its exit follows at once, for the reason. */
  for (int64_t until = jb_mono_ms() + 1000; why[0] == '\0' && p->run.msg_fd >= 0;) {
    int64_t left = until - jb_mono_ms();
    struct pollfd pf = {p->run.msg_fd, POLLIN, 0};
    if (left <= 0 || poll(&pf, 1, (int)left) <= 0) break;
    read_reports(p, why, sizeof why);
  }
  if (why[0] == '\0') snprintf(why, sizeof why, "the process closed its stdout");
  fail(r, true, why, " before it answered; it is restarted", "");
  return true;
}

static jb_proc *acquire(jb_process_handler *h, jb_handler_ctx *ctx) {
  pthread_mutex_lock(&h->lock);
  jb_proc *got = NULL;
  while (got == NULL && atomic_load(&ctx->stop) == JB_STOP_NONE) {
    for (int i = 0; i < h->n && got == NULL; i++)
      if (!h->procs[i].busy) got = &h->procs[i];
    if (got == NULL) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += 100000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&h->freed, &h->lock, &ts);
    }
  }
  if (got != NULL) got->busy = true;
  pthread_mutex_unlock(&h->lock);
  return got;
}

static void release(jb_process_handler *h, jb_proc *p) {
  pthread_mutex_lock(&h->lock);
  p->busy = false;
  pthread_cond_signal(&h->freed);
  pthread_mutex_unlock(&h->lock);
}

static void process_handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  jb_process_handler *h = self;
  jb_proc *p = acquire(h, ctx);
  if (p == NULL) {
    int stop = atomic_load(&ctx->stop);
    fail(r, true, stop == JB_STOP_CANCEL ? "Job cancelled" : "stopped by shutdown", "", "");
    return;
  }
  if (p->run.shepherd <= 0) {
    int e = proc_start(h, p);
    if (e != 0) {
      fail(r, true, "cannot start the process: ", strerror(e), "");
      r->requeue = e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN;
      release(h, p);
      return;
    }
  }
  if (converse(h, p, job, ctx, r)) {
    jb_log(JB_LOG_WARN, "a process handler's process is replaced", "job_id", job->id, "job_type",
           job->job_type, "reason", r->error_message ? r->error_message : "", JB_LOG_END);
    proc_stop(p, job->id);
  }
  release(h, p);
}

static void process_destroy(void *self) {
  jb_process_handler *h = self;
  for (int i = 0; h->procs != NULL && i < h->n; i++) { /* every one ends on end-of-file */
    close_fd(&h->procs[i].run.in_fd);
    if (h->procs[i].run.shepherd > 0) kill(h->procs[i].run.shepherd, SIGTERM);
  }
  for (int i = 0; h->procs != NULL && i < h->n; i++) {
    proc_stop(&h->procs[i], "");
    free(h->procs[i].buf);
  }
  free(h->procs);
  for (char **a = h->argv; a && *a; a++) free(*a);
  free(h->argv);
  free(h->envp);
  for (char **a = h->env; a && *a; a++) free(*a);
  free(h->env);
  free(h->path);
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->freed);
  free(h);
}

static const jb_job_handler_ops process_ops = {.handle = process_handle,
                                               .destroy = process_destroy};

jb_err jb_process_handler_create(const jb_process_config *c, jb_job_handler *out, jb_error *e) {
  size_t n = 0;
  while (c->argv && c->argv[n]) n++;
  if (n == 0) return jb_fail(e, JB_ERR_INVALID, "process handler needs a command");
  if (c->processes < 1 || c->processes > 4096)
    return jb_fail(e, JB_ERR_INVALID, "process handler processes must be 1 to 4096, not %d",
                   c->processes);
  if (!(c->timeout_s > 0 && c->timeout_s <= MAX_TIMEOUT_S))
    return jb_fail(e, JB_ERR_INVALID,
                   "process handler timeout_s must be a number of seconds above 0 and at most "
                   "%g, not %g",
                   MAX_TIMEOUT_S, c->timeout_s);
  jb_process_handler *h = calloc(1, sizeof *h);
  if (h == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&h->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->freed, &ca);
  pthread_condattr_destroy(&ca);
  h->n = c->processes;
  h->timeout_s = c->timeout_s;
  jb_err rc = jb_process_env(c, h, e);
  if (rc != JB_OK) goto fail;
  h->procs = calloc((size_t)h->n, sizeof *h->procs);
  h->argv = calloc(n + 1, sizeof *h->argv);
  for (size_t i = 0; h->argv != NULL && i < n; i++)
    if ((h->argv[i] = strdup(c->argv[i])) == NULL) h->procs = (free(h->procs), NULL);
  if (h->procs == NULL || h->argv == NULL) {
    rc = jb_fail(e, JB_ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (int i = 0; i < h->n; i++) h->procs[i].run = (jb_run){0, -1, -1, -1, -1, -1};
  int err = jb_exec_resolve(h->argv[0], h->envp, &h->path);
  if (err != 0) {
    rc = jb_fail(e, JB_ERR_INVALID, "process handler command %s: %s", h->argv[0], strerror(err));
    goto fail;
  }
  *out = (jb_job_handler){&process_ops, h};
  return JB_OK;
fail:
  process_destroy(h);
  return rc;
}
