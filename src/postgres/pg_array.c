/* PostgreSQL array literals: see pg_array.h. Elements are double-quoted, with `"` and `\`
 * backslash-escaped, the quoting array_in reads back for every element type. */
#include "postgres/pg_array.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(jb_pg_array *a, size_t more) {
  if (a->failed) return false;
  if (a->len + more + 1 <= a->cap) return true;
  size_t cap = a->cap ? a->cap : 4096;
  while (cap < a->len + more + 1) cap *= 2;
  char *p = realloc(a->buf, cap);
  if (p == NULL) {
    a->failed = true;
    return false;
  }
  a->buf = p;
  a->cap = cap;
  return true;
}

static void put(jb_pg_array *a, const char *s, size_t n) {
  if (!reserve(a, n)) return;
  memcpy(a->buf + a->len, s, n);
  a->len += n;
}

/* Appends s escaped for the inside of a quoted element. */
static void put_escaped(jb_pg_array *a, const char *s, size_t n) {
  if (!reserve(a, 2 * n)) return;
  char *p = a->buf + a->len;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') *p++ = '\\';
    *p++ = s[i];
  }
  a->len = (size_t)(p - a->buf);
}

static void separator(jb_pg_array *a) {
  if (a->n++ > 0) put(a, ",", 1);
}

void jb_pg_array_begin(jb_pg_array *a) {
  a->len = 0;
  a->n = 0;
  a->failed = a->unencodable = false;
  put(a, "{", 1);
}

void jb_pg_array_text(jb_pg_array *a, const char *s) {
  separator(a);
  if (s == NULL) {
    put(a, "NULL", 4);
    return;
  }
  put(a, "\"", 1);
  put_escaped(a, s, strlen(s));
  put(a, "\"", 1);
}

static int json_chunk(const char *buf, size_t size, void *data) {
  jb_pg_array *a = data;
  put_escaped(a, buf, size);
  return a->failed ? -1 : 0;
}

void jb_pg_array_json(jb_pg_array *a, const json_t *v) {
  separator(a);
  if (v == NULL) {
    put(a, "NULL", 4);
    return;
  }
  put(a, "\"", 1);
  if (json_dump_callback(v, json_chunk, a, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
    a->unencodable = !a->failed; /* the callback sets failed when memory ran out */
    a->failed = true;
  }
  put(a, "\"", 1);
}

void jb_pg_array_int(jb_pg_array *a, int64_t v) {
  separator(a);
  char num[24];
  int n = snprintf(num, sizeof num, "%" PRId64, v);
  put(a, num, (size_t)n);
}

const char *jb_pg_array_end(jb_pg_array *a) {
  put(a, "}", 1);
  if (!reserve(a, 0)) return NULL;
  a->buf[a->len] = '\0';
  return a->buf;
}

void jb_pg_array_free(jb_pg_array *a) {
  free(a->buf);
  *a = (jb_pg_array){0};
}
