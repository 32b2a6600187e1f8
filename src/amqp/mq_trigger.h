/* The MessageQueueTrigger: consumes events from RabbitMQ and creates jobs through JobCreators. */
#ifndef JB_MQ_TRIGGER_H
#define JB_MQ_TRIGGER_H

#include <stdint.h>

#include "jobbridge/config.h"
#include "jobbridge/job_creator.h"
#include "jobbridge/job_store.h"
#include "jobbridge/job_trigger.h"
#include "jobbridge/router.h"

typedef struct jb_mq_trigger jb_mq_trigger;

/* Counters since start (read at any time from any thread). */
typedef struct jb_mq_stats {
  uint64_t received;      /* deliveries taken from the queue */
  uint64_t jobs_created;  /* new job rows */
  uint64_t duplicates;    /* job requests that matched an existing dedupe key */
  uint64_t dead_lettered; /* events republished to the dead-letter exchange */
  uint64_t held;          /* bad events held unacked (to try again) because their dead letter
                           * could not be published; none is ever rejected without its reason */
  uint64_t acked;         /* deliveries acknowledged */
  bool paused;            /* backpressure: consuming is paused now (ingest.max_waiting) */
  uint64_t pauses;        /* times backpressure paused consuming */
  int64_t waiting;        /* backpressure's last count of waiting jobs (bounded by max_waiting) */
} jb_mq_stats;

/* A trigger with one consumer thread per creator (each creator must own its own database
 * connection: it is used by that thread only). Events become job requests through router (its
 * mapping table; reloads go through the router). amqp (the broker, amqp.input.*), ingest
 * (batching), router and creators are borrowed and must outlive the trigger. */
jb_err jb_mq_trigger_new(const jb_amqp_cfg *amqp, const jb_ingest_cfg *ingest, jb_router *router,
                         jb_job_creator *creators, size_t n, jb_mq_trigger **out,
                         jb_error *e) JB_MUST_CHECK;

/* Backpressure (ingest.max_waiting): n stores (as many as creators; stores[i] on the same
 * database connection as creators[i], used by that consumer's thread only) to count waiting jobs
 * with. Call before start; without it backpressure is off. Borrowed. */
void jb_mq_trigger_set_backlog(jb_mq_trigger *t, const jb_job_store *stores);

/* The JobTrigger port (start, stop, is_running) of this trigger. */
jb_job_trigger jb_mq_trigger_port(jb_mq_trigger *t);

jb_mq_stats jb_mq_trigger_stats(jb_mq_trigger *t);

/* Stops (if running) and frees. */
void jb_mq_trigger_free(jb_mq_trigger *t);

#endif
