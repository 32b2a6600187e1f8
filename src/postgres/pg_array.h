/* PostgreSQL array parameters, built into one growing buffer: how the adapter sends a whole
 * batch as a few array parameters of one prepared statement. Two forms:
 * - text literals ({"a","b\"c",NULL,42}), for any element type;
 * - binary (the layout of PostgreSQL's array_send), for the batches whose speed matters: the
 *   server reads each element as it is, instead of scanning the literal for quotes and
 *   backslashes and parsing every id and number from text.
 * Private to src/postgres. */
#ifndef JB_PG_ARRAY_H
#define JB_PG_ARRAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Element types of binary arrays: their PostgreSQL type OIDs. */
typedef enum {
  JB_PG_INT4 = 23,
  JB_PG_INT8 = 20,
  JB_PG_TEXT = 25,
  JB_PG_UUID = 2950,
  JB_PG_JSONB = 3802
} jb_pg_type;

typedef struct jb_pg_array {
  char *buf; /* owned; a text literal is NUL-terminated after jb_pg_array_end */
  size_t len, cap;
  size_t n;          /* elements so far */
  jb_pg_type binary; /* 0: a text literal; else the element type of a binary array */
  bool has_null;     /* binary: some element is NULL */
  bool failed;       /* out of memory, or a JSON value that cannot be encoded: unusable */
  bool unencodable;  /* of those, a value that cannot be encoded: JSON with invalid UTF-8, or a
                        UUID element that is not one */
} jb_pg_array;

/* Starts an empty literal; reuses the buffer's memory if any. */
void jb_pg_array_begin(jb_pg_array *a);
/* Starts an empty binary array of `type` elements. jb_pg_array_text appends to arrays of text
 * or UUIDs, jb_pg_array_int to int4 and int8, jb_pg_array_json to jsonb. The parameter must be
 * sent in binary format, with length jb_pg_array_len. */
void jb_pg_array_begin_binary(jb_pg_array *a, jb_pg_type type);
/* Appends a quoted, escaped string element; NULL appends an SQL NULL. */
void jb_pg_array_text(jb_pg_array *a, const char *s);
/* Appends a JSON value as a quoted element (compact text); NULL appends an SQL NULL. */
void jb_pg_array_json(jb_pg_array *a, const json_t *v);
void jb_pg_array_int(jb_pg_array *a, int64_t v);
/* Closes the array; returns it, or NULL if an element failed (out of memory or unencodable).
 * Borrowed from a. */
const char *jb_pg_array_end(jb_pg_array *a);
/* The length of an array closed by jb_pg_array_end, in bytes. */
int jb_pg_array_len(const jb_pg_array *a);
void jb_pg_array_free(jb_pg_array *a);

#endif
