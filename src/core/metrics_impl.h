/* The metrics registry's private parts, shared by metrics.c (families, series, collectors) and
 * metrics_render.c (the exposition text). Private to src/core. */
#ifndef JB_CORE_METRICS_IMPL_H
#define JB_CORE_METRICS_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "jobbridge/metrics.h"

/* A float counter holds a double's bits, like a gauge, and renders as a counter. */
typedef enum {
  JB_METRIC_COUNTER,
  JB_METRIC_GAUGE,
  JB_METRIC_HISTOGRAM,
  JB_METRIC_COUNTER_FLOAT
} jb_metric_type;

/* One series. `next` and the label values never change once the series is published. */
struct jb_metric {
  struct jb_metric *next;
  const jb_metric_family *f;
  char *values[JB_METRIC_MAX_LABELS];
  _Atomic uint64_t v;        /* counter: the count; gauge: a double's bits */
  _Atomic uint64_t sum;      /* histogram: the sum of observations, a double's bits */
  _Atomic uint64_t *buckets; /* histogram: nbounds + 1 counts, not cumulative (last: +Inf) */
};

struct jb_metric_family {
  struct jb_metric_family *next; /* registration order; guarded by the registry's mu */
  jb_metrics *m;
  jb_metric_type type;
  char *name, *help;
  char *labels[JB_METRIC_MAX_LABELS];
  size_t nlabels;
  double bounds[JB_METRIC_MAX_BUCKETS];
  size_t nbounds;
  _Atomic(jb_metric *) head; /* newest first; read without a lock */
  pthread_mutex_t mu;        /* adding a series */
  size_t nseries;            /* guarded by mu */
  jb_metric *overflow;       /* guarded by mu; the "other" series past JB_METRIC_MAX_SERIES */
};

typedef struct jb_collector {
  jb_metrics_collect_fn fn;
  void *arg;
} jb_collector;

struct jb_metrics {
  pthread_mutex_t mu;     /* the family list and the collectors */
  pthread_mutex_t scrape; /* one scrape at a time (collectors, then rendering) */
  jb_metric_family *first, *last;
  jb_collector *collectors;
  size_t ncollectors, capcollectors;
};

uint64_t jb_metric_dbits(double v);
double jb_metric_dval(uint64_t u);
void jb_metrics_run_collectors(jb_metrics *m);

#endif
