/* The components `jobbridge run` wires: the outbox relay, the worker pool, the AMQP trigger.
 * Adding one (an HTTP server, a cron trigger) is one more entry in jb_components. */
#include "app/serve.h"

#include <stdio.h>
#include <stdlib.h>

#include "handlers/handlers.h"
#include "jobbridge/health.h"
#include "jobbridge/lifecycle.h"
#include "jobbridge/log.h"
#include "jobbridge/progress_token.h"
#include "postgres/pg_schedule.h"

/* ---- the outbox relay: one connection, stops last (flushes the events the others wrote) ---- */

static size_t relay_connections(const jb_config *cfg) {
  (void)cfg;
  return 1;
}

static jb_err relay_create(jb_wiring *w, jb_pg **pgs, jb_error *e) {
  return jb_outbox_relay_new(&w->cfg->amqp, jb_pg_outbox(pgs[0]), w->instance, &w->relay, e);
}

static jb_err relay_start(jb_wiring *w, jb_error *e) {
  return jb_outbox_relay_start(w->relay, e);
}

static void relay_stop(jb_wiring *w) {
  jb_log(JB_LOG_INFO, "stopping: flushing job events", JB_LOG_END);
  jb_outbox_relay_stop(w->relay, 10);
}

static void relay_destroy(jb_wiring *w) {
  jb_outbox_relay_free(w->relay);
  w->relay = NULL;
}

/* ---- the worker pool: a connection per worker plus its maintenance thread ---- */

static size_t workers_connections(const jb_config *cfg) {
  return cfg->workers.enabled ? jb_worker_pool_connections(cfg) : 0;
}

/* Builds the handler of every configured job type and hands each to the pool, which owns it
 * from then on (also when registering fails); the ones not yet handed over are released. */
static jb_err register_handlers(jb_worker_pool *pool, const jb_config *cfg, jb_error *e) {
  jb_job_handler *hs = NULL;
  jb_err rc = jb_handlers_from_config(cfg, &hs, e);
  size_t i = 0;
  for (; rc == JB_OK && i < cfg->job_types_len; i++)
    rc = jb_worker_pool_register(pool, cfg->job_types[i].name, hs[i], e);
  for (; rc != JB_OK && hs != NULL && i < cfg->job_types_len; i++) jb_job_handler_release(hs[i]);
  free(hs);
  return rc;
}

/* The workers' claims write job.started for the job types that ask for it (lifecycle.h). */
static jb_err started_events(const jb_config *cfg, jb_pg **pgs, size_t n, jb_error *e) {
  bool all;
  const char **types;
  size_t ntypes;
  jb_lifecycle_started_types(cfg, &all, &types, &ntypes);
  if (types == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory wiring lifecycle events");
  jb_err rc = JB_OK;
  for (size_t i = 0; rc == JB_OK && i < n; i++)
    rc = jb_pg_set_started_events(pgs[i], all, types, ntypes, e);
  free(types);
  return rc;
}

static jb_err workers_create(jb_wiring *w, jb_pg **pgs, jb_error *e) {
  size_t n = workers_connections(w->cfg);
  if (n == 0) return JB_OK; /* workers.enabled: false */
  jb_work_queue *queues = calloc(n, sizeof *queues);
  if (queues == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory wiring the worker pool");
  jb_err rc = started_events(w->cfg, pgs, n, e);
  for (size_t i = 0; i < n; i++) queues[i] = jb_pg_work_queue(pgs[i]);
  if (rc == JB_OK) rc = jb_worker_pool_new(w->cfg, w->instance, queues, n, &w->pool, e);
  free(queues); /* the pool copied the ports; the connections stay the wiring's */
  if (rc == JB_OK) rc = register_handlers(w->pool, w->cfg, e);
  return rc;
}

static jb_err workers_start(jb_wiring *w, jb_error *e) {
  return w->pool != NULL ? jb_worker_pool_start(w->pool, e) : JB_OK;
}

static void workers_stop(jb_wiring *w) {
  if (w->pool == NULL) {
    jb_log(JB_LOG_INFO, "workers are disabled in this instance (workers.enabled: false)",
           JB_LOG_END);
    return;
  }
  jb_log(JB_LOG_INFO, "stopping: waiting for running jobs", JB_LOG_END);
  jb_worker_pool_stop(w->pool, w->cfg->workers.shutdown_grace_s);
}

static void workers_destroy(jb_wiring *w) {
  if (w->pool != NULL) jb_worker_pool_free(w->pool);
  w->pool = NULL;
}

/* ---- the AMQP trigger: a connection (and a JobService) per consumer ---- */

static size_t ingest_connections(const jb_config *cfg) {
  return (size_t)cfg->ingest.consumers;
}

static jb_err ingest_create(jb_wiring *w, jb_pg **pgs, jb_error *e) {
  size_t n = ingest_connections(w->cfg);
  w->svcs = calloc(n ? n : 1, sizeof *w->svcs);
  w->creators = calloc(n ? n : 1, sizeof *w->creators);
  w->ingest_stores = calloc(n ? n : 1, sizeof *w->ingest_stores);
  if (w->svcs == NULL || w->creators == NULL || w->ingest_stores == NULL)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory wiring the ingest consumers");
  for (size_t i = 0; i < n; i++) {
    jb_job_service_init(&w->svcs[i], jb_pg_store(pgs[i]), jb_pg_work_queue(pgs[i]), w->cfg);
    /* Jobs due now go straight to idle workers of this instance, skipping the notification
     * and the claim; the others wait in the table for any instance's workers. */
    if (w->pool != NULL)
      jb_job_service_set_dispatcher(&w->svcs[i], jb_worker_pool_dispatcher(w->pool));
    w->creators[i] = jb_job_service_creator(&w->svcs[i]);
    w->ingest_stores[i] = jb_pg_store(pgs[i]);
  }
  jb_err rc = jb_router_new(w->cfg, &w->router, e);
  if (rc == JB_OK)
    rc = jb_mq_trigger_new(&w->cfg->amqp, &w->cfg->ingest, w->router, w->creators, n, &w->trigger,
                           e);
  if (rc == JB_OK) jb_mq_trigger_set_backlog(w->trigger, w->ingest_stores);
  return rc;
}

static jb_err ingest_start(jb_wiring *w, jb_error *e) {
  jb_job_trigger port = jb_mq_trigger_port(w->trigger);
  return port.ops->start(port.self, e);
}

static void log_totals(jb_mq_trigger *trigger) {
  jb_mq_stats st = jb_mq_trigger_stats(trigger);
  jb_log(JB_LOG_INFO, "ingest totals", JB_LOG_U64("received", st.received),
         JB_LOG_U64("jobs_created", st.jobs_created), JB_LOG_U64("duplicates", st.duplicates),
         JB_LOG_U64("dead_lettered", st.dead_lettered), JB_LOG_U64("dead_letters_held", st.held),
         JB_LOG_U64("acked", st.acked), JB_LOG_U64("backpressure_pauses", st.pauses), JB_LOG_END);
}

static void ingest_stop(jb_wiring *w) {
  jb_log(JB_LOG_INFO, "stopping: finishing the batch in hand", JB_LOG_END);
  jb_job_trigger port = jb_mq_trigger_port(w->trigger);
  port.ops->stop(port.self);
  log_totals(w->trigger);
}

static void ingest_destroy(jb_wiring *w) {
  jb_mq_trigger_free(w->trigger); /* before the services its consumers borrow */
  w->trigger = NULL;
  jb_router_free(w->router); /* after every trigger that routes through it */
  w->router = NULL;
  free(w->svcs);
  free(w->creators);
  free(w->ingest_stores);
  w->svcs = NULL;
  w->creators = NULL;
  w->ingest_stores = NULL;
}

/* ---- the HTTP server: a connection per job service lent to requests, one per committer of
 * the group commit that creates jobs (jobbridge/coalesce.h), and one for the readiness probe of
 * the database ---- */

/* Two committers: one gathers its group while the other is in its transaction. */
#define HTTP_COMMITTERS 2
/* A group holds at most this many jobs (a batch request of more goes alone). */
#define HTTP_MAX_GROUP 1000

static size_t http_connections(const jb_config *cfg) {
  return cfg->http.listen != NULL ? (size_t)cfg->http.db_connections + HTTP_COMMITTERS + 1 : 0;
}

static jb_err http_create(jb_wiring *w, jb_pg **pgs, jb_error *e) {
  /* Progress tokens are issued by handlers whether this instance serves HTTP or not. */
  if (jb_progress_token_set_secret(w->cfg->http.progress_key, e) != JB_OK) return e->code;
  size_t n = http_connections(w->cfg);
  if (n == 0) return JB_OK; /* http.listen: null */
  /* Checked when /readyz asks, at most once a second; on the last connection. */
  w->db_probe = jb_health_probe("database", jb_pg_schema_ready, pgs[--n], 1000);
  size_t nsvcs = n - HTTP_COMMITTERS;
  w->http_svcs = calloc(n, sizeof *w->http_svcs);
  w->http_inner = calloc(HTTP_COMMITTERS, sizeof *w->http_inner);
  if (w->http_svcs == NULL || w->http_inner == NULL)
    return jb_fail(e, JB_ERR_NOMEM, "out of memory wiring HTTP");
  for (size_t i = 0; i < n; i++) {
    jb_job_service_init(&w->http_svcs[i], jb_pg_store(pgs[i]), jb_pg_work_queue(pgs[i]), w->cfg);
    w->http_svcs[i].cancel_wait_ms = 0; /* POST .../cancel of a running job answers 202 at once */
  }
  for (size_t i = 0; i < HTTP_COMMITTERS; i++) {
    jb_job_service *svc = &w->http_svcs[nsvcs + i];
    if (w->pool != NULL) jb_job_service_set_dispatcher(svc, jb_worker_pool_dispatcher(w->pool));
    w->http_inner[i] = jb_job_service_creator(svc);
  }
  jb_err rc = jb_coalescer_new(w->http_inner, HTTP_COMMITTERS, &w->http_svcs[nsvcs], HTTP_MAX_GROUP,
                               &w->http_creator, e);
  if (rc != JB_OK) return rc;
  w->http_deps = (jb_http_deps){.cfg = w->cfg,
                                .instance = w->instance,
                                .router = w->router,
                                .creator = jb_coalescer_creator(w->http_creator),
                                .svcs = w->http_svcs,
                                .nsvcs = nsvcs};
  return jb_http_server_new(&w->http_deps, &w->http, e);
}

static jb_err http_start(jb_wiring *w, jb_error *e) {
  return w->http != NULL ? jb_http_server_start(w->http, e) : JB_OK;
}

static void http_stop(jb_wiring *w) {
  if (w->http == NULL) return;
  jb_log(JB_LOG_INFO, "stopping: answering the HTTP requests in progress", JB_LOG_END);
  jb_http_server_stop(w->http);
  jb_coalescer_stop(w->http_creator); /* after the server: no request is waiting on it */
}

static void http_destroy(jb_wiring *w) {
  jb_health_remove(w->db_probe);
  w->db_probe = NULL;
  jb_http_server_free(w->http);
  w->http = NULL;
  jb_coalescer_free(w->http_creator);
  w->http_creator = NULL;
  free(w->http_inner);
  w->http_inner = NULL;
  free(w->http_svcs);
  w->http_svcs = NULL;
}

/* ---- the schedule trigger: one thread, one connection (jobs and schedule_state) ---- */

static size_t schedules_connections(const jb_config *cfg) {
  (void)cfg;
  return 1; /* also with no schedules: a reload may add some */
}

static jb_err schedules_create(jb_wiring *w, jb_pg **pgs, jb_error *e) {
  jb_job_service_init(&w->sched_svc, jb_pg_store(pgs[0]), jb_pg_work_queue(pgs[0]), w->cfg);
  if (w->pool != NULL)
    jb_job_service_set_dispatcher(&w->sched_svc, jb_worker_pool_dispatcher(w->pool));
  return jb_schedule_trigger_new(w->cfg, jb_job_service_creator(&w->sched_svc),
                                 jb_pg_schedule_store(pgs[0]), &w->schedules, e);
}

static jb_err schedules_start(jb_wiring *w, jb_error *e) {
  jb_job_trigger port = jb_schedule_trigger_port(w->schedules);
  return port.ops->start(port.self, e);
}

static void schedules_stop(jb_wiring *w) {
  jb_job_trigger port = jb_schedule_trigger_port(w->schedules);
  port.ops->stop(port.self);
}

static void schedules_destroy(jb_wiring *w) {
  jb_schedule_trigger_free(w->schedules);
  w->schedules = NULL;
}

/* ---- retention: one connection, pruning while this instance holds the pruning lock ---- */

static size_t retention_connections(const jb_config *cfg) {
  return jb_retention_enabled(&cfg->retention) ? 1 : 0;
}

static jb_err retention_create(jb_wiring *w, jb_pg **pgs, jb_error *e) {
  if (retention_connections(w->cfg) == 0) return JB_OK;
  return jb_retainer_new(jb_pg_retention(pgs[0]), w->cfg, &w->retainer, e);
}

static jb_err retention_start(jb_wiring *w, jb_error *e) {
  return w->retainer != NULL ? jb_retainer_start(w->retainer, e) : JB_OK;
}

static void retention_stop(jb_wiring *w) {
  if (w->retainer == NULL) return;
  jb_retainer_stop(w->retainer);
  const jb_retention_stats *s = jb_retainer_stats(w->retainer);
  jb_log(JB_LOG_INFO, "retention totals", JB_LOG_U64("runs", s->runs),
         JB_LOG_U64("completed", s->completed), JB_LOG_U64("failed", s->failed),
         JB_LOG_U64("dead_letter", s->dead_letter), JB_LOG_U64("attempts", s->attempts),
         JB_LOG_U64("outbox", s->outbox), JB_LOG_U64("errors", s->errors), JB_LOG_END);
}

static void retention_destroy(jb_wiring *w) {
  jb_retainer_free(w->retainer);
  w->retainer = NULL;
}

/* Start order: the relay first (the others write events), the workers before ingest (ingest
 * hands jobs to idle workers), HTTP after ingest (its webhooks route through ingest's router). The
 * stages give README's shutdown order. */
const jb_component jb_components[] = {
    {"outbox relay", STOP_EVENTS_OUT, relay_connections, relay_create, relay_start, relay_stop,
     relay_destroy},
    {"workers", STOP_WORK, workers_connections, workers_create, workers_start, workers_stop,
     workers_destroy},
    {"ingest", STOP_INTAKE, ingest_connections, ingest_create, ingest_start, ingest_stop,
     ingest_destroy},
    {"http", STOP_INTAKE, http_connections, http_create, http_start, http_stop, http_destroy},
    {"schedules", STOP_INTAKE, schedules_connections, schedules_create, schedules_start,
     schedules_stop, schedules_destroy},
    {"metrics", STOP_EVENTS_OUT, jb_metrics_connections, jb_metrics_create, jb_metrics_start,
     jb_metrics_stop, jb_metrics_destroy},
    {"retention", STOP_INTAKE, retention_connections, retention_create, retention_start,
     retention_stop, retention_destroy},
};
const size_t jb_ncomponents = sizeof jb_components / sizeof jb_components[0];
