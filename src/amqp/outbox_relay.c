/* The outbox relay. Only one instance relays at a time (a database session lock), so events
 * leave in the order they were written; a relay that stops is replaced by another instance's.
 * A crash after a publish but before the delete publishes that event again: consumers dedupe
 * on the message id, which is fixed when the row is written. */
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
#include "jobbridge/log.h"

#define CH 1
#define BATCH 500  /* rows fetched at once */
#define WINDOW 512 /* publishes awaiting their confirm */

struct jb_outbox_relay {
  const jb_config *cfg;
  jb_outbox ob;
  char source[160];
  pthread_t thread;
  atomic_bool stop;
  atomic_int_fast64_t flush_until_ms; /* when stopping: keep draining until then */
  bool running;
  amqp_connection_state_t conn;
  uint64_t seq, confirmed;
  char *body; /* the event being published; owned, reused */
  size_t body_len, body_cap;
  bool body_failed; /* out of memory while building it */
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

static jb_err relay_connect(jb_outbox_relay *r, jb_error *e) {
  r->seq = r->confirmed = 0;
  jb_err rc = jb_amqp_connect_confirming(r->cfg->amqp_url, r->cfg->amqp_heartbeat_s, &r->conn, e);
  if (rc != JB_OK) return rc;
  amqp_exchange_declare(r->conn, CH, amqp_cstring_bytes(r->cfg->out_exchange),
                        amqp_cstring_bytes(r->cfg->out_exchange_type), 0, 1, 0, 0,
                        amqp_empty_table);
  rc = jb_amqp_check(amqp_get_rpc_reply(r->conn), "declare output exchange", e);
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

static jb_err publish(jb_outbox_relay *r, const jb_outbox_row *row, jb_error *e) {
  if (!event_body(r, row))
    return jb_fail(e, JB_ERR_NOMEM, "cannot encode event %s", row->message_id);
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
  props.content_type = amqp_cstring_bytes("application/cloudevents+json");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.message_id = amqp_cstring_bytes(row->message_id);
  props.type = amqp_cstring_bytes(row->event_type);
  props.timestamp = (uint64_t)(row->created_at / 1000000);
  if (row->correlation_id) {
    props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = amqp_cstring_bytes(row->correlation_id);
  }
  int st = amqp_basic_publish(r->conn, CH, amqp_cstring_bytes(r->cfg->out_exchange),
                              amqp_cstring_bytes(row->routing_key), 1, 0, &props,
                              (amqp_bytes_t){r->body_len, r->body});
  if (st != AMQP_STATUS_OK)
    return jb_fail(e, JB_ERR_AMQP_CONN, "publish: %s", amqp_error_string2(st));
  r->seq++;
  return JB_OK;
}

/* A published row waiting for its confirm: publishes are numbered per channel. */
typedef struct inflight {
  uint64_t seq;
  int64_t id;
} inflight;

/* The relay's state on one AMQP connection: what is published and awaiting its confirm. */
typedef struct pipe_state {
  inflight *fl;
  int64_t *ids; /* the same rows' ids, for fetch's skip list */
  size_t n;
  int64_t confirmed_since_ms; /* when rows first waited, confirmed, for their delete; 0: none */
} pipe_state;

/* Publishes rows not yet in flight, as many as the window allows. *asked gets how many rows
 * were asked for (0: the window is full), *fetched how many came. */
static jb_err publish_more(jb_outbox_relay *r, pipe_state *ps, size_t *fetched, size_t *asked,
                           jb_error *e) {
  *fetched = 0;
  size_t room = WINDOW - ps->n;
  *asked = room < BATCH ? room : BATCH;
  if (room == 0) return JB_OK;
  jb_outbox_row *rows = NULL;
  size_t n = 0;
  for (size_t i = 0; i < ps->n; i++) ps->ids[i] = ps->fl[i].id;
  jb_err rc = r->ob.ops->fetch(r->ob.self, ps->ids, ps->n, (int)*asked, &rows, &n, e);
  if (rc != JB_OK) return rc;
  for (size_t i = 0; rc == JB_OK && i < n; i++) {
    rc = publish(r, &rows[i], e);
    if (rc == JB_OK) ps->fl[ps->n++] = (inflight){r->seq, rows[i].id};
  }
  *fetched = n;
  jb_outbox_rows_free(rows, n);
  return rc;
}

/* Deletes the rows whose publish is confirmed (a prefix of the in-flight list), in batches:
 * once DELETE_BATCH are confirmed, DELETE_WAIT_MS after the first of them, when half the window
 * is taken, or when `now` (stopping). A delete is a round trip the next event would wait for;
 * a confirmed row left a moment longer is only skipped by the fetch. */
#define DELETE_BATCH 256
#define DELETE_WAIT_MS 50
static jb_err delete_confirmed(jb_outbox_relay *r, pipe_state *ps, bool now, jb_error *e) {
  size_t k = 0;
  while (k < ps->n && ps->fl[k].seq <= r->confirmed) k++;
  if (k == 0) {
    ps->confirmed_since_ms = 0;
    return JB_OK;
  }
  if (ps->confirmed_since_ms == 0) ps->confirmed_since_ms = jb_mono_ms();
  if (!now && k < DELETE_BATCH && ps->n < WINDOW / 2 &&
      jb_mono_ms() - ps->confirmed_since_ms < DELETE_WAIT_MS)
    return JB_OK;
  ps->confirmed_since_ms = 0;
  int64_t *ids = malloc(k * sizeof *ids);
  if (ids == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < k; i++) ids[i] = ps->fl[i].id;
  jb_err rc = r->ob.ops->remove(r->ob.self, ids, k, e);
  free(ids);
  if (rc != JB_OK) return rc;
  memmove(ps->fl, ps->fl + k, (ps->n - k) * sizeof *ps->fl);
  ps->n -= k;
  return JB_OK;
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
  struct pollfd p[2] = {{amqp_get_sockfd(r->conn), POLLIN, 0}, {pgfd, POLLIN, 0}};
  if (poll(p, 2, 100) < 0 && errno != EINTR)
    return jb_fail(e, JB_ERR_IO, "poll: %s", strerror(errno));
  if (p[1].revents == 0) return JB_OK;
  /* Take the notifications (without waiting) so the next fetch is not woken again by them. */
  *rows_waiting = true;
  return r->ob.ops->wait(r->ob.self, 0, e);
}

/* Sleeps ms, or less when a stop's flush time runs out meanwhile: a relay that cannot reach the
 * broker or the database must not hold a shutdown for its whole backoff. */
static void pause_ms(jb_outbox_relay *r, long ms) {
  for (; ms > 0; ms -= 50) {
    if (atomic_load(&r->stop) && jb_mono_ms() >= atomic_load(&r->flush_until_ms)) return;
    jb_sleep_ms(ms < 50 ? ms : 50);
  }
}

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
  for (;;) {
    bool stopping = atomic_load(&r->stop);
    if (stopping && jb_mono_ms() >= atomic_load(&r->flush_until_ms)) break;
    jb_error e;
    jb_error_clear(&e);
    if (!leader) {
      if (r->ob.ops->try_lead(r->ob.self, &leader, &e) != JB_OK || !leader) {
        if (stopping) break;
        jb_sleep_ms(1000);
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
        char delay[24];
        snprintf(delay, sizeof delay, "%ld", backoff);
        jb_log(JB_LOG_WARN, "broker unavailable for job events; they wait in the outbox", "error",
               e.msg, "retry_in_ms", delay, JB_LOG_END);
        pause_ms(r, backoff);
        backoff = jb_backoff_next(backoff, 30000);
        continue;
      }
    }
    /* Publish what is new, take the confirms that have come, delete what they cover: a window
     * of publishes in flight, never a wait for the broker's disk per batch. New rows go out
     * before the delete's round trip, and the wait comes last, so a woken relay publishes at
     * once. */
    size_t fetched = 0;
    bool returned = false;
    jb_err rc = JB_OK;
    /* Fetch only when rows may be waiting: a notification came, the last fetch was full, or a
     * second passed (a safety net). A confirm alone brings no new row. */
    bool window_full = false;
    if (fetch_due || ps.n == 0 || jb_mono_ms() - last_fetch_ms >= 1000) {
      size_t asked = 0;
      rc = publish_more(r, &ps, &fetched, &asked, &e);
      last_fetch_ms = jb_mono_ms();
      if (asked == 0)
        window_full = true; /* fetch_due stays: fetch as soon as a confirm makes room */
      else
        fetch_due = fetched == asked;
    }
    if (rc == JB_OK) rc = jb_amqp_read_confirms(r->conn, 0, &r->confirmed, &returned, &e);
    if (rc == JB_OK) rc = delete_confirmed(r, &ps, stopping, &e);
    if (rc == JB_OK && fetched == 0 && ps.n > 0 && (!fetch_due || window_full)) {
      bool notified = false;
      rc = await_confirm_or_row(r, &notified, &e);
      if (notified) fetch_due = true;
    }
    if (rc == JB_ERR_AMQP_CONN || rc == JB_ERR_AMQP) {
      jb_log(JB_LOG_WARN, "publishing job events failed; they stay in the outbox", "error", e.msg,
             JB_LOG_END);
      jb_amqp_drop(r->conn);
      r->conn = NULL;
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
    backoff = 250;
    if (fetched == 0 && ps.n == 0) {
      if (stopping) break; /* drained */
      if (r->ob.ops->wait(r->ob.self, 200, &e) != JB_OK) jb_sleep_ms(200);
      amqp_maybe_release_buffers(r->conn);
    }
  }
  free(ps.fl);
  free(ps.ids);
  jb_amqp_close(r->conn);
  r->conn = NULL;
  return NULL;
}

jb_err jb_outbox_relay_new(const jb_config *cfg, jb_outbox outbox, const char *instance,
                           jb_outbox_relay **out, jb_error *e) {
  jb_outbox_relay *r = calloc(1, sizeof *r);
  if (r == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  r->cfg = cfg;
  r->ob = outbox;
  snprintf(r->source, sizeof r->source, "jobbridge/%s", instance);
  *out = r;
  return JB_OK;
}

jb_err jb_outbox_relay_start(jb_outbox_relay *r, jb_error *e) {
  if (r->running) return JB_OK;
  atomic_store(&r->stop, false);
  if (pthread_create(&r->thread, NULL, relay_main, r) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot start the outbox relay thread");
  r->running = true;
  return JB_OK;
}

void jb_outbox_relay_stop(jb_outbox_relay *r, double flush_s) {
  if (!r->running) return;
  atomic_store(&r->flush_until_ms, jb_mono_ms() + (int64_t)(flush_s * 1000));
  atomic_store(&r->stop, true);
  pthread_join(r->thread, NULL);
  r->running = false;
}

void jb_outbox_relay_free(jb_outbox_relay *r) {
  if (r == NULL) return;
  jb_outbox_relay_stop(r, 0);
  free(r->body);
  free(r);
}
