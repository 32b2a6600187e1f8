/* The core router (issue 12, item 3): patterns, fan-out order, payload pointers, the verdicts
 * (jobs, a dead-letter reason, retry) and reload while a reader holds the old table. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/router.h"

static jb_config *load(const char *text) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_OK, "%s", e.msg);
  return cfg;
}

static jb_delivery_facts facts(const char *body) {
  return (jb_delivery_facts){.body = body,
                             .body_len = strlen(body),
                             .exchange = "ex",
                             .routing_key = "rk",
                             .received_at = 1795387650000000LL};
}

static const char *const CFG =
    "{\"ingest\": {\"max_body_bytes\": 200},"
    " \"mappings\": ["
    " {\"event_type\": \"order.created\", \"job_type\": \"receipt\", \"queue\": \"email\","
    "  \"priority\": 5, \"payload\": \"/payload/order\"},"
    " {\"event_type\": \"order.#\", \"job_type\": \"audit\"},"
    " {\"event_type\": \"*.created\", \"job_type\": \"index\"},"
    " {\"event_type\": \"user.*\", \"job_type\": \"audit\", \"payload\": \"/payload/user\"}],"
    " \"job_types\": {\"receipt\": {\"handler\": \"noop\"}, \"audit\": {\"handler\": \"noop\"},"
    "  \"index\": {\"handler\": \"noop\"}}}";

static const char *const CFG2 =
    "{\"mappings\": [{\"event_type\": \"order.created\", \"job_type\": \"audit\"}],"
    " \"job_types\": {\"receipt\": {\"handler\": \"noop\"}, \"audit\": {\"handler\": \"noop\"},"
    "  \"index\": {\"handler\": \"noop\"}}}";

/* Routes body through r's current table; the table is returned held in *held. */
static jb_route_verdict route(jb_router *r, const char *body, jb_routed *out, jb_error *why,
                              jb_route_table **held) {
  *held = jb_router_acquire(r);
  jb_delivery_facts f = facts(body);
  memset(out, 0, sizeof *out);
  jb_error_clear(why);
  return jb_router_route(*held, &f, out, why);
}

static jb_router *router_of(const jb_config *cfg) {
  jb_router *r = NULL;
  jb_error e;
  cr_assert_eq(jb_router_new(cfg, &r, &e), JB_OK, "%s", e.msg);
  return r;
}

Test(router, fan_out_in_table_order_with_pointers) {
  jb_config *cfg = load(CFG);
  jb_router *r = router_of(cfg);
  jb_routed out;
  jb_error why;
  jb_route_table *t;
  cr_assert_eq(route(r,
                     "{\"event_type\": \"order.created\", \"id\": \"e1\", "
                     "\"payload\": {\"order\": {\"n\": 1}, \"x\": 2}}",
                     &out, &why, &t),
               JB_ROUTE_JOBS, "%s", why.msg);
  cr_assert_eq(out.jobs.n, 3, "order.created, order.# and *.created all match");
  cr_expect_str_eq(out.jobs.reqs[0].job_type, "receipt");
  cr_expect_str_eq(out.jobs.reqs[1].job_type, "audit");
  cr_expect_str_eq(out.jobs.reqs[2].job_type, "index");
  cr_expect_str_eq(out.jobs.reqs[0].queue_name, "email");
  cr_expect_eq(out.jobs.reqs[0].priority, 5);
  cr_expect_eq(json_integer_value(json_object_get(out.jobs.reqs[0].payload, "n")), 1,
               "the pointer /payload/order selects the job's payload");
  cr_expect_eq(json_integer_value(json_object_get(out.jobs.reqs[1].payload, "x")), 2,
               "no pointer: the event's payload");
  cr_expect_str_eq(out.jobs.reqs[0].opts.dedupe_key, "e1|receipt");
  cr_expect_str_eq(out.event.event_id, "e1");
  jb_routed_clear(&out);
  jb_router_release(t);
  jb_router_free(r);
  jb_config_free(cfg);
}

Test(router, patterns_pick_only_their_types) {
  jb_config *cfg = load(CFG);
  jb_router *r = router_of(cfg);
  jb_routed out;
  jb_error why;
  jb_route_table *t;
  cr_assert_eq(route(r, "{\"event_type\": \"order.paid.late\", \"payload\": {}}", &out, &why, &t),
               JB_ROUTE_JOBS, "%s", why.msg);
  cr_expect_eq(out.jobs.n, 1, "only order.# matches order.paid.late");
  cr_expect_str_eq(out.jobs.reqs[0].job_type, "audit");
  jb_routed_clear(&out);
  jb_router_release(t);
  cr_assert_eq(route(r, "{\"event_type\": \"user.created\", \"payload\": {\"user\": {\"u\": 3}}}",
                     &out, &why, &t),
               JB_ROUTE_JOBS, "%s", why.msg);
  cr_assert_eq(out.jobs.n, 2, "*.created and user.*");
  cr_expect_str_eq(out.jobs.reqs[0].job_type, "index", "table order, not pattern order");
  cr_expect_str_eq(out.jobs.reqs[1].job_type, "audit");
  cr_expect_eq(json_integer_value(json_object_get(out.jobs.reqs[1].payload, "u")), 3);
  jb_routed_clear(&out);
  jb_router_release(t);
  jb_router_free(r);
  jb_config_free(cfg);
}

static void expect_dead_letter(jb_router *r, const char *body, const char *needle) {
  jb_routed out;
  jb_error why;
  jb_route_table *t;
  cr_expect_eq(route(r, body, &out, &why, &t), JB_ROUTE_DEAD_LETTER, "for %s", body);
  cr_expect(strstr(why.msg, needle) != NULL, "\"%s\" should contain \"%s\"", why.msg, needle);
  cr_expect_eq(out.jobs.n, 0, "no requests with a dead-letter verdict");
  cr_expect_null(out.jobs.reqs);
  jb_routed_clear(&out);
  jb_router_release(t);
}

Test(router, reasons_to_dead_letter) {
  jb_config *cfg = load(CFG);
  jb_router *r = router_of(cfg);
  expect_dead_letter(r, "{\"event_type\": \"invoice.paid\", \"payload\": {}}",
                     "no mapping matches event type \"invoice.paid\"");
  expect_dead_letter(r, "{\"event_type\": \"order.created\", \"payload\": {}}",
                     "payload pointer \"/payload/order\" finds nothing");
  expect_dead_letter(r, "{\"event_type\": \"user.x\", \"payload\": {\"user\": [1]}}",
                     "is not a JSON object");
  expect_dead_letter(r, "{\"event_type\": ", "JSON");
  expect_dead_letter(r, "[1]", "body is JSON but not an object");
  char big[400];
  snprintf(big, sizeof big, "{\"event_type\": \"order.paid\", \"payload\": {\"s\": \"%0300d\"}}",
           0);
  expect_dead_letter(r, big, "exceeds ingest.max_body_bytes (200)");
  jb_router_free(r);
  jb_config_free(cfg);
}

Test(router, limits_come_from_the_config) {
  /* ingest.max_body_bytes 200: the same body passes under the default limit. */
  char big[400];
  snprintf(big, sizeof big, "{\"event_type\": \"order.paid\", \"payload\": {\"s\": \"%0300d\"}}",
           0);
  jb_config *cfg = load(CFG2);
  jb_router *r = router_of(cfg);
  jb_routed out;
  jb_error why;
  jb_route_table *t;
  cr_expect_eq(route(r, big, &out, &why, &t), JB_ROUTE_DEAD_LETTER, "unmapped, not too large");
  cr_expect(strstr(why.msg, "no mapping matches") != NULL, "%s", why.msg);
  cr_expect_str_eq(out.event.event_type, "order.paid", "the event read so far stays (for logs)");
  jb_routed_clear(&out);
  jb_router_release(t);
  jb_router_free(r);
  jb_config_free(cfg);
}

Test(router, reload_keeps_a_held_table_usable) {
  jb_config *cfg = load(CFG);
  jb_router *r = router_of(cfg);
  const char *body =
      "{\"event_type\": \"order.created\", \"id\": \"e9\", "
      "\"payload\": {\"order\": {\"n\": 1}}}";
  jb_routed before, after, again;
  jb_error why;
  jb_route_table *old;
  cr_assert_eq(route(r, body, &before, &why, &old), JB_ROUTE_JOBS, "%s", why.msg);
  cr_assert_eq(before.jobs.n, 3);

  jb_error e;
  cr_assert_eq(jb_router_reload(r, load(CFG2), &e), JB_OK, "%s", e.msg);

  /* The reader still holds the old table: its requests (which point into it) stay valid, and it
   * routes with the old mappings until it lets go. */
  cr_expect_str_eq(before.jobs.reqs[0].job_type, "receipt");
  cr_expect_str_eq(before.jobs.reqs[2].job_type, "index");
  cr_expect_eq(jb_route_table_config(old)->mappings_len, 4);
  jb_delivery_facts f = facts(body);
  memset(&again, 0, sizeof again);
  cr_assert_eq(jb_router_route(old, &f, &again, &why), JB_ROUTE_JOBS, "%s", why.msg);
  cr_expect_eq(again.jobs.n, 3, "the held table still maps with its own mappings");
  jb_routed_clear(&again);

  /* A new reader gets the new table. */
  jb_route_table *cur;
  cr_assert_eq(route(r, body, &after, &why, &cur), JB_ROUTE_JOBS, "%s", why.msg);
  cr_expect_neq(cur, old);
  cr_assert_eq(after.jobs.n, 1, "the reloaded table has one mapping");
  cr_expect_str_eq(after.jobs.reqs[0].job_type, "audit");

  /* A second reload while both are held: nothing held is freed. */
  cr_assert_eq(jb_router_reload(r, load(CFG), &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(after.jobs.reqs[0].job_type, "audit");
  jb_routed_clear(&before);
  jb_router_release(old); /* the first table (the app's config, borrowed) is not freed here */
  jb_routed_clear(&after);
  jb_router_release(cur); /* the last reference to the first reloaded table: freed */
  jb_router_free(r);
  cr_expect_eq(cfg->mappings_len, 4, "the borrowed config outlives the router");
  jb_config_free(cfg);
}

Test(router, release_is_null_safe) {
  jb_router_release(NULL);
  jb_router_free(NULL);
}

/* Issue 17: each mapping counts the events it turned into a job request (the dashboard's
 * "matched"); a dead-lettered event counts for none; a reloaded table starts from zero. */
Test(router, mappings_count_their_matches) {
  jb_config *cfg = load(CFG);
  jb_router *r = router_of(cfg);
  jb_routed out;
  jb_error why;
  jb_route_table *t;
  const char *const bodies[] = {
      "{\"event_type\": \"order.created\", \"payload\": {\"order\": {}}}",
      "{\"event_type\": \"order.paid\", \"payload\": {}}",
      "{\"event_type\": \"user.created\", \"payload\": {\"user\": {}}}",
      "{\"event_type\": \"order.paid\", \"payload\": {}}",
      "{\"event_type\": \"order.created\", \"payload\": {}}", /* /payload/order finds nothing */
  };
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    jb_route_verdict v = route(r, bodies[i], &out, &why, &t);
    cr_assert_eq(v, i == 4 ? JB_ROUTE_DEAD_LETTER : JB_ROUTE_JOBS, "%zu: %s", i, why.msg);
    jb_routed_clear(&out);
    jb_router_release(t);
  }
  t = jb_router_acquire(r);
  const uint64_t want[] = {1, 3, 2, 1}; /* order.created, order.#, *.created, user.* */
  for (size_t i = 0; i < 4; i++)
    cr_expect_eq(jb_route_table_matched(t, i), want[i], "mapping %zu", i);
  cr_expect_eq(jb_route_table_matched(t, 4), 0, "out of range");
  jb_router_release(t);
  cr_assert_eq(jb_router_reload(r, load(CFG), &why), JB_OK, "%s", why.msg);
  t = jb_router_acquire(r);
  cr_expect_eq(jb_route_table_matched(t, 1), 0, "a reloaded table counts from zero");
  jb_router_release(t);
  jb_router_free(r);
  jb_config_free(cfg);
}
