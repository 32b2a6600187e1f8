/* Issue 14, item 1: the next-fire function. Expected times written by hand from cronie's rule:
 * a fixed-time expression fires a wall time that does not exist once, at the instant the clock
 * jumps, and a repeated wall time once, at its first occurrence; an expression whose minute or
 * hour field starts with `*` runs on the real clock (skipped wall times do not fire, repeated
 * ones fire twice). Every DST change of 2026 in four zones. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/cron.h"
#include "jobbridge/job.h"

static int64_t at(const char *rfc3339) {
  jb_time t;
  cr_assert_eq(jb_time_parse(rfc3339, &t), JB_OK, "bad time in the table: %s", rfc3339);
  return t / 1000000;
}

typedef struct row {
  const char *zone, *expr, *after, *expected;
} row;

static const row table[] = {
    /* Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z) */
    {"Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"Europe/Berlin", "0 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"Europe/Berlin", "0 3 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"Europe/Berlin", "30 2 * * *", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
    {"Europe/Berlin", "*/30 * * * *", "2026-03-29T00:00:00Z", "2026-03-29T00:30:00Z"},
    {"Europe/Berlin", "*/30 * * * *", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z"},
    /* Europe/Berlin: 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z); 02:00-03:00 repeated */
    {"Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
    {"Europe/Berlin", "30 2 * * *", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
    {"Europe/Berlin", "*/30 * * * *", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"},
    {"Europe/Berlin", "*/30 * * * *", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"},
    {"Europe/Berlin", "*/30 * * * *", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"},
    /* America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z) */
    {"America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"America/New_York", "0 2 * * *", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"America/New_York", "15 * * * *", "2026-03-08T06:20:00Z", "2026-03-08T07:15:00Z"},
    {"America/New_York", "30 2 * * *", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
    /* America/New_York: 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z); 01:00-02:00 repeated */
    {"America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"},
    {"America/New_York", "30 1 * * *", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
    {"America/New_York", "30 * * * *", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"},
    {"America/New_York", "30 * * * *", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"},
    /* Australia/Lord_Howe: 2026-04-05 02:00 +11 -> 01:30 +10:30 (04-04T15:00Z); 01:30-02:00
     * repeated */
    {"Australia/Lord_Howe", "45 1 * * *", "2026-04-04T00:00:00Z", "2026-04-04T14:45:00Z"},
    {"Australia/Lord_Howe", "45 1 * * *", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"},
    {"Australia/Lord_Howe", "*/15 * * * *", "2026-04-04T14:50:00Z", "2026-04-04T15:00:00Z"},
    {"Australia/Lord_Howe", "*/15 * * * *", "2026-04-04T15:00:00Z", "2026-04-04T15:15:00Z"},
    /* Australia/Lord_Howe: 2026-10-04 02:00 +10:30 -> 02:30 +11 (10-03T15:30Z); 02:00-02:30
     * does not exist */
    {"Australia/Lord_Howe", "15 2 * * *", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
    {"Australia/Lord_Howe", "0 2 * * *", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
    {"Australia/Lord_Howe", "15 2 * * *", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"},
    {"Australia/Lord_Howe", "*/15 * * * *", "2026-10-03T15:20:00Z", "2026-10-03T15:30:00Z"},
    {"Australia/Lord_Howe", "*/15 * * * *", "2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z"},
    /* Asia/Kolkata: +05:30 all year */
    {"Asia/Kolkata", "30 2 * * *", "2026-03-29T00:00:00Z", "2026-03-29T21:00:00Z"},
    {"Asia/Kolkata", "0 0 1 * *", "2026-10-25T00:00:00Z", "2026-10-31T18:30:00Z"},
    {"Asia/Kolkata", "30 2 * * *", "2026-10-25T00:00:00Z", "2026-10-25T21:00:00Z"},
    /* seconds (last), macros, day-of-month OR day-of-week */
    {"UTC", "* * * * * 30", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z"},
    {"UTC", "* * * * * */5", "2026-01-01T00:00:58Z", "2026-01-01T00:01:00Z"},
    {"UTC", "@weekly", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"UTC", "@yearly", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"UTC", "0 0 13 * fri", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
    /* day-of-month starts with `*`: both must match (Vixie); Monday the 11th */
    {"UTC", "0 0 */10 * 1", "2026-01-01T00:00:00Z", "2026-05-11T00:00:00Z"},
    {"UTC", "0 0 29 feb *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
};

Test(cron, dst_table_2026) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    const row *r = &table[i];
    jb_tz *tz = NULL;
    jb_error e;
    cr_assert_eq(jb_tz_load(r->zone, &tz, &e), JB_OK, "%s", e.msg);
    jb_cron c;
    char why[200];
    cr_assert(jb_cron_parse(r->expr, &c, NULL, why, sizeof why), "%s: %s", r->expr, why);
    int64_t next = 0;
    cr_assert(jb_cron_next(&c, tz, at(r->after), &next), "row %zu: no next", i);
    char got[40];
    cr_expect_eq(next, at(r->expected), "row %zu: %s \"%s\" after %s: expected %s, got %s", i,
                 r->zone, r->expr, r->after, r->expected, jb_cron_format(NULL, next, got, 40));
    jb_tz_free(tz);
  }
}

Test(cron, errors_name_the_position) {
  static const struct {
    const char *expr;
    size_t pos;
    const char *why;
  } bad[] = {
      {"61 * * * *", 1, "minute: 61 is out of range (0 to 59)"},
      {"* 24 * * *", 3, "hour: 24 is out of range (0 to 23)"},
      {"* * 0 * *", 5, "day-of-month: 0 is out of range (1 to 31)"},
      {"* * * foo *", 7, "month: \"foo\" is not a name of this field"},
      {"* * * * 1-x", 11, "day-of-week: \"x\" is not a name of this field"},
      {"5-2 * * * *", 1, "minute: the range 5-2 runs backwards"},
      {"*/0 * * * *", 3, "minute: the step 0 is out of range (1 to 60)"},
      {"* * * *", 8, "4 fields, expected 5"},
      {"* * * * * * *", 13, "more than 6 fields"},
      {"@sometimes", 1, "\"@sometimes\" is not one of"},
      {"1,,2 * * * *", 3, "minute: a value is missing"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jb_cron c;
    size_t pos = 0;
    char why[200] = "";
    cr_assert_not(jb_cron_parse(bad[i].expr, &c, &pos, why, sizeof why), "%s", bad[i].expr);
    cr_expect_eq(pos, bad[i].pos, "%s: position %zu, expected %zu (%s)", bad[i].expr, pos,
                 bad[i].pos, why);
    cr_expect(strstr(why, bad[i].why) != NULL, "%s: \"%s\" lacks \"%s\"", bad[i].expr, why,
              bad[i].why);
  }
}

Test(cron, unknown_zones) {
  const char *names[] = {"Mars/Base", "../etc/passwd", "", "/usr/share/zoneinfo/UTC", "Europe"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    jb_tz *tz = NULL;
    jb_error e;
    cr_expect_eq(jb_tz_load(names[i], &tz, &e), JB_ERR_CONFIG, "\"%s\" loaded", names[i]);
    cr_expect(strstr(e.msg, "unknown time zone") != NULL, "%s", e.msg);
  }
}

Test(cron, format_in_zone) {
  jb_tz *tz = NULL;
  jb_error e;
  cr_assert_eq(jb_tz_load("Australia/Lord_Howe", &tz, &e), JB_OK);
  char buf[40];
  cr_expect_str_eq(jb_cron_format(tz, at("2026-10-03T15:30:00Z"), buf, sizeof buf),
                   "2026-10-04T02:30:00+11:00");
  cr_expect_str_eq(jb_cron_format(tz, at("2026-10-03T15:29:59Z"), buf, sizeof buf),
                   "2026-10-04T01:59:59+10:30");
  jb_tz_free(tz);
}
