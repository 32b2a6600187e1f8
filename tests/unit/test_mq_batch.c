/* The MessageQueueTrigger's batching and dead-letter decisions (src/amqp/mq_batch.c), driven with
 * fake deliveries, a recording JobCreator that answers OK, a refusal or a transient error per
 * call, and a fake dead-letter path (DESIGN.md: "tests of a trigger use a recording
 * JobCreator"). No server. */
#include <criterion/criterion.h>
#include <string.h>

#include "amqp/mq_batch.h"

/* ---- a recording JobCreator ---- */

#define MAX_CALLS 16
#define MAX_REQS 32

typedef struct recorder {
  jb_err answers[MAX_CALLS]; /* per call, in order; past the script: JB_OK */
  size_t n_answers;
  bool duplicate; /* answer JB_CREATE_DUPLICATE for every request */
  size_t calls;
  size_t n_reqs[MAX_CALLS];
  char keys[MAX_CALLS][MAX_REQS][64]; /* each request's dedupe key, as "event|job_type" */
} recorder;

static jb_err record_create(void *self, const jb_job_request *reqs, size_t n,
                            jb_create_outcome *out, jb_error *e) {
  recorder *r = self;
  cr_assert_lt(r->calls, MAX_CALLS);
  cr_assert_leq(n, MAX_REQS);
  size_t call = r->calls++;
  r->n_reqs[call] = n;
  for (size_t i = 0; i < n; i++)
    snprintf(r->keys[call][i], sizeof r->keys[call][i], "%s", reqs[i].opts.dedupe_key);
  jb_err rc = call < r->n_answers ? r->answers[call] : JB_OK;
  if (rc != JB_OK) return jb_fail(e, rc, "scripted %s", jb_strerror(rc));
  for (size_t i = 0; i < n; i++)
    out[i] = (jb_create_outcome){.status = r->duplicate ? JB_CREATE_DUPLICATE : JB_CREATE_CREATED};
  return JB_OK;
}

static const jb_job_creator_ops recorder_ops = {.create_jobs = record_create};

/* ---- fake deliveries and a fake dead-letter path ---- */

/* A delivery record like the trigger's: the batch item embedded beside adapter data, so the
 * batch is walked with a stride. body NULL: its facts could not be read (out of memory). */
typedef struct fake {
  char envelope[40];
  jb_batch_item b;
  const char *body;
} fake;

typedef struct dead_letters {
  bool fail;            /* the publish fails: the selected ones are held */
  size_t calls;         /* calls that had something to publish */
  size_t published[16]; /* indexes published, in order */
  size_t n_published;
} dead_letters;

static bool fake_dead_letter(void *ctx, jb_batch chunk) {
  dead_letters *d = ctx;
  bool any = false;
  for (size_t i = 0; i < chunk.n; i++) {
    jb_batch_item *it = jb_batch_at(chunk, i);
    if (!jb_batch_item_dead_letters(it, false)) continue;
    any = true;
    if (d->fail) {
      it->held = true;
    } else {
      d->published[d->n_published++] = i;
      it->settled = true;
    }
  }
  d->calls += any;
  return !(any && d->fail);
}

static const char *const CFG =
    "{\"mappings\": ["
    " {\"event_type\": \"order.created\", \"job_type\": \"receipt\"},"
    " {\"event_type\": \"order.#\", \"job_type\": \"audit\"},"
    " {\"event_type\": \"user.*\", \"job_type\": \"audit\"}],"
    " \"job_types\": {\"receipt\": {\"handler\": \"noop\"}, \"audit\": {\"handler\": \"noop\"}}}";

typedef struct world {
  jb_config *cfg;
  jb_router *router;
  recorder rec;
  jb_job_creator creator;
  dead_letters dl;
  fake items[8];
  size_t n;
} world;

static void world_init(world *w) {
  memset(w, 0, sizeof *w);
  jb_error e;
  cr_assert_eq(jb_config_parse(CFG, "t.json", &w->cfg, &e), JB_OK, "%s", e.msg);
  cr_assert_eq(jb_router_new(w->cfg, &w->router, &e), JB_OK, "%s", e.msg);
  w->creator = (jb_job_creator){&recorder_ops, &w->rec};
}

static void add(world *w, const char *body) {
  w->items[w->n++].body = body;
}

static jb_batch batch_of(world *w, size_t n) {
  return (jb_batch){&w->items[0].b, sizeof(fake), n};
}

/* What the trigger's flush_chunk does, minus the broker: prepare, settle, drop the routes of
 * the unsettled. */
static jb_batch_result flush(world *w, size_t n, jb_error *why) {
  jb_route_table *t = jb_router_acquire(w->router);
  for (size_t i = 0; i < n; i++) {
    fake *f = &w->items[i];
    if (!jb_batch_item_begin(&f->b)) continue;
    if (f->body == NULL) {
      f->b.retry = true;
      continue;
    }
    jb_delivery_facts facts = {.body = f->body, .body_len = strlen(f->body), .routing_key = "rk"};
    jb_batch_item_route(&f->b, t, &facts);
  }
  jb_error_clear(why);
  jb_batch_result res = jb_batch_settle(batch_of(w, n), &w->creator, fake_dead_letter, &w->dl, why);
  /* The trigger compacts `pend` first and drops a prefix; here each unsettled one alone. */
  for (size_t i = 0; i < n; i++)
    if (!w->items[i].b.settled) jb_batch_drop_routes((jb_batch){&w->items[i].b, sizeof(fake), 1});
  jb_router_release(t);
  return res;
}

static void world_free(world *w) {
  for (size_t i = 0; i < w->n; i++) jb_routed_clear(&w->items[i].b.routed);
  jb_router_free(w->router);
  jb_config_free(w->cfg);
}

#define ORDER(id) "{\"event_type\": \"order.created\", \"id\": \"" id "\", \"payload\": {}}"
#define USER(id) "{\"event_type\": \"user.x\", \"id\": \"" id "\", \"payload\": {}}"
#define UNMAPPED(id) "{\"event_type\": \"invoice.paid\", \"id\": \"" id "\", \"payload\": {}}"

static void expect_settled(world *w, const char *pattern) {
  for (size_t i = 0; pattern[i]; i++)
    cr_expect_eq(w->items[i].b.settled, pattern[i] == 'A', "item %zu: settled should be %s", i,
                 pattern[i] == 'A' ? "true (acked)" : "false (left unacked)");
}

Test(mq_batch, good_events_one_transaction_in_order) {
  world w;
  world_init(&w);
  add(&w, ORDER("o1"));
  add(&w, USER("u1"));
  add(&w, ORDER("o2"));
  jb_error why;
  jb_batch_result res = flush(&w, 3, &why);
  cr_expect_not(res.db_failed);
  cr_expect_not(res.held);
  cr_assert_eq(w.rec.calls, 1, "one create call (one transaction) for the chunk");
  cr_assert_eq(w.rec.n_reqs[0], 5, "order.created fans out to two jobs");
  const char *want[] = {"o1|receipt", "o1|audit", "u1|audit", "o2|receipt", "o2|audit"};
  for (size_t i = 0; i < 5; i++) cr_expect_str_eq(w.rec.keys[0][i], want[i]);
  cr_expect_eq(res.created, 5);
  cr_expect_eq(w.dl.calls, 0, "nothing dead-lettered");
  expect_settled(&w, "AAA");
  cr_expect_eq(jb_batch_settled_prefix(batch_of(&w, 3)), 3, "one multiple-ack covers them");
  world_free(&w);
}

Test(mq_batch, duplicates_are_counted_and_acked) {
  world w;
  world_init(&w);
  w.rec.duplicate = true;
  add(&w, USER("u1"));
  jb_error why;
  jb_batch_result res = flush(&w, 1, &why);
  cr_expect_eq(res.created, 0);
  cr_expect_eq(res.duplicates, 1);
  expect_settled(&w, "A");
  world_free(&w);
}

Test(mq_batch, bad_events_dead_lettered_with_reason_others_created) {
  world w;
  world_init(&w);
  add(&w, ORDER("o1"));
  add(&w, UNMAPPED("i1"));
  add(&w, "{\"event_type\": ");
  add(&w, USER("u1"));
  jb_error why;
  jb_batch_result res = flush(&w, 4, &why);
  cr_expect_not(res.db_failed);
  cr_assert_eq(w.rec.calls, 1);
  cr_expect_eq(w.rec.n_reqs[0], 3, "o1 twice and u1: the bad ones are not sent");
  cr_assert_eq(w.dl.n_published, 2);
  cr_expect_eq(w.dl.published[0], 1);
  cr_expect_eq(w.dl.published[1], 2);
  cr_expect_str_eq(w.items[1].b.reason, "no mapping matches event type \"invoice.paid\"");
  cr_expect(strstr(w.items[2].b.reason, "JSON") != NULL, "%s", w.items[2].b.reason);
  cr_expect_str_eq(w.items[1].b.routed.event.event_id, "i1", "the id stays for the log");
  expect_settled(&w, "AAAA");
  world_free(&w);
}

Test(mq_batch, refusal_finds_the_poison_event_one_by_one) {
  world w;
  world_init(&w);
  w.rec.answers[0] = JB_ERR_DB_REFUSED; /* the whole chunk */
  w.rec.answers[1] = JB_OK;             /* o1 */
  w.rec.answers[2] = JB_ERR_DB_REFUSED; /* u1: the culprit */
  w.rec.answers[3] = JB_OK;             /* o2 */
  w.rec.n_answers = 4;
  add(&w, ORDER("o1"));
  add(&w, USER("u1"));
  add(&w, ORDER("o2"));
  jb_error why;
  jb_batch_result res = flush(&w, 3, &why);
  cr_expect_not(res.db_failed);
  cr_assert_eq(w.rec.calls, 4, "the chunk, then one call per delivery");
  cr_expect_eq(w.rec.n_reqs[1], 2);
  cr_expect_str_eq(w.rec.keys[2][0], "u1|audit");
  cr_expect_eq(w.rec.n_reqs[3], 2);
  cr_expect_eq(res.created, 4, "o1 and o2's jobs");
  cr_assert_eq(w.dl.n_published, 1);
  cr_expect_eq(w.dl.published[0], 1);
  cr_expect(strstr(w.items[1].b.reason, "job creation refused: scripted") != NULL, "%s",
            w.items[1].b.reason);
  expect_settled(&w, "AAA");
  world_free(&w);
}

Test(mq_batch, validation_errors_count_as_refusals) {
  world w;
  world_init(&w);
  w.rec.answers[0] = JB_ERR_INVALID;
  w.rec.answers[1] = JB_ERR_UNREGISTERED;
  w.rec.n_answers = 2;
  add(&w, USER("u1"));
  jb_error why;
  jb_batch_result res = flush(&w, 1, &why);
  cr_expect_not(res.db_failed);
  cr_expect_eq(w.dl.n_published, 1);
  expect_settled(&w, "A");
  world_free(&w);
}

Test(mq_batch, transient_error_leaves_everything_unacked) {
  world w;
  world_init(&w);
  w.rec.answers[0] = JB_ERR_DB;
  w.rec.n_answers = 1;
  add(&w, ORDER("o1"));
  add(&w, UNMAPPED("i1"));
  add(&w, USER("u1"));
  jb_error why;
  jb_batch_result res = flush(&w, 3, &why);
  cr_expect(res.db_failed);
  cr_expect(strstr(why.msg, "scripted") != NULL, "%s", why.msg);
  cr_expect_eq(w.rec.calls, 1, "no fallback for an error that is not the data's");
  cr_expect_eq(w.dl.calls, 0, "not even the bad one is dead-lettered now");
  expect_settled(&w, "UUU");
  cr_expect_eq(jb_batch_settled_prefix(batch_of(&w, 3)), 0, "nothing acked");
  cr_expect_null(w.items[0].b.routed.jobs.reqs, "requests dropped with the table");

  /* The database is back: the same chunk is routed again and settles. */
  w.rec.n_answers = 0;
  res = flush(&w, 3, &why);
  cr_expect_not(res.db_failed);
  cr_expect_eq(w.rec.n_reqs[1], 3);
  cr_expect_eq(w.dl.n_published, 1);
  expect_settled(&w, "AAA");
  world_free(&w);
}

Test(mq_batch, transient_error_in_fallback_keeps_stored_ones_and_never_creates_them_twice) {
  world w;
  world_init(&w);
  w.rec.answers[0] = JB_ERR_DB_REFUSED;
  w.rec.answers[1] = JB_OK;     /* o1 stored */
  w.rec.answers[2] = JB_ERR_DB; /* the database goes away */
  w.rec.n_answers = 3;
  add(&w, ORDER("o1"));
  add(&w, USER("u1"));
  add(&w, ORDER("o2"));
  jb_error why;
  jb_batch_result res = flush(&w, 3, &why);
  cr_expect(res.db_failed);
  cr_expect_eq(w.rec.calls, 3, "stops at the first transient error");
  cr_expect(w.items[0].b.stored);
  cr_expect_eq(res.created, 2);
  expect_settled(&w, "AUU");
  cr_expect_eq(jb_batch_settled_prefix(batch_of(&w, 3)), 1);

  /* Retried (here without the ack's compaction): o1 is never sent again. */
  w.rec.n_answers = 0;
  res = flush(&w, 3, &why);
  cr_assert_eq(w.rec.calls, 4);
  cr_assert_eq(w.rec.n_reqs[3], 3, "u1 and o2 only");
  cr_expect_str_eq(w.rec.keys[3][0], "u1|audit");
  cr_expect_str_eq(w.rec.keys[3][1], "o2|receipt");
  expect_settled(&w, "AAA");
  world_free(&w);
}

Test(mq_batch, failed_dead_letter_holds_only_the_bad_event) {
  world w;
  world_init(&w);
  w.dl.fail = true;
  add(&w, ORDER("o1"));
  add(&w, UNMAPPED("i1"));
  add(&w, USER("u1"));
  jb_error why;
  jb_batch_result res = flush(&w, 3, &why);
  cr_expect(res.held);
  cr_expect_not(res.db_failed);
  cr_expect(w.items[1].b.held);
  cr_expect_str_eq(w.items[1].b.reason, "no mapping matches event type \"invoice.paid\"");
  expect_settled(&w, "AUA");
  cr_expect_eq(jb_batch_settled_prefix(batch_of(&w, 3)), 1, "u1 is acked alone");

  /* The held one rides along in the next chunk: not routed again, not created, not
   * dead-lettered by the chunk path (only by the held path, jb_batch_item_dead_letters(.., true)),
   * its reason and event kept. */
  w.dl.fail = false;
  jb_routed_clear(&w.items[0].b.routed); /* acked: the trigger forgets them */
  jb_routed_clear(&w.items[2].b.routed);
  w.items[0] = (fake){.body = USER("u2")};
  w.items[2] = (fake){.body = USER("u3")};
  size_t calls = w.rec.calls;
  res = flush(&w, 3, &why);
  cr_expect_eq(w.rec.calls, calls + 1);
  cr_expect_eq(w.rec.n_reqs[calls], 2, "u2 and u3");
  cr_expect_eq(w.dl.n_published, 0);
  cr_expect(w.items[1].b.held);
  cr_expect(jb_batch_item_dead_letters(&w.items[1].b, true));
  cr_expect_not(jb_batch_item_dead_letters(&w.items[1].b, false));
  cr_expect_str_eq(w.items[1].b.routed.event.event_id, "i1");
  expect_settled(&w, "AUA");
  world_free(&w);
}

Test(mq_batch, out_of_memory_is_retried_never_dead_lettered) {
  world w;
  world_init(&w);
  add(&w, ORDER("o1"));
  add(&w, NULL); /* its facts could not be read */
  jb_error why;
  jb_batch_result res = flush(&w, 2, &why);
  cr_expect_eq(res.unprepared, 1);
  cr_expect_not(res.db_failed);
  cr_expect_eq(w.dl.calls, 0);
  cr_expect_eq(w.rec.n_reqs[0], 2, "o1 only");
  expect_settled(&w, "AU");
  world_free(&w);
}

Test(mq_batch, chunks_count_only_deliveries_not_held) {
  fake items[6] = {0};
  jb_batch all = {&items[0].b, sizeof(fake), 6};
  items[0].b.held = items[2].b.held = true;
  cr_expect_eq(jb_batch_chunk_end(all, 2), 4, "held, good, held, good");
  cr_expect_eq(jb_batch_chunk_end(all, 100), 6);
  cr_expect_eq(jb_batch_chunk_end(jb_batch_head(all, 1), 5), 0, "only a held one: no chunk");
  cr_expect_eq(jb_batch_chunk_end(jb_batch_head(all, 0), 5), 0);
  items[0].b.settled = items[1].b.settled = items[3].b.settled = true;
  cr_expect_eq(jb_batch_settled_prefix(all), 2);
}
