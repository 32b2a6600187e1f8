/* Attempt history (jobbridge/job_store.h): releasing and showing a job's finished attempts. */
#include <stdlib.h>

#include "jobbridge/job_store.h"

void jb_job_attempts_free(jb_job_attempt *a, size_t n) {
  if (a == NULL) return;
  for (size_t i = 0; i < n; i++) {
    free(a[i].worker);
    free(a[i].outcome);
    free(a[i].error);
  }
  free(a);
}

static json_t *time_or_null(jb_time t) {
  char buf[40];
  return t != 0 ? json_string(jb_time_format(t, buf, sizeof buf)) : json_null();
}

static json_t *string_or_null(const char *s) {
  return s != NULL ? json_string(s) : json_null();
}

json_t *jb_job_attempts_to_json(const jb_job_attempt *a, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; arr != NULL && i < n; i++) {
    json_t *duration = a[i].started_at != 0 && a[i].finished_at != 0
                           ? json_real((double)(a[i].finished_at - a[i].started_at) / 1000.0)
                           : json_null();
    json_t *o =
        json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "attempt", a[i].attempt, "worker",
                  string_or_null(a[i].worker), "started_at", time_or_null(a[i].started_at),
                  "finished_at", time_or_null(a[i].finished_at), "duration_ms", duration, "outcome",
                  string_or_null(a[i].outcome), "error", string_or_null(a[i].error));
    if (o == NULL || json_array_append_new(arr, o) != 0) {
      json_decref(arr);
      arr = NULL;
    }
  }
  return arr;
}
