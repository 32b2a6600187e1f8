/* The PostgreSQL adapter's metrics (pg_metrics.h). */
#include "postgres/pg_metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/log.h"
#include "jobbridge/metrics.h"
#include "postgres/pg_internal.h"

typedef struct families {
  jb_metric_family *conns, *connects, *waiting, *running, *depth, *age, *scrape_ok;
} families;

static families fam;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void make_families(void) {
  jb_metrics *m = jb_metrics_global();
  static const char *const kind_result[] = {"kind", "result", NULL};
  static const char *const queue_status[] = {"queue", "status", NULL};
  static const char *const queue[] = {"queue", NULL};
  fam.conns = jb_metrics_gauge(m, "jobbridge_db_connections",
                               "Connections to PostgreSQL open and usable now.", NULL);
  fam.connects = jb_metrics_counter(
      m, "jobbridge_db_connects_total",
      "Attempts to connect to PostgreSQL, by kind (connect, reconnect) and result (ok, failed).",
      kind_result);
  fam.waiting = jb_metrics_gauge(
      m, "jobbridge_jobs_waiting",
      "Jobs waiting to run, by queue and status (PENDING, SCHEDULED, RETRYING); cached, "
      "refreshed at most every few seconds.",
      queue_status);
  fam.running =
      jb_metrics_gauge(m, "jobbridge_jobs_running",
                       "Jobs RUNNING, by queue; cached like jobbridge_jobs_waiting.", queue);
  fam.depth =
      jb_metrics_gauge(m, "jobbridge_outbox_depth",
                       "Job events in the outbox not yet published and confirmed; cached.", NULL);
  fam.age =
      jb_metrics_gauge(m, "jobbridge_outbox_oldest_age_seconds",
                       "Age of the oldest job event in the outbox (0 when empty); cached.", NULL);
  fam.scrape_ok = jb_metrics_gauge(
      m, "jobbridge_db_scrape_success",
      "1 when the last refresh of the cached queue gauges read the database, else 0.", NULL);
}

static const families *get(void) {
  pthread_once(&once, make_families);
  return &fam;
}

void jb_pg_metrics_connect(bool reconnect, bool ok) {
  const families *f = get();
  jb_metric_inc(
      jb_metric_get2(f->connects, reconnect ? "reconnect" : "connect", ok ? "ok" : "failed"));
  if (ok) jb_metric_gauge_add(jb_metric_get0(f->conns), 1);
}

void jb_pg_metrics_down(void) {
  jb_metric_gauge_add(jb_metric_get0(get()->conns), -1);
}

/* ---- the cached queue gauges ---- */

/* Reads only waiting and running jobs, through the partial indexes on those statuses (never the
 * finished jobs), and the outbox, which holds only unpublished events. */
static const char waiting_sql[] =
    "SELECT queue_name, status, count(*) FROM jobs\n"
    "  WHERE status IN ('PENDING','SCHEDULED','RETRYING') GROUP BY 1, 2\n"
    "UNION ALL SELECT queue_name, 'RUNNING', count(*) FROM jobs WHERE status = 'RUNNING'\n"
    "  GROUP BY 1";
static const char outbox_sql[] =
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox";

typedef struct watch {
  jb_pg *pg;
  double max_age_s;
  int64_t last_ms; /* jb_mono_ms() of the last refresh; 0: never */
} watch;

static watch *watching;

static bool query(jb_pg *pg, const char *sql, PGresult **res, jb_error *e) {
  if (jb_pg_ensure(pg, e) != JB_OK) return false;
  *res = PQexec(pg->conn, sql);
  if (PQresultStatus(*res) == PGRES_TUPLES_OK) return true;
  jb_pg_result_error(pg, *res, "the metrics query", e);
  PQclear(*res);
  *res = NULL;
  return false;
}

static bool refresh(jb_pg *pg, const families *f, jb_error *e) {
  PGresult *res = NULL;
  if (!query(pg, waiting_sql, &res, e)) return false;
  jb_metric_family_zero(f->waiting);
  jb_metric_family_zero(f->running);
  for (int i = 0; i < PQntuples(res); i++) {
    const char *q = PQgetvalue(res, i, 0), *st = PQgetvalue(res, i, 1);
    double n = strtod(PQgetvalue(res, i, 2), NULL);
    if (strcmp(st, "RUNNING") == 0)
      jb_metric_set(jb_metric_get1(f->running, q), n);
    else
      jb_metric_set(jb_metric_get2(f->waiting, q, st), n);
  }
  PQclear(res);
  if (!query(pg, outbox_sql, &res, e)) return false;
  jb_metric_set(jb_metric_get0(f->depth), strtod(PQgetvalue(res, 0, 0), NULL));
  jb_metric_set(jb_metric_get0(f->age), strtod(PQgetvalue(res, 0, 1), NULL));
  PQclear(res);
  return true;
}

static void collect(void *arg) {
  watch *w = arg;
  int64_t now = jb_mono_ms();
  if (w->last_ms != 0 && (double)(now - w->last_ms) < w->max_age_s * 1000) return;
  w->last_ms = now;
  const families *f = get();
  jb_error e;
  jb_error_clear(&e);
  bool ok = refresh(w->pg, f, &e);
  jb_metric_set(jb_metric_get0(f->scrape_ok), ok ? 1 : 0);
  if (!ok)
    jb_log(JB_LOG_WARN, "metrics: cannot read the queue gauges; they keep their last values",
           "error", e.msg, JB_LOG_END);
}

bool jb_pg_metrics_watch(jb_pg *pg, double max_age_s) {
  const families *f = get();
  watch *w = calloc(1, sizeof *w);
  if (w == NULL) return false;
  *w = (watch){pg, max_age_s, 0};
  jb_metric_set(jb_metric_get0(f->depth), 0);
  jb_metric_set(jb_metric_get0(f->age), 0);
  if (!jb_metrics_add_collector(jb_metrics_global(), collect, w)) {
    free(w);
    return false;
  }
  watching = w;
  return true;
}

void jb_pg_metrics_unwatch(jb_pg *pg) {
  if (watching == NULL || watching->pg != pg) return;
  jb_metrics_remove_collector(jb_metrics_global(), collect, watching);
  free(watching);
  watching = NULL;
}
