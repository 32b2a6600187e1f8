/* Progress tokens (progress_token.h): HMAC-SHA256 of the job id (GnuTLS), hex. */
#define _GNU_SOURCE
#include "jobbridge/progress_token.h"

#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define SECRET_MAX 256

static unsigned char secret[SECRET_MAX];
static size_t secret_len;
static pthread_once_t random_once = PTHREAD_ONCE_INIT;
static bool random_ok;

/* The per-process secret, drawn once (unless a configured one was set first). */
static void draw_random(void) {
  if (secret_len > 0) {
    random_ok = true;
    return;
  }
  size_t got = 0;
  while (got < 32) {
    ssize_t n = getrandom(secret + got, 32 - got, 0);
    if (n <= 0) return; /* random_ok stays false: no token is issued or accepted */
    got += (size_t)n;
  }
  secret_len = 32;
  random_ok = true;
}

jb_err jb_progress_token_set_secret(const char *s, jb_error *e) {
  if (s == NULL || *s == '\0') return JB_OK;
  size_t n = strlen(s);
  if (n < 16 || n > SECRET_MAX)
    return jb_fail(e, JB_ERR_CONFIG, "http.progress_key must be 16 to %d characters long, not %zu",
                   SECRET_MAX, n);
  memcpy(secret, s, n);
  secret_len = n;
  return JB_OK;
}

jb_err jb_progress_token(const char *job_id, char out[JB_PROGRESS_TOKEN_LEN], jb_error *e) {
  pthread_once(&random_once, draw_random);
  unsigned char mac[32];
  if (!random_ok ||
      gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, secret_len, job_id, strlen(job_id), mac) != 0)
    return jb_fail(e, JB_ERR_IO, "cannot compute the progress token of job %s", job_id);
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof mac; i++) {
    out[2 * i] = hex[mac[i] >> 4];
    out[2 * i + 1] = hex[mac[i] & 15];
  }
  out[64] = '\0';
  return JB_OK;
}

bool jb_progress_token_check(const char *job_id, const char *token) {
  char want[JB_PROGRESS_TOKEN_LEN];
  jb_error e;
  if (token == NULL || jb_progress_token(job_id, want, &e) != JB_OK) return false;
  if (strlen(token) != 64) return false; /* the length is no secret */
  unsigned char diff = 0;
  for (size_t i = 0; i < 64; i++) diff |= (unsigned char)(want[i] ^ token[i]);
  return diff == 0;
}

jb_err jb_progress_token_header(const char *job_id, char *out, jb_error *e) {
  char t[JB_PROGRESS_TOKEN_LEN];
  jb_err rc = jb_progress_token(job_id, t, e);
  if (rc == JB_OK) snprintf(out, JB_PROGRESS_HEADER_LEN, "%s: %s", JB_PROGRESS_TOKEN_HEADER, t);
  return rc;
}
