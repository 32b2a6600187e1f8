/* The PostgreSQL adapter: one connection (owned by one thread at a time), migrations, and the
 * JobStore, WorkQueue and Outbox ports over it. */
#ifndef JB_PG_H
#define JB_PG_H

#include <libpq-fe.h>

#include "jobbridge/job_store.h"
#include "jobbridge/outbox.h"
#include "jobbridge/work_queue.h"

typedef struct jb_pg jb_pg;

/* Checks that libpq can parse url (URI or keyword/value form) and that jb_url_problem finds
 * nothing wrong with it. Returns JB_ERR_CONFIG with "<what>: the URL <what is wrong>" and never
 * the URL or libpq's own message (which quotes the text at fault, a password maybe). */
jb_err jb_pg_check_url(const char *url, const char *what, jb_error *e) JB_MUST_CHECK;

/* Connects to `url` and sets the search path to `schema` (both copied). A URL that cannot be
 * parsed fails with JB_ERR_CONFIG (jb_pg_check_url) before anything connects; a connection
 * failure returns JB_ERR_DB_CONN with a message that names the server but never the password. The
 * connection belongs to the calling thread until handed over; close with jb_pg_close. */
jb_err jb_pg_connect(const char *url, const char *schema, jb_pg **out, jb_error *e) JB_MUST_CHECK;
void jb_pg_close(jb_pg *pg);

/* Applies the migrations not yet applied, in one transaction under an advisory lock (several
 * instances may start at once). *applied (may be NULL) gets how many ran. Idempotent. */
jb_err jb_pg_migrate(jb_pg *pg, int *applied, jb_error *e) JB_MUST_CHECK;

/* The JobStore port over this connection (borrows pg; pg_store.c). */
jb_job_store jb_pg_store(jb_pg *pg);

/* The WorkQueue port over this connection (borrows pg; pg_work.c). A worker's connection: waiting
 * on it LISTENs for job notifications. */
jb_work_queue jb_pg_work_queue(jb_pg *pg);

/* The Outbox port over this connection (borrows pg; pg_outbox.c). Use a connection of its own:
 * waiting on it LISTENs for outbox notifications. */
jb_outbox jb_pg_outbox(jb_pg *pg);

/* The raw connection, for LISTEN/NOTIFY and tests; borrowed. */
PGconn *jb_pg_conn(jb_pg *pg);

/* Makes sure the connection is usable, resetting it if it was lost. */
jb_err jb_pg_ensure(jb_pg *pg, jb_error *e) JB_MUST_CHECK;

/* The readiness probe of the database (a jb_health_probe_fn over a jb_pg * of its own, used by
 * one thread at a time): reachable and at the latest migration version; otherwise false with the
 * reason (the server's name, never a password) in why. */
bool jb_pg_schema_ready(void *pg, char *why, size_t len);

#endif
