/* CLI argument parsing: options before or after positionals, --x=v, errors. */
#include <criterion/criterion.h>
#include <limits.h>

#include "app/args.h"

static const jb_opt_spec specs[] = {{"config", true}, {"help", false}, {"payload", true}};

Test(args, options_anywhere) {
  char *argv[] = {"--config", "c.json", "create", "t", "--payload={}", "--help"};
  jb_args a;
  char err[128];
  cr_assert(jb_args_parse(6, argv, specs, 3, &a, err, sizeof err), "%s", err);
  cr_expect_eq(a.npos, 2);
  cr_expect_str_eq(a.pos[0], "create");
  cr_expect_str_eq(a.pos[1], "t");
  cr_expect_str_eq(jb_args_get(&a, specs, 3, "config"), "c.json");
  cr_expect_str_eq(jb_args_get(&a, specs, 3, "payload"), "{}");
  cr_expect_str_eq(jb_args_get(&a, specs, 3, "help"), "");
}

Test(args, double_dash_ends_options) {
  char *argv[] = {"get", "--", "--config"};
  jb_args a;
  char err[128];
  cr_assert(jb_args_parse(3, argv, specs, 3, &a, err, sizeof err));
  cr_expect_eq(a.npos, 2);
  cr_expect_str_eq(a.pos[1], "--config");
  cr_expect_null(jb_args_get(&a, specs, 3, "config"));
}

Test(args, errors_name_the_option) {
  jb_args a;
  char err[128];
  char *unknown[] = {"--confg", "x"};
  cr_expect(!jb_args_parse(2, unknown, specs, 3, &a, err, sizeof err));
  cr_expect_str_eq(err, "unknown option --confg");
  char *missing[] = {"list", "--config"};
  cr_expect(!jb_args_parse(2, missing, specs, 3, &a, err, sizeof err));
  cr_expect_str_eq(err, "option --config needs a value");
  char *flagval[] = {"--help=yes"};
  cr_expect(!jb_args_parse(1, flagval, specs, 3, &a, err, sizeof err));
  cr_expect_str_eq(err, "option --help takes no value");
}

Test(args, parse_long) {
  long v;
  cr_expect(jb_parse_long("42", 0, 100, &v) && v == 42);
  cr_expect(jb_parse_long("-5", -10, 10, &v) && v == -5);
  cr_expect(!jb_parse_long("101", 0, 100, &v));
  cr_expect(!jb_parse_long("4x", 0, 100, &v));
  cr_expect(!jb_parse_long("", 0, 100, &v));
  cr_expect(!jb_parse_long(NULL, 0, 100, &v));
}

Test(args, parse_long_is_strict_and_overflow_safe) {
  long v = 7;
  cr_expect(!jb_parse_long(" 5", 0, 100, &v), "leading blank");
  cr_expect(!jb_parse_long("5 ", 0, 100, &v), "trailing blank");
  cr_expect(!jb_parse_long("-", -10, 10, &v));
  cr_expect(!jb_parse_long("9223372036854775808", 0, LONG_MAX, &v), "past LONG_MAX");
  cr_expect(!jb_parse_long("99999999999999999999", 0, LONG_MAX, &v));
  cr_expect_eq(v, 7, "the output was written on failure");
  cr_expect(jb_parse_long("9223372036854775807", 0, LONG_MAX, &v) && v == LONG_MAX);
  cr_expect(jb_parse_long("+3", 0, 10, &v) && v == 3);
}

Test(args, option_messages_say_whether_range_or_form) {
  long v;
  char err[256];
  cr_expect(jb_parse_long_opt("offset", "9223372036854775807", 0, LONG_MAX, &v, err, sizeof err));
  cr_expect_eq(v, LONG_MAX);
  cr_expect(!jb_parse_long_opt("offset", "9223372036854775808", 0, LONG_MAX, &v, err, sizeof err));
  cr_expect_str_eq(err,
                   "--offset 9223372036854775808 is out of range: it must be from 0 to "
                   "9223372036854775807");
  cr_expect(!jb_parse_long_opt("limit", "0", 1, 10000, &v, err, sizeof err));
  cr_expect_str_eq(err, "--limit 0 is out of range: it must be from 1 to 10000");
  cr_expect(!jb_parse_long_opt("priority", "1e3", -1000000, 1000000, &v, err, sizeof err));
  cr_expect_str_eq(err, "--priority \"1e3\" is not a whole decimal number");
  cr_expect(!jb_parse_long_opt("max-retries", "-1", 0, 1000, &v, err, sizeof err));
  cr_expect_str_eq(err, "--max-retries -1 is out of range: it must be from 0 to 1000");
}
