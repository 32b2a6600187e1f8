/* The AMQP adapter's metrics (registered in jb_metrics_global): the trigger's event totals (read
 * from its atomics at scrape time: nothing is added on the ingest path), dead letters by reason
 * class, broker connections, and the outbox relay's publishes. Private to src/amqp. */
#ifndef JB_AMQP_MQ_METRICS_H
#define JB_AMQP_MQ_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "jobbridge/metrics.h"

struct jb_mq_trigger;

/* The trigger's totals become counters at every scrape, until unregistered (before it is
 * freed). */
void jb_mq_metrics_register(struct jb_mq_trigger *t);
void jb_mq_metrics_unregister(struct jb_mq_trigger *t);
/* One event dead-lettered, with its reason (its class is the label). */
void jb_mq_metrics_dead_lettered(const char *reason);

/* A connection attempt's end (ok: open and counted until jb_amqp_metrics_closed). */
void jb_amqp_metrics_connect(bool ok);
void jb_amqp_metrics_closed(void);

/* The relay's series: rows published and confirmed, and each row's lag (outbox commit to
 * publish). */
typedef struct jb_relay_metrics {
  jb_metric *published; /* counter */
  jb_metric *lag;       /* histogram, seconds */
} jb_relay_metrics;
jb_relay_metrics jb_relay_metrics_get(void);

#endif
