/* The Job model (names are contract, see DESIGN.md), JobStatus and its state machine, JobResult
 * and QueueStats. */
#ifndef JOBBRIDGE_JOB_H
#define JOBBRIDGE_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "jobbridge/err.h"

/* The seven statuses; the string form is the upper-case name (the `status` column values). */
typedef enum {
  JB_STATUS_PENDING = 0,
  JB_STATUS_SCHEDULED,
  JB_STATUS_RUNNING,
  JB_STATUS_COMPLETED,
  JB_STATUS_FAILED,
  JB_STATUS_RETRYING,
  JB_STATUS_DEAD_LETTER,
  JB_STATUS_COUNT
} jb_job_status;

/* "PENDING" … "DEAD_LETTER"; "UNKNOWN" for an out-of-range value. Static storage. */
const char *jb_status_name(jb_job_status s);

/* Parses a status name (case-insensitive). JB_ERR_INVALID for anything else. */
jb_err jb_status_parse(const char *name, jb_job_status *out) JB_MUST_CHECK;

/* True for the states a job waits in before it runs: PENDING, SCHEDULED, RETRYING. */
bool jb_status_is_waiting(jb_job_status s);

/* True for the states a job ends in unless retried by hand: COMPLETED, FAILED, DEAD_LETTER. */
bool jb_status_is_final(jb_job_status s);

/* The one state machine. JB_OK when `from -> to` is a legal transition, else JB_ERR_STATE with
 * e->msg naming both states. Every status change in jobbridge is checked by this function:
 *   PENDING|SCHEDULED|RETRYING -> RUNNING          (claimed by a worker)
 *   PENDING|SCHEDULED|RETRYING -> FAILED           (cancelled while waiting)
 *   RUNNING -> COMPLETED | FAILED | RETRYING | DEAD_LETTER
 *   FAILED|DEAD_LETTER -> PENDING                  (manual retry)
 * Nothing else, and no self-transition. */
jb_err jb_status_transition(jb_job_status from, jb_job_status to, jb_error *e) JB_MUST_CHECK;

/* Microseconds since the Unix epoch, UTC; 0 means "not set". */
typedef int64_t jb_time;

jb_time jb_time_now(void);

/* Milliseconds of a monotonic clock, for timeouts and intervals (never for timestamps). */
int64_t jb_mono_ms(void);

/* Sleeps ms milliseconds (a signal may cut it short). */
void jb_sleep_ms(long ms);

/* The next delay of a capped exponential backoff: twice ms, at most cap_ms. */
long jb_backoff_next(long ms, long cap_ms);

/* The times jobbridge accepts: years 1 to 9999, as RFC 3339's four-digit years allow (all
 * within PostgreSQL's timestamptz), in whole seconds since the epoch. */
#define JB_TIME_MIN_S (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define JB_TIME_MAX_S 253402300799LL   /* 9999-12-31T23:59:59Z */

/* Formats t as RFC 3339 UTC with microseconds ("2026-11-22T22:47:30.123456Z") into buf (>= 32
 * bytes), the year always with four digits ("0001-01-01T..."; years past 9999 get more, years
 * before 1 a sign). Returns buf. */
char *jb_time_format(jb_time t, char *buf, size_t len);

/* Parses RFC 3339 ("2026-11-22T22:47:30Z", optional fraction cut to microseconds, `Z` or
 * ±hh:mm offset within ±23:59; the day must exist in its month, leap years counted; second 60,
 * a leap second, counts as the next minute's first) or a whole number of seconds since the epoch
 * (digits only). The instant must lie within JB_TIME_MIN_S..JB_TIME_MAX_S. JB_ERR_INVALID
 * otherwise, with e (may be NULL) saying what is wrong in words that follow the value: "is out
 * of range: ...". */
jb_err jb_time_parse_err(const char *s, jb_time *out, jb_error *e) JB_MUST_CHECK;

/* jb_time_parse_err without the message. */
jb_err jb_time_parse(const char *s, jb_time *out) JB_MUST_CHECK;

/* One row of jobbridge.jobs. Strings and JSON values are owned by the job and released by
 * jb_job_clear; optional fields are NULL / 0 when unset. */
typedef struct jb_job {
  char id[37];
  char *queue_name;
  char *job_type;
  json_t *payload; /* a JSON object */
  int priority;
  int max_retries;
  int retry_count;
  jb_time scheduled_at;
  jb_time started_at;
  jb_time completed_at;
  jb_time failed_at;
  jb_time created_at;
  jb_time updated_at;
  jb_job_status status;
  char *error_message;
  char created_by[37];    /* "" when unset */
  json_t *metadata;       /* a JSON object, {} when empty */
  json_t *result;         /* NULL until a handler returned data */
  int progress;           /* 0..100 */
  char *progress_message; /* the last progress report's message; NULL if none */
  char *dedupe_key;
  char *locked_by;
  jb_time locked_until;
  /* W3C trace context (jobbridge/trace.h), beside the contract's fields: every job has a
   * traceparent ("" only for a job read from before migration 10); tracestate NULL if none. */
  char traceparent[56];
  char *tracestate;
} jb_job;

/* Frees what the job owns and zeroes it; the struct itself belongs to the caller. */
void jb_job_clear(jb_job *job);

/* Frees an array of n jobs returned by a list call (each cleared, then the array). */
void jb_jobs_free(jb_job *jobs, size_t n);

/* A new JSON object with every Job field under its contract name (timestamps RFC 3339 or null).
 * The caller owns the returned reference. NULL on allocation failure. */
json_t *jb_job_to_json(const jb_job *job);

/* What a handler reports for one run of a job. `result_data` (a JSON object or NULL) and
 * `error_message` are owned by the result. */
typedef struct jb_job_result {
  bool success;
  bool retriable; /* on failure: may it be retried? */
  /* On failure: the fault is jobbridge's, not the job's (out of file descriptors, memory or
   * processes): the job goes back without burning a retry, the condition is logged loudly,
   * and the worker backs off before it claims again. */
  bool requeue;
  json_t *result_data;
  char *error_message;
  /* On a retriable failure: the delay the handler asks for before the retry (an HTTP
   * Retry-After), in ms; 0: the retry policy's backoff. Capped by the type's retry.max_s. */
  int64_t retry_after_ms;
} jb_job_result;

void jb_job_result_clear(jb_job_result *r);

/* Counts of one queue by status. In JSON (jb_queue_stats_to_json) the seed's QueueStats names:
 * queue_name, pending_count, running_count, completed_count, failed_count, dead_letter_count,
 * and beside them scheduled_count, retrying_count, total_count. */
typedef struct jb_queue_stats {
  char queue_name[128];
  int64_t pending; /* each status is counted in exactly one field */
  int64_t scheduled;
  int64_t retrying;
  int64_t running;
  int64_t completed;
  int64_t failed;
  int64_t dead_letter;
  int64_t total;
} jb_queue_stats;

/* A new JSON object for one QueueStats. Caller owns the reference. */
json_t *jb_queue_stats_to_json(const jb_queue_stats *s);

#endif
