/* The PostgreSQL adapter's connection: connect (with deadlines), session setup, prepared
 * statements and their errors, notifications (NOTIFY, LISTEN and waiting for them), migrations,
 * and rows read into jobs. The ports are in pg_store.c (JobStore), pg_work.c (WorkQueue) and
 * pg_outbox.c (Outbox). */
#include "postgres/pg.h"
#include "postgres/pg_metrics.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/json.h"
#include "jobbridge/log.h"
#include "postgres/migrations.h"
#include "postgres/pg_internal.h"

/* Notifications are sent after the data commits, in a transaction of their own that does
 * not wait for its commit to reach the disk. A NOTIFY holds one lock per database from its
 * commit until the commit is flushed: sent from the data transactions (statement triggers,
 * up to migration 6) it made every ingest and every finish wait for each other's fsync,
 * and that queue was most of the latency at 1,000 events/s. Nothing is at risk: the data
 * is already durable, and a notification lost in a crash only wakes its listener late. */
static const jb_pg_stmt st_notify = {
    ST_NOTIFY, "jb_notify",
    "SELECT pg_notify($1, ''), set_config('synchronous_commit', 'off', true)", 1, false};

PGconn *jb_pg_conn(jb_pg *pg) {
  jb_pg_collect(pg);
  return pg->conn;
}

/* Maps a failed result (or a dead connection) to a jb_err with the server's message:
 * - JB_ERR_DB_CONN: the connection is gone (or SQLSTATE class 08);
 * - JB_ERR_DB_REFUSED: the database refused the data itself, so the same rows fail again
 *   whenever they are retried: class 22 (data exception: a bad cast, a value out of range, an
 *   untranslatable character) and class 23 (integrity constraint violation);
 * - JB_ERR_DB: everything else, transient or not the rows' fault (57014 statement timeout,
 *   57P01 admin shutdown, 40001 serialization failure, 40P01 deadlock, 25006 read-only
 *   transaction, 53xxx disk full or out of memory, 55P03 lock not available, a failure with no
 *   SQLSTATE, ...): callers retry these and never blame the data for them. */
jb_err jb_pg_result_error(jb_pg *pg, PGresult *res, const char *what, jb_error *e) {
  if (PQstatus(pg->conn) == CONNECTION_BAD)
    return jb_fail(e, JB_ERR_DB_CONN, "database connection lost during %s: %s", what,
                   PQerrorMessage(pg->conn));
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (msg == NULL) msg = PQerrorMessage(pg->conn);
  if (state != NULL && strncmp(state, "08", 2) == 0)
    return jb_fail(e, JB_ERR_DB_CONN, "database connection lost during %s: %s", what, msg);
  if (state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
    return jb_fail(e, JB_ERR_DB_REFUSED, "the database refused the data in %s: %s (SQLSTATE %s)",
                   what, msg, state);
  return jb_fail(e, JB_ERR_DB, "database error during %s: %s (SQLSTATE %s)", what, msg,
                 state ? state : "?");
}

/* Runs a plain SQL command expecting no rows. */
jb_err jb_pg_simple(jb_pg *pg, const char *sql, const char *what, jb_error *e) {
  jb_pg_collect(pg);
  PGresult *res = PQexec(pg->conn, sql);
  jb_err rc = JB_OK;
  if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = jb_pg_result_error(pg, res, what, e);
  PQclear(res);
  return rc;
}

/* Prepares st on this session the first time it is used. */
static jb_err prepare_once(jb_pg *pg, const jb_pg_stmt *st, jb_error *e) {
  if (pg->prepared[st->slot]) return JB_OK;
  PGresult *prep = PQprepare(pg->conn, st->name, st->sql, st->nparams, NULL);
  jb_err rc = JB_OK;
  if (PQresultStatus(prep) != PGRES_COMMAND_OK)
    rc = jb_pg_result_error(pg, prep, st->name, e);
  else
    pg->prepared[st->slot] = true;
  PQclear(prep);
  return rc;
}

void jb_pg_collect(jb_pg *pg) {
  if (!pg->notify_pending) return;
  pg->notify_pending = false;
  PGresult *res;
  while ((res = PQgetResult(pg->conn)) != NULL) {
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
      jb_log(JB_LOG_DEBUG, "notification not sent; its listeners will poll", "error",
             PQresultErrorMessage(res), JB_LOG_END);
    PQclear(res);
  }
}

/* Sent without waiting for the reply: the caller goes back to its work (reading the broker,
 * running the next job) while the server runs it, and the reply is collected before the
 * connection's next command (jb_pg_collect). That saved a round trip per ingest batch. */
void jb_pg_notify(jb_pg *pg, const char *what) {
  jb_pg_collect(pg);
  char channel[160];
  snprintf(channel, sizeof channel, "jobbridge_%s_%s", what, pg->schema);
  const char *params[1] = {channel};
  const jb_pg_stmt *st = &st_notify;
  jb_error e;
  const char *why;
  if (jb_pg_ensure(pg, &e) != JB_OK || prepare_once(pg, st, &e) != JB_OK) {
    why = e.msg;
  } else if (!PQsendQueryPrepared(pg->conn, st->name, st->nparams, params, NULL, NULL, 0)) {
    why = PQerrorMessage(pg->conn);
  } else {
    pg->notify_pending = true;
    return;
  }
  jb_log(JB_LOG_DEBUG, "notification not sent; its listeners will poll", "channel", channel,
         "error", why, JB_LOG_END);
}

void jb_pg_rollback(jb_pg *pg) {
  jb_pg_collect(pg);
  if (PQstatus(pg->conn) != CONNECTION_OK) return;
  PQclear(PQexec(pg->conn, "ROLLBACK"));
}

/* Per-session settings; run after every new session (connect, reset) and after migrate. */
static jb_err session_setup(jb_pg *pg, jb_error *e) {
  char *ident = PQescapeIdentifier(pg->conn, pg->schema, strlen(pg->schema));
  if (ident == NULL) return jb_fail(e, JB_ERR_NOMEM, "cannot quote schema name");
  char sql[512];
  /* UTC so timestamps read back the same everywhere; the schema first in the search path;
   * no NOTICE chatter ("already exists, skipping") on the CLI's stderr. random_page_cost 1.1
   * (the usual setting for SSDs and cached tables): at the default 4, once a claim asked for
   * 256 jobs the planner preferred reading every waiting job and sorting them to walking the
   * waiting-jobs index in order, and claims took 34 ms instead of 5. */
  snprintf(sql, sizeof sql,
           "SET search_path TO %s, public; SET TimeZone TO 'UTC'; "
           "SET client_min_messages TO warning; SET random_page_cost TO 1.1",
           ident);
  PQfreemem(ident);
  return jb_pg_simple(pg, sql, "session setup", e);
}

/* libpq's parse errors quote the text at fault, which may be the password: this says which part
 * is wrong in our own words, matched on libpq 15's message texts. */
static const char *parse_problem(const char *libpq_msg) {
  static const struct {
    const char *needle, *says;
  } known[] = {
      {"percent-encoded", "has an invalid %-escape (write a literal % as %25)"},
      {"unterminated quoted string", "has a quoted value whose closing quote is missing"},
      {"missing \"=\" after", "has a keyword not followed by '='"},
      {"invalid connection option", "names a connection option libpq does not know"},
      {"key/value separator", "has a query parameter that is not key=value"},
      {"invalid URI query parameter", "has a query parameter libpq does not know"},
      {"IPv6", "has an IPv6 host address without its closing ']'"},
      {"unexpected character", "has an unexpected character after the host or port"},
      {"invalid integer value", "has a value that must be a whole number"},
      {"invalid sslmode value", "has an sslmode libpq does not know"},
  };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (libpq_msg != NULL && strstr(libpq_msg, known[i].needle) != NULL) return known[i].says;
  return "cannot be parsed by libpq";
}

jb_err jb_pg_check_url(const char *url, const char *what, jb_error *e) {
  const char *problem = jb_url_problem(url);
  if (problem == NULL) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    if (opts == NULL && err == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    if (opts == NULL) problem = parse_problem(err);
    PQfreemem(err);
    PQconninfoFree(opts);
  }
  if (problem != NULL)
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: the URL %s (the URL is not shown: it may hold a password)", what, problem);
  return JB_OK;
}

/* Fails with the connection error libpq gave for url, the URL redacted and the password (as
 * libpq parsed it) blanked wherever the message might quote it. */
static jb_err conn_failed(PGconn *conn, const char *url, const char *doing, jb_error *e) {
  char safe[512];
  const char *msg = PQerrorMessage(conn);
  jb_fail(e, JB_ERR_DB_CONN, "cannot %s PostgreSQL at %s: %.*s", doing,
          jb_redact_url(url, safe, sizeof safe), (int)strcspn(msg, "\n"), msg);
  PQconninfoOption *opts = PQconninfoParse(url, NULL);
  for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
    if (o->val != NULL && strstr(o->keyword, "password") != NULL) jb_scrub_secret(e->msg, o->val);
  PQconninfoFree(opts);
  return JB_ERR_DB_CONN;
}

/* Every session gets a deadline for a dead peer. Without one, a silent network cut (a failover,
 * a dropped route: no RST ever arrives) left a worker's claim or finish, the lease renewal and
 * the ingest commit blocked until TCP gave up, about 15 minutes with Linux's defaults, and
 * shutdown waited for them. The defaults below bound it to about 30 s:
 * - tcp_user_timeout: a request sent but not acknowledged for 30 s ends the connection (TCP
 *   retransmits meanwhile; keepalives are not sent while data is unacknowledged);
 * - keepalives: a connection waiting for a reply whose request was acknowledged, or idle, is
 *   probed after 10 s of silence, every 5 s; Linux then ends it once tcp_user_timeout has passed
 *   since the peer was last heard (kernels that ignore the user timeout there: after 4 probes,
 *   10 + 4 x 5 = 30 s). A server that is merely busy answers the probes in its kernel, so a
 *   long statement is never cut;
 * - connect_timeout: a connection attempt gives up after 10 s (PGCONNECT_TIMEOUT, when set,
 *   is left to libpq).
 * They come before the URL in the parameters, and libpq lets later values win: whatever the
 * URL sets (URI or keyword form, expand_dbname) overrides them. A failed call then reports a
 * lost connection, and the next call reconnects (jb_pg_ensure, where PQreset keeps these). */
static PGconn *connect_with_deadlines(const char *url) {
  static const char *const defaults[][2] = {
      {"keepalives", "1"},       {"keepalives_idle", "10"},     {"keepalives_interval", "5"},
      {"keepalives_count", "4"}, {"tcp_user_timeout", "30000"}, {"connect_timeout", "10"},
  };
  enum { N = sizeof defaults / sizeof defaults[0] };
  const char *keys[N + 2], *vals[N + 2];
  size_t k = 0;
  for (size_t i = 0; i < N; i++) {
    if (strcmp(defaults[i][0], "connect_timeout") == 0 && getenv("PGCONNECT_TIMEOUT") != NULL)
      continue;
    keys[k] = defaults[i][0];
    vals[k++] = defaults[i][1];
  }
  keys[k] = "dbname"; /* expanded: the URL's own settings win over those above */
  vals[k++] = url;
  keys[k] = vals[k] = NULL;
  return PQconnectdbParams(keys, vals, 1);
}

jb_err jb_pg_connect(const char *url, const char *schema, jb_pg **out, jb_error *e) {
  /* A URL libpq cannot parse is a config error: connecting would echo the parser's message,
   * password and all, and retrying cannot fix it. */
  jb_err rc = jb_pg_check_url(url, "database.url", e);
  if (rc != JB_OK) return rc;
  jb_pg *pg = calloc(1, sizeof *pg);
  if (pg == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  pg->url = strdup(url);
  pg->schema = strdup(schema);
  if (pg->url == NULL || pg->schema == NULL) {
    rc = jb_fail(e, JB_ERR_NOMEM, "out of memory");
    goto out;
  }
  pg->conn = connect_with_deadlines(url);
  pg->up = PQstatus(pg->conn) == CONNECTION_OK;
  jb_pg_metrics_connect(false, pg->up);
  if (!pg->up) {
    rc = conn_failed(pg->conn, url, "connect to", e);
    goto out;
  }
  rc = session_setup(pg, e);
out:
  if (rc != JB_OK) {
    jb_pg_close(pg);
    return rc;
  }
  *out = pg;
  return JB_OK;
}

void jb_pg_close(jb_pg *pg) {
  if (pg == NULL) return;
  if (pg->conn) {
    jb_pg_collect(pg); /* a notification sent last is surely run before we hang up */
    PQfinish(pg->conn);
  }
  if (pg->up) jb_pg_metrics_down();
  for (int c = 0; c < JB_ENQUEUE_COLUMNS; c++) jb_pg_array_free(&pg->arrays[c]);
  free(pg->started_types);
  free(pg->url);
  free(pg->schema);
  free(pg);
}

jb_err jb_pg_ensure(jb_pg *pg, jb_error *e) {
  jb_pg_collect(pg);
  if (PQstatus(pg->conn) == CONNECTION_OK) return JB_OK;
  /* Prepared statements die with the old session: forget we had them. */
  memset(pg->prepared, 0, sizeof pg->prepared);
  pg->listening = false; /* LISTENs die with the session too */
  if (pg->up) jb_pg_metrics_down();
  PQreset(pg->conn);
  pg->up = PQstatus(pg->conn) == CONNECTION_OK;
  jb_pg_metrics_connect(true, pg->up);
  if (!pg->up) return conn_failed(pg->conn, pg->url, "reconnect to", e);
  return session_setup(pg, e);
}

/* Runs statement st with text parameters; *out gets the result on success (caller clears). */
jb_err jb_pg_exec(jb_pg *pg, const jb_pg_stmt *st, const char *const *params, PGresult **out,
                  jb_error *e) {
  return jb_pg_exec_binary(pg, st, params, NULL, out, e);
}

jb_err jb_pg_exec_binary(jb_pg *pg, const jb_pg_stmt *st, const char *const *params,
                         const int *lengths, PGresult **out, jb_error *e) {
  jb_err rc = jb_pg_ensure(pg, e);
  if (rc != JB_OK) return rc;
  int formats[JB_ENQUEUE_COLUMNS + 1];
  if (lengths != NULL) {
    if (st->nparams > (int)(sizeof formats / sizeof formats[0]))
      return jb_fail(e, JB_ERR_INVALID, "%s: too many binary parameters", st->name);
    for (int i = 0; i < st->nparams; i++) formats[i] = lengths[i] >= 0;
  }
  const int *fmts = lengths != NULL ? formats : NULL;
  PGresult *res;
  if (st->plan_each_run) {
    res = PQexecParams(pg->conn, st->sql, st->nparams, NULL, params, lengths, fmts, 0);
  } else {
    if ((rc = prepare_once(pg, st, e)) != JB_OK) return rc;
    res = PQexecPrepared(pg->conn, st->name, st->nparams, params, lengths, fmts, 0);
  }
  ExecStatusType status = PQresultStatus(res);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    rc = jb_pg_result_error(pg, res, st->name, e);
    PQclear(res);
    return rc;
  }
  *out = res;
  return JB_OK;
}

jb_err jb_pg_migrate(jb_pg *pg, int *applied, jb_error *e) {
  int count = 0;
  jb_err rc = jb_pg_ensure(pg, e);
  if (rc != JB_OK) return rc;
  char *ident = PQescapeIdentifier(pg->conn, pg->schema, strlen(pg->schema));
  if (ident == NULL) return jb_fail(e, JB_ERR_NOMEM, "cannot quote schema name");
  char sql[1024];
  PGresult *res = NULL;
  rc = jb_pg_simple(pg, "BEGIN", "migrate", e);
  if (rc != JB_OK) goto out;
  /* Two instances starting together must not both run a migration. */
  snprintf(sql, sizeof sql,
           "SELECT pg_advisory_xact_lock(hashtext('jobbridge.migrate'));\n"
           "CREATE SCHEMA IF NOT EXISTS %s;\n"
           "CREATE TABLE IF NOT EXISTS %s.schema_migrations (version int PRIMARY KEY,\n"
           "  name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
           ident, ident);
  rc = jb_pg_simple(pg, sql, "migrate", e);
  if (rc != JB_OK) goto rollback;
  res = PQexec(pg->conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = jb_pg_result_error(pg, res, "migrate", e);
    goto rollback;
  }
  int current = atoi(PQgetvalue(res, 0, 0));
  for (int i = 0; i < jb_migrations_len; i++) {
    const jb_migration *m = &jb_migrations[i];
    if (m->version <= current) continue;
    rc = jb_pg_simple(pg, m->sql, m->name, e);
    if (rc != JB_OK) goto rollback;
    char ver[16];
    snprintf(ver, sizeof ver, "%d", m->version);
    const char *params[2] = {ver, m->name};
    PGresult *ins =
        PQexecParams(pg->conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                     NULL, params, NULL, NULL, 0);
    if (PQresultStatus(ins) != PGRES_COMMAND_OK) {
      rc = jb_pg_result_error(pg, ins, "migrate", e);
      PQclear(ins);
      goto rollback;
    }
    PQclear(ins);
    jb_log(JB_LOG_INFO, "migration applied", "version", ver, "name", m->name, "schema", pg->schema,
           JB_LOG_END);
    count++;
  }
  rc = jb_pg_simple(pg, "COMMIT", "migrate", e);
  if (rc == JB_OK && applied) *applied = count;
  goto out;
rollback:
  jb_pg_rollback(pg);
out:
  PQclear(res);
  PQfreemem(ident);
  /* The schema may have just been created: set the search path again. */
  if (rc == JB_OK) rc = session_setup(pg, e);
  return rc;
}

/* ---- rows ---- */

/* A copy of a text column, NULL when SQL NULL; *lost is set when out of memory. */
static char *dup_or_null(const PGresult *res, int row, int col, bool *lost) {
  if (PQgetisnull(res, row, col)) return NULL;
  char *s = strdup(PQgetvalue(res, row, col));
  if (s == NULL) *lost = true;
  return s;
}

static jb_time time_col(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A jsonb column through jobbridge's own parser, so that its numbers stay exactly as
 * PostgreSQL keeps them (jobbridge/json.h); NULL when SQL NULL or (never expected from jsonb)
 * unparsable. */
static json_t *json_col(const PGresult *res, int row, int col) {
  if (PQgetisnull(res, row, col)) return NULL;
  json_t *v;
  jb_error e;
  if (jb_json_parse(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col), &v, &e) != JB_OK)
    return NULL;
  return v;
}

/* On failure the job holds nothing (every string and value read so far is released). */
jb_err jb_pg_row_to_job(const PGresult *res, int row, jb_job *job, jb_error *e) {
  memset(job, 0, sizeof *job);
  snprintf(job->id, sizeof job->id, "%s", PQgetvalue(res, row, 0));
  jb_job_status status;
  if (jb_status_parse(PQgetvalue(res, row, 13), &status) != JB_OK)
    return jb_fail(e, JB_ERR_DB, "job %s has unknown status %s", job->id, PQgetvalue(res, row, 13));
  bool lost = false;
  job->status = status;
  job->queue_name = dup_or_null(res, row, 1, &lost);
  job->job_type = dup_or_null(res, row, 2, &lost);
  job->payload = json_col(res, row, 3);
  job->priority = atoi(PQgetvalue(res, row, 4));
  job->max_retries = atoi(PQgetvalue(res, row, 5));
  job->retry_count = atoi(PQgetvalue(res, row, 6));
  job->scheduled_at = time_col(res, row, 7);
  job->started_at = time_col(res, row, 8);
  job->completed_at = time_col(res, row, 9);
  job->failed_at = time_col(res, row, 10);
  job->created_at = time_col(res, row, 11);
  job->updated_at = time_col(res, row, 12);
  job->error_message = dup_or_null(res, row, 14, &lost);
  if (!PQgetisnull(res, row, 15))
    snprintf(job->created_by, sizeof job->created_by, "%s", PQgetvalue(res, row, 15));
  job->metadata = json_col(res, row, 16);
  job->result = json_col(res, row, 17);
  job->progress = atoi(PQgetvalue(res, row, 18));
  job->dedupe_key = dup_or_null(res, row, 19, &lost);
  job->locked_by = dup_or_null(res, row, 20, &lost);
  job->locked_until = time_col(res, row, 21);
  job->progress_message = dup_or_null(res, row, 22, &lost);
  if (PQnfields(res) > 24) { /* trace context (migration 10) */
    snprintf(job->traceparent, sizeof job->traceparent, "%s", PQgetvalue(res, row, 23));
    job->tracestate = dup_or_null(res, row, 24, &lost);
  }
  if (lost || job->queue_name == NULL || job->job_type == NULL || job->payload == NULL ||
      job->metadata == NULL) {
    jb_job_clear(job); /* and zeroes it */
    return jb_fail(e, JB_ERR_NOMEM, "out of memory reading job");
  }
  return JB_OK;
}

jb_err jb_pg_rows_to_jobs(const PGresult *res, jb_job **out, size_t *n, jb_error *e) {
  int rows = PQntuples(res);
  jb_job *jobs = calloc(rows ? (size_t)rows : 1, sizeof *jobs);
  if (jobs == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for %d jobs", rows);
  for (int i = 0; i < rows; i++) {
    jb_err rc = jb_pg_row_to_job(res, i, &jobs[i], e);
    if (rc != JB_OK) {
      jb_jobs_free(jobs, (size_t)i);
      return rc;
    }
  }
  *out = jobs;
  *n = (size_t)rows;
  return JB_OK;
}

/* ---- LISTEN and waiting for notifications ---- */

/* LISTENs (once per session) on jobbridge_<what>_<schema>. */
jb_err jb_pg_listen(jb_pg *pg, const char *what, jb_error *e) {
  jb_err rc = jb_pg_ensure(pg, e);
  if (rc != JB_OK) return rc;
  if (!pg->listening) {
    char channel[128];
    snprintf(channel, sizeof channel, "jobbridge_%s_%s", what, pg->schema);
    char *ident = PQescapeIdentifier(pg->conn, channel, strlen(channel));
    if (ident == NULL) return jb_fail(e, JB_ERR_NOMEM, "cannot quote channel");
    char sql[200];
    snprintf(sql, sizeof sql, "LISTEN %s", ident);
    PQfreemem(ident);
    rc = jb_pg_simple(pg, sql, "listen", e);
    if (rc != JB_OK) return rc;
    pg->listening = true;
  }
  return JB_OK;
}

/* Waits for a notification on jobbridge_<what>_<schema>, or for wake_fd (-1: none) to become
 * readable, at most timeout_ms; *notified (may be NULL) tells whether a notification came. */
jb_err jb_pg_wait(jb_pg *pg, const char *what, int timeout_ms, int wake_fd, bool *notified,
                  jb_error *e) {
  if (notified) *notified = false;
  jb_pg_collect(pg);
  jb_err rc = jb_pg_listen(pg, what, e);
  if (rc != JB_OK) return rc;
  PGnotify *n;
  bool woken = false;
  while ((n = PQnotifies(pg->conn)) != NULL) {
    PQfreemem(n);
    woken = true;
  }
  if (!woken) {
    struct pollfd pfd[2] = {{PQsocket(pg->conn), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int r = poll(pfd, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (r < 0 && errno != EINTR) return jb_fail(e, JB_ERR_IO, "poll: %s", strerror(errno));
    if (r > 0 && pfd[0].revents != 0) {
      if (!PQconsumeInput(pg->conn))
        return jb_fail(e, JB_ERR_DB_CONN, "database connection lost while waiting: %s",
                       PQerrorMessage(pg->conn));
      while ((n = PQnotifies(pg->conn)) != NULL) {
        PQfreemem(n);
        woken = true;
      }
    }
  }
  if (notified) *notified = woken;
  return JB_OK;
}
