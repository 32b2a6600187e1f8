/* The exec handler: a program per job, no shell, its whole process tree bounded by a shepherd
 * (shepherd.c) and its environment by an allowlist (exec_env.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handlers/exec_env.h"
#include "handlers/handlers.h"
#include "handlers/shepherd.h"
#include "jobbridge/json.h"
#include "jobbridge/log.h"
#include "jobbridge/trace.h"

#define EXIT_NON_RETRIABLE 65 /* EX_DATAERR: the job itself is bad, retrying will not help */
#define KILL_GRACE_MS 5000    /* SIGTERM, then SIGKILL this much later */
/* How long past the grace the worker waits for the shepherd before it kills the shepherd
 * itself (the tree then may outlive the run: logged). The same bound holds once the program's
 * exit is known (the shepherd gives up on the tree sooner: JB_RUN_KILL_MAX_MS). */
#define SHEPHERD_SLACK_MS 5000
/* Once the program's exit is known, a stop (cancel, shutdown) waits at most this long more. */
#define STOP_AFTER_EXIT_MS 2000
/* The largest timeout_s: beyond it the deadline in milliseconds would not be a number. */
#define MAX_TIMEOUT_S 1e9
#define MAX_STDOUT (1 << 20)
#define STDERR_TAIL 2048

typedef struct exec_handler {
  char **argv;
  double timeout_s;
  char **env;         /* "NAME=value", NULL-terminated */
  char **passthrough; /* names, NULL-terminated */
} exec_handler;

static void strv_free(char **v) {
  for (char **a = v; a && *a; a++) free(*a);
  free(v);
}

static void exec_destroy(void *self) {
  exec_handler *h = self;
  strv_free(h->argv);
  strv_free(h->env);
  strv_free(h->passthrough);
  free(h);
}

/* The job as the program sees it on stdin, written by jobbridge's one JSON writer so that the
 * payload's numbers reach the program exactly as they were stored. */
char *jb_exec_job_input(const jb_job *job) {
  json_t *meta = job->metadata ? json_incref(job->metadata) : json_object();
  /* "o" steals meta, also when json_pack fails. */
  json_t *o =
      json_pack("{s:s, s:s, s:s, s:O, s:o, s:i, s:i}", "id", job->id, "job_type", job->job_type,
                "queue_name", job->queue_name, "payload", job->payload, "metadata", meta,
                "retry_count", job->retry_count, "max_retries", job->max_retries);
  /* The W3C trace context, when the job has one (a process handler's only way to see it). */
  if (o != NULL && job->traceparent[0] != '\0' &&
      (json_object_set_new(o, "traceparent", json_string(job->traceparent)) != 0 ||
       (job->tracestate != NULL &&
        json_object_set_new(o, "tracestate", json_string(job->tracestate)) != 0))) {
    json_decref(o);
    o = NULL;
  }
  char *text = o ? jb_json_dumps(o, JB_JSON_COMPACT, NULL) : NULL;
  json_decref(o);
  return text;
}

/* Appends to a growing buffer up to cap bytes; beyond that, keeps the last `tail` bytes when
 * tail > 0 (stderr) or stops growing (stdout). */
typedef struct buf {
  char *data;
  size_t len, cap;
  bool truncated;
} buf;

static void buf_add(buf *b, const char *p, size_t n, size_t limit, bool keep_tail) {
  if (keep_tail) {
    if (n >= limit) {
      p += n - limit;
      n = limit;
      b->len = 0;
    } else if (b->len + n > limit) {
      size_t drop = b->len + n - limit;
      memmove(b->data, b->data + drop, b->len - drop);
      b->len -= drop;
    }
  } else if (b->len + n > limit) {
    b->truncated = true;
    n = limit > b->len ? limit - b->len : 0;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* The last few lines of stderr, trimmed, for error_message. */
static char *stderr_tail(const buf *b, const char *fallback) {
  if (b->len == 0) return strdup(fallback);
  size_t end = b->len;
  while (end > 0 && (b->data[end - 1] == '\n' || b->data[end - 1] == ' ')) end--;
  size_t start = end, lines = 0;
  while (start > 0 && lines < 5) {
    if (b->data[start - 1] == '\n') lines++;
    if (lines < 5) start--;
  }
  size_t n = end - start;
  char *s = malloc(n + strlen(fallback) + 4);
  if (s) sprintf(s, "%s: %.*s", fallback, (int)n, b->data + start);
  return s;
}

static void fail(jb_job_result *r, bool retriable, char *msg) {
  r->success = false;
  r->retriable = retriable;
  r->error_message = msg;
}

/* A shortage of descriptors, memory or processes is jobbridge's, not the job's. */
static bool resource_errno(int e) {
  return e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN;
}

/* A failure to start the program: a resource shortage requeues the job (no retry burnt),
 * anything else (a missing program, a permission) is the job's retriable failure. */
static void fail_start(jb_job_result *r, const char *prog, const char *what, int e) {
  char msg[512];
  bool requeue = resource_errno(e);
  snprintf(msg, sizeof msg, "%s %s: %s%s", what, prog, strerror(e),
           requeue ? " (jobbridge is out of resources; the job goes back without a retry)" : "");
  fail(r, true, strdup(msg));
  r->requeue = requeue;
}

/* One run in progress, as the worker sees it. */
typedef struct run_state {
  jb_run run;
  const char *input;
  size_t input_len, written;
  buf ob, eb;
  bool exited;     /* the shepherd reported the program's wait status */
  int status;      /* that status */
  bool signalled;  /* the stop's SIGTERM reached the program before it exited */
  bool tree_left;  /* the shepherd gave up killing the tree: processes may remain */
  int exec_errno;  /* execve failed with this */
  int start_errno; /* the shepherd could not start the program */
  jb_handler_ctx *ctx;
  char pline[JB_PROGRESS_MESSAGE_MAX + 16]; /* a progress line being read */
  size_t plen;
  bool pskip; /* the line being read is too long: dropped up to its end */
} run_state;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void read_msgs(run_state *s) {
  jb_run_msg m;
  ssize_t n = read(s->run.msg_fd, &m, sizeof m);
  if (n == (ssize_t)sizeof m) {
    if (m.kind == JB_RUN_EXITED) {
      s->exited = true;
      s->status = m.value;
    } else if (m.kind == JB_RUN_STOPPING) {
      s->signalled = true;
    } else if (m.kind == JB_RUN_TREE_LEFT) {
      s->tree_left = true;
    } else if (m.kind == JB_RUN_EXEC_FAILED) {
      s->exec_errno = m.value;
    } else if (m.kind == JB_RUN_START_FAILED) {
      s->start_errno = m.value;
    }
  } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_fd(&s->run.msg_fd); /* the shepherd is gone, and with it the whole tree */
  }
}

/* Writes more of the job to the program's stdin. A program that exited or closed stdin makes
 * the write fail with EPIPE and raise SIGPIPE in this thread: it is blocked around the write and
 * a pending one taken, so that an embedder with SIGPIPE's default action does not die. */
static void write_input(run_state *s) {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  ssize_t w = write(s->run.in_fd, s->input + s->written, s->input_len - s->written);
  int err = errno;
  if (w < 0 && err == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (w > 0) s->written += (size_t)w;
  if (w < 0 && err != EAGAIN && err != EINTR) s->written = s->input_len; /* stdin closed */
  if (s->written == s->input_len) close_fd(&s->run.in_fd);
}

/* Reads progress lines ("progress <0-100> [message]") from JOBBRIDGE_PROGRESS_FD; other lines
 * and overlong ones are ignored. */
static void read_progress(run_state *s) {
  char chunk[1024];
  ssize_t n = read(s->run.progress_fd, chunk, sizeof chunk);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_fd(&s->run.progress_fd);
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    if (chunk[i] != '\n') {
      if (s->plen + 1 < sizeof s->pline)
        s->pline[s->plen++] = chunk[i];
      else
        s->pskip = true;
      continue;
    }
    s->pline[s->plen] = '\0';
    int pct = 0, used = 0;
    if (!s->pskip && sscanf(s->pline, "progress %d%n", &pct, &used) == 1 && pct >= 0 &&
        pct <= 100 && (s->pline[used] == '\0' || s->pline[used] == ' ')) {
      const char *msg = s->pline[used] == ' ' ? s->pline + used + 1 : NULL;
      jb_job_report_progress(s->ctx, pct, msg != NULL && *msg ? msg : NULL);
    }
    s->plen = 0;
    s->pskip = false;
  }
}

/* Services every descriptor that is ready within timeout_ms. */
static void pump(run_state *s, int timeout_ms) {
  struct pollfd p[5];
  int *fds[5] = {&s->run.out_fd, &s->run.err_fd, &s->run.msg_fd, &s->run.in_fd,
                 &s->run.progress_fd};
  int np = 0;
  for (int i = 0; i < 5; i++)
    if (*fds[i] >= 0) p[np++] = (struct pollfd){*fds[i], i == 3 ? POLLOUT : POLLIN, 0};
  if (np == 0 || poll(p, (nfds_t)np, timeout_ms) <= 0) return;
  for (int i = 0; i < np; i++) {
    if (!p[i].revents) continue;
    if (p[i].fd == s->run.in_fd) {
      write_input(s);
    } else if (p[i].fd == s->run.msg_fd) {
      read_msgs(s);
    } else if (p[i].fd == s->run.progress_fd) {
      read_progress(s);
    } else {
      char chunk[8192];
      int *fd = p[i].fd == s->run.out_fd ? &s->run.out_fd : &s->run.err_fd;
      ssize_t n = read(*fd, chunk, sizeof chunk);
      if (n > 0 && fd == &s->run.out_fd)
        buf_add(&s->ob, chunk, (size_t)n, MAX_STDOUT, false);
      else if (n > 0)
        buf_add(&s->eb, chunk, (size_t)n, STDERR_TAIL, true);
      else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        close_fd(fd);
    }
  }
}

/* Waits up to ms for the shepherd to have exited: on its pidfd when the kernel has pidfd_open
 * (woken the moment it is a zombie), else by sleeps growing from 50 us to 10 ms. The shepherd
 * closes its report pipe in its exit, a moment before it becomes a zombie: a fixed 10 ms sleep
 * here cost most of a short run's time. */
static void wait_exit(int pidfd, int ms, int *sleep_us) {
  if (pidfd >= 0) {
    struct pollfd p = {pidfd, POLLIN, 0};
    poll(&p, 1, ms);
    return;
  }
  usleep((useconds_t)*sleep_us);
  if (*sleep_us < 10000) *sleep_us *= 2;
}

/* Reaps the shepherd within a bounded time: it has closed its pipe, so it is exiting; if it is
 * still there after two seconds (or was given up on), SIGKILL, then a bounded wait again. */
static void reap_shepherd(pid_t pid, const char *job_id) {
  pid_t r = waitpid(pid, NULL, WNOHANG);
  if (r == pid || (r < 0 && errno != EINTR)) return;
  /* Not reaped yet: still our child's pid. -1 (ENOSYS) before Linux 5.3: sleeps then. */
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  for (int round = 0; round < 2; round++) {
    int64_t end = jb_mono_ms() + 2000;
    int sleep_us = 50;
    for (;;) {
      r = waitpid(pid, NULL, WNOHANG);
      if (r == pid || (r < 0 && errno != EINTR)) goto out;
      int64_t left = end - jb_mono_ms();
      if (left <= 0) break;
      wait_exit(pidfd, (int)left, &sleep_us);
    }
    kill(pid, SIGKILL);
  }
  jb_log(JB_LOG_ERROR, "an exec handler's shepherd process could not be reaped", "job_id", job_id,
         JB_LOG_I64("shepherd_pid", pid), JB_LOG_END);
out:
  if (pidfd >= 0) close(pidfd);
}

/* Runs until the shepherd is gone (the program and every process of its tree ended), stopping
 * it at the deadline or when ctx asks. Once the program's exit is known, the shepherd gets a
 * bounded time to end the tree (shorter when ctx asks to stop); past it the worker kills the
 * shepherd and goes on: the program's status stands. Returns the stop reason (-1 for a
 * timeout). */
/* The job's trace id in out (33 bytes), NULL when it has none. */
static const char *trace_id(const jb_job *job, char *out) {
  jb_trace_id(job->traceparent, out);
  return out[0] ? out : NULL;
}

static int run_until_done(run_state *s, const exec_handler *h, const jb_job *job,
                          jb_handler_ctx *ctx) {
  int64_t deadline = jb_mono_ms() + (int64_t)(h->timeout_s * 1000);
  int64_t give_up_at = 0;
  int stopped = JB_STOP_NONE;
  char tid[33]; /* the job's trace id, for its log lines */
  bool exit_seen = false, stop_after_exit = false;
  while (s->run.msg_fd >= 0) {
    int64_t now = jb_mono_ms();
    int reason = atomic_load(&ctx->stop);
    if (s->exited && !exit_seen) {
      exit_seen = true;
      give_up_at = now + KILL_GRACE_MS + SHEPHERD_SLACK_MS;
    }
    if (exit_seen && reason != JB_STOP_NONE && !stop_after_exit) {
      stop_after_exit = true;
      if (give_up_at > now + STOP_AFTER_EXIT_MS) give_up_at = now + STOP_AFTER_EXIT_MS;
    }
    if (give_up_at == 0 && (now >= deadline || reason != JB_STOP_NONE)) {
      stopped = reason != JB_STOP_NONE ? reason : -1;
      kill(s->run.shepherd, SIGTERM); /* SIGTERM to the tree, SIGKILL after the grace */
      give_up_at = now + KILL_GRACE_MS + SHEPHERD_SLACK_MS;
    } else if (give_up_at != 0 && now >= give_up_at) {
      jb_log(JB_LOG_ERROR,
             "an exec handler's shepherd did not end its process tree in time; it is killed, "
             "and processes of the job's tree may remain",
             "job_id", job->id, "job_type", job->job_type, "trace_id", trace_id(job, tid),
             JB_LOG_END);
      kill(s->run.shepherd, SIGKILL);
      break;
    }
    pump(s, 100);
  }
  if (s->tree_left)
    jb_log(JB_LOG_ERROR,
           "an exec handler's shepherd could not end every process of the job's tree (one "
           "survives SIGKILL, may not be signalled, or cannot be found); processes may remain",
           "job_id", job->id, "job_type", job->job_type, "trace_id", trace_id(job, tid),
           JB_LOG_END);
  /* What the program wrote before it ended is still in the pipes: read it. Every writer is
   * gone, so end-of-file comes at once (bounded anyway, should a process have escaped). */
  int64_t drain_end = jb_mono_ms() + 1000;
  while ((s->run.out_fd >= 0 || s->run.err_fd >= 0) && jb_mono_ms() < drain_end) pump(s, 50);
  reap_shepherd(s->run.shepherd, job->id);
  return stopped;
}

static void run_result(const run_state *s, const exec_handler *h, int stopped, jb_job_result *r) {
  char what[160];
  /* A program that exited on its own before a stop's signal reached it ended the run: its
   * status stands, also when the stop or the deadline was seen before its exit was read. */
  if (stopped != JB_STOP_NONE && s->exited && !s->signalled) stopped = JB_STOP_NONE;
  if (stopped > 0) {
    fail(r, true, strdup(stopped == JB_STOP_CANCEL ? "Job cancelled" : "stopped by shutdown"));
  } else if (s->start_errno != 0) {
    fail_start(r, h->argv[0], "cannot start", s->start_errno);
  } else if (s->exec_errno != 0) {
    fail_start(r, h->argv[0], "cannot run", s->exec_errno);
  } else if (stopped < 0) {
    snprintf(what, sizeof what, "timed out after %gs", h->timeout_s);
    fail(r, true, stderr_tail(&s->eb, what));
  } else if (!s->exited) {
    fail(r, true, strdup("the handler's shepherd process ended without its exit status"));
  } else if (WIFSIGNALED(s->status)) {
    snprintf(what, sizeof what, "killed by signal %d", WTERMSIG(s->status));
    fail(r, true, stderr_tail(&s->eb, what));
  } else if (WEXITSTATUS(s->status) == 0) {
    r->success = true;
    if (s->ob.len > 0 && !s->ob.truncated) {
      /* The one parser: the result's numbers are stored exactly as the program wrote them. */
      json_t *v = NULL;
      if (jb_json_parse(s->ob.data, s->ob.len, &v, NULL) != JB_OK) v = NULL;
      if (json_is_object(v))
        r->result_data = v;
      else
        json_decref(v);
    }
  } else {
    snprintf(what, sizeof what, "exit status %d", WEXITSTATUS(s->status));
    fail(r, WEXITSTATUS(s->status) != EXIT_NON_RETRIABLE, stderr_tail(&s->eb, what));
  }
}

/* env (from jb_exec_env_build; its entries are borrowed) with JOBBRIDGE_PROGRESS_FD first: a
 * new array (free(); env must outlive it), or NULL. */
static char **with_progress_fd(char **env) {
  static char var[] = "JOBBRIDGE_PROGRESS_FD=4";
  if (env == NULL) return NULL;
  size_t n = 0;
  while (env[n]) n++;
  char **v = malloc((n + 2) * sizeof *v);
  if (v != NULL) {
    v[0] = var;
    memcpy(v + 1, env, (n + 1) * sizeof *v);
  }
  return v;
}

static void exec_handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  exec_handler *h = self;
  run_state s = {.run = {-1, -1, -1, -1, -1, -1}, .ctx = ctx};
  char *input = jb_exec_job_input(job), *path = NULL;
  char **base_env = jb_exec_env_build(h->env, h->passthrough, job->id, job->job_type,
                                      job->traceparent, job->tracestate);
  char **envp = with_progress_fd(base_env);
  if (input == NULL || envp == NULL) {
    fail_start(r, h->argv[0], "cannot prepare", ENOMEM);
    goto out;
  }
  int e = jb_exec_resolve(h->argv[0], envp, &path);
  if (e != 0) {
    fail_start(r, h->argv[0], "cannot run", e);
    goto out;
  }
  e = jb_run_start(path, h->argv, envp, KILL_GRACE_MS, true, &s.run);
  if (e != 0) {
    fail_start(r, h->argv[0], "cannot start", e);
    goto out;
  }
  s.input = input;
  s.input_len = strlen(input);
  int stopped = run_until_done(&s, h, job, ctx);
  run_result(&s, h, stopped, r);
out:
  close_fd(&s.run.in_fd);
  close_fd(&s.run.out_fd);
  close_fd(&s.run.err_fd);
  close_fd(&s.run.msg_fd);
  close_fd(&s.run.progress_fd);
  free(s.ob.data);
  free(s.eb.data);
  free(path);
  free(envp);
  free(base_env);
  free(input);
}

static const jb_job_handler_ops exec_ops = {.handle = exec_handle, .destroy = exec_destroy};

/* A NULL-terminated copy of n strings from get(i); NULL when out of memory. */
static char **strv_copy(size_t n, const char *(*get)(const void *, size_t), const void *src) {
  char **v = calloc(n + 1, sizeof *v);
  for (size_t i = 0; v != NULL && i < n; i++) {
    v[i] = strdup(get(src, i));
    if (v[i] == NULL) {
      strv_free(v);
      v = NULL;
    }
  }
  return v;
}

static const char *argv_at(const void *v, size_t i) {
  return ((char *const *)v)[i];
}

/* The job type's fixed variables as "NAME=value" strings (a new array the handler owns), each
 * name and value checked. */
static jb_err env_copy(const json_t *env, char ***out, jb_error *e) {
  size_t n = json_object_size(env), i = 0;
  char **v = calloc(n + 1, sizeof *v);
  if (v == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  const char *name;
  json_t *val;
  json_object_foreach((json_t *)env, name, val) {
    const char *problem = jb_env_name_problem(name);
    if (problem == NULL && !json_is_string(val)) problem = "its value must be a string";
    if (problem == NULL && strlen(json_string_value(val)) != json_string_length(val))
      problem = "its value must not contain a NUL byte";
    if (problem != NULL) {
      strv_free(v);
      return jb_fail(e, JB_ERR_INVALID, "exec handler env \"%s\": %s", name, problem);
    }
    size_t len = strlen(name) + json_string_length(val) + 2;
    v[i] = malloc(len);
    if (v[i] == NULL) {
      strv_free(v);
      return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    }
    snprintf(v[i++], len, "%s=%s", name, json_string_value(val));
  }
  *out = v;
  return JB_OK;
}

jb_err jb_exec_handler_create(const jb_exec_config *c, jb_job_handler *out, jb_error *e) {
  size_t n = 0, np = 0;
  while (c->argv && c->argv[n]) n++;
  while (c->env_passthrough && c->env_passthrough[np]) np++;
  if (n == 0) return jb_fail(e, JB_ERR_INVALID, "exec handler needs a command");
  for (size_t i = 0; i < np; i++) {
    const char *problem = jb_env_name_problem(c->env_passthrough[i]);
    if (problem != NULL)
      return jb_fail(e, JB_ERR_INVALID, "exec handler env_passthrough[%zu]: %s", i, problem);
  }
  if (!(c->timeout_s > 0 && c->timeout_s <= MAX_TIMEOUT_S)) /* also false for NaN */
    return jb_fail(e, JB_ERR_INVALID,
                   "exec handler timeout_s must be a number of seconds above 0 and at most %g, "
                   "not %g",
                   MAX_TIMEOUT_S, c->timeout_s);
  exec_handler *h = calloc(1, sizeof *h);
  if (h == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  h->timeout_s = c->timeout_s;
  jb_err rc = env_copy(c->env, &h->env, e);
  if (rc != JB_OK) goto fail;
  h->argv = strv_copy(n, argv_at, c->argv);
  h->passthrough = strv_copy(np, argv_at, c->env_passthrough);
  if (h->argv == NULL || h->passthrough == NULL) {
    rc = jb_fail(e, JB_ERR_NOMEM, "out of memory");
    goto fail;
  }
  *out = (jb_job_handler){&exec_ops, h};
  return JB_OK;
fail:
  exec_destroy(h);
  return rc;
}

jb_err jb_exec_handler_new(char *const *argv, double timeout_s, jb_job_handler *out, jb_error *e) {
  jb_exec_config c = {.argv = argv, .timeout_s = timeout_s};
  return jb_exec_handler_create(&c, out, e);
}
