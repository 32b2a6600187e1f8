/* Liveness and readiness of the running process: a small registry every long-lived thread and
 * component reports into, and that GET /healthz and GET /readyz read (src/http/ops.c).
 *
 * Liveness: a thread registers with the interval it promises to beat within, and beats on each
 * turn of its loop (each wake or timeout of its waits): one atomic store of a deadline, no lock.
 * A thread whose deadline has passed is wedged. Before a step that may take long (a job's
 * handler), it moves its deadline out with jb_health_busy.
 *
 * Readiness: a component holds a ready flag and, when not ready, a reason ("broker unavailable:
 * ..."); jb_health_ready is one atomic load once ready. A probe is a check run when readiness is
 * asked (the database's migration version), its answer cached for cache_ms.
 *
 * The registry is process-wide. Every function takes NULL for the slot (registering may fail for
 * lack of memory: the thread then simply goes unwatched) and is thread-safe. Reasons must name
 * what is down, never a secret (a URL's password, a token). */
#ifndef JOBBRIDGE_HEALTH_H
#define JOBBRIDGE_HEALTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jb_health_slot jb_health_slot;

/* A thread named `name` (copied, e.g. "worker 3") that beats at least every allowed_ms. Its
 * first deadline is now + allowed_ms. Remove it with jb_health_remove before the thread ends. */
jb_health_slot *jb_health_thread(const char *name, int64_t allowed_ms);
/* The thread is alive: its deadline becomes now + its allowed interval. Lock-free. */
void jb_health_beat(jb_health_slot *s);
/* The thread starts something that may take up to ms (plus its allowed interval). */
void jb_health_busy(jb_health_slot *s, int64_t ms);

/* A component named `name` (copied) whose readiness is reported; it starts not ready, with the
 * reason "starting". */
jb_health_slot *jb_health_component(const char *name);
/* The component is ready (cheap when it already was). */
void jb_health_ready(jb_health_slot *s);
/* The component is not ready, for the reason given by fmt and what follows (printf; copied,
 * truncated to 200 bytes). */
void jb_health_not_ready(jb_health_slot *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A readiness check run when readiness is asked, at most once per cache_ms: true when ready,
 * otherwise false with the reason written to why (len bytes). Called under the registry's lock,
 * from an HTTP request's thread; `self` is borrowed until jb_health_remove. */
typedef bool (*jb_health_probe_fn)(void *self, char *why, size_t len);
jb_health_slot *jb_health_probe(const char *name, jb_health_probe_fn fn, void *self,
                                int64_t cache_ms);

/* A note shown with the check in /readyz's JSON ("note"), ready or not, that does not change
 * readiness (e.g. ingest paused by backpressure); fmt NULL clears it. */
void jb_health_note(jb_health_slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Unregisters and frees the slot (NULL: nothing). */
void jb_health_remove(jb_health_slot *s);

/* Liveness: true when no registered thread is past its deadline. *doc (may be NULL) gets a new
 * JSON object {"status": "ok"|"wedged", "threads": n, "wedged": [{"thread", "late_ms"}]}. */
bool jb_health_live(json_t **doc);
/* Readiness: true when every component and probe is ready. *doc (may be NULL) gets a new JSON
 * object {"status": "ready"|"not ready", "checks": [{"name", "ready", "reason"?, "note"?}]}; the
 * checks of the same name (one per AMQP consumer) are listed each. */
bool jb_health_readiness(json_t **doc);

#endif
