/* The Outbox port: job events written in the same transaction as the status change, waiting to
 * be published. Implemented by the PostgreSQL adapter, drained by the outbox relay. */
#ifndef JOBBRIDGE_OUTBOX_H
#define JOBBRIDGE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "jobbridge/job.h"

/* One event to publish. Strings and data are owned by the row (jb_outbox_rows_free). */
typedef struct jb_outbox_row {
  int64_t id;
  char job_id[37];
  char message_id[37];
  char *event_type;     /* job.completed, job.failed, job.dead_letter, job.retrying */
  char *routing_key;    /* job.<status>.<job_type> */
  char *correlation_id; /* the source event's id, or NULL */
  char *data;           /* the job snapshot, as JSON text (an object) */
  char *traceparent;    /* the job's W3C trace context, or NULL (a job from before it) */
  char *tracestate;
  jb_time created_at;
} jb_outbox_row;

/* Frees n rows and the array (NULL: nothing). Defined in core, so the adapter filling rows and
 * the one publishing them share it without calling each other. */
void jb_outbox_rows_free(jb_outbox_row *rows, size_t n);

typedef struct jb_outbox_ops {
  /* Becomes the one relay of this schema (a session lock), so events leave in order. False
   * when another instance holds it. */
  jb_err (*try_lead)(void *self, bool *leader, jb_error *e);
  /* The oldest rows, at most max, in id order, except those listed in skip (published and
   * awaiting their confirm) and those set aside. Rows commit in any order, so "id > the last one
   * published" would miss a row that committed late; excluding exactly what is in flight does not.
   */
  jb_err (*fetch)(void *self, const int64_t *skip, size_t nskip, int max, jb_outbox_row **rows,
                  size_t *n, jb_error *e);
  /* Deletes rows whose publish was confirmed. */
  jb_err (*remove)(void *self, const int64_t *ids, size_t n, jb_error *e);
  /* Sets row `id` aside: it cannot be published (its reason is kept with it), so fetch skips
   * it from now on and the rows after it go out. The row stays until an operator deals with
   * it (to retry it: clear its failed_at). */
  jb_err (*set_aside)(void *self, int64_t id, const char *reason, jb_error *e);
  /* Blocks until rows may be waiting (a notification) or timeout_ms passes (0: only takes the
   * notifications already there). */
  jb_err (*wait)(void *self, int timeout_ms, jb_error *e);
  /* A descriptor that becomes readable when rows may be waiting (after it, call wait with 0),
   * so the relay can wait for new rows and for the broker's confirms at once; -1 when rows
   * may be waiting already. */
  jb_err (*notify_fd)(void *self, int *fd, jb_error *e);
} jb_outbox_ops;

typedef struct jb_outbox {
  const jb_outbox_ops *ops;
  void *self;
} jb_outbox;

#endif
