/* JSON-lines logging on stderr (URL redaction is in redact.c). */
#include "jobbridge/log.h"
#include "jobbridge/utf8.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "jobbridge/job.h"

static atomic_int log_level = JB_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void jb_log_set_level(jb_log_level lvl) {
  atomic_store(&log_level, (int)lvl);
}

void jb_log_init(void) {
  const char *env = getenv("JOBBRIDGE_LOG_LEVEL");
  if (env == NULL) return;
  for (int i = 0; i < 4; i++)
    if (strcasecmp(env, level_names[i]) == 0) jb_log_set_level((jb_log_level)i);
}

int jb_log_enabled(jb_log_level lvl) {
  return (int)lvl >= atomic_load(&log_level);
}

char *jb_utf8_escape(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(n * 4 + 1); /* each byte becomes at most "\xNN" */
  if (out == NULL) return NULL;
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *)s;
  char *o = out;
  const unsigned char *end = p + n;
  while (p < end) {
    size_t len = jb_utf8_seq(p, (size_t)(end - p));
    if (len > 0) {
      memcpy(o, p, len);
      o += len;
      p += len;
    } else {
      *o++ = '\\';
      *o++ = 'x';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
      p++;
    }
  }
  *o = '\0';
  return out;
}

/* A JSON string for a log field: the text itself when it is UTF-8, else the text with each
 * byte that is not UTF-8 written as \xNN, so a field is never dropped for its bytes. */
static json_t *log_string(const char *s) {
  json_t *v = json_string(s);
  if (v != NULL || s == NULL) return v;
  char *esc = jb_utf8_escape(s);
  if (esc == NULL) return json_string("(out of memory)");
  v = json_string(esc);
  free(esc);
  return v;
}

const char jb_log_tags[4] = {'u', 'i', 'd', 'b'};

/* The value of a typed pair (tag is one of JB_LOG_TAG_*), read from ap as the type its macro
 * converted it to. */
static json_t *log_typed(const char *tag, va_list *ap) {
  if (tag == JB_LOG_TAG_U64) {
    uint64_t u = va_arg(*ap, uint64_t);
    if (u <= (uint64_t)INT64_MAX) return json_integer((json_int_t)u);
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRIu64, u);
    return json_string(digits);
  }
  if (tag == JB_LOG_TAG_I64) return json_integer((json_int_t)va_arg(*ap, int64_t));
  if (tag == JB_LOG_TAG_DBL) {
    double d = va_arg(*ap, double);
    return isfinite(d) ? json_real(d) : json_null();
  }
  return json_boolean(va_arg(*ap, int) != 0); /* JB_LOG_TAG_BOOL */
}

static bool log_is_tag(const char *key) {
  return key == JB_LOG_TAG_U64 || key == JB_LOG_TAG_I64 || key == JB_LOG_TAG_DBL ||
         key == JB_LOG_TAG_BOOL;
}

void jb_log(jb_log_level lvl, const char *msg, ...) {
  if (!jb_log_enabled(lvl)) return;
  json_t *o = json_object();
  if (o == NULL) return;
  char ts[40];
  json_object_set_new(o, "ts", json_string(jb_time_format(jb_time_now(), ts, sizeof ts)));
  json_object_set_new(o, "level", json_string(level_names[lvl]));
  json_object_set_new(o, "msg", log_string(msg));
  va_list ap;
  va_start(ap, msg);
  const char *key;
  while ((key = va_arg(ap, const char *)) != NULL) {
    if (log_is_tag(key)) {
      const char *name = va_arg(ap, const char *);
      json_t *v = log_typed(key, &ap);
      if (v != NULL && name != NULL)
        json_object_set_new(o, name, v);
      else
        json_decref(v);
      continue;
    }
    const char *val = va_arg(ap, const char *);
    if (val != NULL) json_object_set_new(o, key, log_string(val));
  }
  va_end(ap);
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (line == NULL) return;
  size_t n = strlen(line);
  line[n] = '\n'; /* json_dumps leaves room for the NUL we overwrite; we write n + 1 bytes */
  ssize_t w = write(STDERR_FILENO, line, n + 1);
  (void)w;
  free(line);
}
