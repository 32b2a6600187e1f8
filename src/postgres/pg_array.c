/* PostgreSQL array parameters: see pg_array.h. In a text literal, elements are double-quoted,
 * with `"` and `\` backslash-escaped, the quoting array_in reads back for every element type.
 * A binary array is array_send's layout, every integer big-endian: the number of dimensions
 * (1), a has-NULLs flag, the element type's OID, the dimension's length and lower bound (1),
 * then each element as its length (-1 for NULL) and its bytes in the type's binary form. */
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

/* ---- JSON, written straight into the literal ----
 * The same compact text as jansson's json_dumps(JSON_COMPACT | JSON_ENCODE_ANY), escaped for
 * the array literal on the way. jansson's own dumper hands its output over in small pieces and
 * keeps a hash table of the objects it is inside (formatting each one's address for it): a
 * fifth of the ingest's CPU, to write a payload and a metadata object per job. */

/* Appends byte c of JSON text, escaped for a quoted element of a text literal (esc). */
static inline void lit(char **p, char c, bool esc) {
  if (esc && (c == '"' || c == '\\')) *(*p)++ = '\\';
  *(*p)++ = c;
}

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 if it is not valid UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF included), as jansson checks. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

/* Appends a JSON string (quotes included); false if s is not valid UTF-8. */
static bool put_json_string(jb_pg_array *a, const char *s, size_t n) {
  /* At worst \u00XX (6 bytes) per byte, and its backslash doubled for the literal. */
  if (!reserve(a, 7 * n + 4)) return true; /* a->failed tells */
  char *p = a->buf + a->len;
  bool esc = !a->binary;
  lit(&p, '"', esc);
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      size_t len = utf8_len((const unsigned char *)s + i, n - i);
      if (len == 0) return false;
      memcpy(p, s + i, len);
      p += len;
      i += len;
      continue;
    }
    i++;
    if (c >= 0x20 && c != '"' && c != '\\') {
      *p++ = (char)c;
      continue;
    }
    lit(&p, '\\', esc);
    switch (c) {
      case '"':
      case '\\':
        lit(&p, (char)c, esc);
        break;
      case '\b':
        *p++ = 'b';
        break;
      case '\f':
        *p++ = 'f';
        break;
      case '\n':
        *p++ = 'n';
        break;
      case '\r':
        *p++ = 'r';
        break;
      case '\t':
        *p++ = 't';
        break;
      default:
        p += sprintf(p, "u%04X", c);
    }
  }
  lit(&p, '"', esc);
  a->len = (size_t)(p - a->buf);
  return true;
}

/* A real as jansson writes it: 17 significant digits, ".0" when it would read as an integer,
 * no "+" or leading zeros in the exponent. */
static void put_json_real(jb_pg_array *a, double v) {
  char num[40];
  int n = snprintf(num, sizeof num, "%.17g", v);
  if (n < 0 || n >= (int)sizeof num - 2) return;
  if (strspn(num, "0123456789-") == (size_t)n) {
    memcpy(num + n, ".0", 3);
    n += 2;
  }
  char *exp = strchr(num, 'e');
  if (exp != NULL) {
    char *start = exp + 1, *end = start + 1;
    if (*start == '-') start++;
    while (*end == '0') end++;
    if (end != start) {
      memmove(start, end, (size_t)(num + n - end) + 1);
      n -= (int)(end - start);
    }
  }
  put(a, num, (size_t)n);
}

/* Appends v as JSON text; false if it cannot be encoded (invalid UTF-8, too deep). */
static bool put_json(jb_pg_array *a, const json_t *v, int depth) {
  if (depth > 2048) return false; /* jansson's parser depth limit; keeps the stack bounded */
  char num[24];
  switch (json_typeof(v)) {
    case JSON_OBJECT: {
      put(a, "{", 1);
      bool first = true;
      const char *key;
      json_t *value;
      json_object_foreach((json_t *)v, key, value) {
        if (!first) put(a, ",", 1);
        first = false;
        if (!put_json_string(a, key, strlen(key))) return false;
        put(a, ":", 1);
        if (!put_json(a, value, depth + 1)) return false;
      }
      put(a, "}", 1);
      return true;
    }
    case JSON_ARRAY:
      put(a, "[", 1);
      for (size_t i = 0; i < json_array_size(v); i++) {
        if (i > 0) put(a, ",", 1);
        if (!put_json(a, json_array_get(v, i), depth + 1)) return false;
      }
      put(a, "]", 1);
      return true;
    case JSON_STRING:
      return put_json_string(a, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
      put(a, num,
          (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
      return true;
    case JSON_REAL:
      put_json_real(a, json_real_value(v));
      return true;
    case JSON_TRUE:
      put(a, "true", 4);
      return true;
    case JSON_FALSE:
      put(a, "false", 5);
      return true;
    case JSON_NULL:
      put(a, "null", 4);
      return true;
  }
  return false;
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
  if (!put_json(a, v, 0) && !a->failed) a->failed = a->unencodable = true;
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
