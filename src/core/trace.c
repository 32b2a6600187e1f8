/* W3C Trace Context: parsing, validating and starting a traceparent (see jobbridge/trace.h). */
#include "jobbridge/trace.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static bool lower_hex(const char *s, size_t n, bool *all_zero) {
  *all_zero = true;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    if (c != '0') *all_zero = false;
  }
  return true;
}

bool jb_traceparent_parse(const char *s, char *out) {
  if (s == NULL) return false;
  while (*s == ' ' || *s == '\t') s++;
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
  if (len < JB_TRACEPARENT_LEN) return false;
  bool zero;
  if (!lower_hex(s, 2, &zero) || strncmp(s, "ff", 2) == 0) return false;
  bool v00 = strncmp(s, "00", 2) == 0;
  if (v00 ? len != JB_TRACEPARENT_LEN : (len > JB_TRACEPARENT_LEN && s[JB_TRACEPARENT_LEN] != '-'))
    return false;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-') return false;
  if (!lower_hex(s + 3, 32, &zero) || zero) return false;
  if (!lower_hex(s + 36, 16, &zero) || zero) return false;
  if (!lower_hex(s + 53, 2, &zero)) return false;
  memcpy(out, s, JB_TRACEPARENT_LEN);
  out[JB_TRACEPARENT_LEN] = '\0';
  return true;
}

/* n (<= POOL) random bytes. Read from the kernel 32 traces at a time into a per-thread pool,
 * as job ids are (job_service.c: a getrandom per job was a tenth of the ingest's CPU); should
 * the kernel refuse, a seeded generator: a trace id must be unlikely to collide, not secret. */
#define POOL (24 * 32)
static _Thread_local unsigned char pool[POOL];
static _Thread_local size_t pool_left;

static void random_bytes(unsigned char *b, size_t n) {
  if (pool_left < n) {
    size_t got = 0;
    while (got < POOL) {
      ssize_t r = getrandom(pool + got, POOL - got, 0);
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (got < POOL) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      unsigned seed = (unsigned)ts.tv_nsec ^ (unsigned)ts.tv_sec ^ (unsigned)(size_t)b;
      for (size_t i = got; i < POOL; i++) pool[i] = (unsigned char)rand_r(&seed);
    }
    pool_left = POOL;
  }
  memcpy(b, pool + POOL - pool_left, n);
  pool_left -= n;
}

static char *hex(char *p, const unsigned char *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    *p++ = digits[b[i] >> 4];
    *p++ = digits[b[i] & 15];
  }
  return p;
}

void jb_traceparent_new(char *out) {
  unsigned char b[24];
  static const unsigned char zero[16];
  do random_bytes(b, sizeof b);
  while (memcmp(b, zero, 16) == 0); /* an all-zero id is invalid */
  if (memcmp(b + 16, zero, 8) == 0) b[23] = 1;
  char *p = out;
  memcpy(p, "00-", 3);
  p = hex(p + 3, b, 16);
  *p++ = '-';
  p = hex(p, b + 16, 8);
  memcpy(p, "-01", 4);
}

bool jb_tracestate_valid(const char *s) {
  if (s == NULL || *s == '\0') return false;
  size_t n = 0;
  for (; s[n]; n++)
    if (n >= JB_TRACESTATE_MAX || s[n] < 0x20 || s[n] > 0x7e) return false;
  return true;
}

void jb_trace_id(const char *traceparent, char *out) {
  if (traceparent == NULL || strlen(traceparent) < JB_TRACEPARENT_LEN) {
    out[0] = '\0';
    return;
  }
  memcpy(out, traceparent + 3, 32);
  out[32] = '\0';
}
