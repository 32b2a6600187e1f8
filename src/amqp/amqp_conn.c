/* rabbitmq-c connection helpers shared by the AMQP adapters. */
#include "amqp/amqp_conn.h"
#include "amqp/mq_metrics.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "jobbridge/log.h"

char *jb_amqp_str(amqp_bytes_t b, char *buf, size_t len) {
  size_t n = b.len < len - 1 ? b.len : len - 1;
  if (n) memcpy(buf, b.bytes, n);
  buf[n] = '\0';
  return buf;
}

jb_err jb_amqp_check(amqp_rpc_reply_t r, const char *what, jb_error *e) {
  char text[256];
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return JB_OK;
    case AMQP_RESPONSE_NONE:
      return jb_fail(e, JB_ERR_AMQP_CONN, "%s: no reply from the broker", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return jb_fail(e, JB_ERR_AMQP_CONN, "%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        return jb_fail(e, JB_ERR_AMQP_CONN, "%s: broker closed the connection: %u %s", what,
                       m->reply_code, jb_amqp_str(m->reply_text, text, sizeof text));
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        /* We drop the whole connection on any channel error: simpler, and nothing is lost. */
        return jb_fail(e, JB_ERR_AMQP, "%s: broker closed the channel: %u %s", what, m->reply_code,
                       jb_amqp_str(m->reply_text, text, sizeof text));
      }
      return jb_fail(e, JB_ERR_AMQP, "%s: unexpected broker method 0x%08x", what, r.reply.id);
  }
  return jb_fail(e, JB_ERR_AMQP, "%s: unknown reply", what);
}

/* ---- publisher confirms, tag by tag ---- */

jb_err jb_confirms_init(jb_confirms *t, size_t cap, uint64_t first_tag, jb_error *e) {
  memset(t, 0, sizeof *t);
  t->cap = cap ? cap : 1;
  t->state = malloc(t->cap);
  if (t->state == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for %zu confirms", cap);
  jb_confirms_reset(t, first_tag);
  return JB_OK;
}

void jb_confirms_free(jb_confirms *t) {
  free(t->state);
  t->state = NULL;
  t->cap = 0;
}

void jb_confirms_reset(jb_confirms *t, uint64_t first_tag) {
  t->next = t->low = t->pending_from = first_tag;
  t->pending = t->acked = t->nacked = 0;
  t->close_code = 0;
}

bool jb_confirms_full(const jb_confirms *t) {
  return t->next - t->low >= t->cap;
}

uint64_t jb_confirms_publish(jb_confirms *t) {
  uint64_t tag = t->next++;
  t->state[tag % t->cap] = JB_CONFIRM_PENDING;
  t->pending++;
  return tag;
}

static void confirms_mark(jb_confirms *t, uint64_t tag, unsigned char to) {
  unsigned char *s = &t->state[tag % t->cap];
  if (*s != JB_CONFIRM_PENDING) return;
  *s = to;
  t->pending--;
  if (to == JB_CONFIRM_ACKED)
    t->acked++;
  else
    t->nacked++;
}

void jb_confirms_settle(jb_confirms *t, uint64_t tag, bool multiple, bool ack) {
  unsigned char to = ack ? JB_CONFIRM_ACKED : JB_CONFIRM_NACKED;
  if (multiple) {
    /* Every outstanding tag up to `tag` (0: all of them, as the protocol allows). */
    uint64_t hi = tag == 0 ? t->next - 1 : tag;
    if (hi >= t->next) {
      t->stray++;
      return;
    }
    for (uint64_t x = t->pending_from; x <= hi; x++) confirms_mark(t, x, to);
  } else {
    if (tag < t->pending_from || tag >= t->next || t->state[tag % t->cap] != JB_CONFIRM_PENDING) {
      t->stray++;
      return;
    }
    confirms_mark(t, tag, to);
  }
  while (t->pending_from < t->next && t->state[t->pending_from % t->cap] != JB_CONFIRM_PENDING)
    t->pending_from++;
}

jb_confirm_state jb_confirms_take(jb_confirms *t, uint64_t tag) {
  if (tag < t->low || tag >= t->next) return JB_CONFIRM_UNKNOWN;
  unsigned char *s = &t->state[tag % t->cap];
  jb_confirm_state st = (jb_confirm_state)*s;
  if (st == JB_CONFIRM_ACKED) t->acked--;
  if (st == JB_CONFIRM_NACKED) t->nacked--;
  if (st == JB_CONFIRM_ACKED || st == JB_CONFIRM_NACKED) *s = JB_CONFIRM_UNKNOWN;
  while (t->low < t->next && t->state[t->low % t->cap] == JB_CONFIRM_UNKNOWN) t->low++;
  return st;
}

/* Handles one frame on a confirm-mode channel. */
static jb_err confirm_frame(amqp_connection_state_t conn, const amqp_frame_t *frame, jb_confirms *t,
                            jb_error *e) {
  if (frame->frame_type != AMQP_FRAME_METHOD) return JB_OK;
  switch (frame->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      amqp_basic_ack_t *ack = frame->payload.method.decoded;
      jb_confirms_settle(t, ack->delivery_tag, ack->multiple, true);
      return JB_OK;
    }
    case AMQP_BASIC_NACK_METHOD: {
      amqp_basic_nack_t *nack = frame->payload.method.decoded;
      jb_confirms_settle(t, nack->delivery_tag, nack->multiple, false);
      return JB_OK;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      /* The return comes before the publish's ack: the message still counts as confirmed. */
      if (t->on_return) t->on_return(t->on_return_arg, frame->payload.method.decoded);
      amqp_message_t msg;
      int st = amqp_read_message(conn, frame->channel, &msg, 0).reply_type;
      if (st == AMQP_RESPONSE_NORMAL) amqp_destroy_message(&msg);
      return st == AMQP_RESPONSE_NORMAL
                 ? JB_OK
                 : jb_fail(e, JB_ERR_AMQP_CONN, "reading a returned message failed");
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      char text[256];
      amqp_channel_close_t *m = frame->payload.method.decoded;
      t->close_code = m->reply_code;
      return jb_fail(e, JB_ERR_AMQP, "the broker closed the channel: %u %s", m->reply_code,
                     jb_amqp_str(m->reply_text, text, sizeof text));
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      char text[256];
      amqp_connection_close_t *m = frame->payload.method.decoded;
      return jb_fail(e, JB_ERR_AMQP_CONN, "the broker closed the connection: %u %s", m->reply_code,
                     jb_amqp_str(m->reply_text, text, sizeof text));
    }
    default:
      return JB_OK;
  }
}

jb_err jb_amqp_wait_confirms(amqp_connection_state_t conn, jb_confirms *t, jb_error *e) {
  while (t->pending > 0) {
    amqp_frame_t frame;
    struct timeval tv = {10, 0};
    int st = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
    if (st != AMQP_STATUS_OK)
      return jb_fail(e, JB_ERR_AMQP_CONN, "waiting for publisher confirms: %s",
                     amqp_error_string2(st));
    jb_err rc = confirm_frame(conn, &frame, t, e);
    if (rc != JB_OK) return rc;
  }
  return JB_OK;
}

jb_err jb_amqp_read_confirms(amqp_connection_state_t conn, int timeout_ms, jb_confirms *t,
                             jb_error *e) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  for (;;) {
    amqp_frame_t frame;
    int st = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
    if (st == AMQP_STATUS_TIMEOUT) return JB_OK;
    if (st != AMQP_STATUS_OK)
      return jb_fail(e, JB_ERR_AMQP_CONN, "reading publisher confirms: %s", amqp_error_string2(st));
    jb_err rc = confirm_frame(conn, &frame, t, e);
    if (rc != JB_OK) return rc;
    tv = (struct timeval){0, 0}; /* then only what is already there */
  }
}

const char *jb_amqp_short(const char *s, char *buf) {
  size_t n = strlen(s);
  if (n <= JB_AMQP_SHORT_MAX) return s;
  uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  size_t keep = JB_AMQP_SHORT_MAX - 17; /* room for '~' and 16 hex digits */
  while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80) keep--; /* a character's middle */
  memcpy(buf, s, keep);
  snprintf(buf + keep, 18, "~%016llx", (unsigned long long)h);
  return buf;
}

/* What a failed socket open means, in words that point at the setting to check. */
static const char *open_problem(int st) {
  switch (st) {
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
      return "TLS: the broker's certificate is not signed by a trusted CA (amqp.tls.ca_file)";
    case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
      return "TLS: the broker's certificate does not name the URL's host";
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
      return "TLS handshake failed (a certificate not trusted, or not a TLS port?)";
    default:
      return amqp_error_string2(st);
  }
}

/* A TLS socket as amqp.tls.* says: CAs, client certificate, verification. */
static amqp_socket_t *tls_socket(amqp_connection_state_t conn, const jb_amqp_tls_cfg *tls,
                                 const char *safe, jb_error *e) {
  amqp_socket_t *sock = amqp_ssl_socket_new(conn);
  if (sock == NULL) {
    jb_fail(e, JB_ERR_NOMEM, "cannot create a TLS socket for %s", safe);
    return NULL;
  }
  const char *ca = tls->ca_file != NULL ? tls->ca_file : "/etc/ssl/certs/ca-certificates.crt";
  if (amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK) {
    jb_fail(e, JB_ERR_CONFIG, "amqp.tls.ca_file: cannot read CA certificates from %s", ca);
    return NULL;
  }
  if (tls->cert_file != NULL &&
      amqp_ssl_socket_set_key(sock, tls->cert_file, tls->key_file) != AMQP_STATUS_OK) {
    jb_fail(e, JB_ERR_CONFIG,
            "amqp.tls.cert_file / key_file: cannot load the client certificate %s with key %s",
            tls->cert_file, tls->key_file ? tls->key_file : "(none)");
    return NULL;
  }
  amqp_ssl_socket_set_verify_peer(sock, tls->verify_peer);
  amqp_ssl_socket_set_verify_hostname(sock, tls->verify_hostname);
  return sock;
}

/* Logs in to one node; channel 1 open. */
static jb_err connect_node(const jb_amqp_cfg *cfg, const char *url, amqp_connection_state_t *out,
                           jb_error *e) {
  *out = NULL;
  char safe[512];
  jb_redact_url(url, safe, sizeof safe);
  char *copy = strdup(url);
  if (copy == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  struct amqp_connection_info info;
  jb_err rc = JB_OK;
  amqp_connection_state_t conn = NULL;
  if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
    rc = jb_fail(e, JB_ERR_CONFIG, "%s is not a valid AMQP URL", safe);
    goto out;
  }
  conn = amqp_new_connection();
  amqp_socket_t *sock = NULL;
  if (conn != NULL && info.ssl) {
    sock = tls_socket(conn, &cfg->tls, safe, e);
    if (sock == NULL) {
      rc = e->code;
      goto out;
    }
  } else if (conn != NULL) {
    sock = amqp_tcp_socket_new(conn);
  }
  if (sock == NULL) {
    rc = jb_fail(e, JB_ERR_NOMEM, "cannot create an AMQP connection");
    goto out;
  }
  struct timeval connect_tv = {5, 0};
  int st = amqp_socket_open_noblock(sock, info.host, info.port, &connect_tv);
  if (st != AMQP_STATUS_OK) {
    rc = jb_fail(e, JB_ERR_AMQP_CONN, "cannot connect to RabbitMQ at %s: %s", safe,
                 open_problem(st));
    goto out;
  }
  /* A send that cannot complete in 30 s means a dead or blocked broker: fail rather than hang. */
  struct timeval send_tv = {30, 0};
  setsockopt(amqp_socket_get_sockfd(sock), SOL_SOCKET, SO_SNDTIMEO, &send_tv, sizeof send_tv);
  struct timeval rpc_tv = {30, 0};
  amqp_set_rpc_timeout(conn, &rpc_tv);
  amqp_set_handshake_timeout(conn, &rpc_tv);
  amqp_rpc_reply_t r = amqp_login(conn, info.vhost, 0, 131072, cfg->heartbeat_s,
                                  AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (jb_amqp_check(r, "login", e) != JB_OK) {
    char msg[sizeof e->msg];
    snprintf(msg, sizeof msg, "%s", e->msg);
    rc = jb_fail(e, JB_ERR_AMQP_CONN, "cannot log in to RabbitMQ at %s: %s", safe, msg);
    goto out;
  }
  amqp_channel_open(conn, 1);
  rc = jb_amqp_check(amqp_get_rpc_reply(conn), "open channel", e);
out:
  free(copy);
  jb_amqp_metrics_connect(rc == JB_OK);
  if (rc != JB_OK) {
    if (conn != NULL) amqp_destroy_connection(conn); /* never counted open */
    return rc;
  }
  *out = conn;
  return JB_OK;
}

/* Appends "; reason" (or the first reason) to buf, as much as fits. */
static void append_reason(char *buf, size_t cap, const char *reason) {
  size_t used = strlen(buf);
  if (used > 0 && used + 2 < cap) {
    memcpy(buf + used, "; ", 3);
    used += 2;
  }
  size_t n = strlen(reason);
  if (used + n >= cap) n = cap - used - 1;
  memcpy(buf + used, reason, n);
  buf[used + n] = '\0';
}

jb_err jb_amqp_connect(const jb_amqp_cfg *cfg, size_t *node, amqp_connection_state_t *out,
                       jb_error *e) {
  *out = NULL;
  size_t n = cfg->urls_len;
  jb_err rc = jb_fail(e, JB_ERR_CONFIG, "amqp.url: no broker URL");
  char why[sizeof e->msg] = "";
  for (size_t k = 0; k < n; k++) {
    size_t i = (*node + k) % n;
    rc = connect_node(cfg, cfg->urls[i], out, e);
    if (rc == JB_OK) {
      if (n > 1) {
        char safe[512];
        jb_log(JB_LOG_INFO, "connected to a RabbitMQ node", JB_LOG_U64("node", i), "url",
               jb_redact_url(cfg->urls[i], safe, sizeof safe), JB_LOG_END);
      }
      *node = (i + 1) % n; /* the next connection (after a loss) tries the next node first */
      return JB_OK;
    }
    if (n == 1) return rc;
    append_reason(why, sizeof why, e->msg);
  }
  return jb_fail(e, rc, "no RabbitMQ node of amqp.url is reachable: %s", why);
}

jb_err jb_amqp_connect_confirming(const jb_amqp_cfg *cfg, size_t *node,
                                  amqp_connection_state_t *out, jb_error *e) {
  jb_err rc = jb_amqp_connect(cfg, node, out, e);
  if (rc != JB_OK) return rc;
  amqp_confirm_select(*out, 1);
  rc = jb_amqp_check(amqp_get_rpc_reply(*out), "enable publisher confirms", e);
  if (rc != JB_OK) {
    jb_amqp_drop(*out);
    *out = NULL;
  }
  return rc;
}

void jb_amqp_drop(amqp_connection_state_t conn) {
  if (conn == NULL) return;
  jb_amqp_metrics_closed();
  amqp_destroy_connection(conn);
}

void jb_amqp_close(amqp_connection_state_t conn) {
  if (conn == NULL) return;
  jb_amqp_metrics_closed();
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}
