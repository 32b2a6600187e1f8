/* jb_strerror and the jb_error helpers. */
#include "jobbridge/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *jb_strerror(jb_err err) {
  switch (err) {
#define JB_ERR_CASE(name, value, text) \
  case name:                           \
    return text;
    JB_ERR_LIST(JB_ERR_CASE)
#undef JB_ERR_CASE
  }
  return "unknown error";
}

jb_err jb_fail(jb_error *e, jb_err code, const char *fmt, ...) {
  if (e == NULL) return code;
  e->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return code;
}

void jb_error_clear(jb_error *e) {
  if (e == NULL) return;
  e->code = JB_OK;
  e->msg[0] = '\0';
}
