/* A stop request that threads can wait on together with their sockets: a flag plus a
 * descriptor that becomes readable, and stays readable, once the stop is requested. Each
 * component owns one (or more, one per shutdown stage it has) and polls its descriptor wherever
 * it waits, so a stop is noticed at once, never after a sleep or a polling slice runs out. */
#ifndef JB_STOP_H
#define JB_STOP_H

#include <stdatomic.h>
#include <stdbool.h>

#include "jobbridge/err.h"

typedef struct jb_stop {
  int fd; /* an eventfd; readable once requested (owned; -1 before init) */
  atomic_bool requested;
} jb_stop;

/* Sets up s, not requested. JB_ERR_IO when no descriptor can be had. */
jb_err jb_stop_init(jb_stop *s, jb_error *e) JB_MUST_CHECK;
/* Releases the descriptor; safe on a zeroed s and after a failed init. */
void jb_stop_destroy(jb_stop *s);
/* Requests the stop: async-signal-safe and idempotent; wakes every poll on the descriptor. */
void jb_stop_request(jb_stop *s);
/* Clears a request (before a component starts again). Call only while nobody waits on s. */
void jb_stop_reset(jb_stop *s);
bool jb_stop_requested(jb_stop *s);
/* The descriptor to poll (POLLIN) beside one's own; never read it. */
int jb_stop_fd(const jb_stop *s);
/* Waits up to ms (< 0: without end) for the stop; true when it is requested. Replaces a sleep. */
bool jb_stop_wait(jb_stop *s, long ms);

#endif
