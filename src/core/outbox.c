/* The Outbox port's rows: released here, in the domain, because the adapter that fills them
 * (PostgreSQL) and the one that publishes them (AMQP) must not call each other. */
#include "jobbridge/outbox.h"

#include <stdlib.h>

void jb_outbox_rows_free(jb_outbox_row *rows, size_t n) {
  if (rows == NULL) return;
  for (size_t i = 0; i < n; i++) {
    free(rows[i].event_type);
    free(rows[i].routing_key);
    free(rows[i].correlation_id);
    free(rows[i].data);
    free(rows[i].traceparent);
    free(rows[i].tracestate);
  }
  free(rows);
}
