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

/* Copies a connection string into buf (always NUL-terminated, cut to len) with every secret
 * replaced by "***", in each form libpq and rabbitmq-c accept: the URI's user info
 * (scheme://user:***@host, up to the last '@' before the first '/', so an unencoded '@' in a
 * password is covered), URI query parameters (?password=***, &sslpassword=***, also with a
 * percent-encoded name), and keyword/value strings (password = '...' with blanks, quotes and
 * backslash escapes). A keyword string that cannot be read shows "***" for all that follows the
 * point where reading stopped. Always use this before a URL reaches a log or an error message.
 * Returns buf. */
char *jb_redact_url(const char *url, char *buf, size_t len);

/* What is structurally wrong with a connection string, as a phrase to follow the setting's name
 * ("has more than one '@' before the host: ..."), or NULL when nothing is found. The phrase
 * never quotes the string, which may hold a password. Checks: at most one '@' before the host of
 * a URI, valid %-escapes, and in keyword/value strings an '=' after each keyword and closed
 * quotes. A client library may still refuse what passes (unknown keywords, say). */
const char *jb_url_problem(const char *url);

/* Replaces each occurrence of secret (3 bytes or more) in msg by "***", in place: for messages
 * written by a library that may have quoted it. */
void jb_scrub_secret(char *msg, const char *secret);

#endif
