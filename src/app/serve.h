/* `jobbridge run`'s components: what serve() starts, in order, and stops, by stage. */
#ifndef JB_APP_SERVE_H
#define JB_APP_SERVE_H

#include <stddef.h>

#include "amqp/mq_trigger.h"
#include "amqp/outbox_relay.h"
#include "http/http.h"
#include "jobbridge/coalesce.h"
#include "jobbridge/job_service.h"
#include "jobbridge/retention.h"
#include "jobbridge/router.h"
#include "jobbridge/schedule.h"
#include "jobbridge/worker_pool.h"
#include "postgres/pg.h"

/* When a component stops on shutdown, README's "Shutdown" order: each stage's components stop
 * (and finish what they hold) before the next stage begins. */
typedef enum {
  STOP_INTAKE = 1, /* no new work in: triggers finish and ack the batch in hand */
  STOP_WORK,       /* no new claims: running handlers get the grace period */
  STOP_EVENTS_OUT, /* the outbox is flushed */
} jb_stop_stage;

/* What the components share: the config, this instance's name, and each component's object
 * (NULL until built; owned here, released by the component's destroy). */
typedef struct jb_wiring {
  const jb_config *cfg; /* borrowed */
  char instance[128];
  jb_pg **pgs; /* every connection; each component gets its own slice */
  jb_outbox_relay *relay;
  jb_worker_pool *pool; /* NULL when workers are disabled */
  jb_job_service *svcs; /* one per ingest consumer */
  jb_job_creator *creators;
  jb_job_store *ingest_stores; /* one per ingest consumer: backpressure's count */
  jb_router *router; /* the mapping table every event trigger routes through; SIGHUP reloads it */
  jb_mq_trigger *trigger;
  jb_job_service *http_svcs;  /* the HTTP server's: one per connection, then the committers' */
  jb_job_creator *http_inner; /* the committers' creators (over the last http_svcs) */
  jb_coalescer *http_creator; /* group commit of the HTTP server's job creation */
  jb_http_deps http_deps;
  jb_http_server *http;            /* NULL when http.listen is null */
  struct jb_health_slot *db_probe; /* /readyz's database check, on the HTTP's last connection */
  jb_job_service sched_svc;        /* the schedule trigger's, over its own connection */
  jb_schedule_trigger *schedules;  /* always built: SIGHUP may add schedules */
  jb_pg *metrics_pg;     /* the cached queue gauges' connection (serve_metrics.c), or NULL */
  jb_retainer *retainer; /* NULL when no retention.* is set */
} jb_wiring;

/* One piece of a running jobbridge. Components are built and started in list order; on
 * shutdown they stop by stage (list order within a stage) and are destroyed in reverse order. */
typedef struct jb_component {
  const char *name;
  jb_stop_stage stage;
  /* How many database connections it needs (each used by one of its threads only). */
  size_t (*connections)(const jb_config *cfg);
  /* Builds it over pgs[0..connections) (borrowed; they outlive it). */
  jb_err (*create)(jb_wiring *w, jb_pg **pgs, jb_error *e);
  jb_err (*start)(jb_wiring *w, jb_error *e);
  void (*stop)(jb_wiring *w);    /* logs what it does; finishes what is in hand */
  void (*destroy)(jb_wiring *w); /* stops if still running, then frees; safe on a failed create */
} jb_component;

/* The "metrics" component (serve_metrics.c). */
size_t jb_metrics_connections(const jb_config *cfg);
jb_err jb_metrics_create(jb_wiring *w, jb_pg **pgs, jb_error *e);
jb_err jb_metrics_start(jb_wiring *w, jb_error *e);
void jb_metrics_stop(jb_wiring *w);
void jb_metrics_destroy(jb_wiring *w);

/* The components of `jobbridge run`, in start order. */
extern const jb_component jb_components[];
extern const size_t jb_ncomponents;

#endif
