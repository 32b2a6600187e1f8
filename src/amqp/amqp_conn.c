/* rabbitmq-c connection helpers shared by the AMQP adapters. */
#include "amqp/amqp_conn.h"

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

/* Handles one frame on a confirm-mode channel. */
static jb_err confirm_frame(amqp_connection_state_t conn, const amqp_frame_t *frame,
                            uint64_t *confirmed, bool *returned, jb_error *e) {
  if (frame->frame_type != AMQP_FRAME_METHOD) return JB_OK;
  switch (frame->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      /* With `multiple` an ack covers every tag up to its own; RabbitMQ confirms a channel's
       * publishes to one queue in order, so the highest tag seen is the confirmed prefix. */
      amqp_basic_ack_t *ack = frame->payload.method.decoded;
      if (ack->delivery_tag > *confirmed) *confirmed = ack->delivery_tag;
      return JB_OK;
    }
    case AMQP_BASIC_NACK_METHOD:
      return jb_fail(e, JB_ERR_AMQP, "the broker refused a publish (nack)");
    case AMQP_BASIC_RETURN_METHOD: {
      amqp_message_t msg;
      amqp_read_message(conn, frame->channel, &msg, 0);
      amqp_destroy_message(&msg);
      *returned = true;
      return JB_OK;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
      return jb_fail(e, JB_ERR_AMQP_CONN, "the broker closed the channel");
    default:
      return JB_OK;
  }
}

jb_err jb_amqp_wait_confirms(amqp_connection_state_t conn, uint64_t published, uint64_t *confirmed,
                             bool *returned, jb_error *e) {
  while (*confirmed < published) {
    amqp_frame_t frame;
    struct timeval tv = {10, 0};
    int st = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
    if (st != AMQP_STATUS_OK)
      return jb_fail(e, JB_ERR_AMQP_CONN, "waiting for publisher confirms: %s",
                     amqp_error_string2(st));
    jb_err rc = confirm_frame(conn, &frame, confirmed, returned, e);
    if (rc != JB_OK) return rc;
  }
  return JB_OK;
}

jb_err jb_amqp_read_confirms(amqp_connection_state_t conn, int timeout_ms, uint64_t *confirmed,
                             bool *returned, jb_error *e) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  for (;;) {
    amqp_frame_t frame;
    int st = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
    if (st == AMQP_STATUS_TIMEOUT) return JB_OK;
    if (st != AMQP_STATUS_OK)
      return jb_fail(e, JB_ERR_AMQP_CONN, "reading publisher confirms: %s", amqp_error_string2(st));
    jb_err rc = confirm_frame(conn, &frame, confirmed, returned, e);
    if (rc != JB_OK) return rc;
    tv = (struct timeval){0, 0}; /* then only what is already there */
  }
}

jb_err jb_amqp_connect(const char *url, int heartbeat_s, amqp_connection_state_t *out,
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
  amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
  if (sock == NULL) {
    rc = jb_fail(e, JB_ERR_NOMEM, "cannot create an AMQP connection");
    goto out;
  }
  struct timeval connect_tv = {5, 0};
  int st = amqp_socket_open_noblock(sock, info.host, info.port, &connect_tv);
  if (st != AMQP_STATUS_OK) {
    rc = jb_fail(e, JB_ERR_AMQP_CONN, "cannot connect to RabbitMQ at %s: %s", safe,
                 amqp_error_string2(st));
    goto out;
  }
  /* A send that cannot complete in 30 s means a dead or blocked broker: fail rather than hang. */
  struct timeval send_tv = {30, 0};
  setsockopt(amqp_socket_get_sockfd(sock), SOL_SOCKET, SO_SNDTIMEO, &send_tv, sizeof send_tv);
  struct timeval rpc_tv = {30, 0};
  amqp_set_rpc_timeout(conn, &rpc_tv);
  amqp_set_handshake_timeout(conn, &rpc_tv);
  amqp_rpc_reply_t r = amqp_login(conn, info.vhost, 0, 131072, heartbeat_s, AMQP_SASL_METHOD_PLAIN,
                                  info.user, info.password);
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
  if (rc != JB_OK) {
    jb_amqp_drop(conn);
    return rc;
  }
  *out = conn;
  return JB_OK;
}

jb_err jb_amqp_connect_confirming(const char *url, int heartbeat_s, amqp_connection_state_t *out,
                                  jb_error *e) {
  jb_err rc = jb_amqp_connect(url, heartbeat_s, out, e);
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
  if (conn != NULL) amqp_destroy_connection(conn);
}

void jb_amqp_close(amqp_connection_state_t conn) {
  if (conn == NULL) return;
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}
