/* The built-in JobHandlers noop and C callbacks (exec is in exec.c), and the handlers of a
 * config's job types. */
#include "handlers/handlers.h"

#include <stdlib.h>
#include <string.h>

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

/* ---- from config ---- */

jb_err jb_handlers_from_config(const jb_config *cfg, jb_job_handler **out, jb_error *e) {
  size_t n = cfg->job_types_len;
  jb_job_handler *hs = calloc(n ? n : 1, sizeof *hs);
  if (hs == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory building the job handlers");
  jb_err rc = JB_OK;
  size_t built = 0;
  for (; built < n; built++) {
    const jb_job_type_cfg *jt = &cfg->job_types[built];
    if (strcmp(jt->handler, "http") == 0) {
      jb_http_config hc = {jt->name,      jt->url,     jt->method,        jt->headers,
                           jt->timeout_s, jt->ca_file, jt->signing_secret};
      rc = jb_http_handler_create(&hc, &hs[built], e);
    } else if (strcmp(jt->handler, "process") == 0) {
      jb_process_config pc = {jt->command, jt->processes, jt->timeout_s,
                              jt->name,    jt->env,       jt->env_passthrough};
      rc = jb_process_handler_create(&pc, &hs[built], e);
    } else if (strcmp(jt->handler, "exec") == 0) {
      jb_exec_config xc = {jt->command, jt->timeout_s, jt->env, jt->env_passthrough};
      rc = jb_exec_handler_create(&xc, &hs[built], e);
    } else {
      hs[built] = jb_noop_handler();
      continue;
    }
    if (rc != JB_OK) {
      jb_error inner = *e;
      jb_fail(e, rc, "job type %s: %s", jt->name, inner.msg);
      goto out;
    }
  }
  *out = hs;
  return JB_OK;
out: /* only on failure: release what was built */
  for (size_t i = 0; i < built; i++) jb_job_handler_release(hs[i]);
  free(hs);
  return rc;
}
