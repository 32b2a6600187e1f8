/* The handlers adapter: the built-in JobHandlers (noop, exec, C callbacks) and the wiring's
 * constructor of the handlers a config's job types name. Usable by embedders like
 * src/postgres/pg.h; the domain never includes it. */
#ifndef JB_HANDLERS_H
#define JB_HANDLERS_H

#include <stddef.h>

#include "jobbridge/config.h"
#include "jobbridge/job_handler.h"

/* The built-in handlers. `noop` completes at once. `exec` runs argv (NULL-terminated, copied)
 * without a shell, the job as JSON on stdin: exit 0 = success (stdout, if a JSON object, is the
 * result), exit 65 = non-retriable failure, any other exit, a signal, or timeout_s passed
 * (SIGTERM, then SIGKILL after a grace period) = retriable failure; the last lines of stderr
 * become the error.
 * The run's whole process tree is bounded: the program runs under a small "shepherd" process
 * (forked, a child subreaper), and when the program ends, is timed out, cancelled or stopped by
 * shutdown, or jobbridge dies, every process it started, even in a session of its own, is
 * killed; the handler returns only once none is left.
 * The environment is clean: JOBBRIDGE_JOB_ID, JOBBRIDGE_JOB_TYPE, TRACEPARENT (and TRACESTATE
 * when the job has one: W3C trace context), then `env` (fixed values),
 * then the names of `env_passthrough` set in jobbridge's environment, then PATH, HOME, LANG and
 * TZ when set in jobbridge's environment; nothing else (jobbridge's URLs hold passwords). PATH
 * (the child's) is searched for argv[0] when it holds no '/'.
 * When starting fails for lack of resources (descriptors, memory, processes: EMFILE, ENFILE,
 * ENOMEM, EAGAIN) the result says `requeue`; a missing program or a permission is the job's
 * retriable failure. */
typedef struct jb_exec_config {
  char *const *argv; /* borrowed, copied */
  double timeout_s;
  const json_t *env;            /* object of name -> string, or NULL; borrowed, copied */
  char *const *env_passthrough; /* names, NULL-terminated, or NULL; borrowed, copied */
} jb_exec_config;

/* JB_ERR_INVALID (naming the key) for an empty command, a name that is empty or holds '=', a
 * value that is not a string or holds a NUL byte. */
jb_err jb_exec_handler_create(const jb_exec_config *config, jb_job_handler *out,
                              jb_error *e) JB_MUST_CHECK;
/* The same with no env and no env_passthrough. */
jb_err jb_exec_handler_new(char *const *argv, double timeout_s, jb_job_handler *out,
                           jb_error *e) JB_MUST_CHECK;
jb_job_handler jb_noop_handler(void);

/* The process handler: `processes` long-lived programs (argv, started under a shepherd as exec
 * runs are, with the exec handler's environment rule; JOBBRIDGE_JOB_ID is empty), each serving
 * one job at a time over stdin/stdout, one JSON object per line. A job is sent as the exec
 * handler's stdin object (it holds "id"); the program may answer progress lines
 * {"id", "progress": N, "message": "..."} and then {"id", "ok": true, "result": {...}} or
 * {"id", "ok": false, "retry": bool, "error": "..."}. A program that exits, answers nothing
 * within timeout_s, writes anything else (not JSON, another id, a line over 1 MiB) or is running
 * a job that is cancelled or stopped by shutdown is stopped (SIGTERM to its tree, SIGKILL after
 * 2 s) and started again at its next job; the job fails retriably with the reason. Its stderr is
 * logged line by line with the job id. A worker waits for a free program. Programs start when
 * first needed. */
typedef struct jb_process_config {
  char *const *argv; /* borrowed, copied */
  int processes;
  double timeout_s;
  const char *job_type;         /* JOBBRIDGE_JOB_TYPE */
  const json_t *env;            /* as jb_exec_config's */
  char *const *env_passthrough; /* as jb_exec_config's */
} jb_process_config;

/* JB_ERR_INVALID (naming the key) for what jb_exec_handler_create refuses, a processes count
 * out of 1..4096, or a program that cannot be found in PATH. */
jb_err jb_process_handler_create(const jb_process_config *config, jb_job_handler *out,
                                 jb_error *e) JB_MUST_CHECK;

/* The http handler (http_handler.c): each job is one request to url ({id} and {job_type}
 * replaced) with method (NULL: POST), the job as the exec handler's stdin as its JSON body, the
 * static headers (object of name -> string, may be NULL) and Content-Type, Idempotency-Key (the
 * job id), traceparent (and tracestate) and, with a signing_secret, Jobbridge-Signature. TLS is
 * verified (ca_file: the CAs, NULL: the system's). 2xx: success (a JSON object body is the result);
 * 408, 425, 429, 5xx, connection errors and timeout_s passed: retriable, Retry-After asking for the
 * delay; other statuses: a final failure with the status and the body's first bytes. One thread per
 * handler drives every request in flight (libcurl multi, connections kept alive). */
typedef struct jb_http_config {
  const char *name; /* the job type, for log lines */
  const char *url;
  const char *method;
  const json_t *headers;
  double timeout_s;
  const char *ca_file;
  const char *signing_secret; /* NULL or "": unsigned */
} jb_http_config;

/* JB_ERR_INVALID naming the key for a url that is not http(s), a bad method or header. */
jb_err jb_http_handler_create(const jb_http_config *config, jb_job_handler *out,
                              jb_error *e) JB_MUST_CHECK;

/* A handler from a C function, for embedders. `fn` must be thread-safe; `self` is passed on. */
typedef void (*jb_handler_fn)(void *self, const jb_job *job, jb_handler_ctx *ctx,
                              jb_job_result *result);
jb_job_handler jb_callback_handler(jb_handler_fn fn, void *self);

/* The handler of every job type of cfg, in cfg's order: (*out)[i] serves cfg->job_types[i].name
 * (`handler` "exec": jb_exec_handler_create with its command, timeout_s, env and
 * env_passthrough; "http": jb_http_handler_create; anything else: noop). *out (n =
 * cfg->job_types_len entries) and the handlers are the caller's: hand each to
 * jb_worker_pool_register, or release it (jb_job_handler_release) and free *out. On failure nothing
 * is left and the error names the job type. */
jb_err jb_handlers_from_config(const jb_config *cfg, jb_job_handler **out,
                               jb_error *e) JB_MUST_CHECK;

#endif
