/* jobbridge's JSON: one strict RFC 8259 parser and one writer, used wherever JSON enters or
 * leaves jobbridge (event bodies, `jobs create --payload/--metadata`, a handler's result, rows
 * read back from PostgreSQL; the jsonb array parameters, the CLI's output, an exec handler's
 * stdin), so that a payload's numbers reach the database exactly as they arrived.
 *
 * Values are jansson trees. jansson holds a number as an int64 or a double, which cannot keep
 * 19.99 as written (its writer prints 19.989999999999998), 1.50, -0, 1E+2, 1e400 or
 * 12345678901234567890123. So the parser makes each number one of:
 * - a json_integer, when the text is exactly how an int64 is written ("42", "-7"; not "-0",
 *   "007" or "1e2");
 * - a json_real, when jb_json_write writes the double back as exactly the same text ("19.99",
 *   "0.1", "-0.0", "1e-7"): the writer prints the shortest text that reads back as the double;
 * - otherwise an exact number: a JSON string whose first byte is JB_JSON_EXACT_TAG (0xFF, a byte
 *   valid UTF-8 never holds, so no string from any input can look like one), followed by the
 *   number's text as it arrived ("1.50", "-0", "1E+2", "1e400", "12345678901234567890123").
 * jb_json_write writes an exact number back verbatim, as a number. jansson's own writer refuses
 * one (it is not valid UTF-8): it can never be written as a string by mistake.
 *
 * What a C handler sees in a payload: json_is_integer and json_is_real work for the common
 * numbers; use jb_json_is_number and jb_json_number_value for any number (an exact number reads
 * as the nearest double, 1e400 as HUGE_VAL), and jb_json_exact_text for the exact text. A handler
 * that builds a result may use json_integer/json_real (written back in the shortest exact form)
 * or jb_json_exact_number for a number it wants written verbatim. */
#ifndef JOBBRIDGE_JSON_H
#define JOBBRIDGE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/err.h"

#define JB_JSON_EXACT_TAG '\xff'

/* Nesting deeper than this is refused by the parser and the writer (jansson's own limit). */
#define JB_JSON_MAX_DEPTH 2048

/* Parses the n bytes at text as one JSON value of any kind (callers check the kind they need).
 * Refuses, with JB_ERR_INVALID and e->msg "line L, column C (byte B): <what is wrong>":
 * malformed JSON, invalid UTF-8, a duplicate object key, \u0000 (in a string or a key), a lone
 * UTF-16 surrogate escape, nesting deeper than JB_JSON_MAX_DEPTH, anything after the value.
 * On success *out is a new reference the caller owns. */
jb_err jb_json_parse(const char *text, size_t n, json_t **out, jb_error *e) JB_MUST_CHECK;

/* A new exact number holding `text` verbatim (n bytes), or NULL if the text is not a JSON
 * number (RFC 8259 grammar) or memory ran out. The caller owns the reference. */
json_t *jb_json_exact_number(const char *text, size_t n);

/* The text of an exact number (borrowed from v, NUL-terminated), or NULL if v is not one. */
const char *jb_json_exact_text(const json_t *v);

/* True for json_integer, json_real and exact numbers. */
bool jb_json_is_number(const json_t *v);

/* Any number as a double (an exact number: strtod of its text, +-HUGE_VAL when out of range);
 * false if v is not a number. */
bool jb_json_number_value(const json_t *v, double *out);

/* A growing output buffer. data is owned by whoever owns the struct (free it); it is not
 * NUL-terminated by jb_json_write. failed: memory ran out, the content is unusable. */
typedef struct jb_json_buf {
  char *data;
  size_t len, cap;
  bool failed;
} jb_json_buf;

typedef enum {
  JB_JSON_COMPACT = 0,  /* {"a":1,"b":[true]}: what goes to PostgreSQL and to a handler */
  JB_JSON_INDENT = 1,   /* two-space indentation and "key": value, for people (the CLI) */
  JB_JSON_PG_QUOTED = 2 /* also backslash-escape '"' and '\' for a quoted element of a
                           PostgreSQL array literal */
} jb_json_flags;

/* Appends v as JSON text (object members in their order). Reals are written in the shortest
 * form that reads back as the same double ("19.99", "100.0", "1e-7"), exact numbers verbatim.
 * Returns false if v cannot be written (a string that is not valid UTF-8, nesting deeper than
 * JB_JSON_MAX_DEPTH); b->failed when memory ran out. */
bool jb_json_write(jb_json_buf *b, const json_t *v, unsigned flags);

/* v as a new NUL-terminated string (compact or indented), *len (if not NULL) its length; NULL
 * if v cannot be written or memory ran out. The caller frees it. This is what an exec handler
 * writes to the program's stdin. */
char *jb_json_dumps(const json_t *v, unsigned flags, size_t *len);

/* Appends n bytes of JSON text as they are (the caller vouches for them: punctuation, keys it
 * spells itself, numbers it formats). */
void jb_json_write_raw(jb_json_buf *b, const char *text, size_t n);

/* Appends s (n bytes) as a JSON string, as jb_json_write writes a string value (compact);
 * false if s is not valid UTF-8. */
bool jb_json_write_string(jb_json_buf *b, const char *s, size_t n);

#endif
