/* The outbox relay: publishes job events from the Outbox port to the output exchange with
 * publisher confirms, deleting each row only after its confirm. */
#ifndef JB_OUTBOX_RELAY_H
#define JB_OUTBOX_RELAY_H

#include "jobbridge/config.h"
#include "jobbridge/outbox.h"

typedef struct jb_outbox_relay jb_outbox_relay;

/* A relay over `outbox` (its own database connection, used by the relay's thread only) and its
 * own AMQP connection, per cfg (the amqp section: url, heartbeat_s, output.*). cfg and outbox
 * are borrowed; `instance` goes into the CloudEvents
 * source ("jobbridge/<instance>"). */
jb_err jb_outbox_relay_new(const jb_amqp_cfg *cfg, jb_outbox outbox, const char *instance,
                           jb_outbox_relay **out, jb_error *e) JB_MUST_CHECK;
jb_err jb_outbox_relay_start(jb_outbox_relay *r, jb_error *e) JB_MUST_CHECK;
/* Stops; first tries for up to flush_s to publish what is waiting. */
void jb_outbox_relay_stop(jb_outbox_relay *r, double flush_s);
void jb_outbox_relay_free(jb_outbox_relay *r);

#endif
