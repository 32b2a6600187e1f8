/* Cron expressions: parsing and the next-fire computation (see jobbridge/cron.h). */
#include "jobbridge/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cron_tz.h"

/* ---- calendar ---- */

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t jb_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

void jb_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- parsing ---- */

typedef struct field_spec {
  const char *name;
  int min, max;
  const char *const *names; /* names of min.. (NULL: none) */
} field_spec;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

/* Field order in the text: minute hour dom month dow [second]. dow accepts 7 (Sunday). */
static const field_spec fields[6] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, dow_names}, {"second", 0, 59, NULL},
};

typedef struct perr {
  size_t *pos;
  char *why;
  size_t whylen;
  const char *start; /* the whole expression, for positions */
} perr;

/* Records a problem at `at` in field `field`: msg is the sentence after the field's name. */
static bool fail_at(perr *p, const char *at, const char *field, const char *msg) {
  *p->pos = (size_t)(at - p->start) + 1;
  snprintf(p->why, p->whylen, "%s: %s", field, msg);
  return false;
}

/* Reads a value (digits or a name) at *s; advances *s. */
static bool read_value(perr *p, const field_spec *f, const char **s, int *out) {
  const char *at = *s;
  if (isdigit((unsigned char)**s)) {
    long v = 0;
    while (isdigit((unsigned char)**s) && v < 1000) v = v * 10 + (*(*s)++ - '0');
    if (v < f->min || v > f->max) {
      *p->pos = (size_t)(at - p->start) + 1;
      snprintf(p->why, p->whylen, "%s: %ld is out of range (%d to %d)", f->name, v, f->min, f->max);
      return false;
    }
    *out = (int)v;
    return true;
  }
  if (f->names != NULL && isalpha((unsigned char)**s)) {
    int len = 0;
    while (isalpha((unsigned char)(*s)[len])) len++;
    for (int i = 0; len == 3 && f->names[i] != NULL; i++)
      if (strncasecmp(*s, f->names[i], 3) == 0) {
        *out = f->min + i;
        *s += 3;
        return true;
      }
    char msg[96];
    snprintf(msg, sizeof msg, "\"%.*s\" is not a name of this field", len > 20 ? 20 : len, at);
    return fail_at(p, at, f->name, msg);
  }
  if (**s == '\0' || **s == ',' || **s == '/' || **s == '-')
    return fail_at(p, at, f->name, "a value is missing");
  char msg[96];
  snprintf(msg, sizeof msg, "\"%c\" is not a number", *at);
  return fail_at(p, at, f->name, msg);
}

/* Parses one field (the text from s to end) into *bits. */
static bool parse_field(perr *p, const field_spec *f, const char *s, const char *end,
                        uint64_t *bits, bool *star) {
  *bits = 0;
  *star = *s == '*';
  for (;;) {
    const char *item = s;
    int lo, hi;
    bool range = false;
    if (*s == '*') {
      lo = f->min, hi = f->max, range = true;
      s++;
    } else {
      if (!read_value(p, f, &s, &lo)) return false;
      hi = lo;
      if (*s == '-') {
        s++;
        if (!read_value(p, f, &s, &hi)) return false;
        if (hi < lo) {
          char msg[96];
          snprintf(msg, sizeof msg, "the range %d-%d runs backwards", lo, hi);
          return fail_at(p, item, f->name, msg);
        }
        range = true;
      }
    }
    int step = 1;
    if (*s == '/') {
      const char *at = ++s;
      long v = 0;
      if (!isdigit((unsigned char)*s)) return fail_at(p, at, f->name, "a step must be a number");
      while (isdigit((unsigned char)*s) && v < 1000) v = v * 10 + (*s++ - '0');
      if (v < 1 || v > f->max - f->min + 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "the step %ld is out of range (1 to %d)", v, f->max - f->min + 1);
        return fail_at(p, at, f->name, msg);
      }
      step = (int)v;
      if (!range) hi = f->max; /* a/n: from a to the end */
    }
    for (int v = lo; v <= hi; v += step) *bits |= 1ULL << v;
    if (s == end) return true;
    if (*s != ',') {
      char msg[96];
      snprintf(msg, sizeof msg, "unexpected \"%c\"", *s);
      return fail_at(p, s, f->name, msg);
    }
    s++;
    if (s == end) return fail_at(p, s, f->name, "a value is missing");
  }
}

static const struct {
  const char *name, *expr;
} macros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
              {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
              {"@hourly", "0 * * * *"}};

bool jb_cron_parse(const char *expr, jb_cron *out, size_t *pos, char *why, size_t whylen) {
  size_t dummy;
  perr p = {pos ? pos : &dummy, why, whylen, expr};
  memset(out, 0, sizeof *out);
  const char *s = expr;
  while (isspace((unsigned char)*s)) s++;
  if (*s == '@') {
    size_t len = strcspn(s, " \t\n");
    const char *rest = s + len;
    while (isspace((unsigned char)*rest)) rest++;
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
      if (*rest == '\0' && len == strlen(macros[i].name) &&
          strncasecmp(s, macros[i].name, len) == 0)
        return jb_cron_parse(macros[i].expr, out, pos, why, whylen);
    *p.pos = (size_t)(s - expr) + 1;
    snprintf(why, whylen,
             "\"%.*s\" is not one of @yearly @annually @monthly @weekly @daily @midnight @hourly",
             (int)(len > 40 ? 40 : len), s);
    return false;
  }
  const char *starts[7], *ends[7];
  int n = 0;
  while (*s != '\0') {
    if (n == 6) {
      *p.pos = (size_t)(s - expr) + 1;
      snprintf(why, whylen,
               "more than 6 fields (minute hour day-of-month month day-of-week "
               "[second])");
      return false;
    }
    starts[n] = s;
    while (*s != '\0' && !isspace((unsigned char)*s)) s++;
    ends[n++] = s;
    while (isspace((unsigned char)*s)) s++;
  }
  if (n < 5) {
    *p.pos = (size_t)(s - expr) + 1;
    snprintf(why, whylen,
             "%d field%s, expected 5 (minute hour day-of-month month day-of-week) or 6 (with "
             "seconds last)",
             n, n == 1 ? "" : "s");
    return false;
  }
  uint64_t bits[6] = {0, 0, 0, 0, 0, 1}; /* no seconds field: second 0 */
  bool star[6] = {false};
  for (int i = 0; i < n; i++)
    if (!parse_field(&p, &fields[i], starts[i], ends[i], &bits[i], &star[i])) return false;
  out->minute = bits[0];
  out->hour = (uint32_t)bits[1];
  out->dom = (uint32_t)bits[2];
  out->month = (uint16_t)bits[3];
  out->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
  out->second = bits[5];
  out->dom_star = star[2];
  out->dow_star = star[4];
  out->frequent = star[0] || star[1];
  return true;
}

/* ---- the next matching wall time, on a calendar without zones ---- */

static bool day_matches(const jb_cron *c, int64_t days, unsigned d) {
  unsigned dow = (unsigned)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
  bool dom_ok = (c->dom >> d) & 1, dow_ok = (c->dow >> dow) & 1;
  if (c->dom_star || c->dow_star) return dom_ok && dow_ok;
  return dom_ok || dow_ok;
}

static int next_bit(uint64_t bits, int from, int max) {
  for (int i = from; i <= max; i++)
    if ((bits >> i) & 1) return i;
  return -1;
}

/* The first wall time (seconds on a zone-less calendar) > w that matches c; false when none is
 * within 30 years. */
static bool naive_next(const jb_cron *c, int64_t w, int64_t *out) {
  int64_t t = w + 1, limit = w + 31LL * 366 * 86400;
  while (t <= limit) {
    int64_t days = floor_div(t, 86400), sod = t - days * 86400;
    int64_t y;
    unsigned m, d;
    jb_civil_from_days(days, &y, &m, &d);
    if (!((c->month >> m) & 1)) {
      t = jb_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400;
      continue;
    }
    if (!day_matches(c, days, d)) {
      t = (days + 1) * 86400;
      continue;
    }
    int h = (int)(sod / 3600), mi = (int)(sod / 60 % 60), s = (int)(sod % 60);
    int nh = next_bit(c->hour, h, 23);
    if (nh < 0) {
      t = (days + 1) * 86400;
      continue;
    }
    if (nh != h) {
      t = days * 86400 + nh * 3600;
      continue;
    }
    int nm = next_bit(c->minute, mi, 59);
    if (nm < 0) {
      t = days * 86400 + (h + 1) * 3600;
      continue;
    }
    if (nm != mi) {
      t = days * 86400 + h * 3600 + nm * 60;
      continue;
    }
    int ns = next_bit(c->second, s, 59);
    if (ns < 0) {
      t = days * 86400 + h * 3600 + (mi + 1) * 60;
      continue;
    }
    *out = days * 86400 + h * 3600 + mi * 60 + ns;
    return true;
  }
  return false;
}

/* ---- wall time to instants ---- */

/* The instants a wall time W stands for: 0 (a gap: *gap_at gets the instant the clock jumps
 * over it), 1, or 2 (a repeated time), in ascending order. */
static int wall_instants(const jb_tz *tz, int64_t W, int64_t inst[4], int64_t *gap_at) {
  int n = 0;
  *gap_at = INT64_MIN;
  /* Every instant of W lies in [W - maxoff, W - minoff]; walk the offsets in force there. */
  int64_t lo = W - tz->maxoff - 1, hi = W - tz->minoff + 1;
  size_t i = jb_tz_index(tz, lo); /* transitions[i-1] <= lo < transitions[i] */
  int32_t off = i == 0 ? tz->initial : tz->offs[i - 1];
  int64_t seg_start = INT64_MIN;
  for (;;) {
    int64_t seg_end = i < tz->n ? tz->trans[i] : INT64_MAX;
    int64_t I = W - off;
    if (I >= seg_start && I < seg_end && n < 4) inst[n++] = I;
    if (i >= tz->n || tz->trans[i] > hi) break;
    int32_t next = tz->offs[i];
    int64_t t = tz->trans[i];
    if (next > off && W >= t + off && W < t + next) *gap_at = t;
    off = next;
    seg_start = t;
    i++;
  }
  return n;
}

bool jb_cron_next(const jb_cron *c, const jb_tz *tz, int64_t after, int64_t *out) {
  /* A later instant can have an earlier wall time only across a backward jump within the zone's
   * offset spread after `after`: start there. */
  int32_t off_after = jb_tz_offset(tz, after);
  int32_t lowest = off_after, highest = off_after;
  jb_tz_range(tz, after, after + (tz->maxoff - tz->minoff) + 1, &lowest, &highest);
  int64_t w = after + lowest - 1;
  bool found = false;
  int64_t best = 0;
  int32_t best_hi = highest;
  for (;;) {
    int64_t W;
    if (!naive_next(c, w, &W)) break;
    /* No later wall time can give an instant before best: its offset would exceed best_hi. */
    if (found && W - best_hi > best) break;
    int64_t inst[4], gap_at;
    int n = wall_instants(tz, W, inst, &gap_at);
    int64_t cand = INT64_MAX;
    if (n == 0 && !c->frequent && gap_at > after) cand = gap_at; /* the next valid time */
    for (int k = 0; k < n; k++) {
      if (!c->frequent && k > 0) break; /* a repeated fixed time: its first occurrence only */
      if (inst[k] > after && inst[k] < cand) cand = inst[k];
    }
    if (cand != INT64_MAX && (!found || cand < best)) {
      best = cand, found = true;
      int32_t lo2 = off_after, hi2 = off_after;
      jb_tz_range(tz, after, best, &lo2, &hi2);
      best_hi = hi2;
    }
    w = W;
  }
  if (found) *out = best;
  return found;
}

char *jb_cron_format(const jb_tz *tz, int64_t t, char *buf, size_t len) {
  int32_t off = tz != NULL ? jb_tz_offset(tz, t) : 0;
  int64_t wall = t + off, days = floor_div(wall, 86400), sod = wall - days * 86400;
  int64_t y;
  unsigned m, d;
  jb_civil_from_days(days, &y, &m, &d);
  int n = snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, m, d,
                   (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
  if (n < 0 || (size_t)n >= len) return buf;
  if (tz == NULL)
    snprintf(buf + n, len - (size_t)n, "Z");
  else {
    int32_t a = off < 0 ? -off : off;
    snprintf(buf + n, len - (size_t)n, "%c%02d:%02d", off < 0 ? '-' : '+', (int)(a / 3600),
             (int)(a / 60 % 60));
  }
  return buf;
}
