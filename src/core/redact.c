/* Secrets in connection strings: redaction for logs and messages, and the structural checks
 * that refuse a URL which a client library would misread (and then echo) before it is used. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jobbridge/log.h"

/* A bounded output buffer: appends what fits and always stays NUL-terminated. */
typedef struct sink {
  char *buf;
  size_t len; /* capacity, NUL included */
  size_t n;   /* bytes written so far */
} sink;

static void put(sink *o, const char *s, size_t n) {
  if (o->n + 1 >= o->len) return;
  size_t room = o->len - 1 - o->n;
  if (n > room) n = room;
  memcpy(o->buf + o->n, s, n);
  o->n += n;
  o->buf[o->n] = '\0';
}

static void puts_(sink *o, const char *s) {
  put(o, s, strlen(s));
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Whether a parameter name (n bytes, percent-decoded when `encoded`) names a secret: libpq's
 * `password` and `sslpassword`, and anything else ending in "password", in any case. */
static bool secret_key(const char *k, size_t n, bool encoded) {
  char name[64];
  size_t m = 0;
  for (size_t i = 0; i < n && m < sizeof name - 1; i++) {
    if (encoded && k[i] == '%' && i + 2 < n && hexval(k[i + 1]) >= 0 && hexval(k[i + 2]) >= 0) {
      name[m++] = (char)(hexval(k[i + 1]) * 16 + hexval(k[i + 2]));
      i += 2;
    } else {
      name[m++] = k[i];
    }
  }
  name[m] = '\0';
  return m >= 8 && strcasecmp(name + m - 8, "password") == 0;
}

/* The length of "scheme://" at the start of s, or 0 when s is not in URI form. */
static size_t scheme_len(const char *s) {
  size_t i = 0;
  while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.') i++;
  return i > 0 && strncmp(s + i, "://", 3) == 0 ? i + 3 : 0;
}

/* Where the user-info part of a URI ends: the last '@' before the first '/' (libpq reads up to
 * the first '/' looking for credentials, even across a '?'), or NULL when there is none. */
static const char *userinfo_end(const char *auth) {
  const char *slash = auth + strcspn(auth, "/");
  const char *at = NULL;
  for (const char *p = auth; p < slash; p++)
    if (*p == '@') at = p;
  return at;
}

static void redact_uri(const char *url, size_t pre, sink *o) {
  put(o, url, pre);
  const char *p = url + pre;
  const char *at = userinfo_end(p);
  if (at != NULL) {
    size_t user = strcspn(p, ":");
    if (memchr(p, '?', (size_t)(at - p)) != NULL) {
      /* A query before an '@' and no '/': libpq takes all of it for credentials, and the text
       * after the '@' may be the rest of a password. Show none of it. */
      puts_(o, "***");
      p += strcspn(p, "/");
    } else if (p + user < at && p[user] == ':') {
      put(o, p, user);
      puts_(o, ":***");
      p = at;
    } else {
      put(o, p, (size_t)(at - p));
      p = at;
    }
  }
  size_t host = strcspn(p, "?");
  put(o, p, host);
  p += host;
  while (*p != '\0') { /* '?' or '&' then one parameter */
    put(o, p, 1);
    p++;
    size_t plen = strcspn(p, "&");
    size_t klen = strcspn(p, "=&");
    if (klen < plen && secret_key(p, klen, true)) {
      put(o, p, klen + 1);
      puts_(o, "***");
    } else {
      put(o, p, plen);
    }
    p += plen;
  }
}

/* Scans one keyword/value value as libpq does (quoted with backslash escapes, or up to the next
 * blank); returns its end. *closed is false for a quote that never closes. */
static const char *scan_value(const char *p, bool *closed) {
  *closed = true;
  if (*p == '\'') {
    for (p++; *p != '\0'; p++) {
      if (*p == '\\' && p[1] != '\0')
        p++;
      else if (*p == '\'')
        return p + 1;
    }
    *closed = false;
    return p;
  }
  while (*p != '\0' && !isspace((unsigned char)*p)) p += (*p == '\\' && p[1] != '\0') ? 2 : 1;
  return p;
}

static void redact_keywords(const char *s, sink *o) {
  if (strchr(s, '=') == NULL) { /* libpq reads a string without '=' as a database name */
    puts_(o, s);
    return;
  }
  const char *p = s;
  while (*p != '\0') {
    size_t ws = strspn(p, " \t\n\r\f\v");
    put(o, p, ws);
    p += ws;
    if (*p == '\0') break;
    size_t klen = strcspn(p, "= \t\n\r\f\v");
    const char *key = p;
    p += klen;
    ws = strspn(p, " \t\n\r\f\v");
    if (p[ws] != '=') { /* not keyword=value: this word and the rest may be a password too */
      puts_(o, "***");
      return;
    }
    p += ws + 1;
    p += strspn(p, " \t\n\r\f\v");
    bool closed;
    const char *end = scan_value(p, &closed);
    put(o, key, klen);
    puts_(o, "=");
    if (secret_key(key, klen, false))
      puts_(o, "***");
    else
      put(o, p, (size_t)(end - p));
    p = end;
  }
}

char *jb_redact_url(const char *url, char *buf, size_t len) {
  if (len == 0) return buf;
  buf[0] = '\0';
  sink o = {buf, len, 0};
  if (url == NULL) {
    puts_(&o, "(none)");
    return buf;
  }
  size_t pre = scheme_len(url);
  if (pre > 0)
    redact_uri(url, pre, &o);
  else
    redact_keywords(url, &o);
  return buf;
}

/* Checks every %-escape in p: two hex digits, and not an escaped NUL (libpq refuses both). */
static const char *escapes_problem(const char *p) {
  for (; *p != '\0'; p++) {
    if (*p != '%') continue;
    if (hexval(p[1]) < 0 || hexval(p[2]) < 0)
      return "has a '%' not followed by two hex digits (write a literal % as %25)";
    if (p[1] == '0' && p[2] == '0') return "has %00, an escaped NUL byte";
    p += 2;
  }
  return NULL;
}

static const char *uri_problem(const char *url, size_t pre) {
  const char *auth = url + pre;
  const char *at = userinfo_end(auth);
  if (at != NULL) {
    const char *first = strchr(auth, '@');
    if (first != at)
      return "has more than one '@' before the host: percent-encode an '@' in the user name "
             "or password as %40";
    if (memchr(auth, '?', (size_t)(at - auth)) != NULL)
      return "has an '@' in its query part: percent-encode it as %40";
  }
  return escapes_problem(url);
}

static const char *keywords_problem(const char *s) {
  const char *p = s;
  for (;;) {
    p += strspn(p, " \t\n\r\f\v");
    if (*p == '\0') return NULL;
    p += strcspn(p, "= \t\n\r\f\v");
    p += strspn(p, " \t\n\r\f\v");
    if (*p != '=')
      return strchr(s, '=') == NULL ? NULL /* a bare database name */
                                    : "has a keyword not followed by '=' (keyword=value pairs "
                                      "are separated by blanks; quote a value with blanks in it)";
    p++;
    p += strspn(p, " \t\n\r\f\v");
    bool closed;
    p = scan_value(p, &closed);
    if (!closed) return "has a quoted value whose closing quote is missing";
  }
}

const char *jb_url_problem(const char *url) {
  if (url == NULL || *url == '\0') return "is empty";
  size_t pre = scheme_len(url);
  return pre > 0 ? uri_problem(url, pre) : keywords_problem(url);
}

void jb_scrub_secret(char *msg, const char *secret) {
  size_t n = secret != NULL ? strlen(secret) : 0;
  if (n < 3) return; /* a one- or two-character password would blank ordinary words */
  char *from = msg, *hit;
  while ((hit = strstr(from, secret)) != NULL) {
    memcpy(hit, "***", 3);
    memmove(hit + 3, hit + n, strlen(hit + n) + 1);
    from = hit + 3;
  }
}
