/* CLI times: RFC 3339 and epoch seconds within years 1..9999, real calendar days, offsets within
 * +-23:59, no overflow (the UBSan build runs this too), and four-digit years when printed. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/job.h"

static void expect_refused(const char *s, const char *why) {
  jb_time t = 42;
  jb_error e;
  jb_error_clear(&e);
  cr_expect_eq(jb_time_parse_err(s, &t, &e), JB_ERR_INVALID, "\"%s\" should be refused", s);
  cr_expect_eq(t, 42, "\"%s\": the output was written on failure", s);
  cr_expect(strstr(e.msg, why) != NULL, "\"%s\": message \"%s\" should contain \"%s\"", s, e.msg,
            why);
}

static jb_time parsed(const char *s) {
  jb_time t = 0;
  jb_error e;
  jb_error_clear(&e);
  cr_assert_eq(jb_time_parse_err(s, &t, &e), JB_OK, "\"%s\": %s", s, e.msg);
  return t;
}

static void expect_formats(jb_time t, const char *want) {
  char buf[40];
  cr_expect_str_eq(jb_time_format(t, buf, sizeof buf), want);
}

Test(time, huge_epoch_seconds_do_not_overflow) {
  expect_refused("99999999999999999999", "out of range");
  expect_refused("9223372036854775807", "out of range");
  expect_refused("9223372036854775808", "out of range");
  expect_refused("9999999999999", "out of range"); /* year 318857 */
  expect_refused("253402300800", "out of range");  /* 10000-01-01 */
  cr_expect_eq(parsed("253402300799"), 253402300799LL * 1000000);
  cr_expect_eq(parsed("1795387650"), 1795387650LL * 1000000);
}

Test(time, days_must_exist_in_their_month) {
  expect_refused("2026-02-30T00:00:00Z", "2026-02 has 28 days");
  expect_refused("2026-02-29T00:00:00Z", "2026-02 has 28 days");
  expect_refused("1900-02-29T00:00:00Z", "1900-02 has 28 days"); /* divisible by 100 */
  expect_refused("2026-04-31T00:00:00Z", "2026-04 has 30 days");
  expect_refused("2026-01-00T00:00:00Z", "has day 00");
  expect_refused("2026-13-01T00:00:00Z", "month 13");
  cr_expect_eq(parsed("2024-02-29T00:00:00Z"), parsed("2024-03-01T00:00:00Z") - 86400000000LL);
  cr_expect_eq(parsed("2000-02-29T00:00:00Z"), parsed("2000-03-01T00:00:00Z") - 86400000000LL);
}

Test(time, offsets_stay_within_a_day) {
  expect_refused("2026-01-01T00:00:00+25:00", "beyond -23:59..+23:59");
  expect_refused("2026-01-01T00:00:00-24:00", "beyond -23:59..+23:59");
  expect_refused("2026-01-01T00:00:00+01:60", "beyond -23:59..+23:59");
  cr_expect_eq(parsed("2026-01-01T23:59:00+23:59"), parsed("2026-01-01T00:00:00Z"));
  cr_expect_eq(parsed("2025-12-31T00:01:00-23:59"), parsed("2026-01-01T00:00:00Z"));
}

Test(time, years_1_to_9999) {
  expect_refused("0000-12-31T23:59:59Z", "out of range");
  expect_refused("0001-01-01T00:30:00+01:00", "out of range"); /* year 0 in UTC */
  expect_refused("9999-12-31T23:59:59-00:01", "out of range"); /* year 10000 in UTC */
  cr_expect_eq(parsed("0001-01-01T00:00:00Z"), JB_TIME_MIN_S * 1000000);
  cr_expect_eq(parsed("9999-12-31T23:59:59.999999Z"), JB_TIME_MAX_S * 1000000 + 999999);
}

Test(time, other_malformed_times) {
  expect_refused("", "empty");
  expect_refused("2026-11-22T10:00:00", "has no zone");
  expect_refused("2026-11-22T24:00:00Z", "past 23:59:60");
  expect_refused("2026-11-22T10:00:00.Z", "without digits");
  expect_refused("2026-11-22T10:00:00Zx", "text after the zone");
  expect_refused("-5", "not an RFC 3339 time");
  expect_refused(" 5", "not an RFC 3339 time");
  expect_refused("tomorrow", "not an RFC 3339 time");
}

Test(time, years_print_with_four_digits) {
  expect_formats(JB_TIME_MIN_S * 1000000, "0001-01-01T00:00:00.000000Z");
  expect_formats(parsed("0999-03-04T05:06:07.000008Z"), "0999-03-04T05:06:07.000008Z");
  expect_formats(JB_TIME_MAX_S * 1000000 + 999999, "9999-12-31T23:59:59.999999Z");
  expect_formats(-1, "1969-12-31T23:59:59.999999Z");
  expect_formats(parsed("2024-02-29T12:00:00+23:59"), "2024-02-28T12:01:00.000000Z");
}

Test(time, format_round_trips_every_day_of_a_leap_cycle) {
  /* 400 years from 1600 by 97-day steps, each parsed back from its own text */
  for (jb_time t = parsed("1600-01-01T00:00:00Z"); t < parsed("2000-01-01T00:00:00Z");
       t += 97LL * 86400 * 1000000 + 1234567) {
    char buf[40];
    jb_time_format(t, buf, sizeof buf);
    cr_assert_eq(parsed(buf), t, "%s", buf);
  }
}
