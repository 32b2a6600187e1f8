/* The MessageQueueTrigger: consumes events from RabbitMQ and creates jobs through JobCreators. */
#ifndef JB_MQ_TRIGGER_H
#define JB_MQ_TRIGGER_H

#include <stdint.h>

#include "jobbridge/config.h"
#include "jobbridge/job_creator.h"
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
} jb_mq_stats;

/* A trigger with one consumer thread per creator (each creator must own its own database
 * connection: it is used by that thread only). Events become job requests through router (its
 * mapping table; reloads go through the router). amqp (the broker, amqp.input.*), ingest
 * (batching), router and creators are borrowed and must outlive the trigger. */
jb_err jb_mq_trigger_new(const jb_amqp_cfg *amqp, const jb_ingest_cfg *ingest, jb_router *router,
                         jb_job_creator *creators, size_t n, jb_mq_trigger **out,
                         jb_error *e) JB_MUST_CHECK;

/* The JobTrigger port (start, stop, is_running) of this trigger. */
jb_job_trigger jb_mq_trigger_port(jb_mq_trigger *t);

jb_mq_stats jb_mq_trigger_stats(jb_mq_trigger *t);

/* Stops (if running) and frees. */
void jb_mq_trigger_free(jb_mq_trigger *t);

#endif
