/* Time zones from the system's TZif files (RFC 8536), read by this small reader so that every
 * thread may convert times in any zone without touching TZ or localtime_r's shared state. */
#include "core/cron_tz.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAST_YEAR 2200 /* the footer's rule is expanded up to here */

size_t jb_tz_index(const jb_tz *tz, int64_t t) {
  size_t lo = 0, hi = tz->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (tz->trans[mid] <= t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int32_t jb_tz_offset(const jb_tz *tz, int64_t t) {
  size_t i = jb_tz_index(tz, t);
  return i == 0 ? tz->initial : tz->offs[i - 1];
}

void jb_tz_range(const jb_tz *tz, int64_t from, int64_t to, int32_t *lo, int32_t *hi) {
  for (size_t i = jb_tz_index(tz, from); i < tz->n && tz->trans[i] <= to; i++) {
    if (tz->offs[i] < *lo) *lo = tz->offs[i];
    if (tz->offs[i] > *hi) *hi = tz->offs[i];
  }
}

const char *jb_tz_name(const jb_tz *tz) {
  return tz->name;
}

void jb_tz_free(jb_tz *tz) {
  if (tz == NULL) return;
  free(tz->name);
  free(tz->trans);
  free(tz->offs);
  free(tz);
}

/* ---- the POSIX TZ string of the footer ("CET-1CEST,M3.5.0,M10.5.0/3") ---- */

typedef struct rule {
  char kind; /* 'M' month.week.day, 'J' Julian 1..365 without Feb 29, 'D' day 0..365 */
  int m, w, d, n;
  int32_t time; /* local time of day of the change, seconds (may be negative or > 24 h) */
} rule;

typedef struct posix_tz {
  int32_t std, dst; /* UTC offsets, east positive */
  bool has_dst;
  rule start, end;
} posix_tz;

static const char *skip_name(const char *s) {
  if (*s == '<') {
    const char *e = strchr(s, '>');
    return e ? e + 1 : NULL;
  }
  const char *b = s;
  while (isalpha((unsigned char)*s)) s++;
  return s - b >= 3 ? s : NULL;
}

/* [+-]hh[:mm[:ss]] into seconds. */
static const char *read_hms(const char *s, int32_t *out) {
  int sign = 1;
  if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
  if (!isdigit((unsigned char)*s)) return NULL;
  long parts[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) {
    while (isdigit((unsigned char)*s)) parts[i] = parts[i] * 10 + (*s++ - '0');
    if (i < 2 && *s == ':' && isdigit((unsigned char)s[1]))
      s++;
    else
      break;
  }
  *out = (int32_t)(sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]));
  return s;
}

static const char *read_int(const char *s, int *out) {
  if (!isdigit((unsigned char)*s)) return NULL;
  int v = 0;
  while (isdigit((unsigned char)*s)) v = v * 10 + (*s++ - '0');
  *out = v;
  return s;
}

static const char *read_rule(const char *s, rule *r) {
  memset(r, 0, sizeof *r);
  r->time = 7200;
  if (*s == 'M') {
    r->kind = 'M';
    s = read_int(s + 1, &r->m);
    if (s == NULL || *s != '.') return NULL;
    s = read_int(s + 1, &r->w);
    if (s == NULL || *s != '.') return NULL;
    s = read_int(s + 1, &r->d);
  } else if (*s == 'J') {
    r->kind = 'J';
    s = read_int(s + 1, &r->n);
  } else {
    r->kind = 'D';
    s = read_int(s, &r->n);
  }
  if (s != NULL && *s == '/') s = read_hms(s + 1, &r->time);
  return s;
}

static bool parse_posix(const char *s, posix_tz *p) {
  memset(p, 0, sizeof *p);
  int32_t off;
  if ((s = skip_name(s)) == NULL || (s = read_hms(s, &off)) == NULL) return false;
  p->std = -off;
  if (*s == '\0') return true;
  if ((s = skip_name(s)) == NULL) return false;
  p->has_dst = true;
  p->dst = p->std + 3600;
  if (*s != ',' && *s != '\0') {
    if ((s = read_hms(s, &off)) == NULL) return false;
    p->dst = -off;
  }
  if (*s != ',') return false; /* a DST name without rules: not in any TZif footer */
  if ((s = read_rule(s + 1, &p->start)) == NULL || *s != ',') return false;
  if ((s = read_rule(s + 1, &p->end)) == NULL) return false;
  return *s == '\0';
}

static bool leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The instant a rule changes the clock in year y, from offset `before`. */
static int64_t rule_instant(const rule *r, int64_t y, int32_t before) {
  int64_t days;
  if (r->kind == 'M') {
    int64_t first = jb_days_from_civil(y, (unsigned)r->m, 1);
    int dow_first = (int)((first % 7 + 11) % 7);
    int day = 1 + (r->d - dow_first + 7) % 7 + (r->w - 1) * 7;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int len = mdays[r->m - 1] + (r->m == 2 && leap(y));
    while (day > len) day -= 7;
    days = first + day - 1;
  } else if (r->kind == 'J') {
    days = jb_days_from_civil(y, 1, 1) + r->n - 1 + (leap(y) && r->n >= 60);
  } else {
    days = jb_days_from_civil(y, 1, 1) + r->n;
  }
  return days * 86400 + r->time - before;
}

/* ---- TZif ---- */

static int64_t be(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
  if (bytes == 4) return (int32_t)(uint32_t)v;
  return (int64_t)v;
}

typedef struct builder {
  int64_t *trans;
  int32_t *offs;
  size_t n, cap;
} builder;

static bool push(builder *b, int64_t t, int32_t off) {
  if (b->n > 0 && t <= b->trans[b->n - 1]) return true;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    int64_t *nt = realloc(b->trans, cap * sizeof *nt);
    if (nt == NULL) return false;
    b->trans = nt;
    int32_t *no = realloc(b->offs, cap * sizeof *no);
    if (no == NULL) return false;
    b->offs = no;
    b->cap = cap;
  }
  b->trans[b->n] = t;
  b->offs[b->n++] = off;
  return true;
}

/* Appends the footer rule's changes after the last transition, up to LAST_YEAR. */
static bool expand_footer(builder *b, const posix_tz *p) {
  if (!p->has_dst) return true;
  int64_t from = b->n ? b->trans[b->n - 1] : 0, y;
  unsigned m, d;
  jb_civil_from_days(from / 86400, &y, &m, &d);
  for (; y <= LAST_YEAR; y++) {
    int64_t s = rule_instant(&p->start, y, p->std), e = rule_instant(&p->end, y, p->dst);
    bool ok =
        s < e ? push(b, s, p->dst) && push(b, e, p->std) : push(b, e, p->std) && push(b, s, p->dst);
    if (!ok) return false;
  }
  return true;
}

static jb_err bad(const char *name, jb_error *e) {
  return jb_fail(e, JB_ERR_CONFIG, "unknown time zone \"%s\" (its zoneinfo file is not TZif)",
                 name);
}

jb_err jb_tz_from_tzif(const char *name, const unsigned char *data, size_t len, jb_tz **out,
                       jb_error *e) {
  if (len < 44 || memcmp(data, "TZif", 4) != 0) return bad(name, e);
  int version = data[4] ? data[4] - '0' : 1;
  const unsigned char *h = data;
  int tbytes = 4;
  for (int pass = 0; pass < (version >= 2 ? 2 : 1); pass++) {
    if ((size_t)(h - data) + 44 > len) return bad(name, e);
    int64_t isut = be(h + 20, 4), isstd = be(h + 24, 4), leapc = be(h + 28, 4),
            timec = be(h + 32, 4), typec = be(h + 36, 4), charc = be(h + 40, 4);
    if (isut < 0 || isstd < 0 || leapc < 0 || timec < 0 || typec < 1 || charc < 0)
      return bad(name, e);
    size_t body =
        (size_t)(timec * tbytes + timec + typec * 6 + charc + leapc * (tbytes + 4) + isstd + isut);
    if ((size_t)(h - data) + 44 + body > len) return bad(name, e);
    if (version >= 2 && pass == 0) {
      h += 44 + body;
      tbytes = 8;
      continue;
    }
    const unsigned char *times = h + 44, *idx = times + timec * tbytes, *types = idx + timec;
    builder b = {0};
    jb_tz *tz = calloc(1, sizeof *tz);
    if (tz == NULL || (tz->name = strdup(name)) == NULL) goto nomem;
    tz->initial = (int32_t)be(types, 4);
    for (int64_t i = 0; i < timec; i++) {
      if (idx[i] >= typec) {
        free(b.trans), free(b.offs), jb_tz_free(tz);
        return bad(name, e);
      }
      if (!push(&b, be(times + i * tbytes, tbytes), (int32_t)be(types + idx[i] * 6, 4))) goto nomem;
    }
    const char *foot = (const char *)(h + 44 + body);
    size_t flen = len - (size_t)(h + 44 + body - data);
    posix_tz p;
    if (version >= 2 && flen > 2 && foot[0] == '\n') {
      char tzs[128];
      size_t l = strcspn(foot + 1, "\n");
      if (l < sizeof tzs) {
        memcpy(tzs, foot + 1, l);
        tzs[l] = '\0';
        if (parse_posix(tzs, &p) && !expand_footer(&b, &p)) goto nomem;
      }
    }
    tz->trans = b.trans, tz->offs = b.offs, tz->n = b.n;
    tz->minoff = tz->maxoff = tz->initial;
    for (size_t i = 0; i < tz->n; i++) {
      if (tz->offs[i] < tz->minoff) tz->minoff = tz->offs[i];
      if (tz->offs[i] > tz->maxoff) tz->maxoff = tz->offs[i];
    }
    *out = tz;
    return JB_OK;
  nomem:
    free(b.trans), free(b.offs), jb_tz_free(tz);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory reading time zone \"%s\"", name);
  }
  return bad(name, e);
}

/* A zone name is a relative path of letters, digits and _+- components, no "." or "..". */
static bool name_ok(const char *name) {
  if (*name == '\0' || *name == '/' || strlen(name) > 100) return false;
  for (const char *s = name; *s; s++) {
    if (!(isalnum((unsigned char)*s) || strchr("/_+-", *s))) return false;
    if (*s == '/' && (s[1] == '/' || s[1] == '\0')) return false;
  }
  return true;
}

jb_err jb_tz_load(const char *name, jb_tz **out, jb_error *e) {
  if (!name_ok(name))
    return jb_fail(e, JB_ERR_CONFIG, "unknown time zone \"%.100s\" (not an IANA zone name)", name);
  const char *dir = getenv("TZDIR");
  if (dir == NULL || *dir == '\0') dir = "/usr/share/zoneinfo";
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return jb_fail(e, JB_ERR_CONFIG, "unknown time zone \"%s\" (no such zone in %s: %s)", name, dir,
                   strerror(errno));
  unsigned char *buf = malloc(1 << 20);
  if (buf == NULL) {
    fclose(f);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory reading time zone \"%s\"", name);
  }
  size_t len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  jb_err rc = jb_tz_from_tzif(name, buf, len, out, e);
  free(buf);
  return rc;
}
