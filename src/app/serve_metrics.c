/* The "metrics" component of `jobbridge run` (serve.h): with HTTP on, the process figures and
 * the cached queue gauges, over one database connection of its own that only the scrape's
 * collector uses (one scrape at a time: the registry serializes them). */
#include "app/serve.h"
#include "jobbridge/process_metrics.h"
#include "jobbridge/time_metrics.h"
#include "postgres/pg_metrics.h"

/* The queue gauges are read from the database at most this often, however often Prometheus
 * scrapes. */
#define QUEUE_GAUGES_MAX_AGE_S 5.0

size_t jb_metrics_connections(const jb_config *cfg) {
  return cfg->http.listen != NULL ? 1 : 0;
}

jb_err jb_metrics_create(jb_wiring *w, jb_pg **pgs, jb_error *e) {
  if (jb_metrics_connections(w->cfg) == 0) return JB_OK;
  if (!jb_process_metrics_register(jb_metrics_global()) ||
      !jb_pg_metrics_watch(pgs[0], QUEUE_GAUGES_MAX_AGE_S))
    return jb_fail(e, JB_ERR_NOMEM, "out of memory registering the metrics");
  jb_lifecycle_metrics_register(); /* written by claims and creations, counted there */
  w->metrics_pg = pgs[0];
  return JB_OK;
}

jb_err jb_metrics_start(jb_wiring *w, jb_error *e) {
  (void)w;
  (void)e;
  return JB_OK;
}

void jb_metrics_stop(jb_wiring *w) {
  (void)w;
}

void jb_metrics_destroy(jb_wiring *w) {
  if (w->metrics_pg != NULL) jb_pg_metrics_unwatch(w->metrics_pg);
  w->metrics_pg = NULL;
}
