/* The JobCreator port: what triggers (AMQP, HTTP, schedules) use to turn requests into jobs. */
#ifndef JOBBRIDGE_JOB_CREATOR_H
#define JOBBRIDGE_JOB_CREATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/job.h"

/* Options of one new job; zero-initialise and set what you need. */
typedef struct jb_job_opts {
  jb_time scheduled_at;   /* 0: now; in the future: the job is SCHEDULED */
  int max_retries;        /* < 0: the job type's default (or 3) */
  const char *created_by; /* a UUID or NULL */
  json_t *metadata;       /* a JSON object or NULL ({}); borrowed */
  const char *dedupe_key; /* NULL: no deduplication */
  /* W3C trace context of the job's cause; a traceparent that is NULL or malformed starts a new
   * trace (a malformed one is logged), a tracestate goes with a valid traceparent only. */
  const char *traceparent;
  const char *tracestate;
} jb_job_opts;

/* One job to create. Every pointer is borrowed for the duration of the call. */
typedef struct jb_job_request {
  const char *job_type;
  json_t *payload;        /* must be a JSON object */
  const char *queue_name; /* NULL: "default" */
  int priority;           /* higher runs first */
  jb_job_opts opts;
} jb_job_request;

typedef enum {
  JB_CREATE_CREATED = 0, /* a new job row */
  JB_CREATE_DUPLICATE    /* dedupe_key already present: id is the existing job's */
} jb_create_status;

typedef struct jb_create_outcome {
  jb_create_status status;
  char id[37];
  jb_time created_at; /* JB_CREATE_CREATED: when the job was stored; 0 otherwise */
  /* JB_CREATE_CREATED: stored RUNNING, handed straight to an idle worker of this process
   * (started_at = created_at); false: stored waiting (PENDING or SCHEDULED). */
  bool running;
} jb_create_outcome;

typedef struct jb_job_creator_ops {
  /* Creates n jobs in one transaction: all of them or none. Each request is validated first
   * (registered job type, payload an object, ...); the first invalid one fails the whole call
   * with JB_ERR_INVALID or JB_ERR_UNREGISTERED and e->msg naming the request index and problem.
   * out[i] (caller-allocated, n entries) tells created or duplicate for request i. */
  jb_err (*create_jobs)(void *self, const jb_job_request *reqs, size_t n, jb_create_outcome *out,
                        jb_error *e);
} jb_job_creator_ops;

/* The port: operations plus the implementation's state. Borrowed by triggers. */
typedef struct jb_job_creator {
  const jb_job_creator_ops *ops;
  void *self;
} jb_job_creator;

/* Convenience: one job through create_jobs. */
jb_err jb_create_job(const jb_job_creator *c, const jb_job_request *req, jb_create_outcome *out,
                     jb_error *e) JB_MUST_CHECK;

#endif
