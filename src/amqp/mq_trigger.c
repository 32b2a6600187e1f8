/* The MessageQueueTrigger. Each consumer thread owns two AMQP connections (one consumes, one
 * publishes dead letters with confirms) and one JobCreator. Deliveries are gathered, turned into
 * job requests, created in one transaction per chunk, and acknowledged only after the commit.
 *
 * Settling: a delivery is acked only once its jobs are committed or it is dead-lettered with a
 * confirm. Nothing is ever rejected: a delivery that cannot be settled yet (the database fails
 * for a reason that is not the data's, or its dead letter cannot be published) stays unacked in
 * `pend` and is retried with backoff. The pending deliveries are exactly the channel's
 * outstanding tags, in order, so a multiple-ack names a tag only when every pending tag up to it
 * is settled; settled tags after an unsettled one are acked one by one. */
#include "amqp/mq_trigger.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqp/amqp_conn.h"
#include "amqp/delivery.h"
#include "amqp/mq_internal.h"
#include "amqp/mq_metrics.h"
#include "jobbridge/event.h"
#include "jobbridge/health.h"
#include "jobbridge/log.h"

/* ---- connections and topology ---- */

static amqp_table_t queue_args(const jb_amqp_cfg *cfg, amqp_table_entry_t *entries) {
  entries[0].key = amqp_cstring_bytes("x-queue-type");
  entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[0].value.value.bytes = amqp_cstring_bytes(cfg->input.queue_type);
  entries[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
  entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[1].value.value.bytes = amqp_cstring_bytes(cfg->input.dead_letter_exchange);
  return (amqp_table_t){2, entries};
}

/* Declares the topology, sets prefetch and starts consuming. Idempotent: runs after every
 * reconnect. The dead-letter exchange gets a durable queue of the same name bound to `#`, so a
 * dead letter is kept even before anyone else binds to the exchange. */
static jb_err declare_and_consume(consumer *c, jb_error *e) {
  const jb_amqp_cfg *cfg = c->t->amqp;
  amqp_connection_state_t conn = c->conn;
  amqp_exchange_declare(conn, CH, amqp_cstring_bytes(cfg->input.exchange),
                        amqp_cstring_bytes(cfg->input.exchange_type), 0, 1, 0, 0, amqp_empty_table);
  jb_err rc = jb_amqp_check(amqp_get_rpc_reply(conn), "declare input exchange", e);
  if (rc != JB_OK) return rc;
  amqp_exchange_declare(conn, CH, amqp_cstring_bytes(cfg->input.dead_letter_exchange),
                        amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
  if ((rc = jb_amqp_check(amqp_get_rpc_reply(conn), "declare dead-letter exchange", e)) != JB_OK)
    return rc;
  if ((rc = jb_mq_declare_dead_letter_queue(c, e)) != JB_OK) return rc;
  amqp_queue_bind(conn, CH, amqp_cstring_bytes(cfg->input.dead_letter_exchange),
                  amqp_cstring_bytes(cfg->input.dead_letter_exchange), amqp_cstring_bytes("#"),
                  amqp_empty_table);
  if ((rc = jb_amqp_check(amqp_get_rpc_reply(conn), "bind dead-letter queue", e)) != JB_OK)
    return rc;
  amqp_table_entry_t entries[2];
  amqp_queue_declare(conn, CH, amqp_cstring_bytes(cfg->input.queue), 0, 1, 0, 0,
                     queue_args(cfg, entries));
  char what[300];
  snprintf(what, sizeof what, "declare queue %s", cfg->input.queue);
  if ((rc = jb_amqp_check(amqp_get_rpc_reply(conn), what, e)) != JB_OK) return rc;
  for (size_t i = 0; i < cfg->input.bindings_len; i++) {
    amqp_queue_bind(conn, CH, amqp_cstring_bytes(cfg->input.queue),
                    amqp_cstring_bytes(cfg->input.exchange),
                    amqp_cstring_bytes(cfg->input.bindings[i]), amqp_empty_table);
    if ((rc = jb_amqp_check(amqp_get_rpc_reply(conn), "bind input queue", e)) != JB_OK) return rc;
  }
  amqp_basic_qos(conn, CH, 0, (uint16_t)cfg->prefetch, 0);
  if ((rc = jb_amqp_check(amqp_get_rpc_reply(conn), "set prefetch", e)) != JB_OK) return rc;
  c->consuming = false;
  if (atomic_load(&c->t->bp_paused)) return JB_OK; /* backpressure resumes it */
  return jb_mq_consume(c, e);
}

/* Forgets every pending delivery without settling it: they belong to a dead channel, and the
 * broker delivers them again (redelivered=true) on the next one. */
static void forget_pending(consumer *c) {
  for (size_t i = 0; i < c->n; i++) {
    amqp_destroy_envelope(&c->pend[i].env);
    jb_routed_clear(&c->pend[i].b.routed);
  }
  c->n = 0;
  c->n_held = 0;
}

static void drop_consumer_conn(consumer *c, const char *why) {
  jb_log(JB_LOG_WARN, "broker connection lost; unacked deliveries will be redelivered",
         JB_LOG_I64("consumer", c->index), "error", why, JB_LOG_END);
  forget_pending(c);
  jb_amqp_drop(c->conn);
  c->conn = NULL;
  jb_amqp_drop(c->pub);
  c->pub = NULL;
  jb_health_not_ready(c->ready, "broker connection lost: %.170s", why);
}

static jb_err connect_consumer(consumer *c, jb_error *e) {
  const jb_amqp_cfg *cfg = c->t->amqp;
  jb_err rc = jb_amqp_connect(cfg, &c->node, &c->conn, e);
  if (rc == JB_OK) rc = declare_and_consume(c, e);
  if (rc != JB_OK) {
    jb_amqp_drop(c->conn);
    c->conn = NULL;
  }
  return rc;
}

/* ---- turning deliveries into job requests ---- */

/* The first n pending deliveries, as the batch decisions see them (mq_batch.h). */
static jb_batch pend_batch(consumer *c, size_t n) {
  return (jb_batch){c->pend != NULL ? &c->pend->b : NULL, sizeof(pending), n};
}

/* Reads delivery p's facts and routes it through t: good, bad with a reason (a NUL byte in a
 * string we read, or the router's reason), or retry when memory ran out (that says nothing
 * about the event: it is prepared again later, never dead-lettered). A delivery already held
 * (its reason is known) or stored (its jobs are committed) is left as it is. */
static void prepare(const jb_route_table *t, pending *p) {
  if (!jb_batch_item_begin(&p->b)) return;
  if (!jb_delivery_nul_free(&p->env, p->b.reason, sizeof p->b.reason)) {
    p->b.bad = true;
    return;
  }
  jb_facts_buf fb;
  if (!jb_delivery_facts_of(&p->env, p->received_at, &fb)) {
    p->b.retry = true;
    return;
  }
  jb_batch_item_route(&p->b, t, &fb.f);
  jb_facts_buf_free(&fb);
}

/* ---- flushing a chunk: one transaction, then acks ---- */

typedef enum { FLUSH_DONE, FLUSH_LATER, FLUSH_AMQP_LOST } flush_result;

/* Acks the settled deliveries among the first n pending ones and forgets them; the others stay
 * pending, in order, at the front. A multiple-ack covers the settled prefix of `pend` (every
 * outstanding tag up to its own); a settled delivery after an unsettled one is acked alone.
 * False when an ack cannot be sent. */
static bool ack_settled(consumer *c, size_t n) {
  pending *pd = c->pend;
  size_t prefix = jb_batch_settled_prefix(pend_batch(c, n));
  if (prefix > 0 &&
      amqp_basic_ack(c->conn, CH, pd[prefix - 1].env.delivery_tag, prefix > 1) != AMQP_STATUS_OK)
    return false;
  for (size_t i = prefix; i < n; i++)
    if (pd[i].b.settled && amqp_basic_ack(c->conn, CH, pd[i].env.delivery_tag, 0) != AMQP_STATUS_OK)
      return false;
  size_t kept = 0;
  c->n_held = 0;
  for (size_t i = 0; i < c->n; i++) {
    if (i < n && pd[i].b.settled) {
      amqp_destroy_envelope(&pd[i].env);
      jb_routed_clear(&pd[i].b.routed);
    } else {
      c->n_held += pd[i].b.held;
      if (kept != i) pd[kept] = pd[i];
      kept++;
    }
  }
  if (kept < c->n) {
    atomic_fetch_add(&c->t->acked, c->n - kept);
    c->first_at = kept ? jb_time_now() : 0;
  }
  c->n = kept;
  return true;
}

/* Sets the retry time after memory ran out while preparing k deliveries (like a transient
 * database error: nothing is wrong with the events). */
static void retry_unprepared(consumer *c, size_t k) {
  jb_log(JB_LOG_WARN, "out of memory while reading events; holding them unacked and retrying",
         JB_LOG_U64("events", k), JB_LOG_I64("retry_in_ms", c->db_backoff_ms), JB_LOG_END);
  c->retry_at = jb_time_now() + c->db_backoff_ms * 1000;
  c->db_backoff_ms = jb_backoff_next(c->db_backoff_ms, 30000);
}

/* The dead-letter path of a chunk, which is always the front of `pend`. */
static bool dead_letter_chunk(void *ctx, jb_batch chunk) {
  consumer *c = ctx;
  return jb_mq_settle_bad(c, c->pend, chunk.n, false);
}

/* Flushes chunk pend[0..n): prepares, creates the jobs, dead-letters the bad deliveries, acks
 * what is settled (jb_batch_settle decides). Held deliveries in the chunk are left as they are
 * (see flush_held). FLUSH_LATER when some of it must wait for a retry time. */
static flush_result flush_chunk(consumer *c, size_t n) {
  jb_route_table *table = jb_router_acquire(c->t->router);
  for (size_t i = 0; i < n; i++) prepare(table, &c->pend[i]);
  jb_error e;
  jb_error_clear(&e);
  jb_batch_result br = jb_batch_settle(pend_batch(c, n), c->creator, dead_letter_chunk, c, &e);
  atomic_fetch_add(&c->t->created, br.created);
  atomic_fetch_add(&c->t->duplicates, br.duplicates);
  atomic_fetch_add(&c->t->ev_created, br.events_created);
  atomic_fetch_add(&c->t->ev_duplicate, br.events_duplicate);
  flush_result res = FLUSH_DONE;
  if (br.db_failed) {
    /* Nothing is acked but what is stored: the broker keeps the rest until the database is
     * back. */
    jb_log(JB_LOG_WARN, "cannot store jobs; holding deliveries unacked and retrying", "error",
           e.msg, JB_LOG_I64("retry_in_ms", c->db_backoff_ms), JB_LOG_END);
    c->retry_at = jb_time_now() + c->db_backoff_ms * 1000;
    c->db_backoff_ms = jb_backoff_next(c->db_backoff_ms, 30000);
    res = FLUSH_LATER;
  } else {
    if (br.unprepared > 0) {
      retry_unprepared(c, br.unprepared);
      res = FLUSH_LATER;
    } else {
      c->db_backoff_ms = 100;
    }
    if (br.held) res = FLUSH_LATER;
  }
  size_t left = n;
  for (size_t i = 0; i < n; i++) left -= c->pend[i].b.settled;
  if (!ack_settled(c, n))
    res = FLUSH_AMQP_LOST;
  else /* the chunk's unsettled deliveries, now first in `pend`, point into the table */
    jb_batch_drop_routes(pend_batch(c, left));
  jb_router_release(table);
  return res;
}

/* Dead-letters the held deliveries once the dead-letter path's retry time has come, and acks
 * those published (ack_settled's rules: the others stay pending, in order). */
static flush_result flush_held(consumer *c) {
  for (size_t i = 0; i < c->n; i++) c->pend[i].b.settled = false;
  bool ok = jb_mq_settle_bad(c, c->pend, c->n, true);
  if (!ack_settled(c, c->n)) return FLUSH_AMQP_LOST;
  return ok ? FLUSH_DONE : FLUSH_LATER;
}

/* Flushes pending deliveries: while job creation is not in its retry time, in chunks of up to
 * ingest.batch_max deliveries not held (held ones in between are carried along, not counted,
 * and never block the good ones after them); then the held ones, when the dead-letter path's
 * retry time has come. FLUSH_LATER when anything is left waiting. */
static flush_result flush(consumer *c) {
  size_t batch = (size_t)c->t->ingest->batch_max;
  flush_result res = FLUSH_DONE;
  while (jb_time_now() >= c->retry_at) {
    size_t end = jb_batch_chunk_end(pend_batch(c, c->n), batch);
    if (end == 0) break;
    flush_result r = flush_chunk(c, end);
    if (r == FLUSH_AMQP_LOST) return r;
    if (r == FLUSH_LATER) res = FLUSH_LATER;
  }
  if (c->n_held > 0 && jb_time_now() >= c->dl_retry_at) {
    flush_result r = flush_held(c);
    if (r == FLUSH_AMQP_LOST) return r;
  }
  if (c->n > 0) res = FLUSH_LATER;
  return res;
}

/* ---- receiving ---- */

/* Handles a frame that is not a delivery. Returns false when the connection must be dropped. */
static bool other_frame(consumer *c, const char **why) {
  amqp_frame_t frame;
  struct timeval tv = {0, 0};
  if (amqp_simple_wait_frame_noblock(c->conn, &frame, &tv) != AMQP_STATUS_OK) return true;
  if (frame.frame_type != AMQP_FRAME_METHOD) return true;
  switch (frame.payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
      *why = "the broker closed the channel";
      return false;
    case AMQP_CONNECTION_CLOSE_METHOD:
      *why = "the broker closed the connection";
      return false;
    case AMQP_BASIC_CANCEL_METHOD:
      *why = "the broker cancelled the consumer (queue deleted?)";
      return false;
    default:
      return true;
  }
}

static bool add_pending(consumer *c, amqp_envelope_t *env) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 256;
    pending *p = realloc(c->pend, cap * sizeof *p);
    if (p == NULL) return false;
    c->pend = p;
    c->cap = cap;
  }
  pending *p = &c->pend[c->n++];
  memset(p, 0, sizeof *p);
  p->env = *env;
  p->received_at = jb_time_now();
  if (c->n - c->n_held == 1) c->first_at = p->received_at;
  atomic_fetch_add(&c->t->received, 1);
  return true;
}

/* Waits up to *wait_us for the broker's socket or the trigger's stop, whichever comes first;
 * false on a stop. Then *wait_us is what amqp_consume_message may still wait: the rest of the
 * window when data came (a frame may arrive in pieces), else a millisecond, in which it sends a
 * heartbeat that is due and notices a broker that has gone silent. With a frame buffered
 * already, nothing is waited for. */
static bool await_frame(consumer *c, long *wait_us) {
  if (amqp_data_in_buffer(c->conn) || amqp_frames_enqueued(c->conn)) return true;
  struct pollfd p[2] = {{amqp_get_sockfd(c->conn), POLLIN, 0},
                        {jb_stop_fd(&c->t->stop), POLLIN, 0}};
  int64_t start = jb_mono_ms();
  int r = poll(p, 2, (int)((*wait_us + 999) / 1000));
  if (jb_stop_requested(&c->t->stop)) return false;
  if (r > 0 && p[0].revents != 0) {
    long left = *wait_us - (long)(jb_mono_ms() - start) * 1000;
    *wait_us = left < 1000 ? 1000 : left;
  } else {
    *wait_us = 1000;
  }
  return true;
}

/* Connects (and declares, and starts consuming) when the consumer has no connection. False
 * when that failed: it has then waited its backoff (or less, on a stop). */
static bool ensure_connected(consumer *c) {
  if (c->conn != NULL) return true;
  jb_error e;
  if (connect_consumer(c, &e) != JB_OK) {
    jb_log(JB_LOG_WARN, "broker unavailable, retrying", JB_LOG_I64("consumer", c->index), "error",
           e.msg, JB_LOG_I64("retry_in_ms", c->amqp_backoff_ms), JB_LOG_END);
    jb_health_not_ready(c->ready, "broker unavailable: %.170s", e.msg);
    jb_stop_wait(&c->t->stop, c->amqp_backoff_ms);
    c->amqp_backoff_ms = jb_backoff_next(c->amqp_backoff_ms, 30000);
    return false;
  }
  c->amqp_backoff_ms = 250;
  jb_health_ready(c->ready);
  jb_log(JB_LOG_INFO, "consuming", JB_LOG_I64("consumer", c->index), "queue",
         c->t->amqp->input.queue, JB_LOG_END);
  return true;
}

/* Reads one delivery (or another frame) for at most wait_us, and adds it to the pending ones;
 * drops the connection when the broker closed it or a read failed. */
static void receive(consumer *c, long wait_us) {
  struct timeval tv = {wait_us / 1000000, wait_us % 1000000};
  amqp_envelope_t env;
  amqp_maybe_release_buffers(c->conn);
  amqp_rpc_reply_t r = amqp_consume_message(c->conn, &env, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    if (!add_pending(c, &env)) {
      amqp_destroy_envelope(&env);
      drop_consumer_conn(c, "out of memory");
      return;
    }
    /* Group commit: when nothing more is waiting on the socket, commit what we have now
     * instead of waiting out batch_wait_ms. Under load, deliveries pile up while a commit
     * runs, so batches grow by themselves; when idle, an event is stored at once. */
    if (!amqp_data_in_buffer(c->conn) && !amqp_frames_enqueued(c->conn) &&
        jb_time_now() >= c->retry_at && flush(c) == FLUSH_AMQP_LOST)
      drop_consumer_conn(c, "an ack failed");
    return;
  }
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
    return;
  const char *why = "connection error";
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
      r.library_error == AMQP_STATUS_UNEXPECTED_STATE && other_frame(c, &why))
    return;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
      r.library_error != AMQP_STATUS_UNEXPECTED_STATE)
    why = amqp_error_string2(r.library_error);
  drop_consumer_conn(c, why);
}

static void *consumer_main(void *arg) {
  consumer *c = arg;
  jb_mq_trigger *t = c->t;
  const jb_ingest_cfg *ingest = t->ingest;
  c->db_backoff_ms = 100;
  c->dl_backoff_ms = 100;
  c->amqp_backoff_ms = 250;
  /* A turn takes at most a backoff (30 s) or a batch's commit: a minute late is wedged. */
  char name[64];
  snprintf(name, sizeof name, "ingest consumer %d", c->index);
  c->alive = jb_health_thread(name, 60000);
  c->ready = jb_health_component(name);
  while (!jb_stop_requested(&t->stop)) {
    jb_health_beat(c->alive);
    if (!ensure_connected(c)) continue; /* backed off, or stopping */
    const char *why = NULL;
    if (!jb_mq_backpressure(c, &why)) {
      drop_consumer_conn(c, why);
      continue;
    }
    jb_time now = jb_time_now();
    jb_mq_service_publisher(c, now);
    /* Held deliveries wait for the dead-letter path only; they never delay the others. */
    size_t ready = c->n - c->n_held;
    bool due = ready >= (size_t)ingest->batch_max ||
               (ready > 0 && now - c->first_at >= (jb_time)ingest->batch_wait_ms * 1000);
    bool held_due = c->n_held > 0 && now >= c->dl_retry_at;
    if ((due && now >= c->retry_at) || held_due) {
      flush_result r = flush(c);
      if (r == FLUSH_AMQP_LOST) {
        drop_consumer_conn(c, "an ack failed");
        continue;
      }
    }
    /* Wait for the next delivery no longer than the batch window allows. The call also services
     * heartbeats, so it runs even while the database is down. */
    long wait_us = 100000;
    if (ready > 0 && c->retry_at <= now) {
      jb_time left = c->first_at + (jb_time)ingest->batch_wait_ms * 1000 - now;
      wait_us = left < 1000 ? 1000 : (left < wait_us ? (long)left : wait_us);
    }
    if (!await_frame(c, &wait_us)) continue; /* stopping */
    receive(c, wait_us);
  }
  /* Stopping: commit and ack what is in hand if the database allows; otherwise leave it unacked
   * for the broker to deliver again. */
  if (c->conn != NULL && c->n > 0 && flush(c) != FLUSH_DONE)
    jb_log(JB_LOG_WARN, "stopping with deliveries unacked; the broker will redeliver them",
           JB_LOG_I64("consumer", c->index), JB_LOG_END);
  forget_pending(c);
  jb_amqp_close(c->pub);
  c->pub = NULL;
  jb_amqp_close(c->conn);
  c->conn = NULL;
  jb_health_remove(c->alive);
  jb_health_remove(c->ready);
  c->alive = c->ready = NULL;
  return NULL;
}

/* ---- the JobTrigger port ---- */

static jb_err trigger_start(void *self, jb_error *e) {
  jb_mq_trigger *t = self;
  if (atomic_load(&t->running)) return JB_OK;
  jb_stop_reset(&t->stop);
  for (size_t i = 0; i < t->n; i++) {
    if (pthread_create(&t->consumers[i].thread, NULL, consumer_main, &t->consumers[i]) != 0) {
      jb_stop_request(&t->stop);
      for (size_t j = 0; j < i; j++) pthread_join(t->consumers[j].thread, NULL);
      return jb_fail(e, JB_ERR_IO, "cannot start consumer thread %zu", i);
    }
  }
  atomic_store(&t->running, true);
  return JB_OK;
}

static void trigger_stop(void *self) {
  jb_mq_trigger *t = self;
  if (!atomic_load(&t->running)) return;
  jb_stop_request(&t->stop); /* wakes every consumer wherever it waits */
  for (size_t i = 0; i < t->n; i++) pthread_join(t->consumers[i].thread, NULL);
  atomic_store(&t->running, false);
}

static bool trigger_is_running(void *self) {
  jb_mq_trigger *t = self;
  return atomic_load(&t->running);
}

static const jb_job_trigger_ops trigger_ops = {
    .start = trigger_start, .stop = trigger_stop, .is_running = trigger_is_running};

jb_job_trigger jb_mq_trigger_port(jb_mq_trigger *t) {
  return (jb_job_trigger){&trigger_ops, t};
}

jb_err jb_mq_trigger_new(const jb_amqp_cfg *amqp, const jb_ingest_cfg *ingest, jb_router *router,
                         jb_job_creator *creators, size_t n, jb_mq_trigger **out, jb_error *e) {
  jb_mq_trigger *t = calloc(1, sizeof *t);
  consumer *cs = calloc(n ? n : 1, sizeof *cs);
  if (t == NULL || cs == NULL) {
    free(t);
    free(cs);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  if (jb_stop_init(&t->stop, e) != JB_OK) {
    free(t);
    free(cs);
    return e->code;
  }
  t->amqp = amqp;
  t->ingest = ingest;
  t->router = router;
  t->consumers = cs;
  t->n = n;
  for (size_t i = 0; i < n; i++) {
    cs[i].t = t;
    cs[i].index = (int)i;
    cs[i].creator = &creators[i];
  }
  jb_mq_metrics_register(t);
  *out = t;
  return JB_OK;
}

jb_mq_stats jb_mq_trigger_stats(jb_mq_trigger *t) {
  return (jb_mq_stats){
      atomic_load(&t->received),      atomic_load(&t->created),   atomic_load(&t->duplicates),
      atomic_load(&t->dead_lettered), atomic_load(&t->held),      atomic_load(&t->acked),
      atomic_load(&t->bp_paused),     atomic_load(&t->bp_pauses), atomic_load(&t->bp_waiting)};
}

void jb_mq_trigger_free(jb_mq_trigger *t) {
  if (t == NULL) return;
  trigger_stop(t);
  jb_mq_metrics_unregister(t);
  for (size_t i = 0; i < t->n; i++) free(t->consumers[i].pend);
  free(t->consumers);
  jb_stop_destroy(&t->stop);
  free(t);
}
