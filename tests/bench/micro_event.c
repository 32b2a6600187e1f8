/* Micro-benchmark of ingest's CPU per event: route (parse + map, through the core router as the
 * trigger does) + encode (the jsonb array writer) of a typical ~150-byte event, with and without
 * reals, and the route step alone with 4 and 10,000 mappings. No servers. Usage: jb_micro_event
 * [iterations [ints|reals]]. Prints ns per event. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobbridge/router.h"
#include "postgres/pg_array.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static jb_config *config_with(size_t extra) {
  size_t cap = 512 + extra * 96;
  char *text = malloc(cap);
  size_t n = (size_t)snprintf(text, cap,
                              "{\"job_types\": {\"a\": {\"handler\": \"noop\"}}, \"mappings\": ["
                              "{\"event_type\": \"order.created\", \"job_type\": \"a\"},"
                              "{\"event_type\": \"order.paid\", \"job_type\": \"a\"},"
                              "{\"event_type\": \"user.*\", \"job_type\": \"a\"},"
                              "{\"event_type\": \"#.created\", \"job_type\": \"a\"}");
  for (size_t i = 0; i < extra; i++)
    n += (size_t)snprintf(text + n, cap - n,
                          ",{\"event_type\": \"%s%zu.v%zu.*\", \"job_type\": \"a\"}",
                          i % 2 ? "order.kind" : "svc", i, i % 7);
  snprintf(text + n, cap - n, "]}");
  jb_config *cfg;
  jb_error e;
  if (jb_config_parse(text, "bench", &cfg, &e) != JB_OK) {
    fprintf(stderr, "config: %s\n", e.msg);
    exit(1);
  }
  free(text);
  return cfg;
}

static double run(const jb_config *cfg, const char *body, long iters, bool encode) {
  jb_delivery_facts f = {.body = body,
                         .body_len = strlen(body),
                         .exchange = "events",
                         .routing_key = "order.created",
                         .received_at = 1700000000000000};
  jb_pg_array a = {0};
  jb_router *router;
  jb_error e;
  if (jb_router_new(cfg, &router, &e) != JB_OK) exit(1);
  jb_route_table *table = jb_router_acquire(router); /* once per chunk in the trigger */
  jb_routed routed = {0};
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    if (jb_router_route(table, &f, &routed, &e) != JB_ROUTE_JOBS) {
      fprintf(stderr, "event: %s\n", e.msg);
      exit(1);
    }
    const jb_mapped m = routed.jobs;
    if (encode) {
      jb_pg_array_begin_binary(&a, JB_PG_JSONB);
      for (size_t k = 0; k < m.n; k++) {
        jb_pg_array_json(&a, m.reqs[k].payload);
        jb_pg_array_json(&a, m.reqs[k].opts.metadata);
      }
      if (jb_pg_array_end(&a) == NULL) exit(1);
    }
    jb_routed_clear(&routed);
  }
  double ns = (now_ns() - t0) / (double)iters;
  jb_router_release(table);
  jb_router_free(router);
  jb_pg_array_free(&a);
  return ns;
}

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 200000;
  const char *ints =
      "{\"event_type\": \"order.created\", \"id\": \"e-1\", \"payload\": {\"order\": 7, "
      "\"customer\": \"c-42\", \"items\": 3, \"currency\": \"EUR\", \"qty\": 2, \"ok\": true}}";
  const char *reals =
      "{\"event_type\": \"order.created\", \"id\": \"e-1\", \"payload\": {\"order\": 7, "
      "\"customer\": \"c-42\", \"amount\": 19.99, \"tax\": 3.8, \"rate\": 0.1, \"ok\": true}}";
  jb_config *small = config_with(0), *big = config_with(9996);
  /* "ints" or "reals": only that run (for callgrind, which counts instructions, not time). */
  const char *only = argc > 2 ? argv[2] : "";
  if (strcmp(only, "reals") != 0)
    printf("route+encode, integers only:     %.0f ns/event\n", run(small, ints, iters, true));
  if (strcmp(only, "ints") != 0)
    printf("route+encode, three reals:       %.0f ns/event\n", run(small, reals, iters, true));
  if (*only) return 0;
  double m4 = run(small, ints, iters, false), m10k = run(big, ints, iters / 10 + 1, false);
  printf("route, 4 mappings:               %.0f ns/event\n", m4);
  printf("route, 10,000 mappings:          %.0f ns/event (%.2fx)\n", m10k, m10k / m4);
  jb_config_free(small);
  jb_config_free(big);
  return 0;
}
