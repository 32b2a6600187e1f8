/* The strict RFC 8259 parser of jobbridge/json.h: builds jansson trees and keeps every number
 * that an int64 or a double cannot reproduce as an exact number (its text, tagged). */
#include "jobbridge/json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_impl.h"
#include "jobbridge/utf8.h"

typedef struct parser {
  const char *start, *p, *end;
  char *scratch; /* decoded strings that held escapes; owned, freed by jb_json_parse */
  size_t scap;
  const char *err_at; /* where the first error was found, NULL while none */
  char what[200];
} parser;

__attribute__((format(printf, 3, 4))) static json_t *fail(parser *ps, const char *at,
                                                          const char *fmt, ...) {
  if (ps->err_at == NULL) {
    ps->err_at = at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->what, sizeof ps->what, fmt, ap);
    va_end(ap);
  }
  return NULL;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static bool scratch_reserve(parser *ps, size_t need) {
  if (need <= ps->scap) return true;
  size_t cap = ps->scap ? ps->scap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(ps->scratch, cap);
  if (p == NULL) return false;
  ps->scratch = p;
  ps->scap = cap;
  return true;
}

static int hex4(const char *s) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

static size_t put_utf8(char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xc0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xe0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | cp >> 18);
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Decodes a \u escape at s (pointing at the 'u'); *cp the code point; returns the bytes
 * consumed after the backslash, 0 on error (reported). */
static size_t unicode_escape(parser *ps, const char *s, uint32_t *cp) {
  if (ps->end - s < 5 || hex4(s + 1) < 0)
    return fail(ps, s - 1, "\\u must be followed by four hex digits"), 0;
  uint32_t u = (uint32_t)hex4(s + 1);
  if (u == 0) return fail(ps, s - 1, "\\u0000 is not allowed in a string"), 0;
  if (u >= 0xdc00 && u <= 0xdfff)
    return fail(ps, s - 1, "\\u%04X is a lone UTF-16 low surrogate", (unsigned)u), 0;
  if (u >= 0xd800 && u <= 0xdbff) {
    int lo = ps->end - s >= 11 && s[5] == '\\' && s[6] == 'u' ? hex4(s + 7) : -1;
    if (lo < 0xdc00 || lo > 0xdfff)
      return fail(ps, s - 1, "\\u%04X is a UTF-16 high surrogate without its low half",
                  (unsigned)u),
             0;
    *cp = 0x10000 + ((u - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
    return 11;
  }
  *cp = u;
  return 5;
}

/* The byte a one-character escape (the letter after the backslash) stands for, 0 if none. */
static char simple_escape(char c) {
  switch (c) {
    case '"':
    case '\\':
    case '/':
      return c;
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return 0;
  }
}

/* Parses the string whose opening quote is at ps->p; *s and *n its decoded bytes (borrowed
 * from the input or the scratch buffer, valid until the next string). NUL-terminated only
 * when it came from the scratch buffer; *n is always right. */
static bool parse_string(parser *ps, const char **s, size_t *n) {
  const char *q = ++ps->p, *end = ps->end;
  /* The fast path: no escapes, the bytes are the string. */
  while (q < end) {
    unsigned char c = (unsigned char)*q;
    if (c == '"') {
      *s = ps->p;
      *n = (size_t)(q - ps->p);
      ps->p = q + 1;
      return true;
    }
    if (c == '\\') break;
    if (c < 0x20) return fail(ps, q, "control character 0x%02X in a string (escape it)", c), false;
    if (c < 0x80) {
      q++;
      continue;
    }
    size_t len = jb_utf8_seq((const unsigned char *)q, (size_t)(end - q));
    if (len == 0) return fail(ps, q, "invalid UTF-8 in a string"), false;
    q += len;
  }
  if (q >= end) return fail(ps, ps->p - 1, "string not closed"), false;
  /* Escapes: decode into the scratch buffer (never longer than the source). */
  if (!scratch_reserve(ps, (size_t)(end - ps->p) + 1))
    return fail(ps, ps->p, "out of memory"), false;
  size_t o = (size_t)(q - ps->p);
  memcpy(ps->scratch, ps->p, o);
  while (q < end && *q != '"') {
    unsigned char c = (unsigned char)*q;
    if (c == '\\') {
      /* A backslash as the last byte: the string is cut off, not closed. */
      if (q + 1 >= end) return fail(ps, ps->p - 1, "string not closed"), false;
      char simple = simple_escape(q[1]);
      if (q[1] == 'u') {
        uint32_t cp;
        size_t used = unicode_escape(ps, q + 1, &cp);
        if (used == 0) return false;
        o += put_utf8(ps->scratch + o, cp);
        q += 1 + used;
      } else if (simple != 0) {
        ps->scratch[o++] = simple;
        q += 2;
      } else {
        return fail(ps, q, "invalid escape \\%c", q[1] >= 0x20 && q[1] < 0x7f ? q[1] : '?'), false;
      }
    } else if (c < 0x20) {
      return fail(ps, q, "control character 0x%02X in a string (escape it)", c), false;
    } else {
      size_t len = c < 0x80 ? 1 : jb_utf8_seq((const unsigned char *)q, (size_t)(end - q));
      if (len == 0) return fail(ps, q, "invalid UTF-8 in a string"), false;
      memcpy(ps->scratch + o, q, len);
      o += len;
      q += len;
    }
  }
  if (q >= end) return fail(ps, ps->p - 1, "string not closed"), false;
  ps->scratch[o] = '\0';
  *s = ps->scratch;
  *n = o;
  ps->p = q + 1;
  return true;
}

/* The end of the number at s (RFC 8259 grammar), or NULL if there is none. *integer: no
 * fraction and no exponent. */
static const char *scan_number(const char *s, const char *end, bool *integer) {
  const char *q = s;
  if (q < end && *q == '-') q++;
  if (q >= end || *q < '0' || *q > '9') return NULL;
  if (*q == '0')
    q++;
  else
    while (q < end && *q >= '0' && *q <= '9') q++;
  *integer = true;
  if (q < end && *q == '.') {
    *integer = false;
    if (++q >= end || *q < '0' || *q > '9') return NULL;
    while (q < end && *q >= '0' && *q <= '9') q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    *integer = false;
    q++;
    if (q < end && (*q == '+' || *q == '-')) q++;
    if (q >= end || *q < '0' || *q > '9') return NULL;
    while (q < end && *q >= '0' && *q <= '9') q++;
  }
  return q;
}

bool jb_json_number_syntax(const char *s, size_t n) {
  bool integer;
  return n > 0 && scan_number(s, s + n, &integer) == s + n;
}

json_t *jb_json_exact_number(const char *text, size_t n) {
  if (!jb_json_number_syntax(text, n)) return NULL;
  char *buf = malloc(n + 2);
  if (buf == NULL) return NULL;
  buf[0] = JB_JSON_EXACT_TAG;
  memcpy(buf + 1, text, n);
  buf[n + 1] = '\0';
  json_t *v = json_stringn_nocheck(buf, n + 1);
  free(buf);
  return v;
}

/* The number at s..q as the one form that writes it back as it came (see json.h). */
static json_t *make_number(const char *s, const char *q, bool integer) {
  size_t n = (size_t)(q - s);
  char text[48];
  if (n < sizeof text) {
    memcpy(text, s, n);
    text[n] = '\0';
    if (integer && (n < 20 || (n == 20 && s[0] == '-')) && !(s[0] == '-' && s[1] == '0')) {
      /* At most 19 digits: fits an int64 unless it is outside -9223372036854775808 ..
       * 9223372036854775807 (strtoll says ERANGE). */
      errno = 0;
      long long v = strtoll(text, NULL, 10);
      if (errno == 0) return json_integer((json_int_t)v);
    } else if (!integer) {
      double d = strtod(text, NULL);
      char back[40];
      if (isfinite(d) && jb_json_format_real(d, back) == n && memcmp(back, text, n) == 0)
        return json_real(d);
    }
  }
  return jb_json_exact_number(s, n);
}

static json_t *parse_value(parser *ps, int depth);

static json_t *parse_object(parser *ps, int depth) {
  json_t *obj = json_object();
  if (obj == NULL) return fail(ps, ps->p, "out of memory");
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
    return obj;
  }
  for (;;) {
    skip_ws(ps);
    const char *key_at = ps->p;
    if (ps->p >= ps->end || *ps->p != '"') goto bad_key;
    const char *key;
    size_t klen;
    if (!parse_string(ps, &key, &klen)) goto out;
    if (json_object_getn(obj, key, klen) != NULL) {
      fail(ps, key_at, "duplicate object key \"%.*s\"", klen > 60 ? 60 : (int)klen, key);
      goto out;
    }
    /* The key's bytes may live in the scratch buffer the value's strings reuse: copy them. */
    char kbuf[128], *kcopy = klen < sizeof kbuf ? kbuf : malloc(klen + 1);
    if (kcopy == NULL) {
      fail(ps, key_at, "out of memory");
      goto out;
    }
    memcpy(kcopy, key, klen);
    kcopy[klen] = '\0';
    skip_ws(ps);
    json_t *value = NULL;
    if (ps->p >= ps->end || *ps->p != ':') {
      fail(ps, ps->p, "expected ':' after an object key");
    } else {
      ps->p++;
      value = parse_value(ps, depth + 1);
    }
    int rc = value ? json_object_setn_new_nocheck(obj, kcopy, klen, value) : -1;
    if (kcopy != kbuf) free(kcopy);
    if (value == NULL) goto out;
    if (rc != 0) {
      fail(ps, key_at, "out of memory");
      goto out;
    }
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == '}') {
      ps->p++;
      return obj;
    }
    fail(ps, ps->p, "expected ',' or '}' in an object");
    goto out;
  }
bad_key:
  fail(ps, ps->p, "expected a string as an object key");
out:
  json_decref(obj);
  return NULL;
}

static json_t *parse_array(parser *ps, int depth) {
  json_t *arr = json_array();
  if (arr == NULL) return fail(ps, ps->p, "out of memory");
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    return arr;
  }
  for (;;) {
    json_t *v = parse_value(ps, depth + 1);
    if (v == NULL) break;
    if (json_array_append_new(arr, v) != 0) {
      fail(ps, ps->p, "out of memory");
      break;
    }
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == ']') {
      ps->p++;
      return arr;
    }
    fail(ps, ps->p, "expected ',' or ']' in an array");
    break;
  }
  json_decref(arr);
  return NULL;
}

static json_t *literal(parser *ps, const char *word, json_t *v) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
    return fail(ps, ps->p, "invalid literal (expected %s)", word);
  ps->p += n;
  return v;
}

static json_t *parse_value(parser *ps, int depth) {
  skip_ws(ps);
  if (ps->p >= ps->end) return fail(ps, ps->p, "unexpected end of input, expected a value");
  if (depth > JB_JSON_MAX_DEPTH)
    return fail(ps, ps->p, "nested deeper than %d levels", JB_JSON_MAX_DEPTH);
  switch (*ps->p) {
    case '{':
      return parse_object(ps, depth);
    case '[':
      return parse_array(ps, depth);
    case '"': {
      const char *s;
      size_t n;
      if (!parse_string(ps, &s, &n)) return NULL;
      json_t *v = json_stringn_nocheck(s, n);
      return v ? v : fail(ps, ps->p, "out of memory");
    }
    case 't':
      return literal(ps, "true", json_true());
    case 'f':
      return literal(ps, "false", json_false());
    case 'n':
      return literal(ps, "null", json_null());
    default: {
      bool integer;
      const char *q = scan_number(ps->p, ps->end, &integer);
      if (q == NULL) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '-' || (c >= '0' && c <= '9') || c == '.')
          return fail(ps, ps->p, "invalid number");
        if (c >= 0x20 && c < 0x7f) return fail(ps, ps->p, "unexpected character '%c'", c);
        return fail(ps, ps->p, "unexpected byte 0x%02X", c);
      }
      json_t *v = make_number(ps->p, q, integer);
      if (v == NULL) return fail(ps, ps->p, "out of memory");
      ps->p = q;
      return v;
    }
  }
}

jb_err jb_json_parse(const char *text, size_t n, json_t **out, jb_error *e) {
  parser ps = {.start = text, .p = text, .end = text + n};
  *out = NULL;
  json_t *v = n > 0 ? parse_value(&ps, 1) : fail(&ps, text, "empty input, expected a value");
  if (v != NULL) {
    skip_ws(&ps);
    if (ps.p < ps.end) {
      fail(&ps, ps.p, "unexpected text after the JSON value");
      json_decref(v);
      v = NULL;
    }
  }
  free(ps.scratch);
  if (v != NULL) {
    *out = v;
    return JB_OK;
  }
  /* Line and column (in characters, from 1) of the error, for a person with an editor. */
  size_t line = 1, col = 1;
  for (const char *c = text; c < ps.err_at; c++) {
    if (*c == '\n') {
      line++;
      col = 1;
    } else if (((unsigned char)*c & 0xc0) != 0x80) {
      col++;
    }
  }
  return jb_fail(e, strcmp(ps.what, "out of memory") == 0 ? JB_ERR_NOMEM : JB_ERR_INVALID,
                 "line %zu, column %zu (byte %zu): %s", line, col, (size_t)(ps.err_at - text),
                 ps.what);
}

const char *jb_json_exact_text(const json_t *v) {
  if (!json_is_string(v) || json_string_length(v) < 2) return NULL;
  const char *s = json_string_value(v);
  return s[0] == JB_JSON_EXACT_TAG ? s + 1 : NULL;
}

bool jb_json_is_number(const json_t *v) {
  return json_is_number(v) || jb_json_exact_text(v) != NULL;
}

bool jb_json_number_value(const json_t *v, double *out) {
  if (json_is_number(v)) {
    *out = json_number_value(v);
    return true;
  }
  const char *t = jb_json_exact_text(v);
  if (t == NULL) return false;
  *out = strtod(t, NULL);
  return true;
}
