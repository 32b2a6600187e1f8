/* The MessageQueueTrigger's decisions over a chunk of deliveries, apart from any I/O: which
 * deliveries become jobs (through the JobCreator), which are dead-lettered and why, which stay
 * unacked to be tried again, which are acked. No rabbitmq-c here: the trigger embeds a
 * jb_batch_item in each of its delivery records and does the publishing and acking; unit tests
 * drive these functions with fake deliveries and a recording JobCreator. */
#ifndef JB_AMQP_MQ_BATCH_H
#define JB_AMQP_MQ_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/job_creator.h"
#include "jobbridge/router.h"

/* One delivery's state while it waits to be settled. Zero-initialise. */
typedef struct jb_batch_item {
  bool bad;     /* to be dead-lettered with `reason` */
  bool held;    /* bad, and its dead letter failed: only the republish is tried again */
  bool stored;  /* its jobs are committed (one by one, before a transient failure): never
                 * created again, only acked */
  bool settled; /* to be acked at the end of this flush */
  bool retry;   /* could not be prepared (out of memory): neither good nor bad yet; stays
                 * unacked and is prepared again after a backoff, never dead-lettered */
  char reason[640];
  jb_routed routed; /* the event and its job requests (these point into a held route table) */
} jb_batch_item;

/* n items `stride` bytes apart: each is embedded in the caller's own delivery record. */
typedef struct jb_batch {
  jb_batch_item *first;
  size_t stride;
  size_t n;
} jb_batch;

static inline jb_batch_item *jb_batch_at(jb_batch b, size_t i) {
  return (jb_batch_item *)((char *)b.first + i * b.stride);
}

/* The first n items of b. */
static inline jb_batch jb_batch_head(jb_batch b, size_t n) {
  return (jb_batch){b.first, b.stride, n};
}

/* Where the next chunk of pending items ends: it takes up to batch_max items not held, and
 * carries the held ones among them along (not counted: they never block good ones). 0 when no
 * item is ready. */
size_t jb_batch_chunk_end(jb_batch pending, size_t batch_max);

/* Starts preparing it: false when it is to be left as it is (held: its reason is known;
 * stored: its jobs are committed); else clears its last routing and flags and returns true.
 * The caller then marks it bad (with a reason), retry, or calls jb_batch_item_route. */
bool jb_batch_item_begin(jb_batch_item *it);

/* Routes it through t with its delivery facts: good, bad with the router's reason, or retry
 * (out of memory). */
void jb_batch_item_route(jb_batch_item *it, const jb_route_table *t, const jb_delivery_facts *f);

/* Whether it is dead-lettered now: the held ones (held_only, their retry), else the bad ones
 * not held yet. */
bool jb_batch_item_dead_letters(const jb_batch_item *it, bool held_only);

/* The trigger's dead-letter path: publishes every item of chunk for which
 * jb_batch_item_dead_letters(it, false) holds, and marks `held` each one it could not
 * publish (kept unacked with its reason). False when any is held. */
typedef bool (*jb_batch_dead_letter_fn)(void *ctx, jb_batch chunk);

typedef struct jb_batch_result {
  bool db_failed;      /* creation failed for a reason not the data's (why says): only stored
                        * items are settled; the rest wait for a backoff */
  size_t unprepared;   /* items that ran out of memory (retry): they wait for a backoff */
  bool held;           /* some dead letters could not be published (held) */
  uint64_t created;    /* new job rows */
  uint64_t duplicates; /* requests whose dedupe key was already stored */
  /* Events stored: those that made at least one new job, and those whose every job existed. */
  uint64_t events_created, events_duplicate;
} jb_batch_result;

/* Settles a prepared chunk: creates the jobs of its good items not stored yet in one call (one
 * transaction); when the creator refuses the data, one call per item so a poison event is
 * dead-lettered ("job creation refused: ...") and the rest still become jobs, stopping at the
 * first transient error. Unless that happened, the bad items go to dead_letter. Then marks
 * `settled` (to be acked) every item that is stored, or (no transient error) neither held nor
 * retry. */
jb_batch_result jb_batch_settle(jb_batch chunk, const jb_job_creator *creator,
                                jb_batch_dead_letter_fn dead_letter, void *ctx, jb_error *why);

/* How many items at the front of b are settled: a multiple-ack of the last of them covers them
 * all; a settled item after an unsettled one is acked alone. */
size_t jb_batch_settled_prefix(jb_batch b);

/* Drops the job requests of b's items (they point into the route table about to be released)
 * and their events, except a held item's (its id is logged when it is dead-lettered). They are
 * routed again before their next creation. */
void jb_batch_drop_routes(jb_batch b);

#endif
