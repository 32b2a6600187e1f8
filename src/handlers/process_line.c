/* The process handler's line protocol, read one line at a time, and its programs' environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/exec_env.h"
#include "handlers/process_internal.h"
#include "jobbridge/json.h"

static int garbage(jb_job_result *r, const char *what, const char *line, size_t len) {
  char msg[400];
  snprintf(msg, sizeof msg, "the process wrote garbage (%s): %.*s%s; it is restarted", what,
           (int)(len > 120 ? 120 : len), line, len > 120 ? "..." : "");
  jb_job_result_clear(r);
  r->success = false;
  r->retriable = true;
  r->error_message = strdup(msg);
  return -1;
}

int jb_process_line(const char *line, size_t len, const char *job_id, jb_handler_ctx *ctx,
                    jb_job_result *r) {
  if (len > 0 && line[len - 1] == '\r') len--;
  json_t *o = NULL;
  if (jb_json_parse(line, len, &o, NULL) != JB_OK) return garbage(r, "not JSON", line, len);
  int rc;
  const json_t *id = json_object_get(o, "id"), *ok = json_object_get(o, "ok");
  const json_t *progress = json_object_get(o, "progress");
  if (!json_is_object(o)) {
    rc = garbage(r, "not a JSON object", line, len);
  } else if (!json_is_string(id) || strcmp(json_string_value(id), job_id) != 0) {
    rc = garbage(r, "not this job's id", line, len);
  } else if (json_is_boolean(ok)) {
    const json_t *result = json_object_get(o, "result");
    const json_t *retry = json_object_get(o, "retry"), *err = json_object_get(o, "error");
    jb_job_result_clear(r);
    r->success = json_is_true(ok);
    if (r->success && json_is_object(result)) r->result_data = json_incref((json_t *)result);
    if (!r->success) {
      r->retriable = !json_is_false(retry);
      r->error_message =
          strdup(json_is_string(err) ? json_string_value(err) : "the process reported a failure");
    }
    rc = 1;
  } else if (json_is_number(progress)) {
    const json_t *m = json_object_get(o, "message");
    double pct = json_number_value(progress);
    jb_job_report_progress(ctx,
                           pct < 0     ? 0
                           : pct > 100 ? 100
                                       : (int)pct,
                           json_is_string(m) ? json_string_value(m) : NULL);
    rc = 0;
  } else {
    rc = garbage(r, "neither \"ok\" nor \"progress\"", line, len);
  }
  json_decref(o);
  return rc;
}

jb_err jb_process_env(const jb_process_config *c, jb_process_handler *h, jb_error *e) {
  size_t n = json_object_size(c->env), i = 0;
  h->env = calloc(n + 1, sizeof *h->env);
  if (h->env == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  const char *name;
  json_t *val;
  json_object_foreach((json_t *)c->env, name, val) {
    const char *problem = jb_env_name_problem(name);
    if (problem == NULL && !json_is_string(val)) problem = "its value must be a string";
    if (problem == NULL && strlen(json_string_value(val)) != json_string_length(val))
      problem = "its value must not contain a NUL byte";
    if (problem != NULL)
      return jb_fail(e, JB_ERR_INVALID, "process handler env \"%s\": %s", name, problem);
    size_t size = strlen(name) + json_string_length(val) + 2;
    if ((h->env[i] = malloc(size)) == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    snprintf(h->env[i++], size, "%s=%s", name, json_string_value(val));
  }
  for (size_t k = 0; c->env_passthrough && c->env_passthrough[k]; k++) {
    const char *problem = jb_env_name_problem(c->env_passthrough[k]);
    if (problem != NULL)
      return jb_fail(e, JB_ERR_INVALID, "process handler env_passthrough[%zu]: %s", k, problem);
  }
  /* The processes serve many jobs: JOBBRIDGE_JOB_ID is empty; each line names its job. */
  h->envp = jb_exec_env_build(h->env, c->env_passthrough, "", c->job_type, NULL, NULL);
  if (h->envp == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  return JB_OK;
}
