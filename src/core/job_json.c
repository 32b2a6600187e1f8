/* jb_job_write_json (jobbridge/job_json.h): jb_job_to_json's fields, in its order, written as
 * jb_json_write writes them. tests/unit/test_job_json.c compares the two texts. */
#include "jobbridge/job_json.h"

#include <stdio.h>
#include <string.h>

/* ,"key": (the first member has no comma: its key is written by the caller). */
static void key(jb_json_buf *b, const char *k) {
  jb_json_write_raw(b, ",\"", 2);
  jb_json_write_raw(b, k, strlen(k));
  jb_json_write_raw(b, "\":", 2);
}

static bool string_or_null(jb_json_buf *b, const char *k, const char *s) {
  key(b, k);
  if (s == NULL || *s == '\0') {
    jb_json_write_raw(b, "null", 4);
    return true;
  }
  return jb_json_write_string(b, s, strlen(s));
}

static void integer(jb_json_buf *b, const char *k, int v) {
  char num[16];
  key(b, k);
  jb_json_write_raw(b, num, (size_t)snprintf(num, sizeof num, "%d", v));
}

static bool time_or_null(jb_json_buf *b, const char *k, jb_time t) {
  if (t == 0) return string_or_null(b, k, NULL);
  char buf[40];
  return string_or_null(b, k, jb_time_format(t, buf, sizeof buf));
}

/* A JSON value, or `absent` ("{}" or "null") when unset. */
static bool value_or(jb_json_buf *b, const char *k, const json_t *v, const char *absent) {
  key(b, k);
  if (v == NULL) {
    jb_json_write_raw(b, absent, strlen(absent));
    return true;
  }
  return jb_json_write(b, v, JB_JSON_COMPACT);
}

bool jb_job_write_json(jb_json_buf *b, const jb_job *job) {
  bool ok = true;
  jb_json_write_raw(b, "{\"id\":", 6);
  ok &= jb_json_write_string(b, job->id, strnlen(job->id, sizeof job->id));
  ok &= string_or_null(b, "queue_name", job->queue_name);
  ok &= string_or_null(b, "job_type", job->job_type);
  ok &= value_or(b, "payload", job->payload, "{}");
  integer(b, "priority", job->priority);
  integer(b, "max_retries", job->max_retries);
  integer(b, "retry_count", job->retry_count);
  ok &= time_or_null(b, "scheduled_at", job->scheduled_at);
  ok &= time_or_null(b, "started_at", job->started_at);
  ok &= time_or_null(b, "completed_at", job->completed_at);
  ok &= time_or_null(b, "failed_at", job->failed_at);
  ok &= time_or_null(b, "created_at", job->created_at);
  ok &= time_or_null(b, "updated_at", job->updated_at);
  key(b, "status");
  const char *status = jb_status_name(job->status);
  ok &= jb_json_write_string(b, status, strlen(status));
  ok &= string_or_null(b, "error_message", job->error_message);
  ok &= string_or_null(b, "created_by", job->created_by);
  ok &= value_or(b, "metadata", job->metadata, "{}");
  ok &= value_or(b, "result", job->result, "null");
  integer(b, "progress", job->progress);
  ok &= string_or_null(b, "progress_message", job->progress_message);
  ok &= string_or_null(b, "dedupe_key", job->dedupe_key);
  ok &= string_or_null(b, "locked_by", job->locked_by);
  ok &= time_or_null(b, "locked_until", job->locked_until);
  jb_json_write_raw(b, "}", 1);
  return ok && !b->failed;
}
