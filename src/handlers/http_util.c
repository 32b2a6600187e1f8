/* The http handler's pure parts: body, URL, signature, Retry-After, the meaning of a response.
 * The HMAC is GnuTLS's (gnutls_hmac_fast): jobbridge already links GnuTLS for the HTTP face
 * (libmicrohttpd's TLS), so the signature adds no library. */
#include "handlers/http_handler.h"

#include <ctype.h>
#include <curl/curl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/json.h"

static bool unreserved(unsigned char c) {
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s percent-encoded at out (NULL: only counts); returns the bytes it takes. */
static size_t put_encoded(char *out, const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (unreserved(*p)) {
      if (out) out[n] = (char)*p;
      n++;
    } else {
      if (out) snprintf(out + n, 4, "%%%02X", *p);
      n += 3;
    }
  }
  return n;
}

/* One pass of the expansion: writes to out (NULL: only counts); returns the length. */
static size_t expand(char *out, const char *url, const char *id, const char *job_type) {
  size_t n = 0;
  for (const char *p = url; *p;) {
    const char *v = NULL;
    size_t skip = 0;
    if (strncmp(p, "{id}", 4) == 0) v = id, skip = 4;
    if (strncmp(p, "{job_type}", 10) == 0) v = job_type, skip = 10;
    if (v != NULL) {
      n += put_encoded(out ? out + n : NULL, v);
      p += skip;
    } else {
      if (out) out[n] = *p;
      n++;
      p++;
    }
  }
  return n;
}

char *jb_http_url_expand(const char *url, const char *id, const char *job_type) {
  size_t n = expand(NULL, url, id, job_type);
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  expand(out, url, id, job_type);
  out[n] = '\0';
  return out;
}

bool jb_http_sign(const char *secret, time_t t, const char *body, size_t body_len, char *out,
                  size_t len) {
  char ts[32];
  int tn = snprintf(ts, sizeof ts, "%lld", (long long)t);
  size_t n = (size_t)tn + 1 + body_len;
  char *msg = malloc(n ? n : 1);
  if (msg == NULL) return false;
  memcpy(msg, ts, (size_t)tn);
  msg[tn] = '.';
  if (body_len) memcpy(msg + tn + 1, body, body_len);
  unsigned char mac[32];
  int rc = gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, strlen(secret), msg, n, mac);
  free(msg);
  if (rc != 0 || len < JB_HTTP_SIGNATURE_LEN) return false;
  int k = snprintf(out, len, "t=%s,v1=", ts);
  for (size_t i = 0; i < sizeof mac; i++) snprintf(out + k + 2 * i, 3, "%02x", mac[i]);
  return true;
}

#define DAY_MS (86400LL * 1000)

int64_t jb_http_retry_after_ms(const char *value, time_t now) {
  if (value == NULL) return 0;
  while (*value == ' ' || *value == '\t') value++;
  if (*value == '\0') return 0;
  if (isdigit((unsigned char)*value)) {
    char *end;
    long long s = strtoll(value, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (*end != '\0' || s < 0) return 0;
    return s >= 86400 ? DAY_MS : s * 1000;
  }
  time_t at = curl_getdate(value, NULL);
  if (at == (time_t)-1 || at <= now) return 0;
  int64_t ms = ((int64_t)at - (int64_t)now) * 1000;
  return ms > DAY_MS ? DAY_MS : ms;
}

jb_http_class jb_http_classify(long status) {
  if (status >= 200 && status < 300) return JB_HTTP_SUCCESS;
  if (status == 408 || status == 425 || status == 429 || status >= 500) return JB_HTTP_RETRIABLE;
  return JB_HTTP_FINAL;
}

/* The first bytes of a body for a message: up to max bytes, cut before a partial UTF-8
 * sequence, control characters as spaces. Writes into out (>= max + 1 bytes). */
static void body_excerpt(const char *body, size_t len, char *out, size_t max) {
  size_t n = len < max ? len : max;
  if (n < len)
    while (n > 0 && ((unsigned char)body[n] & 0xC0) == 0x80) n--;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)body[i];
    out[i] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
  }
  out[n] = '\0';
}

void jb_http_result(long status, const char *body, size_t body_len, const char *retry_after,
                    time_t now, jb_job_result *r) {
  jb_http_class c = jb_http_classify(status);
  if (c == JB_HTTP_SUCCESS) {
    r->success = true;
    json_t *v = NULL;
    if (body_len > 0 && jb_json_parse(body, body_len, &v, NULL) == JB_OK && json_is_object(v))
      r->result_data = v;
    else
      json_decref(v);
    return;
  }
  r->success = false;
  r->retriable = c == JB_HTTP_RETRIABLE;
  if (r->retriable) r->retry_after_ms = jb_http_retry_after_ms(retry_after, now);
  char excerpt[JB_HTTP_ERROR_BODY_BYTES + 1];
  body_excerpt(body ? body : "", body ? body_len : 0, excerpt, JB_HTTP_ERROR_BODY_BYTES);
  size_t len = sizeof excerpt + 32;
  r->error_message = malloc(len);
  if (r->error_message != NULL)
    snprintf(r->error_message, len, "HTTP %ld%s%s", status, excerpt[0] ? ": " : "", excerpt);
}
