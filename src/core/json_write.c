/* The one JSON writer of jobbridge/json.h: compact (PostgreSQL, handlers), indented (the CLI),
 * or escaped on the way for a quoted element of a PostgreSQL array literal. Writes straight
 * into one growing buffer: jansson's own dumper hands its output over in small pieces and keeps
 * a hash table of the objects it is inside, a fifth of the ingest's CPU when it was used. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_impl.h"
#include "jobbridge/json.h"
#include "jobbridge/utf8.h"

static bool reserve(jb_json_buf *b, size_t more) {
  if (b->failed) return false;
  if (b->len + more + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->len + more + 1) cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) {
    b->failed = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

static void put(jb_json_buf *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

/* Appends byte c of JSON text, escaped for a quoted element of an array literal (esc). */
static inline void lit(char **p, char c, bool esc) {
  if (esc && (c == '"' || c == '\\')) *(*p)++ = '\\';
  *(*p)++ = c;
}

/* Appends a JSON string (quotes included); false if s is not valid UTF-8. An exact number
 * (JB_JSON_EXACT_TAG, then its text) is written as its text, a number. */
static bool put_string(jb_json_buf *b, const char *s, size_t n, bool esc) {
  if (n >= 2 && s[0] == JB_JSON_EXACT_TAG) {
    /* Checked when jb_json_exact_number made it; checked again so that a string built by hand
     * with the tag can never put anything but a number into the text. */
    if (!jb_json_number_syntax(s + 1, n - 1)) return false;
    put(b, s + 1, n - 1);
    return true;
  }
  /* At worst \u00XX (6 bytes) per byte, and its backslash doubled for the literal. */
  if (!reserve(b, 7 * n + 4)) return true; /* b->failed tells */
  char *p = b->data + b->len;
  lit(&p, '"', esc);
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      size_t len = jb_utf8_seq((const unsigned char *)s + i, n - i);
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
  b->len = (size_t)(p - b->data);
  return true;
}

/* Removes the "+" and leading zeros of the exponent of num (n bytes); returns the new length. */
static size_t tidy_exponent(char *num, size_t n) {
  char *exp = strchr(num, 'e');
  if (exp == NULL) return n;
  char *start = exp + 1;
  if (*start == '-') start++;
  char *end = start;
  if (*end == '+') end++;
  while (*end == '0' && end[1] != '\0') end++;
  memmove(start, end, (size_t)(num + n - end) + 1);
  return n - (size_t)(end - start);
}

/* The shortest text (15, 16 or 17 significant digits) that reads back as v, as jansson writes
 * reals otherwise: ".0" when it would read as an integer, no "+" or leading zeros in the
 * exponent. Returns its length. */
size_t jb_json_format_real(double v, char out[40]) {
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(out, 40, "%.*g", prec, v);
    if (prec == 17 || strtod(out, NULL) == v) break;
  }
  if (strspn(out, "0123456789-") == (size_t)n) {
    memcpy(out + n, ".0", 3);
    n += 2;
  }
  return tidy_exponent(out, (size_t)n);
}

static void newline(jb_json_buf *b, unsigned flags, int depth) {
  if (!(flags & JB_JSON_INDENT)) return;
  if (!reserve(b, 1 + 2 * (size_t)depth)) return;
  b->data[b->len++] = '\n';
  memset(b->data + b->len, ' ', 2 * (size_t)depth);
  b->len += 2 * (size_t)depth;
}

static bool put_value(jb_json_buf *b, const json_t *v, unsigned flags, int depth);

static bool put_object(jb_json_buf *b, const json_t *v, unsigned flags, int depth) {
  bool esc = flags & JB_JSON_PG_QUOTED;
  put(b, "{", 1);
  bool first = true;
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)v, key, value) {
    if (!first) put(b, ",", 1);
    first = false;
    newline(b, flags, depth + 1);
    if (!put_string(b, key, strlen(key), esc)) return false;
    put(b, (flags & JB_JSON_INDENT) ? ": " : ":", (flags & JB_JSON_INDENT) ? 2 : 1);
    if (!put_value(b, value, flags, depth + 1)) return false;
  }
  if (!first) newline(b, flags, depth);
  put(b, "}", 1);
  return true;
}

static bool put_value(jb_json_buf *b, const json_t *v, unsigned flags, int depth) {
  if (depth > JB_JSON_MAX_DEPTH) return false; /* keeps the stack bounded */
  char num[40];
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return put_object(b, v, flags, depth);
    case JSON_ARRAY: {
      size_t n = json_array_size(v);
      put(b, "[", 1);
      for (size_t i = 0; i < n; i++) {
        if (i > 0) put(b, ",", 1);
        newline(b, flags, depth + 1);
        if (!put_value(b, json_array_get(v, i), flags, depth + 1)) return false;
      }
      if (n > 0) newline(b, flags, depth);
      put(b, "]", 1);
      return true;
    }
    case JSON_STRING:
      return put_string(b, json_string_value(v), json_string_length(v), flags & JB_JSON_PG_QUOTED);
    case JSON_INTEGER:
      put(b, num,
          (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
      return true;
    case JSON_REAL:
      put(b, num, jb_json_format_real(json_real_value(v), num));
      return true;
    case JSON_TRUE:
      put(b, "true", 4);
      return true;
    case JSON_FALSE:
      put(b, "false", 5);
      return true;
    case JSON_NULL:
      put(b, "null", 4);
      return true;
  }
  return false;
}

bool jb_json_write(jb_json_buf *b, const json_t *v, unsigned flags) {
  if (v == NULL) return false;
  return put_value(b, v, flags, 0);
}

char *jb_json_dumps(const json_t *v, unsigned flags, size_t *len) {
  jb_json_buf b = {0};
  if (!jb_json_write(&b, v, flags) || !reserve(&b, 0)) {
    free(b.data);
    return NULL;
  }
  b.data[b.len] = '\0';
  if (len != NULL) *len = b.len;
  return b.data;
}

void jb_json_write_raw(jb_json_buf *b, const char *text, size_t n) {
  put(b, text, n);
}

bool jb_json_write_string(jb_json_buf *b, const char *s, size_t n) {
  return put_string(b, s, n, false);
}
