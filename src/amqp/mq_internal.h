/* The MessageQueueTrigger's state, shared by its files: mq_trigger.c (consuming, batching,
 * acks), mq_dead_letter.c (the dead-letter path); mq_batch.c decides. Private to src/amqp. */
#ifndef JB_AMQP_MQ_INTERNAL_H
#define JB_AMQP_MQ_INTERNAL_H

#include <amqp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "amqp/mq_batch.h"
#include "amqp/mq_trigger.h"
#include "jobbridge/event.h"
#include "jobbridge/router.h"
#include "jobbridge/stop.h"

#define CH 1 /* the channel of every connection here */

/* One delivery waiting to be settled: the envelope, kept whole (it owns its memory) so a bad
 * event can be republished with its original properties, and its batch state (mq_batch.h). */
typedef struct pending {
  jb_batch_item b;
  amqp_envelope_t env;
  jb_time received_at;
} pending;

typedef struct consumer {
  struct jb_mq_trigger *t;
  int index;
  pthread_t thread;
  jb_job_creator *creator;
  amqp_connection_state_t conn; /* consume + ack */
  struct jb_health_slot *alive; /* this thread's heartbeat (jobbridge/health.h) */
  struct jb_health_slot *ready; /* connected and consuming */
  amqp_connection_state_t pub;  /* dead-letter publishes, confirm mode */
  size_t node, pub_node;        /* the cluster node each connection tries first (amqp_conn.h) */
  uint64_t pub_seq;             /* publishes on the pub channel since it opened */
  uint64_t pub_confirmed;       /* of those, confirmed by the broker */
  pending *pend;
  size_t n, cap;
  size_t n_held;          /* of the pending deliveries, those held (recounted by ack_settled) */
  jb_time first_at;       /* when the oldest pending delivery not held arrived */
  jb_time retry_at;       /* no job creation before this (the database failed, or memory ran out) */
  jb_time dl_retry_at;    /* no dead-letter publish before this (the dead-letter path failed):
                           * held deliveries wait for it, good ones never do */
  jb_time pub_service_at; /* when the idle dead-letter connection is next serviced */
  long db_backoff_ms;
  long dl_backoff_ms;
  long amqp_backoff_ms;
} consumer;

struct jb_mq_trigger {
  const jb_amqp_cfg *amqp;     /* the broker, amqp.input (borrowed) */
  const jb_ingest_cfg *ingest; /* batching (borrowed) */
  jb_router *router;           /* borrowed: the mapping table, shared with the other triggers */
  consumer *consumers;
  size_t n;
  jb_stop stop; /* requested by trigger_stop; every consumer polls it where it waits */
  atomic_bool running;
  atomic_uint_fast64_t received, created, duplicates, dead_lettered, held, acked;
  atomic_uint_fast64_t ev_created, ev_duplicate; /* events stored, by outcome (metrics) */
};

/* Keeps the idle dead-letter connection alive (see mq_dead_letter.c). */
void jb_mq_service_publisher(consumer *c, jb_time now);

/* Dead-letters the selected deliveries of a chunk (jb_batch_item_dead_letters: the held ones
 * when held_only, else the bad ones not held yet), each with a confirm; holds them when that
 * fails. False when held. */
bool jb_mq_settle_bad(consumer *c, pending *chunk, size_t n, bool held_only);

#endif
