/* PostgreSQL array literals in text form ({"a","b\"c",NULL,42}), built into one growing buffer:
 * how the adapter sends a whole batch as a few array parameters of one prepared statement.
 * Private to src/postgres. */
#ifndef JB_PG_ARRAY_H
#define JB_PG_ARRAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jb_pg_array {
  char *buf; /* owned; NUL-terminated after jb_pg_array_end */
  size_t len, cap;
  size_t n;         /* elements so far */
  bool failed;      /* out of memory, or a JSON value that cannot be encoded: unusable */
  bool unencodable; /* of those, a JSON value that cannot be encoded (invalid UTF-8) */
} jb_pg_array;

/* Starts an empty literal; reuses the buffer's memory if any. */
void jb_pg_array_begin(jb_pg_array *a);
/* Appends a quoted, escaped string element; NULL appends an SQL NULL. */
void jb_pg_array_text(jb_pg_array *a, const char *s);
/* Appends a JSON value as a quoted element (compact text); NULL appends an SQL NULL. */
void jb_pg_array_json(jb_pg_array *a, const json_t *v);
void jb_pg_array_int(jb_pg_array *a, int64_t v);
/* Closes the literal; returns it, or NULL if an element failed (out of memory or unencodable JSON).
 * Borrowed from a. */
const char *jb_pg_array_end(jb_pg_array *a);
void jb_pg_array_free(jb_pg_array *a);

#endif
