/* The PostgreSQL adapter's WorkQueue port: claim, finish, lease renewal and cancellation
 * checks, the reaper, cancellation requests, and waiting for jobs (LISTEN/NOTIFY). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres/pg_internal.h"

/* The job snapshot every outbox event carries (from the updated row). */
#define SNAPSHOT JB_SNAPSHOT

/* Every status change a worker or the reaper makes writes its outbox event in the same
 * statement, so the event exists if and only if the change committed. */
#define OUTBOX_FROM_UPD                                                                 \
  "ob AS (INSERT INTO outbox (job_id, event_type, routing_key, correlation_id, data,\n" \
  "    traceparent, tracestate)\n"                                                      \
  "  SELECT id, 'job.' || lower(status), 'job.' || lower(status) || '.' || job_type,\n" \
  "    coalesce(metadata->>'event_id', metadata->>'correlation_id'), " SNAPSHOT         \
  ", traceparent, tracestate\n"                                                         \
  "  FROM upd ORDER BY id)\n"

/* The attempt that just ended, in the same statement as its outcome (one row per job; its
 * number is the job's attempts, counted up by that statement). `worker` is the SQL of the
 * owner that held it. started_at is when the job was claimed (a claimed batch shares it). */
#define ATTEMPT_FROM_UPD(worker)                                                                   \
  "att AS (INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome,\n" \
  "    error)\n"                                                                                   \
  "  SELECT id, attempts, " worker                                                                 \
  ", started_at, updated_at, status,\n"                                                            \
  "    CASE WHEN status = 'COMPLETED' THEN NULL ELSE error_message END FROM upd),\n"

/* Statements that search the jobs table by status (the claim of some queues, renew, the
 * cancellation check, the reaper) are planned at every run (plan_each_run): a plan cached while
 * the table was empty, as after a fresh deployment, read the whole table on every run once it
 * had grown (the half-second cancellation check scanned every job). The claim of every queue
 * is the exception (see st_claim_any). The finish looks jobs up by primary key, and enqueue
 * only inserts: their cached plans stay good. */
/* River/Oban shape: pick due waiting rows in claim order, skipping rows other workers hold, then
 * mark them RUNNING under our lease (waiting -> RUNNING, see jb_status_transition). The claimed
 * ids reach the UPDATE as an array: joined to the CTE instead, the generic plan (from the sixth
 * run on) hashed the whole table for every claim. */
/* skip: the parameter listing the job types not to claim (at their concurrency limit; NULL:
 * none). */
#define CLAIM_NEXT(queue_filter, skip)                                                 \
  "WITH next AS (\n"                                                                   \
  "  SELECT id AS claim_id FROM jobs\n"                                                \
  "  WHERE status IN ('PENDING', 'SCHEDULED', 'RETRYING') AND scheduled_at <= now()\n" \
  "    " queue_filter                                                                  \
  "\n"                                                                                 \
  "    AND (" skip "::text[] IS NULL OR job_type <> ALL(" skip                         \
  "::text[]))\n"                                                                       \
  "  ORDER BY priority DESC, scheduled_at, id\n"                                       \
  "  LIMIT $3::int FOR UPDATE SKIP LOCKED)\n"
#define CLAIM_UPDATE                                                                              \
  "UPDATE jobs SET status = 'RUNNING', started_at = now(), updated_at = now(), locked_by = $1,\n" \
  "  locked_until = now() + $4::int * interval '1 second'\n"                                      \
  "WHERE id = ANY(ARRAY(SELECT claim_id FROM next))\n"
#define CLAIM(queue_filter) CLAIM_NEXT(queue_filter, "$5") CLAIM_UPDATE "RETURNING " JB_JOB_COLUMNS

/* The same, writing a job.started event for each claimed job of the types in $5 (NULL: every
 * type) in the same statement; used only when lifecycle events ask for it. */
#define CLAIM_EVENTS(queue_filter)                                                           \
  CLAIM_NEXT(queue_filter, "$6")                                                             \
  ", upd AS (" CLAIM_UPDATE                                                                  \
  "RETURNING *),\n"                                                                          \
  "ob AS (INSERT INTO outbox (job_id, event_type, routing_key, correlation_id, data,\n"      \
  "    traceparent, tracestate)\n"                                                           \
  "  SELECT id, 'job.started', 'job.started.' || job_type, " JB_CORRELATION ", " JB_SNAPSHOT \
  ", traceparent, tracestate\n"                                                              \
  "  FROM upd WHERE $5::text[] IS NULL OR job_type = ANY($5::text[]) ORDER BY id)\n"         \
  "SELECT " JB_JOB_COLUMNS " FROM upd"

static const jb_pg_stmt st_claim_events = {
    ST_CLAIM_EVENTS, "jb_claim_events", CLAIM_EVENTS("AND queue_name = ANY($2::text[])"), 6, true};
static const jb_pg_stmt st_claim_any_events = {ST_CLAIM_ANY_EVENTS, "jb_claim_any_events",
                                               CLAIM_EVENTS("AND $2::text[] IS NULL"), 6, false};

/* Workers of some queues (workers.queues): planned at every run, so the planner sees the queue
 * list and can use the queue index. */
static const jb_pg_stmt st_claim = {ST_CLAIM, "jb_claim", CLAIM("AND queue_name = ANY($2::text[])"),
                                    5, true};

/* Workers of every queue: prepared once. Its generic plan walks the waiting-jobs index in claim
 * order and stops at the limit, whether the plan was made on an empty table, on 100,000
 * finished jobs, or on 100,000 waiting ones (checked with plan_cache_mode force_generic_plan);
 * planning it at every claim had cost more than running it. $2 is unused (NULL). */
static const jb_pg_stmt st_claim_any = {ST_CLAIM_ANY, "jb_claim_any",
                                        CLAIM("AND $2::text[] IS NULL"), 5, false};

static const jb_pg_stmt st_finish = {
    ST_FINISH, "jb_finish",
    /* The outcomes as one array per column; x.k is a job's position in them. Each job is
     * looked up and locked by its primary key, and only then checked to be RUNNING under our
     * lock (OFFSET 0 keeps that check out of the lookup): with the check inside, the planner,
     * misled by statistics taken when few jobs ran, scanned every entry of the running-jobs
     * index, dead ones included, for each job. */
    "WITH upd AS (\n"
    "  UPDATE jobs j SET status = ($3::text[])[x.k],\n"
    "    result = coalesce(($4::jsonb[])[x.k], j.result),\n"
    "    error_message = CASE WHEN ($3::text[])[x.k] = 'COMPLETED' THEN j.error_message\n"
    "      ELSE ($5::text[])[x.k] END,\n"
    "    completed_at = CASE WHEN ($3::text[])[x.k] = 'COMPLETED' THEN now() END,\n"
    "    failed_at = CASE WHEN ($3::text[])[x.k] IN ('FAILED', 'DEAD_LETTER') THEN now() END,\n"
    "    retry_count = j.retry_count +\n"
    "      CASE WHEN ($3::text[])[x.k] = 'RETRYING' AND ($7::bool[])[x.k] THEN 1 ELSE 0 END,\n"
    "    scheduled_at = CASE WHEN ($3::text[])[x.k] = 'RETRYING'\n"
    "      THEN now() + ($6::int8[])[x.k] * interval '1 millisecond' ELSE j.scheduled_at END,\n"
    "    progress = CASE WHEN ($3::text[])[x.k] = 'COMPLETED' THEN 100 ELSE j.progress END,\n"
    "    locked_by = NULL, locked_until = NULL, updated_at = now(), attempts = j.attempts + 1\n"
    "  FROM (SELECT u.k, r.id AS xid FROM unnest($2::uuid[]) WITH ORDINALITY AS u(id, k)\n"
    "        CROSS JOIN LATERAL (SELECT id, status, locked_by FROM jobs WHERE id = u.id\n"
    "          OFFSET 0 FOR UPDATE) r\n"
    "        WHERE r.status = 'RUNNING' AND r.locked_by = $1) x\n"
    "  WHERE j.id = x.xid\n"
    "  RETURNING j.*\n"
    "), " ATTEMPT_FROM_UPD("$1") OUTBOX_FROM_UPD "SELECT count(*) FROM upd",
    7, false};

/* Renewal and the cancellation check name the jobs workers hold, each with its worker's
 * locked_by: trusting every RUNNING job under this instance's name renewed, forever, the lease
 * of a job whose claim or hand-over committed while its reply was lost, which no worker held.
 * Looked up by primary key. */
static const jb_pg_stmt st_renew = {
    ST_RENEW, "jb_renew",
    "UPDATE jobs j SET locked_until = now() + $3::int * interval '1 second'\n"
    "FROM unnest($1::uuid[], $2::text[]) AS h(id, owner)\n"
    "WHERE j.id = h.id AND j.status = 'RUNNING' AND j.locked_by = h.owner\n"
    "RETURNING j.id::text, j.cancel_requested",
    3, true};

static const jb_pg_stmt st_cancel_check = {
    ST_CANCEL_CHECK, "jb_cancel_check",
    "SELECT j.id::text, true FROM jobs j\n"
    "  JOIN unnest($1::uuid[], $2::text[]) AS h(id, owner) ON j.id = h.id\n"
    "WHERE j.status = 'RUNNING' AND j.cancel_requested AND j.locked_by = h.owner",
    2, true};

/* The reaper's first step: RUNNING jobs whose lease expired (their worker was lost), through the
 * running-jobs index, with what core decides their outcome from. Not locked: the second step
 * locks each job and applies core's decision only if the job is still as it was seen here. */
static const jb_pg_stmt st_expired = {
    ST_EXPIRED, "jb_expired",
    "SELECT id::text, job_type, retry_count, max_retries, cancel_requested FROM jobs\n"
    "WHERE status = 'RUNNING' AND locked_until < now()\n"
    "ORDER BY locked_until LIMIT $1::int",
    1, true};

static const jb_pg_stmt st_reap = {
    ST_REAP, "jb_reap",
    /* The reaper's second step applies the outcomes core decided ($2..$5: status, error,
     * delay, retry burnt; x.k a job's position in the arrays), each job looked up by its
     * primary key and locked (SKIP LOCKED: a worker recording its outcome holds it), and only
     * if it is still RUNNING with an expired lease and the retry_count and cancel_requested
     * ($6, $7) the decision was made from: a job that just finished is never touched. */
    "WITH upd AS (\n"
    "  UPDATE jobs j SET status = ($2::text[])[x.k],\n"
    "    error_message = ($3::text[])[x.k],\n"
    "    retry_count = j.retry_count +\n"
    "      CASE WHEN ($2::text[])[x.k] = 'RETRYING' AND ($5::bool[])[x.k] THEN 1 ELSE 0 END,\n"
    "    scheduled_at = CASE WHEN ($2::text[])[x.k] = 'RETRYING'\n"
    "      THEN now() + ($4::int8[])[x.k] * interval '1 millisecond' ELSE j.scheduled_at END,\n"
    "    failed_at = CASE WHEN ($2::text[])[x.k] IN ('FAILED', 'DEAD_LETTER') THEN now() END,\n"
    "    locked_by = NULL, locked_until = NULL, updated_at = now(), attempts = j.attempts + 1\n"
    "  FROM (SELECT u.k, r.id AS xid, r.locked_by AS held_by\n"
    "        FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, k)\n"
    "        CROSS JOIN LATERAL (SELECT id, status, locked_until, retry_count, cancel_requested,\n"
    "          locked_by FROM jobs WHERE id = u.id OFFSET 0 FOR UPDATE SKIP LOCKED) r\n"
    "        WHERE r.status = 'RUNNING' AND r.locked_until < now()\n"
    "          AND r.retry_count = ($6::int[])[u.k]\n"
    "          AND r.cancel_requested = ($7::bool[])[u.k]) x\n"
    "  WHERE j.id = x.xid\n"
    "  RETURNING j.*, x.held_by\n"
    "), " ATTEMPT_FROM_UPD("held_by") OUTBOX_FROM_UPD "SELECT count(*) FROM upd",
    7, true};

static const jb_pg_stmt st_request_cancel = {
    ST_REQUEST_CANCEL, "jb_request_cancel",
    "UPDATE jobs SET cancel_requested = true, updated_at = now()\n"
    "WHERE id = $1::uuid AND status = 'RUNNING' RETURNING id",
    1, false};

/* Progress of many jobs at once (the pool's flush, or the API): each job still RUNNING (under
 * its owner when one is given) takes its latest report; those asked for get a job.progress
 * event, carrying the job snapshot and its progress, in the same statement. A finished job is
 * never touched: the status check is made on the locked row. */
static const jb_pg_stmt st_progress = {
    ST_PROGRESS, "jb_progress",
    "WITH upd AS (\n"
    "  UPDATE jobs j SET progress = u.pct, progress_message = u.msg, updated_at = now()\n"
    "  FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::bool[])\n"
    "    AS u(id, owner, pct, msg, ev)\n"
    "  WHERE j.id = u.id AND j.status = 'RUNNING' AND (u.owner IS NULL OR j.locked_by = u.owner)\n"
    "  RETURNING j.*, u.ev\n"
    "), ob AS (INSERT INTO outbox (job_id, event_type, routing_key, correlation_id, data,\n"
    "    traceparent, tracestate)\n"
    "  SELECT id, 'job.progress', 'job.progress.' || job_type,\n"
    "    coalesce(metadata->>'event_id', metadata->>'correlation_id'),\n"
    "    " SNAPSHOT
    " || jsonb_build_object('progress', progress, 'progress_message',\n"
    "      progress_message), traceparent, tracestate\n"
    "  FROM upd WHERE ev ORDER BY id RETURNING 1)\n"
    "SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM ob)",
    5, false};

/* The connection's first parameter buffer as an array literal of strings; NULL when memory
 * ran out. Valid until the next statement built on this connection. */
/* items as an array literal of strings in buffer a; NULL when memory ran out. Valid until the
 * next statement built with a. */
static const char *texts_param_in(jb_pg_array *a, char *const *items, size_t n) {
  jb_pg_array_begin(a);
  for (size_t i = 0; i < n; i++) jb_pg_array_text(a, items[i]);
  return jb_pg_array_end(a);
}

static const char *texts_param(jb_pg *pg, char *const *items, size_t n) {
  return texts_param_in(&pg->arrays[0], items, n);
}

/* Forgets the job notifications this session has received so far: a claim sent after them sees
 * every job they announced, so they must not wake the next wait (an empty claim each time). */
static void forget_notifications(jb_pg *pg) {
  jb_pg_collect(pg);
  if (!pg->listening || PQstatus(pg->conn) != CONNECTION_OK) return;
  PQconsumeInput(pg->conn);
  PGnotify *n;
  while ((n = PQnotifies(pg->conn)) != NULL) PQfreemem(n);
}

static jb_err pg_claim(void *self, const char *owner, char *const *queues, size_t nqueues,
                       char *const *skip_types, size_t nskip, int max, int lease_s, jb_job **out,
                       size_t *n, jb_error *e) {
  jb_pg *pg = self;
  forget_notifications(pg);
  const char *arr = NULL, *skip = NULL; /* NULL: every queue; no type skipped */
  if (nqueues > 0 && (arr = texts_param(pg, queues, nqueues)) == NULL)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory for the queue list");
  if (nskip > 0 && (skip = texts_param_in(&pg->arrays[1], skip_types, nskip)) == NULL)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory for the list of job types not to claim");
  char maxs[16], lease[16];
  snprintf(maxs, sizeof maxs, "%d", max);
  snprintf(lease, sizeof lease, "%d", lease_s);
  const char *params[6] = {owner, arr, maxs, lease, skip, NULL};
  const jb_pg_stmt *st = arr != NULL ? &st_claim : &st_claim_any;
  if (pg->started_on) {
    st = arr != NULL ? &st_claim_events : &st_claim_any_events;
    params[4] = pg->started_types;
    params[5] = skip;
  }
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, st, params, &res, e);
  if (rc != JB_OK) return rc;
  rc = jb_pg_rows_to_jobs(res, out, n, e);
  PQclear(res);
  if (rc == JB_OK && pg->started_on && *n > 0) jb_pg_notify(pg, "outbox");
  return rc;
}

static const char *status_sql(jb_job_status s) {
  return jb_status_name(s);
}

static jb_err pg_finish(void *self, const char *owner, const jb_finish *items, size_t n,
                        size_t *applied, jb_error *e) {
  jb_pg *pg = self;
  if (n == 0) {
    if (applied) *applied = 0;
    return JB_OK;
  }
  jb_pg_array *a = pg->arrays;
  for (int c = 0; c < 6; c++) jb_pg_array_begin(&a[c]);
  for (size_t i = 0; i < n; i++) {
    const jb_finish *f = &items[i];
    jb_pg_array_text(&a[0], f->id);
    jb_pg_array_text(&a[1], status_sql(f->status));
    jb_pg_array_json(&a[2], f->result);
    jb_pg_array_text(&a[3], f->error);
    jb_pg_array_int(&a[4], f->delay_ms);
    jb_pg_array_text(&a[5], f->burn_retry ? "t" : "f");
  }
  const char *params[7] = {owner};
  for (int c = 0; c < 6; c++)
    if ((params[c + 1] = jb_pg_array_end(&a[c])) == NULL)
      return a[c].unencodable
                 ? jb_fail(e, JB_ERR_INVALID, "a job's result cannot be encoded as JSON")
                 : jb_fail(e, JB_ERR_NOMEM, "out of memory encoding %zu outcomes", n);
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, &st_finish, params, &res, e);
  if (rc != JB_OK) return rc;
  size_t done = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  if (done > 0) jb_pg_notify(pg, "outbox");
  if (applied) *applied = done;
  return JB_OK;
}

/* Ids from column 0 of rows whose column 1 is true. */
static jb_err flagged_ids(PGresult *res, char (**out)[37], size_t *n, jb_error *e) {
  int rows = PQntuples(res);
  *out = calloc(rows ? (size_t)rows : 1, sizeof **out);
  *n = 0;
  if (*out == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  for (int i = 0; i < rows; i++)
    if (PQgetvalue(res, i, 1)[0] == 't') snprintf((*out)[(*n)++], 37, "%s", PQgetvalue(res, i, 0));
  return JB_OK;
}

static jb_err pg_renew(void *self, const jb_held_job *held, size_t n, int lease_s,
                       char (**cancel)[37], size_t *ncancel, jb_error *e) {
  jb_pg *pg = self;
  *cancel = NULL;
  *ncancel = 0;
  if (n == 0) { /* nobody holds a job: nothing to renew or cancel */
    *cancel = calloc(1, sizeof **cancel);
    return *cancel != NULL ? JB_OK : jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  jb_pg_array *ids = &pg->arrays[0], *owners = &pg->arrays[1];
  jb_pg_array_begin(ids);
  jb_pg_array_begin(owners);
  for (size_t i = 0; i < n; i++) {
    jb_pg_array_text(ids, held[i].id);
    jb_pg_array_text(owners, held[i].owner);
  }
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_s);
  const char *params[3] = {jb_pg_array_end(ids), jb_pg_array_end(owners), lease};
  if (params[0] == NULL || params[1] == NULL)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory listing %zu held jobs", n);
  PGresult *res = NULL;
  /* lease_s 0 only checks for cancellations (cheap, often); otherwise the leases are renewed. */
  jb_err rc = lease_s > 0 ? jb_pg_exec(pg, &st_renew, params, &res, e)
                          : jb_pg_exec(pg, &st_cancel_check, params, &res, e);
  if (rc != JB_OK) return rc;
  rc = flagged_ids(res, cancel, ncancel, e);
  PQclear(res);
  return rc;
}

static jb_err pg_expired(void *self, int max, jb_expired_job **out, size_t *n, jb_error *e) {
  char maxs[16];
  snprintf(maxs, sizeof maxs, "%d", max);
  const char *params[1] = {maxs};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &st_expired, params, &res, e);
  if (rc != JB_OK) return rc;
  int rows = PQntuples(res);
  jb_expired_job *x = calloc(rows ? (size_t)rows : 1, sizeof *x);
  for (int i = 0; x != NULL && i < rows; i++) {
    snprintf(x[i].id, sizeof x[i].id, "%s", PQgetvalue(res, i, 0));
    x[i].job_type = strdup(PQgetvalue(res, i, 1));
    x[i].retry_count = atoi(PQgetvalue(res, i, 2));
    x[i].max_retries = atoi(PQgetvalue(res, i, 3));
    x[i].cancel_requested = PQgetvalue(res, i, 4)[0] == 't';
    if (x[i].job_type == NULL) {
      jb_expired_jobs_free(x, (size_t)i);
      x = NULL;
    }
  }
  PQclear(res);
  if (x == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory reading %d expired jobs", rows);
  *out = x;
  *n = (size_t)rows;
  return JB_OK;
}

static jb_err pg_reap(void *self, const jb_expired_job *seen, const jb_finish *decided, size_t n,
                      size_t *applied, jb_error *e) {
  jb_pg *pg = self;
  *applied = 0;
  if (n == 0) return JB_OK;
  jb_pg_array *a = pg->arrays;
  for (int c = 0; c < 7; c++) jb_pg_array_begin(&a[c]);
  for (size_t i = 0; i < n; i++) {
    const jb_finish *f = &decided[i];
    jb_pg_array_text(&a[0], seen[i].id);
    jb_pg_array_text(&a[1], status_sql(f->status));
    jb_pg_array_text(&a[2], f->error);
    jb_pg_array_int(&a[3], f->delay_ms);
    jb_pg_array_text(&a[4], f->burn_retry ? "t" : "f");
    jb_pg_array_int(&a[5], seen[i].retry_count);
    jb_pg_array_text(&a[6], seen[i].cancel_requested ? "t" : "f");
  }
  const char *params[7];
  for (int c = 0; c < 7; c++)
    if ((params[c] = jb_pg_array_end(&a[c])) == NULL)
      return jb_fail(e, JB_ERR_NOMEM, "out of memory encoding %zu reaper decisions", n);
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, &st_reap, params, &res, e);
  if (rc != JB_OK) return rc;
  size_t done = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  if (done > 0) jb_pg_notify(self, "outbox");
  *applied = done;
  return JB_OK;
}

static jb_err pg_request_cancel(void *self, const char *id, jb_error *e) {
  jb_pg *pg = self;
  const char *params[1] = {id};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, &st_request_cancel, params, &res, e);
  if (rc != JB_OK) return rc;
  if (PQntuples(res) == 0) rc = jb_fail(e, JB_ERR_STATE, "job %s is not RUNNING", id);
  PQclear(res);
  return rc;
}

static jb_err pg_progress(void *self, const jb_progress *items, size_t n, size_t *applied,
                          jb_error *e) {
  jb_pg *pg = self;
  if (applied) *applied = 0;
  if (n == 0) return JB_OK;
  jb_pg_array *a = pg->arrays;
  for (int c = 0; c < 5; c++) jb_pg_array_begin(&a[c]);
  for (size_t i = 0; i < n; i++) {
    jb_pg_array_text(&a[0], items[i].id);
    jb_pg_array_text(&a[1], items[i].owner);
    jb_pg_array_int(&a[2], items[i].pct);
    jb_pg_array_text(&a[3], items[i].message);
    jb_pg_array_text(&a[4], items[i].event ? "t" : "f");
  }
  const char *params[5];
  for (int c = 0; c < 5; c++)
    if ((params[c] = jb_pg_array_end(&a[c])) == NULL)
      return jb_fail(e, JB_ERR_NOMEM, "out of memory encoding the progress of %zu jobs", n);
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(pg, &st_progress, params, &res, e);
  if (rc != JB_OK) return rc;
  size_t done = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  bool events = strtoull(PQgetvalue(res, 0, 1), NULL, 10) > 0;
  PQclear(res);
  if (events) jb_pg_notify(pg, "outbox");
  if (applied) *applied = done;
  return JB_OK;
}

static jb_err pg_wait_jobs(void *self, int timeout_ms, int wake_fd, bool *notified, jb_error *e) {
  return jb_pg_wait(self, "jobs", timeout_ms, wake_fd, notified, e);
}

jb_err jb_pg_set_started_events(jb_pg *pg, bool all, const char *const *types, size_t n,
                                jb_error *e) {
  free(pg->started_types);
  pg->started_types = NULL;
  pg->started_on = all || n > 0;
  if (!pg->started_on || all) return JB_OK;
  jb_pg_array a = {0};
  jb_pg_array_begin(&a);
  for (size_t i = 0; i < n; i++) jb_pg_array_text(&a, types[i]);
  const char *lit = jb_pg_array_end(&a);
  pg->started_types = lit != NULL ? strdup(lit) : NULL;
  jb_pg_array_free(&a);
  if (pg->started_types != NULL) return JB_OK;
  pg->started_on = false;
  return jb_fail(e, JB_ERR_NOMEM, "out of memory listing the job types with job.started events");
}

static const jb_work_queue_ops work_ops = {
    .claim = pg_claim,
    .finish = pg_finish,
    .renew = pg_renew,
    .expired = pg_expired,
    .reap = pg_reap,
    .wait = pg_wait_jobs,
    .request_cancel = pg_request_cancel,
    .progress = pg_progress,
};

jb_work_queue jb_pg_work_queue(jb_pg *pg) {
  return (jb_work_queue){&work_ops, pg};
}
