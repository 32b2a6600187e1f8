/* jobbridge's one error convention: jb_err codes from a single X-macro list, jb_strerror. */
#ifndef JOBBRIDGE_ERR_H
#define JOBBRIDGE_ERR_H

#include <stddef.h>

/* X(name, value, text): every error code jobbridge returns, with its human text. */
#define JB_ERR_LIST(X)                                      \
  X(JB_OK, 0, "ok")                                         \
  X(JB_ERR_NOMEM, -1, "out of memory")                      \
  X(JB_ERR_INVALID, -2, "invalid argument")                 \
  X(JB_ERR_CONFIG, -3, "invalid configuration")             \
  X(JB_ERR_NOT_FOUND, -4, "not found")                      \
  X(JB_ERR_STATE, -5, "illegal state transition")           \
  X(JB_ERR_DB, -6, "database error")                        \
  X(JB_ERR_DB_CONN, -7, "database connection lost")         \
  X(JB_ERR_AMQP, -8, "message broker error")                \
  X(JB_ERR_AMQP_CONN, -9, "message broker connection lost") \
  X(JB_ERR_IO, -10, "input/output error")                   \
  X(JB_ERR_TIMEOUT, -11, "timed out")                       \
  X(JB_ERR_UNREGISTERED, -12, "unregistered job type")      \
  X(JB_ERR_STOPPED, -13, "stopped")                         \
  X(JB_ERR_DB_REFUSED, -14, "the database refused the data")

typedef enum {
#define JB_ERR_ENUM(name, value, text) name = (value),
  JB_ERR_LIST(JB_ERR_ENUM)
#undef JB_ERR_ENUM
} jb_err;

/* A static, human-readable text for an error code (never NULL). */
const char *jb_strerror(jb_err err);

/* An error code plus the sentence a person reads: what went wrong, naming the thing at fault. */
typedef struct jb_error {
  jb_err code;
  char msg[512];
} jb_error;

/* Sets e->code and formats e->msg; returns code so callers can `return jb_fail(e, ...)`.
 * e may be NULL, in which case only the code is returned. */
jb_err jb_fail(jb_error *e, jb_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears e to JB_OK with an empty message. */
void jb_error_clear(jb_error *e);

#define JB_MUST_CHECK __attribute__((warn_unused_result))

#endif
