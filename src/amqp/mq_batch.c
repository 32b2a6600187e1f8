/* The MessageQueueTrigger's decisions over a chunk of deliveries (see mq_batch.h). */
#include "amqp/mq_batch.h"

#include <stdio.h>
#include <stdlib.h>

size_t jb_batch_chunk_end(jb_batch pending, size_t batch_max) {
  size_t end = 0, take = 0;
  while (end < pending.n && take < batch_max) take += !jb_batch_at(pending, end++)->held;
  return take == 0 ? 0 : end;
}

bool jb_batch_item_begin(jb_batch_item *it) {
  if (it->held || it->stored) return false;
  jb_routed_clear(&it->routed);
  it->bad = false;
  it->retry = false;
  return true;
}

void jb_batch_item_route(jb_batch_item *it, const jb_route_table *t, const jb_delivery_facts *f) {
  jb_error why;
  jb_error_clear(&why);
  switch (jb_router_route(t, f, &it->routed, &why)) {
    case JB_ROUTE_JOBS:
      break;
    case JB_ROUTE_RETRY:
      it->retry = true;
      break;
    case JB_ROUTE_DEAD_LETTER:
      it->bad = true;
      snprintf(it->reason, sizeof it->reason, "%s", why.msg);
      break;
  }
}

bool jb_batch_item_dead_letters(const jb_batch_item *it, bool held_only) {
  return held_only ? it->held : it->bad && !it->held;
}

/* Whether its jobs are to be created now: prepared, good, not stored yet. */
static bool to_create(const jb_batch_item *it) {
  return !it->bad && !it->stored && !it->retry;
}

/* Whether a job-creation error is the event's own fault, so it fails again however often it
 * is retried: validation, a value the adapter cannot encode, data the database refuses (see
 * jb_pg_result_error). Any other error (a lost connection, a statement timeout, a deadlock, a
 * read-only or full database, out of memory) says nothing about the event: retried, never
 * dead-lettered. */
static bool is_refusal(jb_err rc) {
  return rc == JB_ERR_DB_REFUSED || rc == JB_ERR_INVALID || rc == JB_ERR_UNREGISTERED;
}

/* Counts one event's n job outcomes, and the event: created when any job was new. */
static void count_outcomes(jb_batch_result *res, const jb_create_outcome *out, size_t n) {
  uint64_t before = res->created;
  for (size_t i = 0; i < n; i++) {
    if (out[i].status == JB_CREATE_CREATED)
      res->created++;
    else
      res->duplicates++;
  }
  if (res->created > before)
    res->events_created++;
  else if (n > 0)
    res->events_duplicate++;
}

/* Refused: finds the culprits one by one, into `out` (room for any one item's requests). */
static jb_err create_each(jb_batch chunk, const jb_job_creator *creator, jb_create_outcome *out,
                          jb_batch_result *res, jb_error *e) {
  for (size_t i = 0; i < chunk.n; i++) {
    jb_batch_item *it = jb_batch_at(chunk, i);
    if (!to_create(it) || it->routed.jobs.n == 0) continue;
    jb_error one;
    jb_error_clear(&one);
    jb_err r1 = creator->ops->create_jobs(creator->self, it->routed.jobs.reqs, it->routed.jobs.n,
                                          out, &one);
    if (r1 == JB_OK) {
      count_outcomes(res, out, it->routed.jobs.n);
      it->stored = true;
    } else if (is_refusal(r1)) {
      it->bad = true;
      snprintf(it->reason, sizeof it->reason, "job creation refused: %s", one.msg);
    } else {
      return jb_fail(e, r1, "%s", one.msg);
    }
  }
  return JB_OK;
}

/* Creates the jobs of the chunk's good items not yet stored in one call (one transaction),
 * falling back to create_each when the data is refused. Returns an error only for a transient
 * failure: then nothing but the stored items may be acked. */
static jb_err create_all(jb_batch chunk, const jb_job_creator *creator, jb_batch_result *res,
                         jb_error *e) {
  size_t total = 0;
  for (size_t i = 0; i < chunk.n; i++) {
    const jb_batch_item *it = jb_batch_at(chunk, i);
    if (to_create(it)) total += it->routed.jobs.n;
  }
  if (total == 0) return JB_OK;
  jb_job_request *reqs = malloc(total * sizeof *reqs);
  jb_create_outcome *out = malloc(total * sizeof *out);
  jb_err rc = JB_OK;
  if (reqs == NULL || out == NULL) {
    rc = jb_fail(e, JB_ERR_NOMEM, "out of memory for %zu job requests", total);
    goto out;
  }
  size_t k = 0;
  for (size_t i = 0; i < chunk.n; i++) {
    const jb_batch_item *it = jb_batch_at(chunk, i);
    if (to_create(it))
      for (size_t j = 0; j < it->routed.jobs.n; j++) reqs[k++] = it->routed.jobs.reqs[j];
  }
  rc = creator->ops->create_jobs(creator->self, reqs, total, out, e);
  if (rc == JB_OK) {
    k = 0;
    for (size_t i = 0; i < chunk.n; i++) {
      const jb_batch_item *it = jb_batch_at(chunk, i);
      if (!to_create(it)) continue;
      count_outcomes(res, out + k, it->routed.jobs.n);
      k += it->routed.jobs.n;
    }
  }
  if (rc == JB_OK || !is_refusal(rc)) goto out;
  rc = create_each(chunk, creator, out, res, e);
out:
  free(reqs);
  free(out);
  return rc;
}

jb_batch_result jb_batch_settle(jb_batch chunk, const jb_job_creator *creator,
                                jb_batch_dead_letter_fn dead_letter, void *ctx, jb_error *why) {
  jb_batch_result res = {0};
  for (size_t i = 0; i < chunk.n; i++) res.unprepared += jb_batch_at(chunk, i)->retry;
  if (create_all(chunk, creator, &res, why) != JB_OK) {
    /* Nothing is acked but what is stored: the broker keeps the rest until the database is
     * back. The bad ones wait too (dead-lettered on the next try). */
    res.db_failed = true;
    for (size_t i = 0; i < chunk.n; i++) {
      jb_batch_item *it = jb_batch_at(chunk, i);
      it->settled = it->stored;
    }
    return res;
  }
  res.held = !dead_letter(ctx, chunk);
  for (size_t i = 0; i < chunk.n; i++) {
    jb_batch_item *it = jb_batch_at(chunk, i);
    it->settled = !it->held && !it->retry;
  }
  return res;
}

size_t jb_batch_settled_prefix(jb_batch b) {
  size_t prefix = 0;
  while (prefix < b.n && jb_batch_at(b, prefix)->settled) prefix++;
  return prefix;
}

void jb_batch_drop_routes(jb_batch b) {
  for (size_t i = 0; i < b.n; i++) {
    jb_batch_item *it = jb_batch_at(b, i);
    jb_mapped_clear(&it->routed.jobs);
    if (!it->held) jb_event_clear(&it->routed.event);
  }
}
