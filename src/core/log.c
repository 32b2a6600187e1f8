/* JSON-lines logging on stderr, and URL redaction so secrets never reach a log. */
#include "jobbridge/log.h"

#include <jansson.h>
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

void jb_log(jb_log_level lvl, const char *msg, ...) {
  if (!jb_log_enabled(lvl)) return;
  json_t *o = json_object();
  if (o == NULL) return;
  char ts[40];
  json_object_set_new(o, "ts", json_string(jb_time_format(jb_time_now(), ts, sizeof ts)));
  json_object_set_new(o, "level", json_string(level_names[lvl]));
  json_object_set_new(o, "msg", json_string(msg));
  va_list ap;
  va_start(ap, msg);
  const char *key;
  while ((key = va_arg(ap, const char *)) != NULL) {
    const char *val = va_arg(ap, const char *);
    if (val != NULL) json_object_set_new(o, key, json_string(val));
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

char *jb_redact_url(const char *url, char *buf, size_t len) {
  if (len == 0) return buf;
  if (url == NULL) {
    snprintf(buf, len, "(none)");
    return buf;
  }
  const char *scheme = strstr(url, "://");
  const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
  const char *colon = (scheme && at) ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
  if (colon != NULL) {
    snprintf(buf, len, "%.*s:***%s", (int)(colon - url), url, at);
    return buf;
  }
  const char *pw = strstr(url, "password=");
  if (pw != NULL) {
    const char *end = pw + strcspn(pw, " &");
    snprintf(buf, len, "%.*spassword=***%s", (int)(pw - url), url, end);
    return buf;
  }
  snprintf(buf, len, "%s", url);
  return buf;
}
