/* The built-in JobHandlers noop and C callbacks (exec is in exec.c). */
#include <stdlib.h>

#include "jobbridge/job_handler.h"

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
