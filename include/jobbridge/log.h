/* Structured logs: one JSON object per line on stderr ({"ts","level","msg", context...}). */
#ifndef JOBBRIDGE_LOG_H
#define JOBBRIDGE_LOG_H

#include <stddef.h>

typedef enum { JB_LOG_DEBUG = 0, JB_LOG_INFO, JB_LOG_WARN, JB_LOG_ERROR } jb_log_level;

/* Lines below this level are not formatted at all. Default INFO; JOBBRIDGE_LOG_LEVEL
 * (debug|info|warn|error) is read by jb_log_init. Thread-safe. */
void jb_log_set_level(jb_log_level lvl);
void jb_log_init(void);
int jb_log_enabled(jb_log_level lvl);

/* The end of jb_log's context list: a typed null pointer (a bare NULL may be an int). */
#define JB_LOG_END ((const char *)0)

/* jb_log(level, msg, key1, value1, key2, value2, ..., JB_LOG_END): context values are strings
 * (NULL values are skipped). A value (or msg) that is not valid UTF-8 is written with each
 * offending byte as the four characters \xNN, never dropped. One write(2) per line, so lines
 * from threads never interleave. */
void jb_log(jb_log_level lvl, const char *msg, ...) __attribute__((sentinel));

/* A copy of s (malloc'd, the caller frees; NULL when out of memory) in which every byte that
 * is not part of a valid UTF-8 sequence is written as the four characters \xNN. */
char *jb_utf8_escape(const char *s);

/* Copies url into buf with any password replaced by "***" (amqp://u:***@h, postgresql://u:***@h,
 * and password=... in key/value strings). Always use this before a URL reaches a log or error. */
char *jb_redact_url(const char *url, char *buf, size_t len);

#endif
