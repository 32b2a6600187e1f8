/* PostgreSQL array parameters: see pg_array.h. In a text literal, elements are double-quoted,
 * with `"` and `\` backslash-escaped, the quoting array_in reads back for every element type.
 * A binary array is array_send's layout, every integer big-endian: the number of dimensions
 * (1), a has-NULLs flag, the element type's OID, the dimension's length and lower bound (1),
 * then each element as its length (-1 for NULL) and its bytes in the type's binary form. */
#include "postgres/pg_array.h"

#include "jobbridge/json.h"

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

static void put_be32(jb_pg_array *a, uint32_t v) {
  unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  put(a, (const char *)b, 4);
}

static void patch_be32(jb_pg_array *a, size_t at, uint32_t v) {
  if (a->failed) return;
  unsigned char *b = (unsigned char *)a->buf + at;
  b[0] = (unsigned char)(v >> 24);
  b[1] = (unsigned char)(v >> 16);
  b[2] = (unsigned char)(v >> 8);
  b[3] = (unsigned char)v;
}

#define BIN_HEADER 20 /* ndim, flags, element type, length, lower bound */

/* Starts the next element: a comma in a literal; in a binary array, nothing to write (each
 * element carries its length). */
static void separator(jb_pg_array *a) {
  if (a->n++ > 0 && !a->binary) put(a, ",", 1);
}

/* Appends an SQL NULL element. */
static void put_null(jb_pg_array *a) {
  if (a->binary) {
    a->has_null = true;
    put_be32(a, UINT32_MAX); /* length -1 */
  } else {
    put(a, "NULL", 4);
  }
}

void jb_pg_array_begin(jb_pg_array *a) {
  a->len = 0;
  a->n = 0;
  a->binary = 0;
  a->has_null = a->failed = a->unencodable = false;
  put(a, "{", 1);
}

void jb_pg_array_begin_binary(jb_pg_array *a, jb_pg_type type) {
  a->len = 0;
  a->n = 0;
  a->binary = type;
  a->has_null = a->failed = a->unencodable = false;
  if (reserve(a, BIN_HEADER)) a->len = BIN_HEADER; /* filled in by jb_pg_array_end */
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A UUID's 16 bytes from its 36-character text form; false if s is not one. */
static bool uuid_bytes(const char *s, unsigned char out[16]) {
  if (strlen(s) != 36) return false;
  int k = 0;
  for (int i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i++] != '-') return false;
      continue;
    }
    int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[k++] = (unsigned char)(hi << 4 | lo);
    i += 2;
  }
  return k == 16;
}

void jb_pg_array_text(jb_pg_array *a, const char *s) {
  separator(a);
  if (s == NULL) {
    put_null(a);
    return;
  }
  if (a->binary == JB_PG_UUID) {
    unsigned char u[16];
    if (!uuid_bytes(s, u)) {
      a->unencodable = !a->failed;
      a->failed = true;
      return;
    }
    put_be32(a, 16);
    put(a, (const char *)u, 16);
  } else if (a->binary) {
    size_t n = strlen(s);
    put_be32(a, (uint32_t)n);
    put(a, s, n);
  } else {
    put(a, "\"", 1);
    put_escaped(a, s, strlen(s));
    put(a, "\"", 1);
  }
}

/* ---- JSON: jobbridge's one writer (jobbridge/json.h), straight into the array's buffer, escaped
 * on the way for a quoted element of a text literal. */

/* Appends v; false if it cannot be encoded (invalid UTF-8, too deep). */
static bool put_json(jb_pg_array *a, const json_t *v) {
  if (a->failed) return true;
  jb_json_buf b = {.data = a->buf, .len = a->len, .cap = a->cap};
  bool ok = jb_json_write(&b, v, a->binary ? JB_JSON_COMPACT : JB_JSON_PG_QUOTED);
  a->buf = b.data;
  a->len = b.len;
  a->cap = b.cap;
  if (b.failed) a->failed = true;
  return ok;
}

void jb_pg_array_json(jb_pg_array *a, const json_t *v) {
  separator(a);
  if (v == NULL) {
    put_null(a);
    return;
  }
  size_t start = a->len;
  if (a->binary) {
    put_be32(a, 0);    /* the length, once known */
    put(a, "\x01", 1); /* jsonb's binary form: a version byte, then the text */
  } else {
    put(a, "\"", 1);
  }
  if (!put_json(a, v) && !a->failed) a->failed = a->unencodable = true;
  if (a->binary)
    patch_be32(a, start, (uint32_t)(a->len - start - 4));
  else
    put(a, "\"", 1);
}

void jb_pg_array_int(jb_pg_array *a, int64_t v) {
  separator(a);
  if (a->binary == JB_PG_INT8) {
    put_be32(a, 8);
    put_be32(a, (uint32_t)((uint64_t)v >> 32));
    put_be32(a, (uint32_t)v);
    return;
  }
  if (a->binary) { /* int4: the callers' values are ints */
    put_be32(a, 4);
    put_be32(a, (uint32_t)(int32_t)v);
    return;
  }
  char num[24];
  int n = snprintf(num, sizeof num, "%" PRId64, v);
  put(a, num, (size_t)n);
}

const char *jb_pg_array_end(jb_pg_array *a) {
  if (a->binary) {
    if (a->failed) return NULL;
    patch_be32(a, 0, a->n ? 1 : 0); /* no elements: no dimension */
    patch_be32(a, 4, a->has_null);
    patch_be32(a, 8, (uint32_t)a->binary);
    patch_be32(a, 12, (uint32_t)a->n);
    patch_be32(a, 16, 1);
    if (a->n == 0) a->len = 12;
    return a->buf;
  }
  put(a, "}", 1);
  if (!reserve(a, 0)) return NULL;
  a->buf[a->len] = '\0';
  return a->buf;
}

int jb_pg_array_len(const jb_pg_array *a) {
  return (int)a->len;
}

void jb_pg_array_free(jb_pg_array *a) {
  free(a->buf);
  *a = (jb_pg_array){0};
}
