/* Progress reported from outside a worker (the HTTP API's POST /v1/jobs/{id}/progress): the job
 * must be RUNNING, under any worker of any instance; the work queue's progress op (owner NULL)
 * stores it in one statement, which touches nothing once the job has finished. */
#include <stdlib.h>
#include <string.h>

#include "jobbridge/job_handler.h"
#include "jobbridge/job_service.h"
#include "jobbridge/utf8.h"

static jb_err check_message(const char *m, jb_error *e) {
  size_t n = strlen(m);
  if (n > JB_PROGRESS_MESSAGE_MAX)
    return jb_fail(e, JB_ERR_INVALID, "message is %zu bytes long; at most %d are taken", n,
                   JB_PROGRESS_MESSAGE_MAX);
  long bad = jb_utf8_invalid_at((const unsigned char *)m, n);
  if (bad >= 0) return jb_fail(e, JB_ERR_INVALID, "message is not valid UTF-8 (byte %ld)", bad);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)m[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return jb_fail(e, JB_ERR_INVALID,
                     "message holds a control character (byte %zu); only tab is allowed", i);
  }
  return JB_OK;
}

jb_err jb_job_service_progress(jb_job_service *svc, const char *id, int pct, const char *message,
                               jb_job *out, jb_error *e) {
  memset(out, 0, sizeof *out);
  if (!jb_is_uuid(id))
    return jb_fail(e, JB_ERR_NOT_FOUND, "no job has the id \"%s\" (a job id is a UUID)", id);
  if (pct < 0 || pct > 100)
    return jb_fail(e, JB_ERR_INVALID, "progress must be a whole number from 0 to 100, not %d", pct);
  jb_err rc = message != NULL ? check_message(message, e) : JB_OK;
  if (rc != JB_OK) return rc;
  if (svc->work.ops == NULL || svc->work.ops->progress == NULL)
    return jb_fail(e, JB_ERR_STATE, "this work queue stores no progress");
  rc = svc->store.ops->get(svc->store.self, id, out, e);
  if (rc != JB_OK) return rc;
  if (out->status != JB_STATUS_RUNNING) {
    rc = jb_fail(e, JB_ERR_STATE, "job %s is %s: progress is taken only while a job is RUNNING", id,
                 jb_status_name(out->status));
    jb_job_clear(out);
    return rc;
  }
  const jb_job_type_cfg *jt = jb_config_job_type(svc->cfg, out->job_type);
  jb_progress item = {.owner = NULL, .pct = pct, .message = message};
  memcpy(item.id, out->id, sizeof item.id);
  item.event = jt != NULL && jt->progress_events;
  size_t applied = 0;
  rc = svc->work.ops->progress(svc->work.self, &item, 1, &applied, e);
  if (rc == JB_OK && applied == 0)
    rc = jb_fail(e, JB_ERR_STATE, "job %s finished before its progress was stored", id);
  if (rc != JB_OK) {
    jb_job_clear(out);
    return rc;
  }
  out->progress = pct;
  free(out->progress_message);
  out->progress_message = message != NULL ? strdup(message) : NULL;
  return JB_OK;
}
