/* What the MessageQueueTrigger reads from a delivery (its facts, as C strings, checked free of
 * NUL bytes) and the headers it gives a dead letter. Pure functions of rabbitmq-c's types. */
#ifndef JB_AMQP_DELIVERY_H
#define JB_AMQP_DELIVERY_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/event.h"

/* The facts of one delivery. The header array and every string, copied NUL-terminated, share
 * one buffer (`arena`, freed by jb_facts_buf_free, NULL-safe): one malloc per delivery, whatever
 * the number of headers. The body is borrowed from the envelope. */
typedef struct jb_facts_buf {
  jb_delivery_facts f;
  char *arena;
  size_t used;
} jb_facts_buf;

/* The facts are C strings, so a NUL byte would cut one short: two events would share a dedupe
 * key (the later silently dropped) or a fact would change. Returns false, with a reason naming
 * the field in reason[0..len), when any string jobbridge reads holds a NUL: the content_type,
 * type, message_id or correlation_id property, the exchange, the routing key, or the name or
 * value of any string header (the parser looks headers up by name: ce-type, ce-id, ce-source
 * and their aliases). */
bool jb_delivery_nul_free(const amqp_envelope_t *env, char *reason, size_t len);

/* Fills fb with the facts of env (every string header, however many); false when out of
 * memory. Call jb_delivery_nul_free first. */
bool jb_delivery_facts_of(const amqp_envelope_t *env, jb_time received_at, jb_facts_buf *fb);

void jb_facts_buf_free(jb_facts_buf *fb);

/* A dead letter's headers: every original header of orig, in order and of whatever kind, except
 * an x-jobbridge-error, then x-jobbridge-error with reason. *out (the caller frees it) borrows
 * from orig and reason. Returns the count, or -1 when out of memory. */
int jb_dead_letter_headers(const amqp_basic_properties_t *orig, const char *reason,
                           amqp_table_entry_t **out);

#endif
