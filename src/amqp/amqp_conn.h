/* rabbitmq-c connection helpers shared by the AMQP adapters: connect from a URL with timeouts,
 * readable errors from RPC replies, header tables. One connection per thread, never shared. */
#ifndef JB_AMQP_CONN_H
#define JB_AMQP_CONN_H

#include <amqp.h>
#include <stdbool.h>
#include <sys/time.h>

#include "jobbridge/config.h"
#include "jobbridge/err.h"

/* Opens a connection to one of cfg's nodes (amqp.url: amqp[s]://user:pass@host:port/vhost, one
 * or a cluster's list) with heartbeats, TCP connect and RPC timeouts, a send timeout on the
 * socket (a publish never blocks forever), and channel 1 open. amqps:// URLs go over TLS with
 * amqp.tls.* (peer and host name verified unless turned off). The nodes are tried in turn from
 * node *node (start it at 0: the first reachable node wins); on success *node is set to the node
 * after the one connected, so a reconnection after a loss tries another node first. On failure *out
 * is NULL and e says why for each node, naming the servers without their passwords (a TLS
 * verification failure says which check). */
jb_err jb_amqp_connect(const jb_amqp_cfg *cfg, size_t *node, amqp_connection_state_t *out,
                       jb_error *e) JB_MUST_CHECK;

/* jb_amqp_connect, then publisher confirms on channel 1 (publishes are numbered from 1). */
jb_err jb_amqp_connect_confirming(const jb_amqp_cfg *cfg, size_t *node,
                                  amqp_connection_state_t *out, jb_error *e) JB_MUST_CHECK;

/* Destroys a connection without the polite close handshake, which can hang on a dead broker.
 * Use after any failure. NULL is fine. */
void jb_amqp_drop(amqp_connection_state_t conn);

/* Closes politely (bounded by the RPC timeout), then destroys. For orderly shutdown. */
void jb_amqp_close(amqp_connection_state_t conn);

/* JB_OK for a normal reply; else JB_ERR_AMQP_CONN / JB_ERR_AMQP with `what` and the broker's
 * reply code and text (for example "declare queue q: 406 PRECONDITION_FAILED - ..."). */
jb_err jb_amqp_check(amqp_rpc_reply_t r, const char *what, jb_error *e) JB_MUST_CHECK;

/* Publisher confirms, tag by tag. RabbitMQ numbers a confirm-mode channel's publishes from 1
 * and confirms them in no promised order (several queues, quorum queues): an ack or nack with
 * `multiple` settles every outstanding tag up to its own, without it only its own. The tracker
 * keeps one state byte per tag in a ring of `cap` tags (the publish window), so recording a
 * publish and taking its outcome are O(1), and a confirm is O(1) amortised (each tag is passed
 * once). No allocation after jb_confirms_init. One per channel, used by one thread. */
typedef enum {
  JB_CONFIRM_PENDING = 0, /* published, not yet confirmed */
  JB_CONFIRM_ACKED,       /* the broker has it */
  JB_CONFIRM_NACKED,      /* the broker refused it: publish it again */
  JB_CONFIRM_UNKNOWN      /* not an outstanding tag (never published here, or already taken) */
} jb_confirm_state;

typedef struct jb_confirms {
  unsigned char *state; /* owned: the state of tag t is state[t % cap] */
  size_t cap;
  uint64_t next;         /* the tag of the next publish */
  uint64_t low;          /* the lowest tag whose outcome was not taken; [low, next) is live */
  uint64_t pending_from; /* every tag below this one is settled */
  size_t pending;        /* tags published and not settled */
  size_t acked, nacked;  /* tags settled and not yet taken */
  uint64_t stray;        /* confirms for no outstanding tag (ignored, counted) */
  uint16_t close_code;   /* the reply code of the broker's channel.close, once seen; else 0 */
  /* Called for every basic.return (an unroutable `mandatory` publish) before its ack; NULL:
   * ignored. The message itself is read and freed by the caller of the callback. */
  void (*on_return)(void *arg, const amqp_basic_return_t *ret);
  void *on_return_arg;
} jb_confirms;

/* A tracker for `cap` outstanding publishes, the first numbered first_tag (1 on a new
 * channel). jb_confirms_free releases it (NULL-safe, idempotent). */
jb_err jb_confirms_init(jb_confirms *t, size_t cap, uint64_t first_tag, jb_error *e) JB_MUST_CHECK;
void jb_confirms_free(jb_confirms *t);
/* Forgets every tag (a new channel): the next publish is first_tag. Keeps the callback. */
void jb_confirms_reset(jb_confirms *t, uint64_t first_tag);
/* True when `cap` publishes await their outcome being taken: publish no more until some is. */
bool jb_confirms_full(const jb_confirms *t);
/* Records a publish that was sent; returns its tag. The caller checks jb_confirms_full first. */
uint64_t jb_confirms_publish(jb_confirms *t);
/* Applies a basic.ack (ack true) or basic.nack of `tag`. */
void jb_confirms_settle(jb_confirms *t, uint64_t tag, bool multiple, bool ack);
/* The state of `tag`; an ACKED or NACKED tag is forgotten (its slot freed) when taken. */
jb_confirm_state jb_confirms_take(jb_confirms *t, uint64_t tag);

/* Reads frames on a confirm-mode channel until no tag of t is pending. Returns and nacks are
 * recorded in t, not errors. A closed channel or no frame within 10 s is an error. */
jb_err jb_amqp_wait_confirms(amqp_connection_state_t conn, jb_confirms *t,
                             jb_error *e) JB_MUST_CHECK;

/* Reads the confirms that arrive within timeout_ms (then whatever else is already buffered),
 * without waiting for any particular one. Same frame handling as jb_amqp_wait_confirms. */
jb_err jb_amqp_read_confirms(amqp_connection_state_t conn, int timeout_ms, jb_confirms *t,
                             jb_error *e) JB_MUST_CHECK;

/* The form of s that fits an AMQP short string (at most 255 bytes): s itself when it fits;
 * otherwise its first bytes, cut at a UTF-8 character boundary, then '~' and the 16 hex digits
 * of the FNV-1a 64-bit hash of the whole of s (255 bytes at most in all), so different long
 * values stay different. buf holds at least JB_AMQP_SHORT_MAX + 1 bytes. Returns s or buf. */
#define JB_AMQP_SHORT_MAX 255
const char *jb_amqp_short(const char *s, char *buf);

/* A string copy of an amqp_bytes_t into buf (truncated, NUL-terminated). Returns buf. */
char *jb_amqp_str(amqp_bytes_t b, char *buf, size_t len);

#endif
