/* The JobTrigger port: something that turns outside events into jobs through a JobCreator. */
#ifndef JOBBRIDGE_JOB_TRIGGER_H
#define JOBBRIDGE_JOB_TRIGGER_H

#include <stdbool.h>

#include "jobbridge/err.h"

typedef struct jb_job_trigger_ops {
  /* Starts the trigger's own thread(s). */
  jb_err (*start)(void *self, jb_error *e);
  /* Asks the trigger to stop and waits until it has: work in hand is finished or left for the
   * source to deliver again, never lost. */
  void (*stop)(void *self);
  bool (*is_running)(void *self);
} jb_job_trigger_ops;

typedef struct jb_job_trigger {
  const jb_job_trigger_ops *ops;
  void *self;
} jb_job_trigger;

#endif
