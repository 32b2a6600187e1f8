/* The router: the domain's mapping table and the step that turns one incoming event into job
 * requests. Every event trigger (AMQP today, webhooks next) routes through it, so a mapping
 * behaves the same whichever way an event arrives. Pure code: no broker, no database.
 *
 * The table is replaced on reload (SIGHUP) while triggers keep routing: a reader takes the
 * current table with jb_router_acquire, routes any number of events with it, and gives it back
 * with jb_router_release once nothing it routed is used any more (job requests point into the
 * table). A reload never waits for readers and never frees a table one of them holds. */
#ifndef JOBBRIDGE_ROUTER_H
#define JOBBRIDGE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/config.h"
#include "jobbridge/event.h"

typedef struct jb_router jb_router;

/* One mapping table held by a reader (refcounted). Opaque. */
typedef struct jb_route_table jb_route_table;

/* A router over cfg's mapping table. cfg is borrowed and must outlive the router; the parse
 * limits (ingest.max_body_bytes, ingest.require_event_id) are read from it once, here. */
jb_err jb_router_new(const jb_config *cfg, jb_router **out, jb_error *e) JB_MUST_CHECK;

/* Replaces the mapping table with next's; takes ownership of next whatever the result. Safe
 * from any thread while others route: a reader keeps the table it acquired until it releases
 * it. JB_ERR_NOMEM (and next freed) when out of memory: the old table stays. */
jb_err jb_router_reload(jb_router *r, jb_config *next, jb_error *e) JB_MUST_CHECK;

/* Takes a reference to the current table (never NULL): one mutex lock, so take it once per
 * batch, not per event. */
jb_route_table *jb_router_acquire(jb_router *r);

/* Gives back a reference from jb_router_acquire; the last one of a replaced table frees it.
 * NULL-safe. */
void jb_router_release(jb_route_table *t);

/* The mapping config of a held table (borrowed for as long as the table is held). */
const jb_config *jb_route_table_config(const jb_route_table *t);

/* How many events mapping i of a held table turned into a job request since the table was
 * loaded (process start, or the reload that made it): one relaxed atomic add per match, in
 * jb_router_route. 0 for an i out of range. */
uint64_t jb_route_table_matched(const jb_route_table *t, size_t i);

/* What one event became. Owned: release with jb_routed_clear (zero-initialise before the first
 * use). The requests point into `event` and into the table they were routed with. */
typedef struct jb_routed {
  jb_event event;
  jb_mapped jobs; /* one request per matching mapping, in table order */
} jb_routed;

void jb_routed_clear(jb_routed *r);

typedef enum {
  JB_ROUTE_JOBS = 0,    /* out->jobs holds the requests */
  JB_ROUTE_DEAD_LETTER, /* the event is at fault (malformed, unmapped, payload pointer finds
                         * nothing ...): why->msg says what, for the dead letter's reason */
  JB_ROUTE_RETRY,       /* out of memory: says nothing about the event; route it again later,
                         * never dead-letter it */
} jb_route_verdict;

/* Parses the event in f and maps it through t. out is cleared first. On JB_ROUTE_JOBS it holds
 * the event and its requests; on JB_ROUTE_DEAD_LETTER no requests, and the event as far as it
 * was read (its id, for the log, when only the mapping failed); on JB_ROUTE_RETRY nothing. */
jb_route_verdict jb_router_route(const jb_route_table *t, const jb_delivery_facts *f,
                                 jb_routed *out, jb_error *why);

void jb_router_free(jb_router *r);

#endif
