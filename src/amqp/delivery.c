/* What the trigger reads from a delivery, and what it writes into a dead letter. */
#include "amqp/delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jb_facts_buf_free(jb_facts_buf *fb) {
  free(fb->arena);
}

static bool header_kept(const amqp_table_entry_t *h) {
  return h->value.kind == AMQP_FIELD_KIND_UTF8 || h->value.kind == AMQP_FIELD_KIND_BYTES;
}

static const char *arena_copy(jb_facts_buf *fb, amqp_bytes_t b) {
  char *s = fb->arena + fb->used;
  if (b.len) memcpy(s, b.bytes, b.len);
  s[b.len] = '\0';
  fb->used += b.len + 1;
  return s;
}

static bool has_nul(amqp_bytes_t b) {
  return b.len > 0 && memchr(b.bytes, '\0', b.len) != NULL;
}

bool jb_delivery_nul_free(const amqp_envelope_t *env, char *reason, size_t len) {
  const amqp_basic_properties_t *pr = &env->message.properties;
  amqp_flags_t fl = pr->_flags;
  const char *field = NULL;
  if ((fl & AMQP_BASIC_CONTENT_TYPE_FLAG) && has_nul(pr->content_type))
    field = "the content_type property";
  else if ((fl & AMQP_BASIC_TYPE_FLAG) && has_nul(pr->type))
    field = "the type property";
  else if ((fl & AMQP_BASIC_MESSAGE_ID_FLAG) && has_nul(pr->message_id))
    field = "the message_id property";
  else if ((fl & AMQP_BASIC_CORRELATION_ID_FLAG) && has_nul(pr->correlation_id))
    field = "the correlation_id property";
  else if (has_nul(env->exchange))
    field = "the exchange name";
  else if (has_nul(env->routing_key))
    field = "the routing key";
  if (field != NULL) {
    snprintf(reason, len, "%s contains a NUL byte", field);
    return false;
  }
  for (int i = 0; (fl & AMQP_BASIC_HEADERS_FLAG) && i < pr->headers.num_entries; i++) {
    const amqp_table_entry_t *h = &pr->headers.entries[i];
    if (!header_kept(h)) continue;
    /* The name up to its first NUL: printable, and enough to find the header. */
    int shown = (int)(h->key.len < 200 ? h->key.len : 200);
    if (has_nul(h->key)) {
      snprintf(reason, len, "a header name contains a NUL byte (it begins \"%.*s\")", shown,
               (const char *)h->key.bytes);
      return false;
    }
    if (has_nul(h->value.value.bytes)) {
      snprintf(reason, len, "header \"%.*s\" contains a NUL byte", shown,
               (const char *)h->key.bytes);
      return false;
    }
  }
  return true;
}

bool jb_delivery_facts_of(const amqp_envelope_t *env, jb_time received_at, jb_facts_buf *fb) {
  memset(fb, 0, sizeof *fb);
  const amqp_basic_properties_t *pr = &env->message.properties;
  amqp_flags_t fl = pr->_flags;
  int n_headers = fl & AMQP_BASIC_HEADERS_FLAG ? pr->headers.num_entries : 0;
  size_t kept = 0;
  size_t need = env->exchange.len + env->routing_key.len + 2;
  if (fl & AMQP_BASIC_CONTENT_TYPE_FLAG) need += pr->content_type.len + 1;
  if (fl & AMQP_BASIC_TYPE_FLAG) need += pr->type.len + 1;
  if (fl & AMQP_BASIC_MESSAGE_ID_FLAG) need += pr->message_id.len + 1;
  if (fl & AMQP_BASIC_CORRELATION_ID_FLAG) need += pr->correlation_id.len + 1;
  for (int i = 0; i < n_headers; i++)
    if (header_kept(&pr->headers.entries[i])) {
      need += pr->headers.entries[i].key.len + pr->headers.entries[i].value.value.bytes.len + 2;
      kept++;
    }
  need += kept * sizeof(jb_header); /* first in the arena: malloc's alignment suits it */
  if ((fb->arena = malloc(need)) == NULL) return false;
  jb_header *hdrs = (jb_header *)(void *)fb->arena;
  fb->used = kept * sizeof(jb_header);
  jb_delivery_facts *f = &fb->f;
  f->body = env->message.body.bytes;
  f->body_len = env->message.body.len;
  f->received_at = received_at;
  if (fl & AMQP_BASIC_CONTENT_TYPE_FLAG) f->content_type = arena_copy(fb, pr->content_type);
  if (fl & AMQP_BASIC_TYPE_FLAG) f->type_property = arena_copy(fb, pr->type);
  if (fl & AMQP_BASIC_MESSAGE_ID_FLAG) f->message_id = arena_copy(fb, pr->message_id);
  if (fl & AMQP_BASIC_CORRELATION_ID_FLAG) f->correlation_id = arena_copy(fb, pr->correlation_id);
  f->exchange = arena_copy(fb, env->exchange);
  f->routing_key = arena_copy(fb, env->routing_key);
  for (int i = 0; i < n_headers; i++) {
    const amqp_table_entry_t *h = &pr->headers.entries[i];
    if (!header_kept(h)) continue;
    const char *key = arena_copy(fb, h->key);
    hdrs[f->n_headers++] = (jb_header){key, arena_copy(fb, h->value.value.bytes)};
  }
  f->headers = hdrs;
  return true;
}

int jb_dead_letter_headers(const amqp_basic_properties_t *orig, const char *reason,
                           amqp_table_entry_t **out) {
  static const char name[] = "x-jobbridge-error";
  int have = orig->_flags & AMQP_BASIC_HEADERS_FLAG ? orig->headers.num_entries : 0;
  amqp_table_entry_t *entries = malloc(((size_t)have + 1) * sizeof *entries);
  if (entries == NULL) return -1;
  int n = 0;
  for (int i = 0; i < have; i++) {
    const amqp_bytes_t *key = &orig->headers.entries[i].key;
    if (key->len != sizeof name - 1 || memcmp(key->bytes, name, sizeof name - 1) != 0)
      entries[n++] = orig->headers.entries[i];
  }
  entries[n].key = amqp_cstring_bytes(name);
  entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[n].value.value.bytes = amqp_cstring_bytes(reason);
  *out = entries;
  return n + 1;
}
