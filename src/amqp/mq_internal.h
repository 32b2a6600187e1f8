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
#include "jobbridge/job_store.h"
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
  const jb_job_store *store; /* backpressure's count (mq_backpressure.c); NULL: none. Borrowed,
                              * on this consumer's database connection: this thread only */
  bool consuming;            /* basic.consume is active on conn (false: paused by backpressure) */
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
  /* Backpressure (mq_backpressure.c): the shared decision every consumer follows. */
  atomic_bool bp_paused;
  atomic_int_fast64_t bp_next_check_ms; /* monotonic ms of the next count; a CAS picks who */
  atomic_int_fast64_t bp_waiting;       /* the last count (bounded by ingest.max_waiting) */
  atomic_uint_fast64_t bp_created_seen; /* `created` when it was taken */
  atomic_uint_fast64_t bp_pauses;       /* times consuming was paused */
};

/* Backpressure: counts the waiting jobs (at most once a second, by whichever consumer comes
 * first), decides pause or resume for all, and makes this consumer follow: basic.cancel or
 * basic.consume on its connection. False when the connection failed (drop it). */
bool jb_mq_backpressure(consumer *c, const char **why);

/* Starts consuming on c's connection (basic.consume with tag "jobbridge-<index>"). */
jb_err jb_mq_consume(consumer *c, jb_error *e);

/* Declares the durable queue named after the dead-letter exchange on c's consuming connection,
 * of the input queue's type (see mq_dead_letter.c). */
jb_err jb_mq_declare_dead_letter_queue(consumer *c, jb_error *e);

/* Keeps the idle dead-letter connection alive (see mq_dead_letter.c). */
void jb_mq_service_publisher(consumer *c, jb_time now);

/* Dead-letters the selected deliveries of a chunk (jb_batch_item_dead_letters: the held ones
 * when held_only, else the bad ones not held yet), each with a confirm; holds them when that
 * fails. False when held. */
bool jb_mq_settle_bad(consumer *c, pending *chunk, size_t n, bool held_only);

#endif
