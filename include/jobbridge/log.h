/* Structured logs: one JSON object per line on stderr ({"ts","level","msg", context...}). */
#ifndef JOBBRIDGE_LOG_H
#define JOBBRIDGE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JB_LOG_DEBUG = 0, JB_LOG_INFO, JB_LOG_WARN, JB_LOG_ERROR } jb_log_level;

/* Lines below this level are not formatted at all. Default INFO; JOBBRIDGE_LOG_LEVEL
 * (debug|info|warn|error) is read by jb_log_init. Thread-safe. */
void jb_log_set_level(jb_log_level lvl);
void jb_log_init(void);
int jb_log_enabled(jb_log_level lvl);

/* The end of jb_log's context list: a typed null pointer (a bare NULL may be an int). */
#define JB_LOG_END ((const char *)0)

/* jb_log(level, msg, key1, value1, key2, value2, ..., JB_LOG_END): a plain context pair is a
 * key and a string value (a NULL value is skipped). A value (or msg) that is not valid UTF-8 is
 * written with each offending byte as the four characters \xNN, never dropped. Typed pairs,
 * written with the macros below in the same list, are written as JSON numbers or booleans:
 *   jb_log(JB_LOG_INFO, "reaped", JB_LOG_U64("count", n), "queue", q, JB_LOG_END);
 * One write(2) per line, so lines from threads never interleave. */
void jb_log(jb_log_level lvl, const char *msg, ...) __attribute__((sentinel));

/* The tags of typed pairs: a tag (a pointer no key can equal) is followed in jb_log's list by
 * the real key and the value, converted here to the exact type jb_log reads. */
extern const char jb_log_tags[4];
#define JB_LOG_TAG_U64 (&jb_log_tags[0])
#define JB_LOG_TAG_I64 (&jb_log_tags[1])
#define JB_LOG_TAG_DBL (&jb_log_tags[2])
#define JB_LOG_TAG_BOOL (&jb_log_tags[3])

/* An unsigned count (size_t, uint64_t, unsigned ...) as a JSON integer (one above INT64_MAX,
 * which jansson cannot hold as an integer, as the string of its decimal digits). */
#define JB_LOG_U64(key, v) JB_LOG_TAG_U64, (const char *)(key), (uint64_t)(v)
/* A signed integer (int, long, pid_t, int64_t ...) as a JSON integer. */
#define JB_LOG_I64(key, v) JB_LOG_TAG_I64, (const char *)(key), (int64_t)(v)
/* A double as a JSON real (a NaN or an infinity, which JSON cannot hold, as null). */
#define JB_LOG_DBL(key, v) JB_LOG_TAG_DBL, (const char *)(key), (double)(v)
/* A truth value as JSON true / false. */
#define JB_LOG_BOOL(key, v) JB_LOG_TAG_BOOL, (const char *)(key), (int)((v) ? 1 : 0)
/* A string, the same as a plain pair: for symmetry in lists of typed pairs. */
#define JB_LOG_STR(key, v) (const char *)(key), (const char *)(v)

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
