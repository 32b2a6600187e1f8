/* The PostgreSQL adapter's Outbox port: the relay's leadership, fetching, deleting and setting
 * aside outbox rows, and waiting for new ones. The rows are written by pg_work.c, in the
 * statements that change a job's status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/outbox.h"
#include "jobbridge/utf8.h"
#include "postgres/pg_internal.h"

/* The outbox goes from empty to many thousands of rows and back within seconds: its two
 * statements are planned at every run too. A plan cached while the outbox was empty deleted
 * confirmed rows with a sequential scan, each row checked against the whole id array (22 ms
 * per delete under load), and compared every candidate row of a fetch with every id in flight
 * instead of hashing them. */
static const jb_pg_stmt st_outbox_fetch = {
    ST_OUTBOX_FETCH, "jb_outbox_fetch",
    "SELECT id, job_id::text, message_id::text, event_type, routing_key, correlation_id,\n"
    "  data::text, " JB_US("created_at") ", traceparent, tracestate FROM outbox\n"
    "WHERE id <> ALL($2::int8[]) AND failed_at IS NULL\n"
    "ORDER BY id LIMIT $1::int",
    2, true};

static const jb_pg_stmt st_outbox_delete = {
    ST_OUTBOX_DELETE, "jb_outbox_delete", "DELETE FROM outbox WHERE id = ANY($1::int8[])", 1, true};

/* A row the relay cannot publish: kept, with why, and no longer fetched. */
static const jb_pg_stmt st_outbox_set_aside = {
    ST_OUTBOX_SET_ASIDE, "jb_outbox_set_aside",
    "UPDATE outbox SET failed_at = now(), failed_reason = $2 WHERE id = $1::int8", 2, false};

static const jb_pg_stmt st_try_lead = {
    ST_TRY_LEAD, "jb_try_lead",
    "SELECT pg_try_advisory_lock(hashtext('jobbridge.relay.' || current_schema()))", 0, false};

/* The connection's first parameter buffer as an array literal of ids; NULL when memory ran
 * out. Valid until the next statement built on this connection. */
static const char *ids_param(jb_pg *pg, const int64_t *ids, size_t n) {
  jb_pg_array *a = &pg->arrays[0];
  jb_pg_array_begin(a);
  for (size_t i = 0; i < n; i++) jb_pg_array_int(a, ids[i]);
  return jb_pg_array_end(a);
}

static jb_err ob_try_lead(void *self, bool *leader, jb_error *e) {
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &st_try_lead, NULL, &res, e);
  if (rc != JB_OK) return rc;
  *leader = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return JB_OK;
}

static jb_err ob_fetch(void *self, const int64_t *skip, size_t nskip, int max, jb_outbox_row **out,
                       size_t *n, jb_error *e) {
  char maxs[16];
  snprintf(maxs, sizeof maxs, "%d", max);
  const char *arr = ids_param(self, skip, nskip);
  if (arr == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  const char *params[2] = {maxs, arr};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &st_outbox_fetch, params, &res, e);
  if (rc != JB_OK) return rc;
  int rows = PQntuples(res);
  jb_outbox_row *r = calloc(rows ? (size_t)rows : 1, sizeof *r);
  if (r == NULL) {
    PQclear(res);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < rows; i++) {
    r[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    snprintf(r[i].job_id, 37, "%s", PQgetvalue(res, i, 1));
    snprintf(r[i].message_id, 37, "%s", PQgetvalue(res, i, 2));
    r[i].event_type = strdup(PQgetvalue(res, i, 3));
    r[i].routing_key = strdup(PQgetvalue(res, i, 4));
    r[i].correlation_id = PQgetisnull(res, i, 5) ? NULL : strdup(PQgetvalue(res, i, 5));
    /* The snapshot stays the text the server wrote: the relay embeds it in the event as it is
     * (parsing it to write it out again was half of the relay's CPU). */
    r[i].data = strdup(PQgetvalue(res, i, 6));
    r[i].created_at = strtoll(PQgetvalue(res, i, 7), NULL, 10);
    r[i].traceparent = PQgetisnull(res, i, 8) ? NULL : strdup(PQgetvalue(res, i, 8));
    r[i].tracestate = PQgetisnull(res, i, 9) ? NULL : strdup(PQgetvalue(res, i, 9));
    if (r[i].event_type == NULL || r[i].routing_key == NULL || r[i].data == NULL ||
        (r[i].correlation_id == NULL && !PQgetisnull(res, i, 5)) ||
        (r[i].traceparent == NULL && !PQgetisnull(res, i, 8)) ||
        (r[i].tracestate == NULL && !PQgetisnull(res, i, 9))) {
      PQclear(res);
      jb_outbox_rows_free(r, (size_t)i + 1);
      return jb_fail(e, JB_ERR_NOMEM, "out of memory reading outbox rows");
    }
  }
  PQclear(res);
  *out = r;
  *n = (size_t)rows;
  return JB_OK;
}

static jb_err ob_remove(void *self, const int64_t *ids, size_t n, jb_error *e) {
  if (n == 0) return JB_OK;
  const char *arr = ids_param(self, ids, n);
  if (arr == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  const char *params[1] = {arr};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &st_outbox_delete, params, &res, e);
  PQclear(res);
  return rc;
}

/* reason as valid UTF-8 (a new string the caller frees; NULL when memory ran out): each byte
 * that does not start a valid sequence becomes '?'. The broker's text is cut to a fixed size,
 * possibly inside a character, and PostgreSQL refuses invalid UTF-8 (22021): the row would be
 * retried forever instead of set aside. */
static char *utf8_clean(const char *reason) {
  size_t n = strlen(reason);
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n;) {
    size_t len = jb_utf8_seq((const unsigned char *)reason + i, n - i);
    if (len == 0) {
      out[i++] = '?';
    } else {
      memcpy(out + i, reason + i, len);
      i += len;
    }
  }
  out[n] = '\0';
  return out;
}

static jb_err ob_set_aside(void *self, int64_t id, const char *reason, jb_error *e) {
  char ids[24];
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  char *clean = utf8_clean(reason);
  if (clean == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for a set-aside reason");
  const char *params[2] = {ids, clean};
  PGresult *res = NULL;
  jb_err rc = jb_pg_exec(self, &st_outbox_set_aside, params, &res, e);
  PQclear(res);
  free(clean);
  return rc;
}

static jb_err ob_wait(void *self, int timeout_ms, jb_error *e) {
  return jb_pg_wait(self, "outbox", timeout_ms, -1, NULL, e);
}

static jb_err ob_notify_fd(void *self, int *fd, jb_error *e) {
  jb_pg *pg = self;
  jb_pg_collect(pg);
  jb_err rc = jb_pg_listen(pg, "outbox", e);
  if (rc != JB_OK) return rc;
  /* A notification libpq already read (during the last query) is no longer on the socket:
   * say "rows are waiting now" with -1 rather than let the caller sleep on it. */
  PGnotify *n = PQnotifies(pg->conn);
  if (n != NULL) {
    while (n != NULL) {
      PQfreemem(n);
      n = PQnotifies(pg->conn);
    }
    *fd = -1;
    return JB_OK;
  }
  *fd = PQsocket(pg->conn);
  return JB_OK;
}

static const jb_outbox_ops outbox_ops = {.try_lead = ob_try_lead,
                                         .fetch = ob_fetch,
                                         .remove = ob_remove,
                                         .set_aside = ob_set_aside,
                                         .wait = ob_wait,
                                         .notify_fd = ob_notify_fd};

jb_outbox jb_pg_outbox(jb_pg *pg) {
  return (jb_outbox){&outbox_ops, pg};
}
