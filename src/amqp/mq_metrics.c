/* The AMQP adapter's metrics (mq_metrics.h). */
#include "amqp/mq_metrics.h"

#include <pthread.h>

#include "amqp/mq_internal.h"
#include "jobbridge/job_metrics.h"

typedef struct families {
  jb_metric_family *received, *events, *dead, *conns, *connects, *published, *lag;
  jb_metric_family *paused, *pauses, *waiting;
} families;

static families fam;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const double lag_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                    0.5,   1,      2.5,   5,    10,    30,   60,  300};

static void make_families(void) {
  jb_metrics *m = jb_metrics_global();
  static const char *const trigger[] = {"trigger", NULL};
  static const char *const outcome[] = {"trigger", "outcome", NULL};
  static const char *const reason[] = {"trigger", "reason", NULL};
  static const char *const result[] = {"result", NULL};
  fam.received = jb_metrics_counter(m, "jobbridge_events_received_total",
                                    "Event deliveries received, by trigger.", trigger);
  fam.events = jb_metrics_counter(
      m, "jobbridge_events_total",
      "Events settled, by trigger and outcome: created (made at least one new job), duplicate "
      "(every job it maps to existed), dead_lettered.",
      outcome);
  fam.dead = jb_metrics_counter(
      m, "jobbridge_events_dead_lettered_total",
      "Events dead-lettered, by trigger and reason class (malformed, too_large, no_mapping, "
      "refused, invalid).",
      reason);
  fam.conns = jb_metrics_gauge(m, "jobbridge_amqp_connections",
                               "Connections to the broker open now.", NULL);
  fam.connects = jb_metrics_counter(
      m, "jobbridge_amqp_connects_total",
      "Attempts to connect to the broker (first connections and reconnects), by result.", result);
  fam.published = jb_metrics_counter(m, "jobbridge_outbox_published_total",
                                     "Job events published and confirmed by the broker.", NULL);
  fam.paused = jb_metrics_gauge(
      m, "jobbridge_ingest_paused",
      "1 while ingest is paused by backpressure (ingest.max_waiting), else 0.", NULL);
  fam.pauses = jb_metrics_counter(m, "jobbridge_ingest_backpressure_pauses_total",
                                  "Times ingest was paused by backpressure.", NULL);
  fam.waiting = jb_metrics_gauge(
      m, "jobbridge_ingest_waiting_jobs",
      "Waiting jobs of the mappings' queues at backpressure's last count (bounded by "
      "ingest.max_waiting; 0 when backpressure is off).",
      NULL);
  fam.lag = jb_metrics_histogram(
      m, "jobbridge_outbox_publish_lag_seconds",
      "From a job event's commit into the outbox to its publish to the broker.", NULL, lag_bounds,
      sizeof lag_bounds / sizeof lag_bounds[0]);
}

static const families *get(void) {
  pthread_once(&once, make_families);
  return &fam;
}

static void collect(void *arg) {
  jb_mq_trigger *t = arg;
  const families *f = get();
  jb_metric_set_total(jb_metric_get1(f->received, "amqp"), atomic_load(&t->received));
  jb_metric_set_total(jb_metric_get2(f->events, "amqp", "created"), atomic_load(&t->ev_created));
  jb_metric_set_total(jb_metric_get2(f->events, "amqp", "duplicate"),
                      atomic_load(&t->ev_duplicate));
  jb_metric_set_total(jb_metric_get2(f->events, "amqp", "dead_lettered"),
                      atomic_load(&t->dead_lettered));
  jb_metric_set(jb_metric_get0(f->paused), atomic_load(&t->bp_paused) ? 1 : 0);
  jb_metric_set_total(jb_metric_get0(f->pauses), atomic_load(&t->bp_pauses));
  jb_metric_set(jb_metric_get0(f->waiting), (double)atomic_load(&t->bp_waiting));
}

void jb_mq_metrics_register(jb_mq_trigger *t) {
  get();
  collect(t); /* the series exist from the start, at 0 */
  jb_metrics_add_collector(jb_metrics_global(), collect, t);
}

void jb_mq_metrics_unregister(jb_mq_trigger *t) {
  jb_metrics_remove_collector(jb_metrics_global(), collect, t);
}

void jb_mq_metrics_dead_lettered(const char *reason) {
  jb_metric_inc(jb_metric_get2(get()->dead, "amqp", jb_metrics_reason_class(reason)));
}

void jb_amqp_metrics_connect(bool ok) {
  const families *f = get();
  jb_metric_inc(jb_metric_get1(f->connects, ok ? "ok" : "failed"));
  if (ok) jb_metric_gauge_add(jb_metric_get0(f->conns), 1);
}

void jb_amqp_metrics_closed(void) {
  jb_metric_gauge_add(jb_metric_get0(get()->conns), -1);
}

jb_relay_metrics jb_relay_metrics_get(void) {
  const families *f = get();
  return (jb_relay_metrics){jb_metric_get0(f->published), jb_metric_get0(f->lag)};
}
