/* The process handler's parts (private to src/handlers): its slots, the line protocol's reader
 * (process_line.c, pure: unit-tested) and the environment it starts its programs with. */
#ifndef JOBBRIDGE_HANDLERS_PROCESS_INTERNAL_H
#define JOBBRIDGE_HANDLERS_PROCESS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "handlers/handlers.h"
#include "handlers/shepherd.h"

/* A line from a process longer than this is garbage. */
#define JB_PROCESS_MAX_LINE (1 << 20)

/* One slot: a process (run.shepherd 0 when none runs) and what it wrote not yet read as lines.
 * `busy` is guarded by the handler's lock; the rest belongs to the worker holding the slot. */
typedef struct jb_proc {
  jb_run run;
  bool busy;
  char *buf;
  size_t len, cap;
  unsigned long starts;
} jb_proc;

typedef struct jb_process_handler {
  char **argv;
  char *path;  /* argv[0] resolved in the programs' PATH */
  char **env;  /* "NAME=value" of the job type's env, owned */
  char **envp; /* the programs' environment (jb_exec_env_build: one block, entries borrowed) */
  double timeout_s;
  int n;
  jb_proc *procs;
  pthread_mutex_t lock;
  pthread_cond_t freed; /* a slot became free */
} jb_process_handler;

/* Reads one line (len bytes, no newline) the process wrote while running job_id: 0 a progress
 * report (passed to ctx), 1 the job's answer (r filled), -1 garbage (r filled with a retriable
 * failure naming it: not JSON, not an object, another job's id, neither "ok" nor "progress"). */
int jb_process_line(const char *line, size_t len, const char *job_id, jb_handler_ctx *ctx,
                    jb_job_result *r);

/* Fills h->env and h->envp from c (checked as the exec handler's env and env_passthrough). */
jb_err jb_process_env(const jb_process_config *c, jb_process_handler *h, jb_error *e) JB_MUST_CHECK;

#endif
