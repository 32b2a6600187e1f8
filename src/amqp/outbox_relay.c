/* The outbox relay. Only one instance relays at a time (a database session lock), so events
 * leave in the order they were written; a relay that stops is replaced by another instance's.
 * A crash after a publish but before the delete publishes that event again: consumers dedupe
 * on the message id, which is fixed when the row is written.
 *
 * A row is deleted only when the broker acked its own publish (confirms come in no promised
 * order; see jb_confirms); a nacked row is published again. An unroutable event (returned, as
 * it is published `mandatory`) is counted and logged, and its row deleted: the broker took it
 * and had nowhere to put it (amqp.output.alternate_exchange keeps such events). A row the broker
 * cannot take (properties that do not encode, or a channel error its own publish caused) is set
 * aside in the outbox with its reason, logged and counted, so it never blocks the rows after
 * it. */
#include "amqp/outbox_relay.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqp/amqp_conn.h"
#include "amqp/mq_metrics.h"
#include "jobbridge/health.h"
#include "jobbridge/log.h"
#include "jobbridge/stop.h"

#define CH 1
#define BATCH 500  /* rows fetched at once */
#define WINDOW 512 /* publishes awaiting their confirm */
#define RETURN_KEYS 8
#define RETURN_LOG_MS 10000

/* Returns in the current interval, by routing key: the first of a key is logged at once, the
 * count of each at the end of the interval (RETURN_LOG_MS), never a line per event. */
typedef struct return_log {
  char key[RETURN_KEYS][JB_AMQP_SHORT_MAX + 1];
  uint64_t count[RETURN_KEYS];
  size_t n;
  uint64_t others; /* returns of keys beyond RETURN_KEYS in this interval */
  int64_t since_ms;
} return_log;

struct jb_outbox_relay {
  const jb_amqp_cfg *cfg; /* amqp.*: the broker and amqp.output (borrowed) */
  size_t node;            /* the cluster node to try first (amqp_conn.h) */
  jb_outbox ob;
  char source[160];
  pthread_t thread;
  jb_stop stop; /* requested by jb_outbox_relay_stop (flush_until_ms set first) */
  jb_relay_metrics metrics;
  atomic_int_fast64_t flush_until_ms; /* when stopping: keep draining until then */
  bool running;
  amqp_connection_state_t conn;
  jb_confirms track; /* this channel's publishes and their confirms */
  char *body;        /* the event being published; owned, reused */
  size_t body_len, body_cap;
  bool body_failed; /* out of memory while building it */
  /* The row whose publish failed to encode (set by publish; -1: none) and why. */
  int64_t bad_id;
  char bad_reason[256];
  /* After a channel error with several rows in flight: rows up to this id are published one at
   * a time, so a row whose publish closes the channel is known (0: not probing). */
  int64_t probe_until_id;
  return_log returns;
  bool refetch; /* rows left the in-flight list (nacked): fetch at once */
  uint64_t published, acked, nacked, returned, set_aside; /* totals, logged at stop */
};

static bool body_reserve(jb_outbox_relay *r, size_t more) {
  if (r->body_failed) return false;
  if (r->body_len + more <= r->body_cap) return true;
  size_t cap = r->body_cap ? r->body_cap : 1024;
  while (cap < r->body_len + more) cap *= 2;
  char *p = realloc(r->body, cap);
  if (p == NULL) {
    r->body_failed = true;
    return false;
  }
  r->body = p;
  r->body_cap = cap;
  return true;
}

/* Declares the alternate exchange (durable fanout) and its durable queue of the same name. */
static jb_err declare_alternate(jb_outbox_relay *r, jb_error *e) {
  amqp_bytes_t ae = amqp_cstring_bytes(r->cfg->output.alternate_exchange);
  amqp_exchange_declare(r->conn, CH, ae, amqp_cstring_bytes("fanout"), 0, 1, 0, 0,
                        amqp_empty_table);
  jb_err rc = jb_amqp_check(amqp_get_rpc_reply(r->conn), "declare alternate exchange", e);
  if (rc != JB_OK) return rc;
  amqp_queue_declare(r->conn, CH, ae, 0, 1, 0, 0, amqp_empty_table);
  rc = jb_amqp_check(amqp_get_rpc_reply(r->conn), "declare alternate exchange's queue", e);
  if (rc != JB_OK) return rc;
  amqp_queue_bind(r->conn, CH, ae, ae, amqp_empty_bytes, amqp_empty_table);
  return jb_amqp_check(amqp_get_rpc_reply(r->conn), "bind alternate exchange's queue", e);
}

/* Declares the output exchange, with its alternate exchange when one is configured. */
static jb_err declare_output(jb_outbox_relay *r, jb_error *e) {
  bool alt =
      r->cfg->output.alternate_exchange != NULL && r->cfg->output.alternate_exchange[0] != '\0';
  if (alt) {
    jb_err rc = declare_alternate(r, e);
    if (rc != JB_OK) return rc;
  }
  amqp_table_entry_t arg = {
      .key = amqp_cstring_bytes("alternate-exchange"),
      .value = {.kind = AMQP_FIELD_KIND_UTF8,
                .value.bytes = amqp_cstring_bytes(alt ? r->cfg->output.alternate_exchange : "")}};
  amqp_table_t args = alt ? (amqp_table_t){1, &arg} : amqp_empty_table;
  amqp_exchange_declare(r->conn, CH, amqp_cstring_bytes(r->cfg->output.exchange),
                        amqp_cstring_bytes(r->cfg->output.exchange_type), 0, 1, 0, 0, args);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(r->conn);
  jb_err rc = jb_amqp_check(reply, "declare output exchange", e);
  if (rc != JB_OK && reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
      ((amqp_channel_close_t *)reply.reply.decoded)->reply_code == AMQP_PRECONDITION_FAILED) {
    char msg[sizeof e->msg];
    snprintf(msg, sizeof msg, "%s", e->msg);
    rc = jb_fail(e, JB_ERR_AMQP,
                 "%s; RabbitMQ cannot change the type or arguments of an existing exchange "
                 "(amqp.output.alternate_exchange is its alternate-exchange argument): delete "
                 "the exchange %s or configure another name",
                 msg, r->cfg->output.exchange);
  }
  return rc;
}

static jb_err relay_connect(jb_outbox_relay *r, jb_error *e) {
  jb_confirms_reset(&r->track, 1);
  jb_err rc = jb_amqp_connect_confirming(r->cfg, &r->node, &r->conn, e);
  if (rc != JB_OK) return rc;
  rc = declare_output(r, e);
  if (rc != JB_OK) {
    jb_amqp_drop(r->conn);
    r->conn = NULL;
  }
  return rc;
}

/* Appends s to the body as a JSON string. Every string here is valid UTF-8 (the database's
 * text, the configuration, ids and times we format), so only quotes, backslashes and control
 * characters need escaping. */
static void body_string(jb_outbox_relay *r, const char *s) {
  size_t n = strlen(s);
  if (!body_reserve(r, 6 * n + 3)) return; /* and sprintf's NUL */
  char *p = r->body + r->body_len;
  *p++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      p += sprintf(p, "\\u%04X", c);
    } else {
      *p++ = (char)c;
    }
  }
  *p++ = '"';
  r->body_len = (size_t)(p - r->body);
}

static void body_raw(jb_outbox_relay *r, const char *s) {
  size_t n = strlen(s);
  if (!body_reserve(r, n)) return;
  memcpy(r->body + r->body_len, s, n);
  r->body_len += n;
}

/* The CloudEvents structured body of one row, in r->body (reused from event to event); false
 * when out of memory. The job snapshot goes in as the text the database wrote. */
static bool event_body(jb_outbox_relay *r, const jb_outbox_row *row) {
  char ts[40];
  r->body_len = 0;
  r->body_failed = false;
  body_raw(r, "{\"specversion\":\"1.0\",\"type\":");
  body_string(r, row->event_type);
  body_raw(r, ",\"source\":");
  body_string(r, r->source);
  body_raw(r, ",\"id\":");
  body_string(r, row->message_id);
  body_raw(r, ",\"time\":");
  body_string(r, jb_time_format(row->created_at, ts, sizeof ts));
  body_raw(r, ",\"subject\":");
  body_string(r, row->job_id);
  body_raw(r, ",\"datacontenttype\":\"application/json\",\"data\":");
  body_raw(r, row->data ? row->data : "null");
  body_raw(r, "}");
  return !r->body_failed;
}

/* Statuses of amqp_basic_publish that mean this message cannot be encoded (not a broken
 * connection): the row is at fault. Part of the frames may be written already, so the channel
 * is dropped anyway. */
static bool encode_failure(int st) {
  return st == AMQP_STATUS_BAD_AMQP_DATA || st == AMQP_STATUS_TABLE_TOO_BIG ||
         st == AMQP_STATUS_INVALID_PARAMETER;
}

/* Publishes one row; its tag is recorded in r->track. JB_ERR_INVALID: the row cannot be
 * published (r->bad_id and r->bad_reason say which and why). Every short string (the type,
 * the correlation id, the routing key) is bounded by jb_amqp_short: the full values stay in
 * the body (type, data.job_type, data.metadata). */
static jb_err publish(jb_outbox_relay *r, const jb_outbox_row *row, uint64_t *tag, jb_error *e) {
  if (!event_body(r, row))
    return jb_fail(e, JB_ERR_NOMEM, "cannot encode event %s", row->message_id);
  char type[JB_AMQP_SHORT_MAX + 1], corr[JB_AMQP_SHORT_MAX + 1], key[JB_AMQP_SHORT_MAX + 1];
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
  props.content_type = amqp_cstring_bytes("application/cloudevents+json");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.message_id = amqp_cstring_bytes(row->message_id);
  props.type = amqp_cstring_bytes(jb_amqp_short(row->event_type, type));
  props.timestamp = (uint64_t)(row->created_at / 1000000);
  if (row->correlation_id) {
    props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = amqp_cstring_bytes(jb_amqp_short(row->correlation_id, corr));
  }
  int st = amqp_basic_publish(r->conn, CH, amqp_cstring_bytes(r->cfg->output.exchange),
                              amqp_cstring_bytes(jb_amqp_short(row->routing_key, key)), 1, 0,
                              &props, (amqp_bytes_t){r->body_len, r->body});
  if (st != AMQP_STATUS_OK && encode_failure(st)) {
    r->bad_id = row->id;
    snprintf(r->bad_reason, sizeof r->bad_reason, "the event cannot be encoded for AMQP: %s",
             amqp_error_string2(st));
    return jb_fail(e, JB_ERR_INVALID, "event %s (outbox row %lld): %s", row->message_id,
                   (long long)row->id, r->bad_reason);
  }
  if (st != AMQP_STATUS_OK)
    return jb_fail(e, JB_ERR_AMQP_CONN, "publish: %s", amqp_error_string2(st));
  *tag = jb_confirms_publish(&r->track);
  r->published++;
  return JB_OK;
}

/* A basic.return: the broker had no queue for the event (mandatory). Counted always; logged
 * once per routing key per interval (see flush_returns). */
static void on_return(void *arg, const amqp_basic_return_t *ret) {
  jb_outbox_relay *r = arg;
  return_log *rl = &r->returns;
  char key[JB_AMQP_SHORT_MAX + 1], text[128];
  jb_amqp_str(ret->routing_key, key, sizeof key);
  r->returned++;
  if (rl->n == 0 && rl->others == 0) rl->since_ms = jb_mono_ms();
  for (size_t i = 0; i < rl->n; i++)
    if (strcmp(rl->key[i], key) == 0) {
      rl->count[i]++;
      return;
    }
  if (rl->n == RETURN_KEYS) {
    rl->others++;
    return;
  }
  snprintf(rl->key[rl->n], sizeof rl->key[0], "%s", key);
  rl->count[rl->n++] = 1;
  jb_log(JB_LOG_WARN,
         "job event returned unroutable: no queue is bound for its routing key; the event is "
         "dropped (set amqp.output.alternate_exchange to keep such events)",
         "routing_key", key, "exchange", r->cfg->output.exchange,
         JB_LOG_U64("reply_code", ret->reply_code), "reply_text",
         jb_amqp_str(ret->reply_text, text, sizeof text), JB_LOG_END);
}

/* Logs how many events of each routing key were returned in the interval, once it is over
 * (or now, when stopping). */
static void flush_returns(jb_outbox_relay *r, bool now) {
  return_log *rl = &r->returns;
  if (rl->n == 0 || (!now && jb_mono_ms() - rl->since_ms < RETURN_LOG_MS)) return;
  for (size_t i = 0; i < rl->n; i++)
    jb_log(JB_LOG_WARN, "job events returned unroutable and dropped", "routing_key", rl->key[i],
           JB_LOG_U64("count", rl->count[i]), JB_LOG_U64("returned_total", r->returned),
           JB_LOG_END);
  if (rl->others > 0)
    jb_log(JB_LOG_WARN, "job events returned unroutable and dropped", "routing_key", "(other keys)",
           JB_LOG_U64("count", rl->others), JB_LOG_U64("returned_total", r->returned), JB_LOG_END);
  rl->n = 0;
  rl->others = 0;
}

/* A published row waiting for its confirm: its tag on this channel. */
typedef struct inflight {
  uint64_t tag;
  int64_t id;
} inflight;

/* The relay's state on one AMQP connection: what is published and awaiting its confirm. */
typedef struct pipe_state {
  inflight *fl;
  int64_t *ids; /* the same rows' ids, for fetch's skip list, and for deletes */
  size_t n;
  int64_t confirmed_since_ms; /* when rows first waited, confirmed, for their delete; 0: none */
} pipe_state;

/* Publishes rows not yet in flight, as many as the window allows (one at a time while
 * probing). *asked gets how many rows were asked for (0: the window is full), *fetched how
 * many came. */
static jb_err publish_more(jb_outbox_relay *r, pipe_state *ps, size_t *fetched, size_t *asked,
                           jb_error *e) {
  *fetched = 0;
  size_t room = WINDOW - ps->n;
  size_t track_room = r->track.cap - (size_t)(r->track.next - r->track.low);
  if (track_room < room) room = track_room;
  if (r->probe_until_id > 0 && ps->n > 0) room = 0;
  *asked = room < BATCH ? room : BATCH;
  if (r->probe_until_id > 0 && *asked > 1) *asked = 1;
  if (room == 0) return JB_OK;
  jb_outbox_row *rows = NULL;
  size_t n = 0;
  for (size_t i = 0; i < ps->n; i++) ps->ids[i] = ps->fl[i].id;
  jb_err rc = r->ob.ops->fetch(r->ob.self, ps->ids, ps->n, (int)*asked, &rows, &n, e);
  if (rc != JB_OK) return rc;
  if (r->probe_until_id > 0 && (n == 0 || rows[0].id > r->probe_until_id)) {
    r->probe_until_id = 0; /* past the rows that were in flight: the full window again */
    jb_log(JB_LOG_INFO, "outbox relay: rows in flight at the channel error published one by one",
           JB_LOG_END);
  }
  jb_time now = n > 0 ? jb_time_now() : 0;
  for (size_t i = 0; rc == JB_OK && i < n; i++) {
    uint64_t tag = 0;
    rc = publish(r, &rows[i], &tag, e);
    if (rc == JB_OK) ps->fl[ps->n++] = (inflight){tag, rows[i].id};
    if (rc == JB_OK) jb_metric_observe(r->metrics.lag, (double)(now - rows[i].created_at) / 1e6);
  }
  *fetched = n;
  jb_outbox_rows_free(rows, n);
  return rc;
}

/* Takes the outcome of every settled publish: acked rows are deleted, nacked ones leave the
 * in-flight list (so the next fetch publishes them again). Deletes go in batches: once
 * DELETE_BATCH are acked, DELETE_WAIT_MS after the first of them, when half the window is
 * taken, or when `now` (stopping). A delete is a round trip the next event would wait for; an
 * acked row left a moment longer is only skipped by the fetch. *progress: rows were deleted. */
#define DELETE_BATCH 256
#define DELETE_WAIT_MS 50
static jb_err settle_confirmed(jb_outbox_relay *r, pipe_state *ps, bool now, bool *progress,
                               jb_error *e) {
  jb_confirms *t = &r->track;
  *progress = false;
  if (t->acked == 0 && t->nacked == 0) {
    ps->confirmed_since_ms = 0;
    return JB_OK;
  }
  if (t->acked > 0 && ps->confirmed_since_ms == 0) ps->confirmed_since_ms = jb_mono_ms();
  if (t->nacked == 0 && !now && r->probe_until_id == 0 && t->acked < DELETE_BATCH &&
      ps->n < WINDOW / 2 && jb_mono_ms() - ps->confirmed_since_ms < DELETE_WAIT_MS)
    return JB_OK;
  ps->confirmed_since_ms = 0;
  size_t k = 0, keep = 0, nacked = 0;
  for (size_t i = 0; i < ps->n; i++) {
    jb_confirm_state st = jb_confirms_take(t, ps->fl[i].tag);
    if (st == JB_CONFIRM_ACKED)
      ps->ids[k++] = ps->fl[i].id;
    else if (st == JB_CONFIRM_PENDING)
      ps->fl[keep++] = ps->fl[i];
    else
      nacked++; /* refused (or unknown): published again from the outbox */
  }
  ps->n = keep;
  r->acked += k;
  jb_metric_add(r->metrics.published, k);
  if (nacked > 0) {
    r->nacked += nacked;
    r->refetch = true;
    jb_log(JB_LOG_WARN, "the broker refused job events (nack); publishing them again",
           JB_LOG_U64("count", nacked), JB_LOG_END);
  }
  if (k == 0) return JB_OK;
  *progress = true;
  return r->ob.ops->remove(r->ob.self, ps->ids, k, e);
}

/* With publishes in flight and nothing new to publish: sleeps until a confirm arrives or a new
 * row is written, whichever comes first (never a fixed wait that would delay new events).
 * *rows_waiting says whether the outbox may hold new rows (a notification came). */
static jb_err await_confirm_or_row(jb_outbox_relay *r, bool *rows_waiting, jb_error *e) {
  *rows_waiting = false;
  if (amqp_frames_enqueued(r->conn) || amqp_data_in_buffer(r->conn)) return JB_OK;
  int pgfd = -1;
  jb_err rc = r->ob.ops->notify_fd(r->ob.self, &pgfd, e);
  if (rc != JB_OK) return rc;
  if (pgfd < 0) {
    *rows_waiting = true;
    return JB_OK;
  }
  /* The stop descriptor only until the stop: then it stays readable, and the flush goes on. */
  int stopfd = jb_stop_requested(&r->stop) ? -1 : jb_stop_fd(&r->stop);
  struct pollfd p[3] = {
      {amqp_get_sockfd(r->conn), POLLIN, 0}, {pgfd, POLLIN, 0}, {stopfd, POLLIN, 0}};
  if (poll(p, 3, 100) < 0 && errno != EINTR)
    return jb_fail(e, JB_ERR_IO, "poll: %s", strerror(errno));
  if (p[1].revents == 0) return JB_OK;
  /* Take the notifications (without waiting) so the next fetch is not woken again by them. */
  *rows_waiting = true;
  return r->ob.ops->wait(r->ob.self, 0, e);
}

/* Waits ms before a retry, returning early when a stop comes; once stopping, waits no longer
 * than the stop's flush time: a relay that cannot reach the broker or the database must not
 * hold a shutdown for its whole backoff. */
static void pause_ms(jb_outbox_relay *r, long ms) {
  int64_t end = jb_mono_ms() + ms;
  if (!jb_stop_wait(&r->stop, ms)) return; /* the whole pause, no stop */
  int64_t until = atomic_load(&r->flush_until_ms);
  if (end < until) until = end;
  int64_t left = until - jb_mono_ms();
  if (left > 0) jb_sleep_ms((long)left); /* during the flush: nothing wakes it earlier */
}

/* Idle and not stopping: waits up to ms for a notification of new rows or for the stop. */
static void idle_wait(jb_outbox_relay *r, long ms) {
  jb_error e;
  int pgfd = -1;
  if (r->ob.ops->notify_fd(r->ob.self, &pgfd, &e) != JB_OK) {
    jb_stop_wait(&r->stop, ms); /* the database: the next round finds and logs it */
    return;
  }
  if (pgfd < 0) return; /* rows are waiting now */
  struct pollfd p[2] = {{pgfd, POLLIN, 0}, {jb_stop_fd(&r->stop), POLLIN, 0}};
  if (poll(p, 2, (int)ms) > 0 && p[0].revents != 0 && r->ob.ops->wait(r->ob.self, 0, &e) != JB_OK)
    jb_stop_wait(&r->stop, ms);
}

/* Sets row id aside with its reason (a row the broker cannot take), logs and counts it. */
static jb_err set_aside(jb_outbox_relay *r, int64_t id, const char *reason, jb_error *e) {
  jb_err rc = r->ob.ops->set_aside(r->ob.self, id, reason, e);
  if (rc != JB_OK) return rc;
  r->set_aside++;
  jb_log(JB_LOG_ERROR,
         "job event set aside: the broker cannot take it; it stays in the outbox with "
         "failed_at and failed_reason, and the events after it go on",
         JB_LOG_I64("outbox_id", id), "reason", reason, JB_LOG_U64("set_aside_total", r->set_aside),
         JB_LOG_END);
  return JB_OK;
}

/* After a failed publish or a broken channel: which row, if any, is at fault. A row whose
 * properties cannot be encoded is; so is the one row in flight when the broker closes the
 * channel with 406 PRECONDITION_FAILED (a message it refuses, for example over its
 * max_message_size; acked rows cannot have caused it). With several rows in flight, the
 * culprit is unknown: those rows are published again one at a time (probing). Other channel
 * errors (a deleted exchange, missing permissions) are the broker's, not a row's: retried. */
static jb_err blame_row(jb_outbox_relay *r, const pipe_state *ps, jb_err failure,
                        const jb_error *cause, jb_error *e) {
  if (failure == JB_ERR_INVALID && r->bad_id >= 0) {
    int64_t id = r->bad_id;
    r->bad_id = -1;
    return set_aside(r, id, r->bad_reason, e);
  }
  if (failure != JB_ERR_AMQP || r->track.close_code != AMQP_PRECONDITION_FAILED) return JB_OK;
  size_t pending = 0;
  int64_t culprit = 0, max_id = 0;
  for (size_t i = 0; i < ps->n; i++) {
    if (ps->fl[i].id > max_id) max_id = ps->fl[i].id;
    if (r->track.state[ps->fl[i].tag % r->track.cap] == JB_CONFIRM_PENDING) {
      pending++;
      culprit = ps->fl[i].id;
    }
  }
  if (pending == 1) return set_aside(r, culprit, cause->msg, e);
  if (pending > 1 && max_id > r->probe_until_id) r->probe_until_id = max_id;
  return JB_OK;
}

/* One round on a connected channel: publish what is new, take the confirms that have come,
 * delete what they cover: a window of publishes in flight, never a wait for the broker's disk
 * per batch. New rows go out before the delete's round trip, and the wait comes last, so a
 * woken relay publishes at once. *idle: nothing fetched and nothing in flight. */
static jb_err relay_round(jb_outbox_relay *r, pipe_state *ps, bool stopping, bool *fetch_due,
                          int64_t *last_fetch_ms, bool *idle, bool *progress, jb_error *e) {
  size_t fetched = 0;
  jb_err rc = JB_OK;
  *progress = false;
  if (r->refetch) *fetch_due = true;
  r->refetch = false;
  /* Fetch only when rows may be waiting: a notification came, the last fetch was full, or a
   * second passed (a safety net). A confirm alone brings no new row. */
  bool window_full = false;
  if (*fetch_due || ps->n == 0 || jb_mono_ms() - *last_fetch_ms >= 1000) {
    size_t asked = 0;
    rc = publish_more(r, ps, &fetched, &asked, e);
    *last_fetch_ms = jb_mono_ms();
    if (asked == 0)
      window_full = true; /* fetch_due stays: fetch as soon as a confirm makes room */
    else
      *fetch_due = fetched == asked || r->probe_until_id > 0;
  }
  if (rc == JB_OK) rc = jb_amqp_read_confirms(r->conn, 0, &r->track, e);
  if (rc == JB_OK) rc = settle_confirmed(r, ps, stopping, progress, e);
  if (rc == JB_OK && fetched == 0 && ps->n > 0 && (!*fetch_due || window_full)) {
    bool notified = false;
    rc = await_confirm_or_row(r, &notified, e);
    if (notified) *fetch_due = true;
  }
  flush_returns(r, false);
  /* rabbitmq-c keeps every frame it reads (each confirm) in the channel's pool until this
   * call: once per round, not only when idle, or a steady stream or a draining backlog grows
   * the relay's memory without bound. The confirms are settled into r->track and a return's
   * strings copied by on_return, so nothing points into those frames now; a channel with
   * frames still queued is skipped by rabbitmq-c itself. */
  if (r->conn != NULL) amqp_maybe_release_buffers(r->conn);
  *idle = fetched == 0 && ps->n == 0;
  return rc;
}

static void log_totals(jb_outbox_relay *r) {
  jb_log(JB_LOG_INFO, "outbox relay totals", JB_LOG_U64("published", r->published),
         JB_LOG_U64("acked", r->acked), JB_LOG_U64("nacked", r->nacked),
         JB_LOG_U64("returned", r->returned), JB_LOG_U64("set_aside", r->set_aside), JB_LOG_END);
}

/* A failed round on the channel: sets aside the row at fault, if any (blame_row), drops the
 * connection, and waits before the next one unless a row was set aside (progress). */
static void publish_failed(jb_outbox_relay *r, const pipe_state *ps, jb_err rc,
                           const jb_error *cause, bool *leader, long *backoff) {
  jb_log(JB_LOG_WARN, "publishing job events failed; they stay in the outbox", "error", cause->msg,
         JB_LOG_END);
  jb_error be;
  jb_error_clear(&be);
  jb_err brc = blame_row(r, ps, rc, cause, &be);
  jb_amqp_drop(r->conn);
  r->conn = NULL;
  if (brc != JB_OK) { /* the database: lead again */
    jb_log(JB_LOG_WARN, "setting a job event aside failed; retrying", "error", be.msg, JB_LOG_END);
    *leader = false;
  }
  /* A broker that keeps closing the channel is not hammered. */
  if (brc != JB_OK || rc != JB_ERR_INVALID) {
    pause_ms(r, *backoff);
    *backoff = jb_backoff_next(*backoff, 30000);
  }
}

/* The relay's thread. Health: a turn waits at most a backoff (30 s), so a minute late is
 * wedged; ready when connected to the broker, or standing by while another instance leads. */
static void *relay_main(void *arg) {
  jb_outbox_relay *r = arg;
  long backoff = 250;
  bool leader = false;
  bool fetch_due = true;
  int64_t last_fetch_ms = 0;
  pipe_state ps = {.fl = malloc(WINDOW * sizeof(inflight)),
                   .ids = malloc(WINDOW * sizeof(int64_t))};
  if (ps.fl == NULL || ps.ids == NULL) {
    jb_log(JB_LOG_ERROR, "outbox relay: out of memory", JB_LOG_END);
    free(ps.fl);
    free(ps.ids);
    return NULL;
  }
  jb_health_slot *alive = jb_health_thread("outbox relay", 60000);
  jb_health_slot *ready = jb_health_component("outbox relay");
  for (;;) {
    jb_health_beat(alive);
    bool stopping = jb_stop_requested(&r->stop);
    if (stopping && jb_mono_ms() >= atomic_load(&r->flush_until_ms)) break;
    jb_error e;
    jb_error_clear(&e);
    if (!leader) {
      jb_err lrc = r->ob.ops->try_lead(r->ob.self, &leader, &e);
      if (lrc != JB_OK || !leader) {
        if (stopping) break;
        if (lrc == JB_OK) jb_health_ready(ready); /* standing by */
        if (lrc != JB_OK) jb_health_not_ready(ready, "cannot read the outbox: %.170s", e.msg);
        jb_stop_wait(&r->stop, 1000);
        continue;
      }
      jb_log(JB_LOG_INFO, "outbox relay leading", "source", r->source, JB_LOG_END);
    }
    if (r->conn == NULL) {
      /* A new channel: whatever was in flight on the old one is still in the outbox, and is
       * published again from the oldest row (consumers dedupe on message_id). */
      ps.n = 0;
      ps.confirmed_since_ms = 0;
      if (relay_connect(r, &e) != JB_OK) {
        jb_log(JB_LOG_WARN, "broker unavailable for job events; they wait in the outbox", "error",
               e.msg, JB_LOG_I64("retry_in_ms", backoff), JB_LOG_END);
        jb_health_not_ready(ready, "cannot publish job events: %.170s", e.msg);
        pause_ms(r, backoff);
        backoff = jb_backoff_next(backoff, 30000);
        continue;
      }
      jb_health_ready(ready);
    }
    bool idle = false, progress = false;
    jb_err rc = relay_round(r, &ps, stopping, &fetch_due, &last_fetch_ms, &idle, &progress, &e);
    if (rc == JB_ERR_AMQP_CONN || rc == JB_ERR_AMQP || rc == JB_ERR_INVALID) {
      publish_failed(r, &ps, rc, &e, &leader, &backoff);
      continue;
    }
    if (rc != JB_OK) {
      /* The database: the session lock may be gone with the connection, so lead again. */
      jb_log(JB_LOG_WARN, "reading the outbox failed; retrying", "error", e.msg, JB_LOG_END);
      leader = false;
      jb_amqp_drop(r->conn); /* in-flight rows are read again on the next channel */
      r->conn = NULL;
      pause_ms(r, backoff);
      backoff = jb_backoff_next(backoff, 30000);
      continue;
    }
    if (progress || idle) backoff = 250;
    if (idle) {
      if (stopping) break; /* drained */
      idle_wait(r, 200);
    }
  }
  flush_returns(r, true);
  log_totals(r);
  free(ps.fl);
  free(ps.ids);
  jb_amqp_close(r->conn);
  r->conn = NULL;
  jb_health_remove(alive);
  jb_health_remove(ready);
  return NULL;
}

jb_err jb_outbox_relay_new(const jb_amqp_cfg *cfg, jb_outbox outbox, const char *instance,
                           jb_outbox_relay **out, jb_error *e) {
  jb_outbox_relay *r = calloc(1, sizeof *r);
  if (r == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  r->cfg = cfg;
  r->ob = outbox;
  r->bad_id = -1;
  jb_err rc = jb_stop_init(&r->stop, e);
  if (rc != JB_OK) {
    free(r);
    return rc;
  }
  rc = jb_confirms_init(&r->track, 4 * WINDOW, 1, e);
  if (rc != JB_OK) {
    jb_stop_destroy(&r->stop);
    free(r);
    return rc;
  }
  r->track.on_return = on_return;
  r->track.on_return_arg = r;
  snprintf(r->source, sizeof r->source, "jobbridge/%s", instance);
  r->metrics = jb_relay_metrics_get();
  *out = r;
  return JB_OK;
}

jb_err jb_outbox_relay_start(jb_outbox_relay *r, jb_error *e) {
  if (r->running) return JB_OK;
  jb_stop_reset(&r->stop);
  if (pthread_create(&r->thread, NULL, relay_main, r) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot start the outbox relay thread");
  r->running = true;
  return JB_OK;
}

void jb_outbox_relay_stop(jb_outbox_relay *r, double flush_s) {
  if (!r->running) return;
  atomic_store(&r->flush_until_ms, jb_mono_ms() + (int64_t)(flush_s * 1000));
  jb_stop_request(&r->stop); /* wakes the relay wherever it waits */
  pthread_join(r->thread, NULL);
  r->running = false;
}

void jb_outbox_relay_free(jb_outbox_relay *r) {
  if (r == NULL) return;
  jb_outbox_relay_stop(r, 0);
  jb_confirms_free(&r->track);
  jb_stop_destroy(&r->stop);
  free(r->body);
  free(r);
}
