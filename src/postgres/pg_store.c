/* The PostgreSQL adapter's JobStore port: enqueue (batch insert with dedupe), get, list,
 * cancel, retry and stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/log.h"
#include "postgres/pg_internal.h"

/* The batch as one array per column, unnested into one INSERT: one statement, so one
 * transaction. A dedupe key already stored, or earlier in the same batch, skips the row
 * (DO NOTHING): the rows it returns are the ones created. The arrays (all of one length)
 * are unnested side by side in the select list, which yields the rows as it goes; unnest
 * of the arrays in FROM first copied every row into a tuplestore (PostgreSQL: 2 us less
 * CPU per ingested event this way). */
#define ENQUEUE_INSERT                                                                        \
  "INSERT INTO jobs (id, queue_name, job_type, payload, priority, max_retries,\n"             \
  "  scheduled_at, status, created_by, metadata, dedupe_key, started_at, locked_by,\n"        \
  "  locked_until, traceparent, tracestate)\n"                                                \
  "SELECT id, q, t, p, pr, mr, s,\n"                                                          \
  "  CASE WHEN o IS NOT NULL THEN 'RUNNING' WHEN s > now() THEN 'SCHEDULED'\n"                \
  "    ELSE 'PENDING' END,\n"                                                                 \
  "  cb, coalesce(m, '{}'), d, CASE WHEN o IS NOT NULL THEN now() END, o,\n"                  \
  "  now() + l * interval '1 second', tp, ts\n"                                               \
  "FROM (SELECT *, coalesce(to_timestamp(su / 1e6), now()) AS s\n"                            \
  "  FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS q,\n"                       \
  "    unnest($3::text[]) AS t, unnest($4::jsonb[]) AS p, unnest($5::int[]) AS pr,\n"         \
  "    unnest($6::int[]) AS mr, unnest($7::int8[]) AS su, unnest($8::uuid[]) AS cb,\n"        \
  "    unnest($9::jsonb[]) AS m, unnest($10::text[]) AS d, unnest($11::text[]) AS o,\n"       \
  "    unnest($12::int[]) AS l, unnest($13::text[]) AS tp, unnest($14::text[]) AS ts) u) x\n" \
  "ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING\n"
#define ENQUEUE_RESULT "id::text, " JB_US("created_at") ", locked_by IS NULL"
#define ENQUEUE_RETURNING "RETURNING " ENQUEUE_RESULT
/* The dashboard's narrowing of the list (jb_job_filter's created_after, created_before, id,
 * event_id, dedupe_key) as parameters $A .. $E of a list statement. */
#define JB_AT(p) "'epoch'::timestamptz + $" p "::int8 * interval '1 microsecond'"
#define JB_LIST_NARROW(A, B, C, D, E) \
  "  AND ($" A "::int8 IS NULL OR created_at >= " JB_AT(A) ")\n"                         \
  "  AND ($" B "::int8 IS NULL OR created_at < " JB_AT(B) ")\n"                          \
  "  AND ($" C "::uuid IS NULL OR id = $" C "::uuid)\n"                                   \
  "  AND ($" D "::text IS NULL OR metadata->>'event_id' = $" D ")\n"                     \
  "  AND ($" E "::text IS NULL OR dedupe_key = $" E ")\n"

static const jb_pg_stmt stmts[] = {
    [ST_ENQUEUE] = {ST_ENQUEUE, "jb_enqueue", ENQUEUE_INSERT ENQUEUE_RETURNING, 14},
    /* The same, writing the lifecycle events asked for ($15: JB_EVENT_* bits per job) in the
     * same statement: job.created, then job.started for a job stored RUNNING. Used only for
     * batches where some job asks for one. */
    [ST_ENQUEUE_EVENTS] =
        {ST_ENQUEUE_EVENTS, "jb_enqueue_events",
         "WITH ins AS (" ENQUEUE_INSERT "RETURNING *),\n"
         "ob AS (INSERT INTO outbox (job_id, event_type, routing_key, correlation_id, data,\n"
         "    traceparent, tracestate)\n"
         "  SELECT id, 'job.' || k_name, 'job.' || k_name || '.' || job_type,\n"
         "    " JB_CORRELATION ", " JB_SNAPSHOT ", traceparent, tracestate\n"
         "  FROM ins JOIN unnest($1::uuid[], $15::int[]) AS ev(ev_id, ev_bits) ON ev_id = id\n"
         "  CROSS JOIN (VALUES (1, 'created'), (2, 'started')) AS k(k_bit, k_name)\n"
         "  WHERE ev_bits & k_bit <> 0 AND (k_bit = 1 OR status = 'RUNNING')\n"
         "  ORDER BY id, k_bit)\n"
         "SELECT " ENQUEUE_RESULT " FROM ins",
         15},
    [ST_DEDUPE_LOOKUP] =
        {ST_DEDUPE_LOOKUP, "jb_dedupe_lookup",
         "SELECT dedupe_key, id::text FROM jobs WHERE dedupe_key = ANY($1::text[])", 1},
    [ST_GET] = {ST_GET, "jb_get", "SELECT " JB_JOB_COLUMNS " FROM jobs WHERE id = $1::uuid", 1},
    [ST_LIST] = {ST_LIST, "jb_list",
                 "SELECT " JB_JOB_COLUMNS " FROM jobs\n"
                 "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR job_type = $2)\n"
                 "  AND ($3::text IS NULL OR queue_name = $3)\n" JB_LIST_NARROW(
                     "6", "7", "8", "9",
                     "10") "ORDER BY created_at DESC, id LIMIT $4::int8 OFFSET $5::int8",
                 10, true},
    /* The list's next page after a job (keyset): created_at <= the job's is a bound on
     * jobs_created_idx (created_at DESC, id), so a page costs its own rows, however deep. */
    [ST_LIST_AFTER] =
        {ST_LIST_AFTER, "jb_list_after",
         "SELECT " JB_JOB_COLUMNS " FROM jobs\n"
         "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR job_type = $2)\n"
         "  AND ($3::text IS NULL OR queue_name = $3)\n"
         "  AND created_at <= 'epoch'::timestamptz + $5::int8 * interval '1 microsecond'\n"
         "  AND (created_at < 'epoch'::timestamptz + $5::int8 * interval '1 microsecond'\n"
         "       OR id > $6::uuid)\n" JB_LIST_NARROW(
             "7", "8", "9", "10", "11") "ORDER BY created_at DESC, id LIMIT $4::int8",
         11, true},
    [ST_LOCK_STATUS] = {ST_LOCK_STATUS, "jb_lock_status",
                        "SELECT status FROM jobs WHERE id = $1::uuid FOR UPDATE", 1},
    [ST_CANCEL] =
        {ST_CANCEL, "jb_cancel",
         "UPDATE jobs SET status = 'FAILED', error_message = 'Job cancelled',\n"
         "  failed_at = now(), updated_at = now(), locked_by = NULL, locked_until = NULL\n"
         "WHERE id = $1::uuid RETURNING " JB_JOB_COLUMNS,
         1},
    [ST_RETRY] =
        {ST_RETRY, "jb_retry",
         "UPDATE jobs SET status = 'PENDING', retry_count = 0, scheduled_at = now(),\n"
         "  failed_at = NULL, completed_at = NULL, started_at = NULL, updated_at = now(),\n"
         "  locked_by = NULL, locked_until = NULL\n"
         "WHERE id = $1::uuid RETURNING " JB_JOB_COLUMNS,
         1},
    [ST_STATS] = {ST_STATS, "jb_stats",
                  "SELECT queue_name,\n"
                  "  count(*) FILTER (WHERE status = 'PENDING'),\n"
                  "  count(*) FILTER (WHERE status = 'SCHEDULED'),\n"
                  "  count(*) FILTER (WHERE status = 'RETRYING'),\n"
                  "  count(*) FILTER (WHERE status = 'RUNNING'),\n"
                  "  count(*) FILTER (WHERE status = 'COMPLETED'),\n"
                  "  count(*) FILTER (WHERE status = 'FAILED'),\n"
                  "  count(*) FILTER (WHERE status = 'DEAD_LETTER'),\n"
                  "  count(*)\n"
                  "FROM jobs GROUP BY queue_name ORDER BY queue_name",
                  0},
    [ST_ATTEMPTS] = {ST_ATTEMPTS, "jb_attempts",
                     "SELECT attempt, worker, " JB_US("started_at") ", " JB_US(
                         "finished_at") ", outcome, error\n"
                                        "FROM job_attempts WHERE job_id = $1::uuid ORDER BY "
                                        "attempt, finished_at",
                     1},
};
static int cmp_id(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* For the jobs the INSERT skipped (their dedupe key exists): the id of the job that holds the
 * key. Runs after the INSERT, as a fresh statement, so it also sees a duplicate that a
 * concurrent transaction committed meanwhile. */
static jb_err lookup_duplicates(jb_pg *pg, const jb_new_job *jobs, size_t n, jb_create_outcome *out,
                                jb_error *e) {
  jb_pg_array *keys = &pg->arrays[0];
  jb_pg_array_begin(keys);
  for (size_t i = 0; i < n; i++)
    if (out[i].status == JB_CREATE_DUPLICATE) jb_pg_array_text(keys, jobs[i].dedupe_key);
  const char *params[1] = {jb_pg_array_end(keys)};
  if (params[0] == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for dedupe keys");
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, &stmts[ST_DEDUPE_LOOKUP], params, &res, e);
  if (rc != JB_OK) return rc;
  for (size_t i = 0; i < n; i++) {
    if (out[i].status != JB_CREATE_DUPLICATE) continue;
    for (int r = 0; r < PQntuples(res); r++)
      if (strcmp(PQgetvalue(res, r, 0), jobs[i].dedupe_key) == 0) {
        snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(res, r, 1));
        break;
      }
  }
  PQclear(res);
  return JB_OK;
}

/* The n jobs as enqueue's parameters: one binary array per column, built in the connection's
 * reusable buffers (valid until its next statement). */
static jb_err encode_jobs(jb_pg *pg, const jb_new_job *jobs, size_t n, const char **params,
                          int *lengths, jb_error *e) {
  /* Binary arrays: the server takes each element as it is (see pg_array.h). */
  static const jb_pg_type types[JB_ENQUEUE_COLUMNS] = {
      JB_PG_UUID, JB_PG_TEXT,  JB_PG_TEXT, JB_PG_JSONB, JB_PG_INT4, JB_PG_INT4, JB_PG_INT8,
      JB_PG_UUID, JB_PG_JSONB, JB_PG_TEXT, JB_PG_TEXT,  JB_PG_INT4, JB_PG_TEXT, JB_PG_TEXT};
  static const char *const names[JB_ENQUEUE_COLUMNS] = {
      "id",          "queue_name",   "job_type",    "payload",   "priority",
      "max_retries", "scheduled_at", "created_by",  "metadata",  "dedupe_key",
      "run_by",      "lease",        "traceparent", "tracestate"};
  jb_pg_array *a = pg->arrays;
  for (int c = 0; c < JB_ENQUEUE_COLUMNS; c++) jb_pg_array_begin_binary(&a[c], types[c]);
  for (size_t i = 0; i < n; i++) {
    const jb_new_job *j = &jobs[i];
    jb_pg_array_text(&a[0], j->id);
    jb_pg_array_text(&a[1], j->queue_name);
    jb_pg_array_text(&a[2], j->job_type);
    jb_pg_array_json(&a[3], j->payload);
    jb_pg_array_int(&a[4], j->priority);
    jb_pg_array_int(&a[5], j->max_retries);
    if (j->scheduled_at != 0)
      jb_pg_array_int(&a[6], j->scheduled_at);
    else
      jb_pg_array_text(&a[6], NULL);
    jb_pg_array_text(&a[7], j->created_by);
    jb_pg_array_json(&a[8], j->metadata);
    jb_pg_array_text(&a[9], j->dedupe_key);
    jb_pg_array_text(&a[10], j->run_by);
    if (j->run_by != NULL)
      jb_pg_array_int(&a[11], j->lease_s);
    else
      jb_pg_array_text(&a[11], NULL);
    jb_pg_array_text(&a[12], j->traceparent[0] ? j->traceparent : NULL);
    jb_pg_array_text(&a[13], j->tracestate);
  }
  for (int c = 0; c < JB_ENQUEUE_COLUMNS; c++) {
    if ((params[c] = jb_pg_array_end(&a[c])) == NULL)
      return a[c].unencodable
                 ? jb_fail(e, JB_ERR_INVALID, "a job's %s cannot be encoded (%s)", names[c],
                           types[c] == JB_PG_UUID ? "not a UUID" : "JSON with invalid UTF-8")
                 : jb_fail(e, JB_ERR_NOMEM, "out of memory encoding %zu jobs", n);
    lengths[c] = jb_pg_array_len(&a[c]);
  }
  return JB_OK;
}

/* The jobs' lifecycle event bits as an int array literal ("{1,0,3}") in *out, or NULL when no
 * job asks for one (the plain enqueue then runs). False when memory ran out. */
static bool events_param(const jb_new_job *jobs, size_t n, char **out) {
  bool any = false;
  for (size_t i = 0; i < n && !any; i++) any = jobs[i].events != 0;
  *out = NULL;
  if (!any) return true;
  char *lit = malloc(n * 3 + 3), *p = lit;
  if (lit == NULL) return false;
  *p++ = '{';
  for (size_t i = 0; i < n; i++) p += sprintf(p, "%s%u", i ? "," : "", jobs[i].events & 3u);
  strcpy(p, "}");
  *out = lit;
  return true;
}

static jb_err pg_enqueue(void *self, const jb_new_job *jobs, size_t n, jb_create_outcome *out,
                         jb_error *e) {
  jb_pg *pg = self;
  if (n == 0) return JB_OK;
  const char *params[JB_ENQUEUE_COLUMNS + 1];
  int lengths[JB_ENQUEUE_COLUMNS + 1];
  jb_err rc = encode_jobs(pg, jobs, n, params, lengths, e);
  if (rc != JB_OK) return rc;
  char *events; /* NULL: no job asks for a lifecycle event */
  if (!events_param(jobs, n, &events))
    return jb_fail(e, JB_ERR_NOMEM, "out of memory encoding the lifecycle events of %zu jobs", n);
  params[JB_ENQUEUE_COLUMNS] = events;
  lengths[JB_ENQUEUE_COLUMNS] = -1;
  PGresult *res = NULL;
  rc = jb_pg_exec_binary(pg, &stmts[events != NULL ? ST_ENQUEUE_EVENTS : ST_ENQUEUE], params,
                         lengths, &res, e);
  free(events);
  if (rc != JB_OK) return rc;
  if (events != NULL && PQntuples(res) > 0) jb_pg_notify(pg, "outbox");
  size_t created = (size_t)PQntuples(res);
  /* Every row comes from one statement, so one created_at; jobs handed to a worker (stored
   * RUNNING) need nobody woken. */
  jb_time at = created ? strtoll(PQgetvalue(res, 0, 1), NULL, 10) : 0;
  for (size_t r = 0; r < created; r++)
    if (PQgetvalue(res, (int)r, 2)[0] == 't') {
      jb_pg_notify(pg, "jobs");
      break;
    }
  if (created == n) { /* the common case: no duplicate */
    for (size_t i = 0; i < n; i++) {
      out[i].status = JB_CREATE_CREATED;
      out[i].created_at = at;
      out[i].running = false; /* the service sets it for a job it handed to a worker */
      memcpy(out[i].id, jobs[i].id, sizeof out[i].id);
    }
    PQclear(res);
    return JB_OK;
  }
  const char **ids = malloc((created ? created : 1) * sizeof *ids);
  if (ids == NULL) {
    PQclear(res);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  for (size_t r = 0; r < created; r++) ids[r] = PQgetvalue(res, (int)r, 0);
  qsort(ids, created, sizeof *ids, cmp_id);
  for (size_t i = 0; i < n; i++) {
    const char *mine = jobs[i].id;
    bool made = bsearch(&mine, ids, created, sizeof *ids, cmp_id) != NULL;
    out[i].status = made ? JB_CREATE_CREATED : JB_CREATE_DUPLICATE;
    out[i].created_at = made ? at : 0;
    out[i].running = false;
    memcpy(out[i].id, made ? jobs[i].id : "", made ? sizeof out[i].id : 1);
  }
  free(ids);
  PQclear(res);
  /* The jobs are committed, whatever happens now: a failed lookup leaves the duplicates'
   * ids empty rather than report a failure that would make the caller create them again. */
  jb_error le;
  jb_error_clear(&le);
  if (lookup_duplicates(pg, jobs, n, out, &le) != JB_OK)
    jb_log(JB_LOG_WARN, "jobs stored, but the ids of their duplicates are unknown", "error", le.msg,
           JB_LOG_END);
  return JB_OK;
}

static jb_err pg_get(void *self, const char *id, jb_job *out, jb_error *e) {
  jb_pg *pg = self;
  PGresult *res = NULL;
  const char *params[1] = {id};
  jb_err rc = jb_pg_exec(pg, &stmts[ST_GET], params, &res, e);
  if (rc != JB_OK) return rc;
  if (PQntuples(res) == 0)
    rc = jb_fail(e, JB_ERR_NOT_FOUND, "job %s not found", id);
  else
    rc = jb_pg_row_to_job(res, 0, out, e);
  PQclear(res);
  return rc;
}

static jb_err pg_list(void *self, const jb_job_filter *f, jb_job **out, size_t *n, jb_error *e) {
  jb_pg *pg = self;
  char limit[24], offset[24], after[24], from[24], to[24];
  snprintf(limit, sizeof limit, "%ld", f->limit > 0 ? f->limit : 100);
  snprintf(offset, sizeof offset, "%ld", f->offset);
  snprintf(after, sizeof after, "%lld", (long long)f->after_created_at);
  snprintf(from, sizeof from, "%lld", (long long)f->created_after);
  snprintf(to, sizeof to, "%lld", (long long)f->created_before);
  const char *narrow[5] = {f->created_after != 0 ? from : NULL, f->created_before != 0 ? to : NULL,
                           f->id, f->event_id, f->dedupe_key};
  const char *params[11] = {f->status >= 0 ? jb_status_name((jb_job_status)f->status) : NULL,
                            f->job_type,
                            f->queue_name,
                            limit,
                            f->after_id != NULL ? after : offset,
                            f->after_id};
  size_t at = f->after_id != NULL ? 6 : 5;
  memcpy(&params[at], narrow, sizeof narrow);
  PGresult *res = NULL;
  jb_err rc =
      jb_pg_exec(pg, &stmts[f->after_id != NULL ? ST_LIST_AFTER : ST_LIST], params, &res, e);
  if (rc != JB_OK) return rc;
  rc = jb_pg_rows_to_jobs(res, out, n, e);
  PQclear(res);
  return rc;
}

/* Changes one job's status under a row lock, checked by the state machine first.
 * `allowed_from` (may be NULL) narrows the legal sources further (cancel: waiting only). */
static jb_err transition(jb_pg *pg, const char *id, jb_job_status to, jb_pg_slot st,
                         bool (*allowed_from)(jb_job_status), const char *verb, jb_job *out,
                         jb_error *e) {
  jb_err rc = jb_pg_ensure(pg, e);
  if (rc != JB_OK) return rc;
  rc = jb_pg_simple(pg, "BEGIN", verb, e);
  if (rc != JB_OK) return rc;
  PGresult *res = NULL;
  const char *params[1] = {id};
  rc = jb_pg_exec(pg, &stmts[ST_LOCK_STATUS], params, &res, e);
  if (rc != JB_OK) goto rollback;
  if (PQntuples(res) == 0) {
    rc = jb_fail(e, JB_ERR_NOT_FOUND, "job %s not found", id);
    goto rollback;
  }
  jb_job_status from;
  if (jb_status_parse(PQgetvalue(res, 0, 0), &from) != JB_OK) {
    rc = jb_fail(e, JB_ERR_DB, "job %s has unknown status %s", id, PQgetvalue(res, 0, 0));
    goto rollback;
  }
  PQclear(res);
  res = NULL;
  rc = jb_status_transition(from, to, e);
  if (rc == JB_OK && allowed_from != NULL && !allowed_from(from))
    rc = jb_fail(e, JB_ERR_STATE, "illegal job status transition %s -> %s", jb_status_name(from),
                 jb_status_name(to));
  if (rc != JB_OK) {
    char msg[sizeof e->msg];
    snprintf(msg, sizeof msg, "%s", e->msg);
    jb_fail(e, JB_ERR_STATE, "cannot %s job %s: it is %s (%s)", verb, id, jb_status_name(from),
            msg);
    goto rollback;
  }
  rc = jb_pg_exec(pg, &stmts[st], params, &res, e);
  if (rc != JB_OK) goto rollback;
  rc = jb_pg_row_to_job(res, 0, out, e);
  PQclear(res);
  res = NULL;
  if (rc != JB_OK) goto rollback;
  rc = jb_pg_simple(pg, "COMMIT", verb, e);
  if (rc != JB_OK)
    jb_job_clear(out);
  else if (jb_status_is_waiting(to))
    jb_pg_notify(pg, "jobs");
  return rc;
rollback:
  PQclear(res);
  jb_pg_rollback(pg);
  return rc;
}

static jb_err pg_cancel(void *self, const char *id, jb_job *out, jb_error *e) {
  return transition(self, id, JB_STATUS_FAILED, ST_CANCEL, jb_status_is_waiting, "cancel", out, e);
}

static jb_err pg_retry(void *self, const char *id, jb_job *out, jb_error *e) {
  return transition(self, id, JB_STATUS_PENDING, ST_RETRY, NULL, "retry", out, e);
}

static jb_err pg_stats(void *self, jb_queue_stats **out, size_t *n, jb_error *e) {
  jb_pg *pg = self;
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, &stmts[ST_STATS], NULL, &res, e);
  if (rc != JB_OK) return rc;
  int rows = PQntuples(res);
  jb_queue_stats *s = calloc(rows ? (size_t)rows : 1, sizeof *s);
  if (s == NULL) {
    PQclear(res);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < rows; i++) {
    snprintf(s[i].queue_name, sizeof s[i].queue_name, "%s", PQgetvalue(res, i, 0));
    int64_t *fields[] = {&s[i].pending,   &s[i].scheduled, &s[i].retrying,    &s[i].running,
                         &s[i].completed, &s[i].failed,    &s[i].dead_letter, &s[i].total};
    for (int c = 0; c < 8; c++) *fields[c] = strtoll(PQgetvalue(res, i, c + 1), NULL, 10);
  }
  PQclear(res);
  *out = s;
  *n = (size_t)rows;
  return JB_OK;
}

static char *dup_or_null(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

static jb_err pg_get_attempts(void *self, const char *id, jb_job_attempt **out, size_t *n,
                              jb_error *e) {
  const char *params[1] = {id};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &stmts[ST_ATTEMPTS], params, &res, e);
  if (rc != JB_OK) return rc;
  int rows = PQntuples(res);
  jb_job_attempt *a = calloc(rows ? (size_t)rows : 1, sizeof *a);
  bool oom = a == NULL;
  for (int i = 0; !oom && i < rows; i++) {
    a[i].attempt = atoi(PQgetvalue(res, i, 0));
    a[i].worker = dup_or_null(res, i, 1);
    a[i].started_at = PQgetisnull(res, i, 2) ? 0 : strtoll(PQgetvalue(res, i, 2), NULL, 10);
    a[i].finished_at = strtoll(PQgetvalue(res, i, 3), NULL, 10);
    a[i].outcome = dup_or_null(res, i, 4);
    a[i].error = dup_or_null(res, i, 5);
    oom = a[i].outcome == NULL || (a[i].worker == NULL && !PQgetisnull(res, i, 1)) ||
          (a[i].error == NULL && !PQgetisnull(res, i, 5));
  }
  PQclear(res);
  if (oom) {
    jb_job_attempts_free(a, a ? (size_t)rows : 0);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory reading the attempts of job %s", id);
  }
  *out = a;
  *n = (size_t)rows;
  return JB_OK;
}

/* Backpressure's count (job_store.h): planned at each run (no slot), once a second at most, so
 * the planner sees the queue names and picks jobs_waiting_queue_idx; LIMIT bounds the work. */
static const jb_pg_stmt count_waiting_stmt = {
    ST_COUNT, "jb_count_waiting",
    "SELECT count(*) FROM (SELECT 1 FROM jobs\n"
    "  WHERE status IN ('PENDING','SCHEDULED','RETRYING') AND queue_name = ANY($1::text[])\n"
    "  LIMIT $2::int8) s",
    2, true};

static jb_err pg_count_waiting(void *self, const char *const *queues, size_t n, int64_t limit,
                               int64_t *out, jb_error *e) {
  jb_pg *pg = self;
  jb_pg_array *names = &pg->arrays[0];
  jb_pg_array_begin(names);
  for (size_t i = 0; i < n; i++) jb_pg_array_text(names, queues[i]);
  char lim[32];
  snprintf(lim, sizeof lim, "%lld", (long long)limit);
  const char *params[2] = {jb_pg_array_end(names), lim};
  if (params[0] == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for queue names");
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, &count_waiting_stmt, params, &res, e);
  if (rc != JB_OK) return rc;
  *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return JB_OK;
}

static const jb_job_store_ops store_ops = {
    .enqueue = pg_enqueue,
    .get = pg_get,
    .list = pg_list,
    .cancel = pg_cancel,
    .retry = pg_retry,
    .stats = pg_stats,
    .get_attempts = pg_get_attempts,
    .throughput = jb_pg_throughput, /* pg_dash.c */
    .count_waiting = pg_count_waiting,
};

jb_job_store jb_pg_store(jb_pg *pg) {
  return (jb_job_store){&store_ops, pg};
}
