/* A job's JSON text written straight into a buffer: the same text as
 * jb_json_dumps(jb_job_to_json(job), JB_JSON_COMPACT), without building the tree (the answer
 * to POST /v1/jobs spent a fifth of its CPU building and freeing that tree). */
#ifndef JOBBRIDGE_JOB_JSON_H
#define JOBBRIDGE_JOB_JSON_H

#include <stdbool.h>

#include "jobbridge/job.h"
#include "jobbridge/json.h"

/* Appends job as compact JSON (every Job field, in jb_job_to_json's order). Returns false when
 * the job cannot be written (a string that is not UTF-8, a JSON value too deep); b->failed when
 * memory ran out. */
bool jb_job_write_json(jb_json_buf *b, const jb_job *job);

#endif
