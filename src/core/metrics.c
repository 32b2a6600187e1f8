/* The metrics registry (include/jobbridge/metrics.h): families, lock-free series, collectors.
 * Rendering is in metrics_render.c. */
#include "core/metrics_impl.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/log.h"

/* ---- atomics on doubles (bits in a uint64) ---- */

uint64_t jb_metric_dbits(double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

double jb_metric_dval(uint64_t u) {
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double d) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(p, &old, jb_metric_dbits(jb_metric_dval(old) + d),
                                                memory_order_relaxed, memory_order_relaxed))
    continue;
}

/* ---- registry ---- */

static jb_metrics *global;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void make_global(void) {
  jb_error e;
  if (jb_metrics_new(&global, &e) != JB_OK)
    jb_log(JB_LOG_ERROR, "no metrics: cannot make the registry", "error", e.msg, JB_LOG_END);
}

jb_metrics *jb_metrics_global(void) {
  pthread_once(&global_once, make_global);
  return global;
}

jb_err jb_metrics_new(jb_metrics **out, jb_error *e) {
  jb_metrics *m = calloc(1, sizeof *m);
  if (m == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory for the metrics registry");
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->scrape, NULL);
  *out = m;
  return JB_OK;
}

static void series_free(jb_metric *s, size_t nlabels) {
  for (size_t i = 0; i < nlabels; i++) free(s->values[i]);
  free(s->buckets);
  free(s);
}

void jb_metrics_free(jb_metrics *m) {
  if (m == NULL) return;
  jb_metric_family *f = m->first;
  while (f != NULL) {
    jb_metric_family *next = f->next;
    jb_metric *s = atomic_load(&f->head);
    while (s != NULL) {
      jb_metric *sn = s->next;
      series_free(s, f->nlabels);
      s = sn;
    }
    if (f->overflow != NULL) series_free(f->overflow, f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
    f = next;
  }
  free(m->collectors);
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->scrape);
  free(m);
}

static bool valid_name(const char *s, bool colon) {
  if (s == NULL || *s == '\0' || isdigit((unsigned char)*s)) return false;
  for (; *s != '\0'; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && !(colon && *s == ':')) return false;
  return true;
}

/* Whether family f (already registered) is the one asked for again. */
static bool same_family(const jb_metric_family *f, jb_metric_type type, const char *const *labels,
                        size_t nlabels, const double *bounds, size_t nbounds) {
  if (f->type != type || f->nlabels != nlabels || f->nbounds != nbounds) return false;
  for (size_t i = 0; i < nlabels; i++)
    if (strcmp(f->labels[i], labels[i]) != 0) return false;
  for (size_t i = 0; i < nbounds; i++)
    if (f->bounds[i] != bounds[i]) return false;
  return true;
}

static bool check_family(const char *name, jb_metric_type type, const char *const *labels,
                         size_t *nlabels, const double *bounds, size_t nbounds) {
  *nlabels = 0;
  if (!valid_name(name, true)) return false;
  for (; labels != NULL && labels[*nlabels] != NULL; (*nlabels)++) {
    const char *l = labels[*nlabels];
    if (*nlabels == JB_METRIC_MAX_LABELS || !valid_name(l, false) || strncmp(l, "__", 2) == 0 ||
        (type == JB_METRIC_HISTOGRAM && strcmp(l, "le") == 0))
      return false;
  }
  if (nbounds > JB_METRIC_MAX_BUCKETS) return false;
  for (size_t i = 0; i < nbounds; i++)
    if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) return false;
  return true;
}

static jb_metric_family *new_family(const char *name, const char *help, jb_metric_type type,
                                    const char *const *labels, size_t nlabels, const double *bounds,
                                    size_t nbounds) {
  jb_metric_family *f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->type = type;
  f->name = strdup(name);
  f->help = strdup(help != NULL ? help : "");
  bool ok = f->name != NULL && f->help != NULL;
  for (size_t i = 0; i < nlabels; i++) ok = (f->labels[i] = strdup(labels[i])) != NULL && ok;
  f->nlabels = nlabels;
  if (nbounds > 0) memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
  f->nbounds = nbounds;
  pthread_mutex_init(&f->mu, NULL);
  atomic_init(&f->head, NULL);
  if (ok) return f;
  for (size_t i = 0; i < nlabels; i++) free(f->labels[i]);
  free(f->name);
  free(f->help);
  pthread_mutex_destroy(&f->mu);
  free(f);
  return NULL;
}

static jb_metric_family *family(jb_metrics *m, const char *name, const char *help,
                                jb_metric_type type, const char *const *labels,
                                const double *bounds, size_t nbounds) {
  if (m == NULL) return NULL;
  size_t nlabels = 0;
  if (!check_family(name, type, labels, &nlabels, bounds, nbounds)) {
    jb_log(JB_LOG_ERROR, "bug: a metric family with an invalid name, label or buckets", "name",
           name, JB_LOG_END);
    return NULL;
  }
  pthread_mutex_lock(&m->mu);
  jb_metric_family *f = m->first;
  while (f != NULL && strcmp(f->name, name) != 0) f = f->next;
  if (f != NULL) {
    if (!same_family(f, type, labels, nlabels, bounds, nbounds)) {
      jb_log(JB_LOG_ERROR, "bug: a metric family registered twice with different types or labels",
             "name", name, JB_LOG_END);
      f = NULL;
    }
  } else if ((f = new_family(name, help, type, labels, nlabels, bounds, nbounds)) != NULL) {
    f->m = m;
    if (m->last != NULL)
      m->last->next = f;
    else
      m->first = f;
    m->last = f;
  }
  pthread_mutex_unlock(&m->mu);
  return f;
}

jb_metric_family *jb_metrics_counter(jb_metrics *m, const char *name, const char *help,
                                     const char *const *labels) {
  return family(m, name, help, JB_METRIC_COUNTER, labels, NULL, 0);
}

jb_metric_family *jb_metrics_counter_float(jb_metrics *m, const char *name, const char *help,
                                           const char *const *labels) {
  return family(m, name, help, JB_METRIC_COUNTER_FLOAT, labels, NULL, 0);
}

jb_metric_family *jb_metrics_gauge(jb_metrics *m, const char *name, const char *help,
                                   const char *const *labels) {
  return family(m, name, help, JB_METRIC_GAUGE, labels, NULL, 0);
}

jb_metric_family *jb_metrics_histogram(jb_metrics *m, const char *name, const char *help,
                                       const char *const *labels, const double *bounds,
                                       size_t nbounds) {
  return family(m, name, help, JB_METRIC_HISTOGRAM, labels, bounds, nbounds);
}

/* ---- series ---- */

static bool values_match(const jb_metric_family *f, const jb_metric *s, const char *const *values) {
  for (size_t i = 0; i < f->nlabels; i++)
    if (strcmp(s->values[i], values[i] != NULL ? values[i] : "") != 0) return false;
  return true;
}

static jb_metric *find(jb_metric_family *f, const char *const *values) {
  for (jb_metric *s = atomic_load_explicit(&f->head, memory_order_acquire); s != NULL; s = s->next)
    if (values_match(f, s, values)) return s;
  return NULL;
}

static jb_metric *new_series(jb_metric_family *f, const char *const *values) {
  jb_metric *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->f = f;
  bool ok = true;
  for (size_t i = 0; i < f->nlabels; i++)
    ok = (s->values[i] = strdup(values[i] != NULL ? values[i] : "")) != NULL && ok;
  if (f->type == JB_METRIC_HISTOGRAM)
    ok = (s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets)) != NULL && ok;
  if (ok) return s;
  series_free(s, f->nlabels);
  return NULL;
}

jb_metric *jb_metric_get(jb_metric_family *f, const char *const *values) {
  if (f == NULL) return NULL;
  jb_metric *s = find(f, values);
  if (s != NULL) return s;
  pthread_mutex_lock(&f->mu);
  s = find(f, values);
  if (s == NULL && f->nseries < JB_METRIC_MAX_SERIES) {
    if ((s = new_series(f, values)) != NULL) {
      s->next = atomic_load_explicit(&f->head, memory_order_relaxed);
      atomic_store_explicit(&f->head, s, memory_order_release);
      f->nseries++;
    }
  } else if (s == NULL) {
    if (f->overflow == NULL) {
      const char *other[JB_METRIC_MAX_LABELS] = {"other", "other", "other", "other"};
      f->overflow = new_series(f, other);
      jb_log(JB_LOG_WARN, "a metric family has too many label values; counting the rest as other",
             "name", f->name, JB_LOG_U64("series", f->nseries), JB_LOG_END);
    }
    s = f->overflow;
  }
  pthread_mutex_unlock(&f->mu);
  return s;
}

jb_metric *jb_metric_get0(jb_metric_family *f) {
  return jb_metric_get(f, NULL);
}

jb_metric *jb_metric_get1(jb_metric_family *f, const char *v1) {
  const char *v[1] = {v1};
  return jb_metric_get(f, v);
}

jb_metric *jb_metric_get2(jb_metric_family *f, const char *v1, const char *v2) {
  const char *v[2] = {v1, v2};
  return jb_metric_get(f, v);
}

const char *jb_metric_label(const jb_metric *s, size_t i) {
  return s != NULL && i < s->f->nlabels ? s->values[i] : "";
}

/* ---- updates ---- */

void jb_metric_inc(jb_metric *s) {
  if (s != NULL) atomic_fetch_add_explicit(&s->v, 1, memory_order_relaxed);
}

void jb_metric_add(jb_metric *s, uint64_t n) {
  if (s != NULL) atomic_fetch_add_explicit(&s->v, n, memory_order_relaxed);
}

void jb_metric_set_total(jb_metric *s, uint64_t total) {
  if (s != NULL) atomic_store_explicit(&s->v, total, memory_order_relaxed);
}

void jb_metric_set(jb_metric *s, double v) {
  if (s != NULL) atomic_store_explicit(&s->v, jb_metric_dbits(v), memory_order_relaxed);
}

void jb_metric_gauge_add(jb_metric *s, double delta) {
  if (s != NULL) atomic_add_double(&s->v, delta);
}

void jb_metric_observe(jb_metric *s, double v) {
  if (s == NULL || s->buckets == NULL || isnan(v)) return;
  const jb_metric_family *f = s->f;
  size_t i = 0;
  while (i < f->nbounds && v > f->bounds[i]) i++;
  atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
  atomic_add_double(&s->sum, v);
}

double jb_metric_value(const jb_metric *s) {
  if (s == NULL) return 0;
  uint64_t v = atomic_load_explicit(&s->v, memory_order_relaxed);
  switch (s->f->type) {
    case JB_METRIC_COUNTER:
      return (double)v;
    case JB_METRIC_GAUGE:
    case JB_METRIC_COUNTER_FLOAT:
      return jb_metric_dval(v);
    default: {
      uint64_t n = 0;
      for (size_t i = 0; i <= s->f->nbounds; i++)
        n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
      return (double)n;
    }
  }
}

void jb_metric_family_zero(jb_metric_family *f) {
  if (f == NULL || f->type != JB_METRIC_GAUGE) return;
  for (jb_metric *s = atomic_load_explicit(&f->head, memory_order_acquire); s != NULL; s = s->next)
    jb_metric_set(s, 0);
}

/* ---- collectors ---- */

bool jb_metrics_add_collector(jb_metrics *m, jb_metrics_collect_fn fn, void *arg) {
  if (m == NULL) return false;
  pthread_mutex_lock(&m->mu);
  bool ok = true;
  if (m->ncollectors == m->capcollectors) {
    size_t cap = m->capcollectors ? m->capcollectors * 2 : 8;
    jb_collector *c = realloc(m->collectors, cap * sizeof *c);
    if (c != NULL) {
      m->collectors = c;
      m->capcollectors = cap;
    }
    ok = c != NULL;
  }
  if (ok) m->collectors[m->ncollectors++] = (jb_collector){fn, arg};
  pthread_mutex_unlock(&m->mu);
  return ok;
}

void jb_metrics_remove_collector(jb_metrics *m, jb_metrics_collect_fn fn, void *arg) {
  if (m == NULL) return;
  pthread_mutex_lock(&m->scrape); /* waits for a scrape in progress */
  pthread_mutex_lock(&m->mu);
  size_t k = 0;
  for (size_t i = 0; i < m->ncollectors; i++)
    if (m->collectors[i].fn != fn || m->collectors[i].arg != arg)
      m->collectors[k++] = m->collectors[i];
  m->ncollectors = k;
  pthread_mutex_unlock(&m->mu);
  pthread_mutex_unlock(&m->scrape);
}

/* Runs every collector; the caller holds m->scrape. Collectors may register families and
 * series (m->mu is not held while they run). */
void jb_metrics_run_collectors(jb_metrics *m) {
  for (size_t i = 0;; i++) {
    pthread_mutex_lock(&m->mu);
    jb_collector c = i < m->ncollectors ? m->collectors[i] : (jb_collector){NULL, NULL};
    pthread_mutex_unlock(&m->mu);
    if (c.fn == NULL) break;
    c.fn(c.arg);
  }
}
