/* What the PostgreSQL adapter's files share: the connection struct and statement helpers, all
 * defined in pg.c. Private to src/postgres: pg_store.c, pg_work.c and pg_outbox.c include it and
 * never each other; pg.c calls none of them. */
#ifndef JB_PG_INTERNAL_H
#define JB_PG_INTERNAL_H

#include "postgres/pg.h"
#include "postgres/pg_array.h"

/* The columns enqueue sends, one array parameter each; the most of any statement. */
#define JB_ENQUEUE_COLUMNS 14

/* Every prepared statement has a slot; a connection prepares each on first use. */
typedef enum {
  ST_ENQUEUE,
  ST_DEDUPE_LOOKUP,
  ST_GET,
  ST_LIST,
  ST_LOCK_STATUS,
  ST_CANCEL,
  ST_RETRY,
  ST_STATS,
  ST_CLAIM,
  ST_CLAIM_ANY,
  ST_FINISH,
  ST_RENEW,
  ST_REAP,
  ST_EXPIRED,
  ST_REQUEST_CANCEL,
  ST_OUTBOX_FETCH,
  ST_OUTBOX_DELETE,
  ST_CANCEL_CHECK,
  ST_TRY_LEAD,
  ST_NOTIFY,
  ST_OUTBOX_SET_ASIDE,
  ST_LIST_AFTER,
  ST_PROGRESS,
  ST_ATTEMPTS,        /* pg_store.c: a job's attempt history */
  ST_PRUNE_LEAD,      /* pg_retention.c */
  ST_PRUNE_COMPLETED, /* pg_retention.c: one batch per finished status */
  ST_PRUNE_FAILED,
  ST_PRUNE_DEAD_LETTER,
  ST_PRUNE_COUNT,
  ST_ENQUEUE_EVENTS, /* pg_store.c: enqueue writing lifecycle events */
  ST_CLAIM_EVENTS,   /* pg_work.c: claims writing job.started */
  ST_CLAIM_ANY_EVENTS,
  ST_THROUGHPUT, /* pg_dash.c */
  ST_COUNT
} jb_pg_slot;

typedef struct jb_pg_stmt {
  jb_pg_slot slot;
  const char *name;
  const char *sql;
  int nparams;
  /* Planned afresh at every run, with its parameters' values (an unnamed statement): for
   * statements whose best plan depends on how big the table is right now. */
  bool plan_each_run;
} jb_pg_stmt;

struct jb_pg {
  PGconn *conn;
  char *url;
  char *schema;
  bool prepared[ST_COUNT];
  bool up;             /* counted open in the metrics (jobbridge_db_connections) */
  bool listening;      /* LISTEN channels are set up on this session */
  bool notify_pending; /* a notification was sent and its reply is not read yet */
  char listen_sql[256];
  jb_pg_array arrays[JB_ENQUEUE_COLUMNS]; /* parameter buffers, reused from batch to batch */
  /* job.started events at claims (jb_pg_set_started_events): off, or for the job types of
   * started_types (an array literal; NULL: every type). Owned. */
  bool started_on;
  char *started_types;
};

/* The columns of a job, in the order jb_pg_row_to_job reads them; timestamps as microseconds. */
#define JB_US(col) "(extract(epoch FROM " col ") * 1000000)::int8"
#define JB_JOB_COLUMNS \
  "id::text, queue_name, job_type, payload::text, priority, max_retries, retry_count, "          \
  JB_US("scheduled_at") ", " JB_US("started_at") ", " JB_US("completed_at") ", "                 \
  JB_US("failed_at") ", " JB_US("created_at") ", " JB_US("updated_at") ", status, "             \
  "error_message, created_by::text, metadata::text, result::text, progress, dedupe_key, "        \
  "locked_by, " JB_US("locked_until") ", progress_message, traceparent, tracestate"

/* The job snapshot every outbox event carries, from a row of jobs (or of a CTE returning one). */
#define JB_SNAPSHOT                                                                         \
  "jsonb_build_object('id', id, 'job_type', job_type, 'queue_name', queue_name, 'status', " \
  "status, 'priority', priority, 'retry_count', retry_count, 'max_retries', max_retries, "  \
  "'result', result, 'error_message', error_message, 'scheduled_at', scheduled_at, "        \
  "'started_at', started_at, 'completed_at', completed_at, 'failed_at', failed_at, "        \
  "'created_at', created_at, 'updated_at', updated_at, 'metadata', metadata)"

/* An outbox event's correlation id, from the same row. */
#define JB_CORRELATION "coalesce(metadata->>'event_id', metadata->>'correlation_id')"

/* Runs a prepared statement with text parameters; *out gets the result (caller clears). */
jb_err jb_pg_exec(jb_pg *pg, const jb_pg_stmt *st, const char *const *params, PGresult **out,
                  jb_error *e) JB_MUST_CHECK;
/* The same, with some parameters in binary format: those whose lengths[i] >= 0 (a binary
 * jb_pg_array and its jb_pg_array_len); -1 marks a text parameter. */
jb_err jb_pg_exec_binary(jb_pg *pg, const jb_pg_stmt *st, const char *const *params,
                         const int *lengths, PGresult **out, jb_error *e) JB_MUST_CHECK;
/* Runs plain SQL expecting no rows of interest. */
jb_err jb_pg_simple(jb_pg *pg, const char *sql, const char *what, jb_error *e) JB_MUST_CHECK;
/* Wakes the listeners of jobbridge_<what>_<schema> ("jobs": idle workers, "outbox": the relay)
 * after a commit that gave them work. Best effort: a lost notification costs its listener one
 * polling interval, never a job or an event, so a failure is only logged (debug). Returns
 * without waiting for the server's reply. */
void jb_pg_notify(jb_pg *pg, const char *what);
/* Reads the reply of a notification sent by jb_pg_notify, if any. Every function here that uses
 * the connection calls it first: libpq runs one command at a time. */
void jb_pg_collect(jb_pg *pg);
/* Best-effort ROLLBACK after a failure (nothing to do on a dead connection). */
void jb_pg_rollback(jb_pg *pg);
jb_err jb_pg_result_error(jb_pg *pg, PGresult *res, const char *what, jb_error *e);
/* LISTENs (once per session) on jobbridge_<what>_<schema>. */
jb_err jb_pg_listen(jb_pg *pg, const char *what, jb_error *e) JB_MUST_CHECK;
/* Waits for a notification on jobbridge_<what>_<schema> (LISTENing first), or for wake_fd (-1:
 * none) to become readable, at most timeout_ms; *notified (may be NULL) tells whether a
 * notification came. */
jb_err jb_pg_wait(jb_pg *pg, const char *what, int timeout_ms, int wake_fd, bool *notified,
                  jb_error *e) JB_MUST_CHECK;
jb_err jb_pg_row_to_job(const PGresult *res, int row, jb_job *job, jb_error *e) JB_MUST_CHECK;
/* The dashboard's jobs per minute (pg_dash.c): the JobStore's throughput. */
jb_err jb_pg_throughput(void *self, jb_throughput_minute **out, size_t *n,
                        jb_error *e) JB_MUST_CHECK;
/* Rows of jobs into a new array. */
jb_err jb_pg_rows_to_jobs(const PGresult *res, jb_job **out, size_t *n, jb_error *e) JB_MUST_CHECK;

#endif
