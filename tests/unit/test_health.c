/* The liveness and readiness registry (issue 13, item 4): a thread past its deadline is wedged
 * and named; a busy thread is not; readiness is the conjunction of components and probes, each
 * named with its reason; a probe's answer is cached. Each test runs in its own process
 * (Criterion), so the process-wide registry starts empty. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/health.h"
#include "jobbridge/job.h"

static json_t *find(json_t *arr, const char *key, const char *name) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i,
                     v) if (strcmp(json_string_value(json_object_get(v, key)), name) == 0) return v;
  return NULL;
}

Test(health, a_thread_that_stops_beating_is_named_wedged) {
  jb_health_slot *a = jb_health_thread("worker 0", 50);
  jb_health_slot *b = jb_health_thread("worker 1", 60000);
  json_t *doc = NULL;
  cr_expect(jb_health_live(&doc));
  cr_expect_eq(json_integer_value(json_object_get(doc, "threads")), 2);
  json_decref(doc);
  jb_sleep_ms(120);
  cr_expect_not(jb_health_live(&doc));
  cr_expect_str_eq(json_string_value(json_object_get(doc, "status")), "wedged");
  json_t *w = json_object_get(doc, "wedged");
  cr_expect_eq(json_array_size(w), 1);
  json_t *late = find(w, "thread", "worker 0");
  cr_assert_not_null(late);
  cr_expect_geq(json_integer_value(json_object_get(late, "late_ms")), 1);
  json_decref(doc);
  jb_health_beat(a);
  cr_expect(jb_health_live(NULL));
  jb_health_remove(a);
  jb_health_remove(b);
}

Test(health, a_busy_thread_is_alive_until_its_work_may_have_ended) {
  jb_health_slot *a = jb_health_thread("worker 0", 50);
  jb_health_busy(a, 2000); /* a handler with a 2 s timeout */
  jb_sleep_ms(120);
  cr_expect(jb_health_live(NULL));
  jb_sleep_ms(2000);
  cr_expect_not(jb_health_live(NULL));
  jb_health_remove(a);
  cr_expect(jb_health_live(NULL), "a removed thread is no longer watched");
}

Test(health, readiness_names_what_is_down_and_why) {
  jb_health_slot *c = jb_health_component("ingest consumer 0");
  jb_health_slot *r = jb_health_component("outbox relay");
  json_t *doc = NULL;
  cr_expect_not(jb_health_readiness(&doc));
  cr_expect_str_eq(json_string_value(json_object_get(
                       find(json_object_get(doc, "checks"), "name", "outbox relay"), "reason")),
                   "starting");
  json_decref(doc);
  jb_health_ready(c);
  jb_health_ready(r);
  cr_expect(jb_health_readiness(&doc));
  cr_expect_str_eq(json_string_value(json_object_get(doc, "status")), "ready");
  json_decref(doc);
  jb_health_not_ready(r, "cannot publish job events: broker unavailable");
  cr_expect_not(jb_health_readiness(&doc));
  json_t *relay = find(json_object_get(doc, "checks"), "name", "outbox relay");
  cr_expect(json_is_false(json_object_get(relay, "ready")));
  cr_expect_str_eq(json_string_value(json_object_get(relay, "reason")),
                   "cannot publish job events: broker unavailable");
  cr_expect(json_is_true(
      json_object_get(find(json_object_get(doc, "checks"), "name", "ingest consumer 0"), "ready")));
  json_decref(doc);
  jb_health_remove(c);
  jb_health_remove(r);
}

static int probe_calls;
static bool probe_ok;

static bool probe(void *self, char *why, size_t len) {
  (void)self;
  probe_calls++;
  if (!probe_ok) snprintf(why, len, "database unreachable: test");
  return probe_ok;
}

Test(health, a_probe_is_run_when_asked_and_cached) {
  probe_ok = false;
  jb_health_slot *p = jb_health_probe("database", probe, NULL, 200);
  json_t *doc = NULL;
  cr_expect_not(jb_health_readiness(&doc));
  cr_expect_str_eq(json_string_value(json_object_get(
                       find(json_object_get(doc, "checks"), "name", "database"), "reason")),
                   "database unreachable: test");
  json_decref(doc);
  probe_ok = true;
  cr_expect_not(jb_health_readiness(NULL), "the cached answer stands for cache_ms");
  cr_expect_eq(probe_calls, 1);
  jb_sleep_ms(250);
  cr_expect(jb_health_readiness(NULL));
  cr_expect_eq(probe_calls, 2);
  jb_health_remove(p);
}
