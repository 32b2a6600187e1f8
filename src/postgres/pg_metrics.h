/* The PostgreSQL adapter's metrics (registered in jb_metrics_global): connections open and
 * connection attempts, and the cached scrape query behind the queue gauges. */
#ifndef JB_POSTGRES_PG_METRICS_H
#define JB_POSTGRES_PG_METRICS_H

#include <stdbool.h>

#include "postgres/pg.h"

/* A connection attempt's end (first connect or reconnect); ok: open until jb_pg_metrics_down. */
void jb_pg_metrics_connect(bool reconnect, bool ok);
void jb_pg_metrics_down(void);

/* Registers the queue gauges (jobbridge_jobs_waiting, jobbridge_jobs_running,
 * jobbridge_outbox_depth, jobbridge_outbox_oldest_age_seconds) and a collector that refreshes
 * them over pg (borrowed; used only by the collector, one scrape at a time) when the last
 * refresh is older than max_age_s. Undo with jb_pg_metrics_unwatch before closing pg. */
bool jb_pg_metrics_watch(jb_pg *pg, double max_age_s);
void jb_pg_metrics_unwatch(jb_pg *pg);

#endif
