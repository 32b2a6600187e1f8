/* The inside of a jb_tz (jobbridge/cron.h), shared by cron.c and cron_tz.c. Private to core. */
#ifndef JB_CORE_CRON_TZ_H
#define JB_CORE_CRON_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "jobbridge/cron.h"

struct jb_tz {
  char *name;
  int64_t *trans; /* instants (seconds since the epoch) the offset changes at, ascending */
  int32_t *offs;  /* offs[i]: the UTC offset from trans[i] on */
  size_t n;
  int32_t initial;        /* the offset before trans[0] */
  int32_t minoff, maxoff; /* over every offset the zone ever has */
};

/* How many transitions lie at or before t: trans[i-1] <= t < trans[i]. */
size_t jb_tz_index(const jb_tz *tz, int64_t t);

/* Widens [*lo, *hi] by the offsets that come into force at instants in (from, to]. */
void jb_tz_range(const jb_tz *tz, int64_t from, int64_t to, int32_t *lo, int32_t *hi);

/* Builds a zone from a TZif image (RFC 8536, version 1 to 4) in memory; the POSIX TZ string of
 * its footer extends the transitions to the year 2200. JB_ERR_CONFIG naming `name` when the
 * image is not TZif. */
jb_err jb_tz_from_tzif(const char *name, const unsigned char *data, size_t len, jb_tz **out,
                       jb_error *e) JB_MUST_CHECK;

#endif
