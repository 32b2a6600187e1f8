/* The JobHandler port: runs one job and says what happened. */
#ifndef JOBBRIDGE_JOB_HANDLER_H
#define JOBBRIDGE_JOB_HANDLER_H

#include "jobbridge/job.h"

typedef struct jb_job_handler_ops {
  /* Runs the job (borrowed) and fills *result (zeroed by the caller; the caller then owns what
   * it holds). Called from a worker thread; must be safe to call from several at once. */
  void (*handle)(void *self, const jb_job *job, jb_job_result *result);
  /* Releases self. May be NULL. */
  void (*destroy)(void *self);
} jb_job_handler_ops;

typedef struct jb_job_handler {
  const jb_job_handler_ops *ops;
  void *self;
} jb_job_handler;

#endif
