/* Cron expressions, time zones and the next-fire computation of the ScheduleTrigger. Pure code:
 * no clock, no database; the zone is read once from the system's TZif files.
 *
 * Expressions: the standard 5 fields "minute hour day-of-month month day-of-week", an optional
 * 6th field for SECONDS placed LAST (croniter's convention: "* * * * * 30" fires at second 30 of
 * every minute; without it, second 0), or one of @yearly @annually @monthly @weekly @daily
 * @midnight @hourly. Each field is `*`, a value, a range a-b, a list a,b,c, with an optional step
 * (`*` /n, a-b/n, a/n meaning a-max/n). Months and weekdays also take names (jan..dec,
 * sun..sat); weekday 7 is Sunday. When both day-of-month and day-of-week are restricted (neither
 * starts with `*`), a day matches if either does (Vixie cron, cronie, croniter).
 *
 * Daylight saving time, the way cronie treats it: an expression whose minute or hour field
 * starts with `*` (a "frequent" one) runs on the real clock: a wall time that does not exist is
 * not fired and a repeated wall time fires at both occurrences. Any other expression (a fixed
 * time of day): a wall time that does not exist fires once at the next valid time (the instant
 * the clock jumps), and a repeated wall time fires once, at its first occurrence. */
#ifndef JOBBRIDGE_CRON_H
#define JOBBRIDGE_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/err.h"

/* A parsed expression: one bit per allowed value of each field. */
typedef struct jb_cron {
  uint64_t second; /* bits 0..59 */
  uint64_t minute; /* bits 0..59 */
  uint32_t hour;   /* bits 0..23 */
  uint32_t dom;    /* bits 1..31 */
  uint16_t month;  /* bits 1..12 */
  uint8_t dow;     /* bits 0..6, Sunday 0 */
  bool dom_star, dow_star;
  bool frequent; /* the minute or hour field starts with `*`: DST runs on the real clock */
} jb_cron;

/* Parses expr. On failure returns false, *pos gets the 1-based character position in expr of
 * the problem and why a sentence naming the field ("hour: 24 is out of range (0 to 23)"). */
bool jb_cron_parse(const char *expr, jb_cron *out, size_t *pos, char *why, size_t whylen);

/* A time zone read from a TZif file: UTC offsets and the instants they change at. Opaque;
 * immutable once loaded, so one may be shared by threads. */
typedef struct jb_tz jb_tz;

/* Loads the IANA zone `name` ("Europe/Berlin", "UTC") from $TZDIR or /usr/share/zoneinfo.
 * JB_ERR_CONFIG when the name is not a zone ("unknown time zone \"Mars/Base\""), JB_ERR_NOMEM. */
jb_err jb_tz_load(const char *name, jb_tz **out, jb_error *e) JB_MUST_CHECK;
void jb_tz_free(jb_tz *tz);
const char *jb_tz_name(const jb_tz *tz);

/* The UTC offset in seconds (east positive) in force at instant t (seconds since the epoch). */
int32_t jb_tz_offset(const jb_tz *tz, int64_t t);

/* The first fire time strictly after `after` (seconds since the epoch), by the rules above; false
 * when there is none within the next 30 years ("0 0 30 2 *"). */
bool jb_cron_next(const jb_cron *c, const jb_tz *tz, int64_t after, int64_t *out);

/* Formats t in zone tz as RFC 3339 with its offset ("2026-03-29T03:00:00+02:00"); tz NULL: UTC
 * with Z. buf >= 32 bytes. Returns buf. */
char *jb_cron_format(const jb_tz *tz, int64_t t, char *buf, size_t len);

/* Calendar helpers (proleptic Gregorian): days since 1970-01-01 and back. */
int64_t jb_days_from_civil(int64_t y, unsigned m, unsigned d);
void jb_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
