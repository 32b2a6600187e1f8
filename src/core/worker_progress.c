/* Progress reports of running jobs: a handler's report is recorded in its worker's slot (latest
 * wins, no I/O), and the maintenance thread writes every slot's pending report in one statement
 * per beat (WorkQueue progress), only while the job still runs under that worker. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/worker_pool_internal.h"
#include "jobbridge/log.h"
#include "jobbridge/utf8.h"

/* Copies message into dst (cap bytes with the NUL) as valid UTF-8: cut at a character boundary,
 * an invalid byte replaced by '?', control characters but tab by a space. */
static void copy_message(char *dst, size_t cap, const char *message) {
  size_t n = strlen(message), o = 0;
  const unsigned char *s = (const unsigned char *)message;
  for (size_t i = 0; i < n;) {
    size_t len = jb_utf8_seq(s + i, n - i);
    if (len == 0) len = 1;
    if (o + (len ? len : 1) >= cap) break;
    if (jb_utf8_seq(s + i, n - i) == 0) {
      dst[o++] = '?';
    } else if (len == 1 && (s[i] < 0x20 || s[i] == 0x7f) && s[i] != '\t') {
      dst[o++] = ' ';
    } else {
      memcpy(dst + o, s + i, len);
      o += len;
    }
    i += len;
  }
  dst[o] = '\0';
}

void jb_worker_progress_report(jb_handler_ctx *ctx, int pct, const char *message) {
  slot *s = (slot *)((char *)ctx - offsetof(slot, ctx));
  if (pct < 0) pct = 0;
  if (pct > 100) pct = 100;
  pthread_mutex_lock(&s->lock);
  if (s->job_id[0] != '\0') { /* a report after the handler returned is dropped */
    s->progress_pct = pct;
    s->progress_has_msg = message != NULL;
    if (message != NULL) copy_message(s->progress_msg, sizeof s->progress_msg, message);
    s->progress_dirty = true;
  }
  pthread_mutex_unlock(&s->lock);
}

/* Whether jobs of this type announce their progress (job_types.*.progress_events). */
static bool wants_events(const jb_config *cfg, const char *job_type) {
  const jb_job_type_cfg *jt = job_type ? jb_config_job_type(cfg, job_type) : NULL;
  return jt != NULL && jt->progress_events;
}

void jb_worker_progress_flush(jb_worker_pool *p) {
  jb_work_queue q = p->maint_q;
  if (q.ops->progress == NULL) return;
  jb_progress *items = NULL;
  char(*msgs)[JB_PROGRESS_MESSAGE_MAX + 1] = NULL;
  size_t n = 0;
  for (size_t k = 0; k < p->n; k++) {
    slot *s = &p->workers[k].slot;
    pthread_mutex_lock(&s->lock);
    if (s->progress_dirty && s->job_id[0] != '\0') {
      if (items == NULL) { /* the first report this beat: room for one per worker */
        items = calloc(p->n, sizeof *items);
        msgs = calloc(p->n, sizeof *msgs);
      }
      if (items != NULL && msgs != NULL) {
        jb_progress *it = &items[n];
        memcpy(it->id, s->job_id, sizeof it->id);
        it->owner = p->workers[k].owner;
        it->pct = s->progress_pct;
        memcpy(msgs[n], s->progress_msg, sizeof msgs[n]);
        it->message = s->progress_has_msg ? msgs[n] : NULL;
        it->event = wants_events(p->cfg, s->job_type);
        s->progress_dirty = false;
        n++;
      }
    }
    pthread_mutex_unlock(&s->lock);
  }
  if (n > 0) {
    jb_error e;
    if (q.ops->progress(q.self, items, n, NULL, &e) != JB_OK)
      jb_log(JB_LOG_WARN, "cannot store the progress of running jobs; the next report is tried",
             "error", e.msg, JB_LOG_U64("jobs", n), JB_LOG_END);
  }
  free(items);
  free(msgs);
}
