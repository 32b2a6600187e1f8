/* Backpressure for the MessageQueueTrigger (ingest.max_waiting): when the mappings' queues hold
 * that many waiting jobs, every consumer stops taking deliveries (basic.cancel: RabbitMQ keeps
 * the events) and takes them again (basic.consume) once fewer than ingest.resume_waiting wait.
 *
 * The count is a bounded query (JobStore count_waiting, LIMIT max_waiting) run at most once a
 * second, by whichever consumer's loop comes first (a CAS on the next check time). Between
 * counts, the jobs this trigger created since are added to the last count: a burst is paused as
 * soon as the estimate reaches the mark, not a second later. The estimate only ever pauses;
 * resuming waits for a real count (jobs handed straight to workers are counted as waiting by
 * the estimate, so it errs towards pausing, and the next count corrects it).
 *
 * While paused, a consumer keeps its connection and its loop: heartbeats are serviced, and the
 * deliveries already received (at most amqp.prefetch each) are stored and acked as usual. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_conn.h"
#include "amqp/mq_internal.h"
#include "jobbridge/health.h"
#include "jobbridge/log.h"

void jb_mq_trigger_set_backlog(jb_mq_trigger *t, const jb_job_store *stores) {
  for (size_t i = 0; i < t->n; i++) t->consumers[i].store = &stores[i];
}

static void consumer_tag(const consumer *c, char *tag, size_t size) {
  snprintf(tag, size, "jobbridge-%d", c->index);
}

jb_err jb_mq_consume(consumer *c, jb_error *e) {
  char tag[32];
  consumer_tag(c, tag, sizeof tag);
  amqp_basic_consume(c->conn, CH, amqp_cstring_bytes(c->t->amqp->input.queue),
                     amqp_cstring_bytes(tag), 0, 0, 0, amqp_empty_table);
  jb_err rc = jb_amqp_check(amqp_get_rpc_reply(c->conn), "start consuming", e);
  c->consuming = rc == JB_OK;
  return rc;
}

static jb_err cancel(consumer *c, jb_error *e) {
  char tag[32];
  consumer_tag(c, tag, sizeof tag);
  /* Deliveries that arrive before cancel-ok are queued by rabbitmq-c and read as usual. */
  amqp_basic_cancel(c->conn, CH, amqp_cstring_bytes(tag));
  jb_err rc = jb_amqp_check(amqp_get_rpc_reply(c->conn), "stop consuming (backpressure)", e);
  if (rc == JB_OK) c->consuming = false;
  return rc;
}

/* Pauses when est reaches max_waiting; resumes when a real count is below resume_waiting. The
 * CAS makes one consumer the one that logs a change. */
static void decide(jb_mq_trigger *t, int64_t est, bool counted) {
  const jb_ingest_cfg *in = t->ingest;
  bool paused = atomic_load(&t->bp_paused);
  if (!paused && est >= in->max_waiting) {
    if (atomic_compare_exchange_strong(&t->bp_paused, &paused, true)) {
      atomic_fetch_add(&t->bp_pauses, 1);
      jb_log(JB_LOG_WARN,
             "backpressure: too many waiting jobs; pausing ingest (events wait in the "
             "broker)",
             JB_LOG_I64("waiting", est), JB_LOG_I64("max_waiting", in->max_waiting),
             JB_LOG_BOOL("estimated", !counted), JB_LOG_END);
    }
  } else if (paused && counted && est < in->resume_waiting) {
    if (atomic_compare_exchange_strong(&t->bp_paused, &paused, false))
      jb_log(JB_LOG_INFO, "backpressure: waiting jobs below the low-water mark; resuming ingest",
             JB_LOG_I64("waiting", est), JB_LOG_I64("resume_waiting", in->resume_waiting),
             JB_LOG_END);
  }
}

/* The distinct queues of the mappings in cfg, into names (cap entries). */
static size_t mapping_queues(const jb_config *cfg, const char **names, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < cfg->mappings_len && n < cap; i++) {
    const char *q = cfg->mappings[i].queue ? cfg->mappings[i].queue : "default";
    size_t j = 0;
    while (j < n && strcmp(names[j], q) != 0) j++;
    if (j == n) names[n++] = q;
  }
  return n;
}

/* Counts the waiting jobs if the check is due and this consumer won it. */
static void count_if_due(consumer *c) {
  jb_mq_trigger *t = c->t;
  int64_t now = jb_mono_ms();
  int_fast64_t next = atomic_load(&t->bp_next_check_ms);
  if (now < next || !atomic_compare_exchange_strong(&t->bp_next_check_ms, &next, now + 1000))
    return;
  uint64_t created = atomic_load(&t->created);
  jb_route_table *table = jb_router_acquire(t->router);
  const jb_config *cfg = jb_route_table_config(table);
  const char **names = malloc((cfg->mappings_len ? cfg->mappings_len : 1) * sizeof *names);
  jb_error e;
  jb_error_clear(&e);
  int64_t waiting = 0;
  jb_err rc = names == NULL
                  ? jb_fail(&e, JB_ERR_NOMEM, "out of memory")
                  : c->store->ops->count_waiting(c->store->self, names,
                                                 mapping_queues(cfg, names, cfg->mappings_len),
                                                 t->ingest->max_waiting, &waiting, &e);
  free(names);
  jb_router_release(table);
  if (rc != JB_OK) {
    jb_log(JB_LOG_WARN, "backpressure: cannot count waiting jobs; keeping the current state",
           "error", e.msg, JB_LOG_END);
    return;
  }
  atomic_store(&t->bp_waiting, waiting);
  atomic_store(&t->bp_created_seen, created);
  decide(t, waiting, true);
}

bool jb_mq_backpressure(consumer *c, const char **why) {
  jb_mq_trigger *t = c->t;
  if (t->ingest->max_waiting <= 0 || c->store == NULL) return true;
  count_if_due(c);
  uint64_t seen = atomic_load(&t->bp_created_seen); /* before `created`: never above it */
  int64_t est = atomic_load(&t->bp_waiting) + (int64_t)(atomic_load(&t->created) - seen);
  decide(t, est, false);
  bool want = !atomic_load(&t->bp_paused);
  if (want == c->consuming) return true;
  /* /readyz shows the pause beside the consumer's check; readiness is unchanged (the HTTP API
   * and the workers still serve). */
  if (want)
    jb_health_note(c->ready, NULL);
  else
    jb_health_note(c->ready,
                   "paused by backpressure: about %lld jobs wait, ingest.max_waiting is %d; "
                   "events wait in the broker",
                   (long long)est, t->ingest->max_waiting);
  jb_error e;
  jb_error_clear(&e);
  if ((want ? jb_mq_consume(c, &e) : cancel(c, &e)) != JB_OK) {
    jb_log(JB_LOG_WARN, "backpressure: cannot change consuming", JB_LOG_I64("consumer", c->index),
           "error", e.msg, JB_LOG_END);
    *why = want ? "basic.consume failed" : "basic.cancel failed";
    return false;
  }
  return true;
}
