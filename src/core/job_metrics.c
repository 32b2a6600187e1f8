/* jobbridge's job metrics (include/jobbridge/job_metrics.h). */
#include "jobbridge/job_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/metrics.h"

static const double run_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                    5,     10,    30,   60,   300, 1800};
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
#define NB(a) (sizeof(a) / sizeof(a)[0])

typedef struct families {
  jb_metric_family *created, *finished, *run, *claim_to_start, *create_to_start;
} families;

static families fam;
static pthread_once_t fam_once = PTHREAD_ONCE_INIT;

static void make_families(void) {
  jb_metrics *m = jb_metrics_global();
  static const char *const type_queue[] = {"job_type", "queue", NULL};
  static const char *const type_status[] = {"job_type", "status", NULL};
  static const char *const type[] = {"job_type", NULL};
  fam.created = jb_metrics_counter(m, "jobbridge_jobs_created_total",
                                   "Jobs created (duplicates not counted), by job type and queue.",
                                   type_queue);
  fam.finished = jb_metrics_counter(
      m, "jobbridge_jobs_finished_total",
      "Job runs ended, by job type and the outcome decided (COMPLETED, FAILED, RETRYING, "
      "DEAD_LETTER).",
      type_status);
  fam.run = jb_metrics_histogram(m, "jobbridge_job_run_duration_seconds",
                                 "How long a job's handler ran, by job type.", type, run_bounds,
                                 NB(run_bounds));
  fam.claim_to_start = jb_metrics_histogram(
      m, "jobbridge_job_claim_to_start_seconds",
      "From a worker getting a job (claim or hand-over) to its handler starting, by job type.",
      type, latency_bounds, NB(latency_bounds));
  fam.create_to_start = jb_metrics_histogram(
      m, "jobbridge_job_create_to_start_seconds",
      "From a job's creation (created_at) to its handler starting, by job type.", type,
      latency_bounds, NB(latency_bounds));
}

static const families *get_families(void) {
  pthread_once(&fam_once, make_families);
  return &fam;
}

/* The last (type, queue) series a thread counted into: jobs of a batch mostly share both. */
static _Thread_local const char *last_type, *last_queue;
static _Thread_local jb_metric *last_created;

void jb_job_metrics_created(const jb_new_job *jobs, size_t n, const jb_create_outcome *out) {
  const families *f = get_families();
  for (size_t i = 0; i < n; i++) {
    if (out[i].status != JB_CREATE_CREATED) continue;
    if (last_created == NULL || strcmp(last_type, jobs[i].job_type) != 0 ||
        strcmp(last_queue, jobs[i].queue_name) != 0) {
      last_created = jb_metric_get2(f->created, jobs[i].job_type, jobs[i].queue_name);
      if (last_created == NULL) continue;
      /* The series' own copies of the values: they outlive the batch. */
      last_type = jb_metric_label(last_created, 0);
      last_queue = jb_metric_label(last_created, 1);
    }
    jb_metric_inc(last_created);
  }
}

struct jb_job_run_metrics {
  struct jb_job_run_metrics *next;
  char *job_type;
  jb_metric *finished[JB_STATUS_COUNT];
  jb_metric *run, *claim_to_start, *create_to_start;
};

static _Atomic(jb_job_run_metrics *) runs;
static pthread_mutex_t runs_mu = PTHREAD_MUTEX_INITIALIZER;

static jb_job_run_metrics *find_run(const char *job_type) {
  for (jb_job_run_metrics *r = atomic_load_explicit(&runs, memory_order_acquire); r != NULL;
       r = r->next)
    if (strcmp(r->job_type, job_type) == 0) return r;
  return NULL;
}

const jb_job_run_metrics *jb_job_run_metrics_for(const char *job_type) {
  jb_job_run_metrics *r = find_run(job_type);
  if (r != NULL) return r;
  const families *f = get_families();
  pthread_mutex_lock(&runs_mu);
  if ((r = find_run(job_type)) == NULL && (r = calloc(1, sizeof *r)) != NULL) {
    if ((r->job_type = strdup(job_type)) == NULL) {
      free(r);
      r = NULL;
    } else {
      static const jb_job_status ends[] = {JB_STATUS_COMPLETED, JB_STATUS_FAILED,
                                           JB_STATUS_RETRYING, JB_STATUS_DEAD_LETTER};
      for (size_t i = 0; i < NB(ends); i++)
        r->finished[ends[i]] = jb_metric_get2(f->finished, job_type, jb_status_name(ends[i]));
      r->run = jb_metric_get1(f->run, job_type);
      r->claim_to_start = jb_metric_get1(f->claim_to_start, job_type);
      r->create_to_start = jb_metric_get1(f->create_to_start, job_type);
      r->next = atomic_load_explicit(&runs, memory_order_relaxed);
      atomic_store_explicit(&runs, r, memory_order_release);
    }
  }
  pthread_mutex_unlock(&runs_mu);
  return r;
}

void jb_job_metrics_started(const jb_job_run_metrics *m, const jb_job *job, jb_time claimed_at) {
  if (m == NULL) return;
  jb_time now = jb_time_now();
  jb_metric_observe(m->claim_to_start, (double)(now - claimed_at) / 1e6);
  if (job->created_at > 0)
    jb_metric_observe(m->create_to_start, (double)(now - job->created_at) / 1e6);
}

void jb_job_metrics_finished(const jb_job_run_metrics *m, jb_job_status status, double run_s) {
  if (m == NULL || (int)status < 0 || status >= JB_STATUS_COUNT) return;
  jb_metric_inc(m->finished[status]);
  jb_metric_observe(m->run, run_s);
}

const char *jb_metrics_reason_class(const char *reason) {
  static const struct {
    const char *needle, *cls;
  } classes[] = {
      {"job creation refused", "refused"},
      {"no mapping matches", "no_mapping"},
      {"exceeds ingest.max_body_bytes", "too_large"},
      {"malformed JSON", "malformed"},
      {"not valid UTF-8", "malformed"},
      {"NUL byte", "malformed"},
      {"body is empty", "malformed"},
      {"not an object", "malformed"},
  };
  if (reason == NULL) return "invalid";
  for (size_t i = 0; i < NB(classes); i++)
    if (strstr(reason, classes[i].needle) != NULL) return classes[i].cls;
  return "invalid";
}
