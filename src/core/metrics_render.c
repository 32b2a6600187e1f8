/* The Prometheus text exposition format 0.0.4 of a registry: per family `# HELP` (backslash and
 * newline escaped), `# TYPE`, then its series with label values escaped (backslash, double
 * quote, newline); a histogram as cumulative `_bucket{le="..."}` lines ending with le="+Inf",
 * then `_sum` and `_count`. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics_impl.h"

typedef struct buf {
  char *p;
  size_t len, cap;
  bool failed;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->failed = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s) {
  put(b, s, strlen(s));
}

/* s with `\` and newline escaped, and `"` too when quote. */
static void put_escaped(buf *b, const char *s, bool quote) {
  for (; *s != '\0'; s++) {
    if (*s == '\\')
      puts_(b, "\\\\");
    else if (*s == '\n')
      puts_(b, "\\n");
    else if (quote && *s == '"')
      puts_(b, "\\\"");
    else
      put(b, s, 1);
  }
}

/* A float as Prometheus reads it: the shortest of %.15g and %.17g that reads back exactly;
 * +Inf, -Inf, NaN. */
static void put_double(buf *b, double v) {
  char t[40];
  if (isnan(v)) {
    puts_(b, "NaN");
    return;
  }
  if (isinf(v)) {
    puts_(b, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  snprintf(t, sizeof t, "%.15g", v);
  if (strtod(t, NULL) != v) snprintf(t, sizeof t, "%.17g", v);
  puts_(b, t);
}

static void put_u64(buf *b, uint64_t v) {
  char t[24];
  snprintf(t, sizeof t, "%" PRIu64, v);
  puts_(b, t);
}

/* name{l1="v1",...,le="x"} with suffix after the name; le NULL for none. */
static void put_series_name(buf *b, const jb_metric_family *f, const jb_metric *s,
                            const char *suffix, const char *le) {
  puts_(b, f->name);
  puts_(b, suffix);
  if (f->nlabels == 0 && le == NULL) return;
  puts_(b, "{");
  for (size_t i = 0; i < f->nlabels; i++) {
    if (i > 0) puts_(b, ",");
    puts_(b, f->labels[i]);
    puts_(b, "=\"");
    put_escaped(b, s->values[i], true);
    puts_(b, "\"");
  }
  if (le != NULL) {
    puts_(b, f->nlabels > 0 ? ",le=\"" : "le=\"");
    puts_(b, le);
    puts_(b, "\"");
  }
  puts_(b, "}");
}

static void put_histogram(buf *b, const jb_metric_family *f, const jb_metric *s) {
  uint64_t cum = 0;
  char le[40];
  for (size_t i = 0; i <= f->nbounds; i++) {
    cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    if (i < f->nbounds) {
      buf lb = {0};
      put_double(&lb, f->bounds[i]);
      snprintf(le, sizeof le, "%s", lb.p != NULL ? lb.p : "0");
      free(lb.p);
    } else {
      snprintf(le, sizeof le, "+Inf");
    }
    put_series_name(b, f, s, "_bucket", le);
    puts_(b, " ");
    put_u64(b, cum);
    puts_(b, "\n");
  }
  put_series_name(b, f, s, "_sum", NULL);
  puts_(b, " ");
  put_double(b, jb_metric_dval(atomic_load_explicit(&s->sum, memory_order_relaxed)));
  puts_(b, "\n");
  put_series_name(b, f, s, "_count", NULL); /* the +Inf bucket's count, so both agree */
  puts_(b, " ");
  put_u64(b, cum);
  puts_(b, "\n");
}

static void put_series(buf *b, const jb_metric_family *f, const jb_metric *s) {
  if (f->type == JB_METRIC_HISTOGRAM) {
    put_histogram(b, f, s);
    return;
  }
  put_series_name(b, f, s, "", NULL);
  puts_(b, " ");
  uint64_t v = atomic_load_explicit(&s->v, memory_order_relaxed);
  if (f->type == JB_METRIC_COUNTER)
    put_u64(b, v);
  else
    put_double(b, jb_metric_dval(v));
  puts_(b, "\n");
}

static const char *type_name(jb_metric_type t) {
  return t == JB_METRIC_COUNTER || t == JB_METRIC_COUNTER_FLOAT ? "counter"
         : t == JB_METRIC_GAUGE                                 ? "gauge"
                                                                : "histogram";
}

/* One family: its series in the order they were made (the list holds them newest first). */
static void put_family(buf *b, jb_metric_family *f) {
  pthread_mutex_lock(&f->mu);
  jb_metric *overflow = f->overflow;
  pthread_mutex_unlock(&f->mu);
  /* The list from this head never changes: newer series are added before it. */
  jb_metric *head = atomic_load_explicit(&f->head, memory_order_acquire);
  size_t n = 0;
  for (const jb_metric *s = head; s != NULL; s = s->next) n++;
  if (n == 0 && overflow == NULL) return;
  const jb_metric **order = calloc(n ? n : 1, sizeof *order);
  if (order == NULL) {
    b->failed = true;
    return;
  }
  size_t k = 0;
  for (const jb_metric *s = head; s != NULL; s = s->next) order[k++] = s;
  puts_(b, "# HELP ");
  puts_(b, f->name);
  puts_(b, " ");
  put_escaped(b, f->help, false);
  puts_(b, "\n# TYPE ");
  puts_(b, f->name);
  puts_(b, " ");
  puts_(b, type_name(f->type));
  puts_(b, "\n");
  while (k > 0) put_series(b, f, order[--k]);
  if (overflow != NULL) put_series(b, f, overflow);
  free(order);
}

char *jb_metrics_render(jb_metrics *m, size_t *len) {
  if (m == NULL) return NULL;
  buf b = {0};
  pthread_mutex_lock(&m->scrape);
  jb_metrics_run_collectors(m);
  pthread_mutex_lock(&m->mu);
  for (jb_metric_family *f = m->first; f != NULL; f = f->next) put_family(&b, f);
  pthread_mutex_unlock(&m->mu);
  pthread_mutex_unlock(&m->scrape);
  put(&b, "", 0);
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  if (len != NULL) *len = b.len;
  return b.p;
}
