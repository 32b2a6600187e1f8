/* The built-in JobHandlers: noop, exec (a program per job, no shell), C callbacks. */
/* pipe2 and O_CLOEXEC pipes: close-on-exec from birth, so no other thread's spawn inherits them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobbridge/job_handler.h"

extern char **environ;

#define EXIT_NON_RETRIABLE 65 /* EX_DATAERR: the job itself is bad, retrying will not help */
#define KILL_GRACE_MS 5000
#define MAX_STDOUT (1 << 20)
#define STDERR_TAIL 2048

/* ---- noop ---- */

static void noop_handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  (void)self;
  (void)job;
  (void)ctx;
  r->success = true;
}

static const jb_job_handler_ops noop_ops = {.handle = noop_handle};

jb_job_handler jb_noop_handler(void) {
  return (jb_job_handler){&noop_ops, NULL};
}

/* ---- callbacks ---- */

typedef struct callback {
  jb_handler_fn fn;
  void *self;
} callback;

static void callback_handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  callback *cb = self;
  cb->fn(cb->self, job, ctx, r);
}

static const jb_job_handler_ops callback_ops = {.handle = callback_handle, .destroy = free};

jb_job_handler jb_callback_handler(jb_handler_fn fn, void *self) {
  callback *cb = malloc(sizeof *cb);
  if (cb == NULL) return (jb_job_handler){NULL, NULL};
  *cb = (callback){fn, self};
  return (jb_job_handler){&callback_ops, cb};
}

/* ---- exec ---- */

typedef struct exec_handler {
  char **argv;
  double timeout_s;
} exec_handler;

static void exec_destroy(void *self) {
  exec_handler *h = self;
  for (char **a = h->argv; a && *a; a++) free(*a);
  free(h->argv);
  free(h);
}

/* The job as the program sees it on stdin. */
static char *job_input(const jb_job *job) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:O, s:O, s:i, s:i}", "id", job->id, "job_type",
                        job->job_type, "queue_name", job->queue_name, "payload", job->payload,
                        "metadata", job->metadata ? job->metadata : json_object(), "retry_count",
                        job->retry_count, "max_retries", job->max_retries);
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
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

static void exec_handle(void *self, const jb_job *job, jb_handler_ctx *ctx, jb_job_result *r) {
  exec_handler *h = self;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  char *input = job_input(job);
  buf ob = {0}, eb = {0};
  char env_id[64], env_type[320];
  char **envp = NULL;
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  bool fa_init = false;
  if (input == NULL || pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    fail(r, true, strdup("cannot prepare the process (out of memory or file descriptors)"));
    goto out;
  }
  /* The environment: ours plus the job's id and type. */
  size_t nenv = 0;
  while (environ[nenv]) nenv++;
  envp = calloc(nenv + 3, sizeof *envp);
  if (envp == NULL) {
    fail(r, true, strdup("out of memory"));
    goto out;
  }
  size_t k = 0;
  for (size_t i = 0; i < nenv; i++)
    if (strncmp(environ[i], "JOBBRIDGE_JOB_", 14) != 0) envp[k++] = environ[i];
  snprintf(env_id, sizeof env_id, "JOBBRIDGE_JOB_ID=%s", job->id);
  snprintf(env_type, sizeof env_type, "JOBBRIDGE_JOB_TYPE=%s", job->job_type);
  envp[k++] = env_id;
  envp[k++] = env_type;
  posix_spawn_file_actions_init(&fa);
  fa_init = true;
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  /* Its own process group, so a timeout or cancel stops the program's children too. */
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  int st = posix_spawnp(&pid, h->argv[0], &fa, &attr, h->argv, envp);
  posix_spawnattr_destroy(&attr);
  if (st != 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "cannot run %s: %s", h->argv[0], strerror(st));
    fail(r, true, strdup(msg));
    pid = -1;
    goto out;
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in[0] = out[1] = err[1] = -1;
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  size_t input_len = strlen(input), written = 0;
  int64_t start = jb_mono_ms(), deadline = start + (int64_t)(h->timeout_s * 1000);
  int64_t kill_at = 0;
  bool timed_out = false;
  int stop_reason = JB_STOP_NONE;
  while (out[0] >= 0 || err[0] >= 0) {
    int64_t now = jb_mono_ms();
    int reason = atomic_load(&ctx->stop);
    if (kill_at == 0 && (now >= deadline || reason != JB_STOP_NONE)) {
      timed_out = reason == JB_STOP_NONE;
      stop_reason = reason;
      kill(-pid, SIGTERM);
      kill_at = now + KILL_GRACE_MS;
    } else if (kill_at != 0 && now >= kill_at) {
      kill(-pid, SIGKILL);
      kill_at = INT64_MAX;
    }
    struct pollfd p[3];
    int np = 0;
    if (out[0] >= 0) p[np++] = (struct pollfd){out[0], POLLIN, 0};
    if (err[0] >= 0) p[np++] = (struct pollfd){err[0], POLLIN, 0};
    if (in[1] >= 0) p[np++] = (struct pollfd){in[1], POLLOUT, 0};
    if (poll(p, (nfds_t)np, 100) < 0 && errno != EINTR) break;
    for (int i = 0; i < np; i++) {
      if (!p[i].revents) continue;
      if (p[i].fd == in[1]) {
        ssize_t w = write(in[1], input + written, input_len - written);
        if (w > 0) written += (size_t)w;
        if (w < 0 && errno != EAGAIN) written = input_len; /* the program closed stdin */
        if (written == input_len) {
          close(in[1]);
          in[1] = -1;
        }
        continue;
      }
      char chunk[8192];
      ssize_t n = read(p[i].fd, chunk, sizeof chunk);
      if (n > 0) {
        if (p[i].fd == out[0])
          buf_add(&ob, chunk, (size_t)n, MAX_STDOUT, false);
        else
          buf_add(&eb, chunk, (size_t)n, STDERR_TAIL, true);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (p[i].fd == out[0]) {
          close(out[0]);
          out[0] = -1;
        } else {
          close(err[0]);
          err[0] = -1;
        }
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  pid = -1;
  char what[160];
  if (stop_reason != JB_STOP_NONE) {
    fail(r, true, strdup(stop_reason == JB_STOP_CANCEL ? "Job cancelled" : "stopped by shutdown"));
  } else if (timed_out) {
    snprintf(what, sizeof what, "timed out after %gs", h->timeout_s);
    fail(r, true, stderr_tail(&eb, what));
  } else if (WIFSIGNALED(status)) {
    snprintf(what, sizeof what, "killed by signal %d", WTERMSIG(status));
    fail(r, true, stderr_tail(&eb, what));
  } else if (WEXITSTATUS(status) == 0) {
    r->success = true;
    if (ob.len > 0 && !ob.truncated) {
      json_t *v = json_loadb(ob.data, ob.len, 0, NULL);
      if (json_is_object(v))
        r->result_data = v;
      else
        json_decref(v);
    }
  } else {
    snprintf(what, sizeof what, "exit status %d", WEXITSTATUS(status));
    fail(r, WEXITSTATUS(status) != EXIT_NON_RETRIABLE, stderr_tail(&eb, what));
  }
out:
  if (pid > 0) {
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  if (fa_init) posix_spawn_file_actions_destroy(&fa);
  int fds[] = {in[0], in[1], out[0], out[1], err[0], err[1]};
  for (int i = 0; i < 6; i++)
    if (fds[i] >= 0) close(fds[i]);
  free(envp);
  free(input);
  free(ob.data);
  free(eb.data);
}

static const jb_job_handler_ops exec_ops = {.handle = exec_handle, .destroy = exec_destroy};

jb_err jb_exec_handler_new(char *const *argv, double timeout_s, jb_job_handler *out, jb_error *e) {
  size_t n = 0;
  while (argv && argv[n]) n++;
  if (n == 0) return jb_fail(e, JB_ERR_INVALID, "exec handler needs a command");
  exec_handler *h = calloc(1, sizeof *h);
  char **copy = calloc(n + 1, sizeof *copy);
  if (h == NULL || copy == NULL) {
    free(h);
    free(copy);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) copy[i] = strdup(argv[i]);
  h->argv = copy;
  h->timeout_s = timeout_s;
  *out = (jb_job_handler){&exec_ops, h};
  return JB_OK;
}
