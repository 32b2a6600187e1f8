/* The Job model: status names, the state machine, timestamps, JSON views of jobs and stats. */
#include "jobbridge/job.h"

#include "jobbridge/cron.h" /* jb_days_from_civil: parsing never depends on the time zone */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const status_names[JB_STATUS_COUNT] = {
    [JB_STATUS_PENDING] = "PENDING",         [JB_STATUS_SCHEDULED] = "SCHEDULED",
    [JB_STATUS_RUNNING] = "RUNNING",         [JB_STATUS_COMPLETED] = "COMPLETED",
    [JB_STATUS_FAILED] = "FAILED",           [JB_STATUS_RETRYING] = "RETRYING",
    [JB_STATUS_DEAD_LETTER] = "DEAD_LETTER",
};

const char *jb_status_name(jb_job_status s) {
  if ((unsigned)s >= JB_STATUS_COUNT) return "UNKNOWN";
  return status_names[s];
}

jb_err jb_status_parse(const char *name, jb_job_status *out) {
  if (name == NULL) return JB_ERR_INVALID;
  for (int i = 0; i < JB_STATUS_COUNT; i++) {
    if (strcasecmp(name, status_names[i]) == 0) {
      *out = (jb_job_status)i;
      return JB_OK;
    }
  }
  return JB_ERR_INVALID;
}

bool jb_status_is_waiting(jb_job_status s) {
  return s == JB_STATUS_PENDING || s == JB_STATUS_SCHEDULED || s == JB_STATUS_RETRYING;
}

bool jb_status_is_final(jb_job_status s) {
  return s == JB_STATUS_COMPLETED || s == JB_STATUS_FAILED || s == JB_STATUS_DEAD_LETTER;
}

jb_err jb_status_transition(jb_job_status from, jb_job_status to, jb_error *e) {
  bool ok = false;
  if ((unsigned)from < JB_STATUS_COUNT && (unsigned)to < JB_STATUS_COUNT) {
    switch (from) {
      case JB_STATUS_PENDING:
      case JB_STATUS_SCHEDULED:
      case JB_STATUS_RETRYING:
        ok = to == JB_STATUS_RUNNING || to == JB_STATUS_FAILED;
        break;
      case JB_STATUS_RUNNING:
        ok = to == JB_STATUS_COMPLETED || to == JB_STATUS_FAILED || to == JB_STATUS_RETRYING ||
             to == JB_STATUS_DEAD_LETTER;
        break;
      case JB_STATUS_FAILED:
      case JB_STATUS_DEAD_LETTER:
        ok = to == JB_STATUS_PENDING;
        break;
      case JB_STATUS_COMPLETED:
      case JB_STATUS_COUNT:
        ok = false;
        break;
    }
  }
  if (ok) return JB_OK;
  return jb_fail(e, JB_ERR_STATE, "illegal job status transition %s -> %s", jb_status_name(from),
                 jb_status_name(to));
}

jb_time jb_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (jb_time)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t jb_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void jb_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

long jb_backoff_next(long ms, long cap_ms) {
  return ms * 2 > cap_ms ? cap_ms : ms * 2;
}

/* The inverse (Hinnant's civil_from_days): the date of day z counted from 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* "YYYY-MM-DDTHH:MM:SS" for whole seconds since the epoch, by hand: strftime's %Y does not pad
 * years below 1000 ("1-01-01"), and gmtime is not needed for a fixed calendar. */
static size_t format_secs(int64_t secs, char *buf, size_t len) {
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  int n = snprintf(buf, len, "%0*lld-%02u-%02uT%02d:%02d:%02d", y < 0 ? 5 : 4, (long long)y, m, d,
                   (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
  return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

char *jb_time_format(jb_time t, char *buf, size_t len) {
  int64_t secs = t / 1000000;
  long usec = (long)(t % 1000000);
  if (usec < 0) {
    usec += 1000000;
    secs -= 1;
  }
  /* Every delivery and log line formats a time: the date part is formatted once per second
   * and thread, the microseconds by hand. */
  static _Thread_local int64_t cached_secs = INT64_MIN;
  static _Thread_local char cached[40];
  static _Thread_local size_t cached_len;
  if (secs != cached_secs) {
    cached_len = format_secs(secs, cached, sizeof cached);
    cached_secs = secs;
  }
  if (len < cached_len + 9) { /* too small for the fast path: truncate like snprintf */
    snprintf(buf, len, "%s.%06ldZ", cached, usec);
    return buf;
  }
  memcpy(buf, cached, cached_len);
  char *p = buf + cached_len;
  *p++ = '.';
  for (int i = 5; i >= 0; i--, usec /= 10) p[i] = (char)('0' + usec % 10);
  p[6] = 'Z';
  p[7] = '\0';
  return buf;
}

static bool parse_digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return false;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return true;
}

static int days_in_month(int y, int m) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

#define RANGE_TEXT                                                                               \
  "is out of range: times run from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z (epoch seconds " \
  "0 to 253402300799)"
#define FORM_TEXT                                                                             \
  "is not an RFC 3339 time with a zone (2026-11-22T10:00:00Z, 2026-11-22T11:00:00+01:00) or " \
  "whole seconds since the epoch"

/* Whole epoch seconds, digits only, with the range checked digit by digit (no overflow). */
static jb_err parse_epoch(const char *s, jb_time *out, jb_error *e) {
  int64_t v = 0;
  for (const char *p = s; *p != '\0'; p++) {
    v = v * 10 + (*p - '0');
    if (v > JB_TIME_MAX_S) return jb_fail(e, JB_ERR_INVALID, RANGE_TEXT);
  }
  *out = v * 1000000;
  return JB_OK;
}

/* The fraction after '.', cut to microseconds; *p is left after it. */
static bool parse_fraction(const char **p, long *usec) {
  int digits = 0;
  *usec = 0;
  for (; isdigit((unsigned char)**p); (*p)++, digits++)
    if (digits < 6) *usec = *usec * 10 + (**p - '0');
  for (int i = digits; i < 6; i++) *usec *= 10;
  return digits > 0;
}

/* `Z` or ±hh:mm within ±23:59, into seconds east of UTC. */
static jb_err parse_offset(const char **p, long *offset, jb_error *e) {
  *offset = 0;
  if (**p == 'Z' || **p == 'z') {
    (*p)++;
    return JB_OK;
  }
  if (**p != '+' && **p != '-')
    return jb_fail(e, JB_ERR_INVALID, "has no zone: add Z (UTC) or an offset such as +01:00");
  int sign = *(*p)++ == '-' ? -1 : 1, oh, om;
  if (!parse_digits(p, 2, &oh) || *(*p)++ != ':' || !parse_digits(p, 2, &om))
    return jb_fail(e, JB_ERR_INVALID, FORM_TEXT);
  if (oh > 23 || om > 59)
    return jb_fail(e, JB_ERR_INVALID, "has a zone offset beyond -23:59..+23:59");
  *offset = sign * (oh * 3600L + om * 60L);
  return JB_OK;
}

jb_err jb_time_parse_err(const char *s, jb_time *out, jb_error *e) {
  if (s == NULL || *s == '\0') return jb_fail(e, JB_ERR_INVALID, "is empty");
  if (strspn(s, "0123456789") == strlen(s)) return parse_epoch(s, out, e);
  const char *p = s;
  int y, mo, d, h, mi, sec;
  if (!parse_digits(&p, 4, &y) || *p++ != '-' || !parse_digits(&p, 2, &mo) || *p++ != '-' ||
      !parse_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
    return jb_fail(e, JB_ERR_INVALID, FORM_TEXT);
  p++;
  if (!parse_digits(&p, 2, &h) || *p++ != ':' || !parse_digits(&p, 2, &mi) || *p++ != ':' ||
      !parse_digits(&p, 2, &sec))
    return jb_fail(e, JB_ERR_INVALID, FORM_TEXT);
  if (y < 1) return jb_fail(e, JB_ERR_INVALID, RANGE_TEXT);
  if (mo < 1 || mo > 12) return jb_fail(e, JB_ERR_INVALID, "has month %02d (01 to 12)", mo);
  if (d < 1 || d > days_in_month(y, mo))
    return jb_fail(e, JB_ERR_INVALID, "has day %02d, but %04d-%02d has %d days", d, y, mo,
                   days_in_month(y, mo));
  if (h > 23 || mi > 59 || sec > 60)
    return jb_fail(e, JB_ERR_INVALID, "has a time of day past 23:59:60");
  long usec = 0;
  if (*p == '.' && (p++, !parse_fraction(&p, &usec)))
    return jb_fail(e, JB_ERR_INVALID, "has a '.' without digits after it");
  long offset;
  jb_err rc = parse_offset(&p, &offset, e);
  if (rc != JB_OK) return rc;
  if (*p != '\0') return jb_fail(e, JB_ERR_INVALID, "has text after the zone");
  int64_t t =
      jb_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
  if (t < JB_TIME_MIN_S || t > JB_TIME_MAX_S) return jb_fail(e, JB_ERR_INVALID, RANGE_TEXT);
  *out = t * 1000000 + usec;
  return JB_OK;
}

jb_err jb_time_parse(const char *s, jb_time *out) {
  return jb_time_parse_err(s, out, NULL);
}

void jb_job_clear(jb_job *job) {
  if (job == NULL) return;
  free(job->queue_name);
  free(job->job_type);
  free(job->error_message);
  free(job->dedupe_key);
  free(job->progress_message);
  free(job->locked_by);
  free(job->tracestate);
  json_decref(job->payload);
  json_decref(job->metadata);
  json_decref(job->result);
  memset(job, 0, sizeof *job);
}

void jb_jobs_free(jb_job *jobs, size_t n) {
  if (jobs == NULL) return;
  for (size_t i = 0; i < n; i++) jb_job_clear(&jobs[i]);
  free(jobs);
}

static json_t *time_or_null(jb_time t) {
  if (t == 0) return json_null();
  char buf[40];
  return json_string(jb_time_format(t, buf, sizeof buf));
}

static json_t *string_or_null(const char *s) {
  return s != NULL && *s != '\0' ? json_string(s) : json_null();
}

/* A new reference to v, or to an empty object / null when v is unset. */
static json_t *ref_or_object(json_t *v) {
  return v != NULL ? json_incref(v) : json_object();
}
static json_t *ref_or_null(json_t *v) {
  return v != NULL ? json_incref(v) : json_null();
}

json_t *jb_job_to_json(const jb_job *job) {
  json_t *o = json_object();
  if (o == NULL) return NULL;
  int rc = 0;
  rc |= json_object_set_new(o, "id", json_string(job->id));
  rc |= json_object_set_new(o, "queue_name", string_or_null(job->queue_name));
  rc |= json_object_set_new(o, "job_type", string_or_null(job->job_type));
  rc |= json_object_set_new(o, "payload", ref_or_object(job->payload));
  rc |= json_object_set_new(o, "priority", json_integer(job->priority));
  rc |= json_object_set_new(o, "max_retries", json_integer(job->max_retries));
  rc |= json_object_set_new(o, "retry_count", json_integer(job->retry_count));
  rc |= json_object_set_new(o, "scheduled_at", time_or_null(job->scheduled_at));
  rc |= json_object_set_new(o, "started_at", time_or_null(job->started_at));
  rc |= json_object_set_new(o, "completed_at", time_or_null(job->completed_at));
  rc |= json_object_set_new(o, "failed_at", time_or_null(job->failed_at));
  rc |= json_object_set_new(o, "created_at", time_or_null(job->created_at));
  rc |= json_object_set_new(o, "updated_at", time_or_null(job->updated_at));
  rc |= json_object_set_new(o, "status", json_string(jb_status_name(job->status)));
  rc |= json_object_set_new(o, "error_message", string_or_null(job->error_message));
  rc |= json_object_set_new(o, "created_by", string_or_null(job->created_by));
  rc |= json_object_set_new(o, "metadata", ref_or_object(job->metadata));
  rc |= json_object_set_new(o, "result", ref_or_null(job->result));
  rc |= json_object_set_new(o, "progress", json_integer(job->progress));
  rc |= json_object_set_new(o, "progress_message", string_or_null(job->progress_message));
  rc |= json_object_set_new(o, "dedupe_key", string_or_null(job->dedupe_key));
  rc |= json_object_set_new(o, "locked_by", string_or_null(job->locked_by));
  rc |= json_object_set_new(o, "locked_until", time_or_null(job->locked_until));
  if (rc != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

void jb_job_result_clear(jb_job_result *r) {
  if (r == NULL) return;
  json_decref(r->result_data);
  free(r->error_message);
  memset(r, 0, sizeof *r);
}

json_t *jb_queue_stats_to_json(const jb_queue_stats *s) {
  /* The seed's QueueStats first, exactly as it names them; our extra counts beside them. */
  return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "queue_name", s->queue_name,
                   "pending_count", (json_int_t)s->pending, "running_count", (json_int_t)s->running,
                   "completed_count", (json_int_t)s->completed, "failed_count",
                   (json_int_t)s->failed, "dead_letter_count", (json_int_t)s->dead_letter,
                   "scheduled_count", (json_int_t)s->scheduled, "retrying_count",
                   (json_int_t)s->retrying, "total_count", (json_int_t)s->total);
}
