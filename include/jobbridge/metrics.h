/* The metrics registry: counters, gauges and histograms with fixed buckets, each family with a
 * small fixed set of label names, rendered at scrape time in the Prometheus text exposition
 * format 0.0.4.
 *
 * Cost model. Families and series are registered once (at a component's start, or the first
 * time a label value is seen) and the caller keeps the series pointer; an update is then one
 * relaxed atomic add (a counter, a histogram bucket) or a compare-and-swap on a double (a
 * gauge, a histogram's sum), with no lock. Looking a series up by its label values is lock-free
 * too (a list that only grows, published with release stores); only adding a new series takes
 * the family's mutex. Series are never removed: their memory lives as long as the registry.
 *
 * Values that are cheaper to read than to count (queue depths, process figures, a component's
 * own atomic totals) come from collectors: functions the scrape calls before it renders.
 *
 * Every function accepts NULL families and series (and does nothing), so instrumentation never
 * fails a component: a registry out of memory only loses metrics. */
#ifndef JOBBRIDGE_METRICS_H
#define JOBBRIDGE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/err.h"

typedef struct jb_metrics jb_metrics;
typedef struct jb_metric_family jb_metric_family;
typedef struct jb_metric jb_metric;

#define JB_METRIC_MAX_LABELS 4
/* Series a family holds at most; label values seen after that share one series whose every
 * label is "other" (guards against an unbounded label value, e.g. a queue name from a client). */
#define JB_METRIC_MAX_SERIES 1000
#define JB_METRIC_MAX_BUCKETS 24

/* The process's registry (created on first use, never freed): the one jobbridge's components
 * register into and GET /metrics renders. */
jb_metrics *jb_metrics_global(void);

/* A registry of one's own (tests). Freed with jb_metrics_free, with all its families. */
jb_err jb_metrics_new(jb_metrics **out, jb_error *e) JB_MUST_CHECK;
void jb_metrics_free(jb_metrics *m);

/* Registers a family (name and help are copied; `labels` is a NULL-terminated array of up to
 * JB_METRIC_MAX_LABELS names, NULL for none). Registering a name again returns the family
 * already there when its type and labels agree, else NULL (and logs the clash). NULL when
 * memory runs out or the name or a label is not a valid Prometheus name. */
jb_metric_family *jb_metrics_counter(jb_metrics *m, const char *name, const char *help,
                                     const char *const *labels);
/* A counter whose values are not whole (CPU seconds), set from a total with jb_metric_set. */
jb_metric_family *jb_metrics_counter_float(jb_metrics *m, const char *name, const char *help,
                                           const char *const *labels);
jb_metric_family *jb_metrics_gauge(jb_metrics *m, const char *name, const char *help,
                                   const char *const *labels);
/* `bounds`: nbounds (<= JB_METRIC_MAX_BUCKETS) increasing upper bounds; +Inf is implied. */
jb_metric_family *jb_metrics_histogram(jb_metrics *m, const char *name, const char *help,
                                       const char *const *labels, const double *bounds,
                                       size_t nbounds);

/* The series of the given label values (as many as the family has labels; a NULL value counts
 * as ""). Lock-free when it exists; created (values copied) otherwise. Keep the pointer. */
jb_metric *jb_metric_get(jb_metric_family *f, const char *const *values);
/* The same for families of zero, one, two labels. */
jb_metric *jb_metric_get0(jb_metric_family *f);
jb_metric *jb_metric_get1(jb_metric_family *f, const char *v1);
jb_metric *jb_metric_get2(jb_metric_family *f, const char *v1, const char *v2);

/* Label value i of a series (owned by the series, lives as long as the registry). */
const char *jb_metric_label(const jb_metric *s, size_t i);

/* Counters: add n (counters only go up). */
void jb_metric_inc(jb_metric *s);
void jb_metric_add(jb_metric *s, uint64_t n);
/* Counters set from a total kept elsewhere (a collector): the value becomes `total`. */
void jb_metric_set_total(jb_metric *s, uint64_t total);
/* Gauges (and float counters: jb_metric_set only). */
void jb_metric_set(jb_metric *s, double v);
void jb_metric_gauge_add(jb_metric *s, double delta);
/* Histograms: one observation. */
void jb_metric_observe(jb_metric *s, double v);

/* Reads a series back (tests, collectors): a counter's or gauge's value; a histogram's count. */
double jb_metric_value(const jb_metric *s);

/* Sets every gauge series of f to 0 (a collector, before it sets the ones it found). */
void jb_metric_family_zero(jb_metric_family *f);

/* A collector runs at every scrape, before rendering, one scrape at a time. */
typedef void (*jb_metrics_collect_fn)(void *arg);
/* Adds a collector (fn, arg); false when memory ran out. The pair is removed by
 * jb_metrics_remove_collector, which waits for a scrape in progress: arg may be freed after. */
bool jb_metrics_add_collector(jb_metrics *m, jb_metrics_collect_fn fn, void *arg);
void jb_metrics_remove_collector(jb_metrics *m, jb_metrics_collect_fn fn, void *arg);

/* Runs the collectors and renders every family with at least one series, in registration
 * order, as exposition text (owned by the caller; NULL when memory ran out). */
char *jb_metrics_render(jb_metrics *m, size_t *len);

/* The content type of jb_metrics_render's text. */
#define JB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
