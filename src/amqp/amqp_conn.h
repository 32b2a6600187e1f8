/* rabbitmq-c connection helpers shared by the AMQP adapters: connect from a URL with timeouts,
 * readable errors from RPC replies, header tables. One connection per thread, never shared. */
#ifndef JB_AMQP_CONN_H
#define JB_AMQP_CONN_H

#include <amqp.h>
#include <stdbool.h>
#include <sys/time.h>

#include "jobbridge/err.h"

/* Opens a connection to url (amqp://user:pass@host:port/vhost) with heartbeats, TCP connect and
 * RPC timeouts, a send timeout on the socket (a publish never blocks forever), and channel 1
 * open. On failure *out is NULL and e says why, naming the server without the password. */
jb_err jb_amqp_connect(const char *url, int heartbeat_s, amqp_connection_state_t *out,
                       jb_error *e) JB_MUST_CHECK;

/* jb_amqp_connect, then publisher confirms on channel 1 (publishes are numbered from 1). */
jb_err jb_amqp_connect_confirming(const char *url, int heartbeat_s, amqp_connection_state_t *out,
                                  jb_error *e) JB_MUST_CHECK;

/* Destroys a connection without the polite close handshake, which can hang on a dead broker.
 * Use after any failure. NULL is fine. */
void jb_amqp_drop(amqp_connection_state_t conn);

/* Closes politely (bounded by the RPC timeout), then destroys. For orderly shutdown. */
void jb_amqp_close(amqp_connection_state_t conn);

/* JB_OK for a normal reply; else JB_ERR_AMQP_CONN / JB_ERR_AMQP with `what` and the broker's
 * reply code and text (for example "declare queue q: 406 PRECONDITION_FAILED - ..."). */
jb_err jb_amqp_check(amqp_rpc_reply_t r, const char *what, jb_error *e) JB_MUST_CHECK;

/* Reads frames on a confirm-mode channel until *confirmed reaches `published` (both count
 * publishes since the channel opened). *returned is set when the broker returned an unroutable
 * `mandatory` message (its ack still follows). A nack, a closed channel or no frame within
 * 10 s is an error. */
jb_err jb_amqp_wait_confirms(amqp_connection_state_t conn, uint64_t published, uint64_t *confirmed,
                             bool *returned, jb_error *e) JB_MUST_CHECK;

/* Reads the confirms that arrive within timeout_ms (then whatever else is already buffered),
 * without waiting for any particular one. Same frame handling as jb_amqp_wait_confirms. */
jb_err jb_amqp_read_confirms(amqp_connection_state_t conn, int timeout_ms, uint64_t *confirmed,
                             bool *returned, jb_error *e) JB_MUST_CHECK;

/* A string copy of an amqp_bytes_t into buf (truncated, NUL-terminated). Returns buf. */
char *jb_amqp_str(amqp_bytes_t b, char *buf, size_t len);

#endif
