/* The MessageQueueTrigger's dead-letter path: each consumer's publisher connection (confirm
 * mode), kept alive while idle, and the republish of bad deliveries with every original header
 * plus x-jobbridge-error, each confirmed. A delivery whose dead letter cannot be published is
 * held (unacked, its reason kept) and tried again after a backoff of its own; it is never
 * rejected, since the queue's own dead-lettering would drop the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_conn.h"
#include "amqp/delivery.h"
#include "amqp/mq_internal.h"
#include "amqp/mq_metrics.h"
#include "jobbridge/log.h"

static jb_err connect_publisher(consumer *c, jb_error *e) {
  if (c->pub != NULL) return JB_OK;
  c->pub_seq = c->pub_confirmed = 0;
  return jb_amqp_connect_confirming(c->t->amqp, &c->pub_node, &c->pub, e);
}

/* Keeps the idle dead-letter connection alive: rabbitmq-c sends heartbeats, and reads the
 * broker's, only inside its read calls, and between bad events nothing else reads on it (the
 * broker dropped it after two missed heartbeats, and the next dead letter failed). A zero-wait
 * read, at most every 500 ms, does both. Every confirm has been waited for already, so any frame
 * here is the broker closing the channel or connection: drop it; it reopens when needed. */
void jb_mq_service_publisher(consumer *c, jb_time now) {
  if (c->pub == NULL || now < c->pub_service_at) return;
  c->pub_service_at = now + 500000;
  amqp_frame_t frame;
  struct timeval tv = {0, 0};
  int st = amqp_simple_wait_frame_noblock(c->pub, &frame, &tv);
  if (st == AMQP_STATUS_TIMEOUT) {
    /* rabbitmq-c keeps every frame read (heartbeats, confirms) in the channel's pool until
     * this: without it the connection's memory only grows. */
    amqp_maybe_release_buffers(c->pub);
    return;
  }
  jb_log(JB_LOG_INFO, "dead-letter connection closed; it reopens when needed",
         JB_LOG_I64("consumer", c->index), "error",
         st == AMQP_STATUS_OK ? "the broker sent an unexpected frame" : amqp_error_string2(st),
         JB_LOG_END);
  jb_amqp_drop(c->pub);
  c->pub = NULL;
}

/* Republishes p to the dead-letter exchange with its routing key, properties and headers plus
 * x-jobbridge-error. */
static jb_err publish_dead_letter(consumer *c, pending *p, jb_error *e) {
  const amqp_basic_properties_t *orig = &p->env.message.properties;
  amqp_basic_properties_t props = *orig;
  amqp_table_entry_t *entries = NULL;
  int n = jb_dead_letter_headers(orig, p->b.reason, &entries);
  if (n < 0) return jb_fail(e, JB_ERR_NOMEM, "out of memory for a dead letter's headers");
  props.headers = (amqp_table_t){n, entries};
  props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  int st =
      amqp_basic_publish(c->pub, CH, amqp_cstring_bytes(c->t->amqp->input.dead_letter_exchange),
                         p->env.routing_key, 1, 0, &props, p->env.message.body);
  free(entries);
  if (st != AMQP_STATUS_OK)
    return jb_fail(e, JB_ERR_AMQP_CONN, "dead-letter publish: %s", amqp_error_string2(st));
  c->pub_seq++;
  return JB_OK;
}

static void dead_letter_returned(void *arg, const amqp_basic_return_t *ret) {
  (void)ret;
  *(bool *)arg = true;
}

/* Waits until each dead letter published since the last wait (tags pub_confirmed + 1 ..
 * pub_seq; every earlier one was settled by an earlier wait, or its channel dropped) has its
 * own confirm: the broker confirms in no promised order, so every tag is tracked, not the
 * highest seen. A nack (that republish failed) or a return (unroutable) is a failure here: the
 * caller keeps the events unacked with their reasons and tries again later. */
static jb_err wait_confirms(consumer *c, jb_error *e) {
  uint64_t n = c->pub_seq - c->pub_confirmed;
  if (n == 0) return JB_OK;
  jb_confirms t;
  jb_err rc = jb_confirms_init(&t, (size_t)n, c->pub_confirmed + 1, e);
  if (rc != JB_OK) return rc;
  bool returned = false;
  t.on_return = dead_letter_returned;
  t.on_return_arg = &returned;
  for (uint64_t i = 0; i < n; i++) (void)jb_confirms_publish(&t);
  rc = jb_amqp_wait_confirms(c->pub, &t, e);
  if (rc == JB_OK && t.nacked > 0)
    rc = jb_fail(e, JB_ERR_AMQP, "the broker refused %zu of %llu dead letters (nack)", t.nacked,
                 (unsigned long long)n);
  else if (rc == JB_OK && returned)
    rc = jb_fail(e, JB_ERR_AMQP, "a dead letter was unroutable (nothing bound to %s)",
                 c->t->amqp->input.dead_letter_exchange);
  if (rc == JB_OK) c->pub_confirmed = c->pub_seq;
  jb_confirms_free(&t);
  return rc;
}

/* Marks the selected deliveries held (their reasons are kept; they stay unacked). */
static void hold(consumer *c, pending *chunk, size_t n, bool held_only) {
  for (size_t i = 0; i < n; i++)
    if (jb_batch_item_dead_letters(&chunk[i].b, held_only) && !chunk[i].b.held) {
      chunk[i].b.held = true;
      atomic_fetch_add(&c->t->held, 1);
    }
}

/* Publishes the selected deliveries as dead letters and waits for their confirms. When a
 * publish or its confirm fails, the connection is opened again once and every one of them is
 * published again (a dead letter may then arrive twice; none is lost). */
static jb_err publish_selected(consumer *c, pending *chunk, size_t n, bool held_only,
                               jb_error *pe) {
  jb_err rc = JB_ERR_AMQP_CONN;
  for (int attempt = 0; attempt < 2 && rc != JB_OK; attempt++) {
    if (attempt > 0) {
      jb_log(JB_LOG_WARN, "dead-letter publish failed; reconnecting once", "error", pe->msg,
             JB_LOG_END);
      jb_amqp_drop(c->pub);
      c->pub = NULL;
    }
    rc = connect_publisher(c, pe);
    for (size_t i = 0; rc == JB_OK && i < n; i++)
      if (jb_batch_item_dead_letters(&chunk[i].b, held_only))
        rc = publish_dead_letter(c, &chunk[i], pe);
    if (rc == JB_OK) rc = wait_confirms(c, pe);
  }
  /* Every confirm is taken and nothing points into the frames read: give their memory back
   * (rabbitmq-c keeps every frame in the channel's pool until this). */
  if (c->pub != NULL) amqp_maybe_release_buffers(c->pub);
  return rc;
}

/* Dead-letters the selected deliveries of a chunk (jb_batch_item_dead_letters), each with a
 * confirm. If that fails, or the dead-letter path is still in its backoff (dl_retry_at), they are
 * held: left unacked with their reasons, and tried again after the backoff, while the good
 * deliveries around them go on being stored and acked. Never rejected: the queue's own
 * dead-lettering would drop the reason. Published ones are marked settled. False when they are
 * held. */
bool jb_mq_settle_bad(consumer *c, pending *chunk, size_t n, bool held_only) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += jb_batch_item_dead_letters(&chunk[i].b, held_only);
  if (bad == 0) return true;
  if (jb_time_now() < c->dl_retry_at) {
    hold(c, chunk, n, held_only);
    return false;
  }
  jb_error pe;
  jb_error_clear(&pe);
  if (publish_selected(c, chunk, n, held_only, &pe) != JB_OK) {
    jb_amqp_drop(c->pub);
    c->pub = NULL;
    jb_log(JB_LOG_WARN, "cannot dead-letter; holding the events unacked and retrying",
           JB_LOG_U64("events", bad), "error", pe.msg, JB_LOG_I64("retry_in_ms", c->dl_backoff_ms),
           JB_LOG_END);
    hold(c, chunk, n, held_only);
    c->dl_retry_at = jb_time_now() + c->dl_backoff_ms * 1000;
    c->dl_backoff_ms = jb_backoff_next(c->dl_backoff_ms, 30000);
    return false;
  }
  c->dl_backoff_ms = 100;
  atomic_fetch_add(&c->t->dead_lettered, bad);
  for (size_t i = 0; i < n; i++) {
    if (!jb_batch_item_dead_letters(&chunk[i].b, held_only)) continue;
    chunk[i].b.held = false;
    chunk[i].b.settled = true;
    jb_mq_metrics_dead_lettered(chunk[i].b.reason);
    jb_log(JB_LOG_WARN, "event dead-lettered", "reason", chunk[i].b.reason, "event_id",
           chunk[i].b.routed.event.event_id, JB_LOG_U64("delivery_tag", chunk[i].env.delivery_tag),
           JB_LOG_END);
  }
  return true;
}

/* The queue that keeps dead letters until someone binds their own is of the input queue's type:
 * a classic queue lives on one node, and while that node is down every consumer's re-declare
 * after a reconnect fails with 404 ("home node ... is down"), so ingest stops until it is back;
 * a quorum queue has no such home. A queue of that name already declared with another type (by
 * an older jobbridge) is kept as it is: the broker refuses the declare (406), the channel is
 * reopened, and the log says how to change it. */
jb_err jb_mq_declare_dead_letter_queue(consumer *c, jb_error *e) {
  const jb_amqp_cfg *cfg = c->t->amqp;
  amqp_connection_state_t conn = c->conn;
  amqp_table_entry_t type = {
      amqp_cstring_bytes("x-queue-type"),
      {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes(cfg->input.queue_type)}}};
  amqp_queue_declare(conn, CH, amqp_cstring_bytes(cfg->input.dead_letter_exchange), 0, 1, 0, 0,
                     (amqp_table_t){1, &type});
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
      ((amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_PRECONDITION_FAILED) {
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(conn, CH, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK)
      return jb_fail(e, JB_ERR_AMQP_CONN, "declare dead-letter queue: cannot close the channel");
    amqp_channel_open(conn, CH);
    jb_err rc = jb_amqp_check(amqp_get_rpc_reply(conn), "reopen the channel", e);
    if (rc != JB_OK) return rc;
    jb_log(JB_LOG_WARN,
           "the dead-letter queue exists with another queue type; keeping it (delete it while "
           "jobbridge is stopped to have it declared again as the input queue's type)",
           "queue", cfg->input.dead_letter_exchange, "queue_type", cfg->input.queue_type,
           JB_LOG_END);
    return JB_OK;
  }
  return jb_amqp_check(r, "declare dead-letter queue", e);
}
