/* Secrets in connection strings: every form libpq and rabbitmq-c accept is redacted, and the
 * structural checks refuse what a client library would misread, without quoting it. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/log.h"

#define SECRET "s3cretPW"

/* Redacts url, checks that no piece of the secret survives and that the result is `want`. */
static void expect_redacted(const char *url, const char *want) {
  char buf[512];
  jb_redact_url(url, buf, sizeof buf);
  cr_expect(strstr(buf, "s3") == NULL && strstr(buf, "cret") == NULL && strstr(buf, "PW") == NULL,
            "secret left in \"%s\" (from \"%s\")", buf, url);
  if (want != NULL) cr_expect_str_eq(buf, want, "redacting \"%s\"", url);
}

Test(redact, uri_user_info) {
  expect_redacted("postgresql://u:" SECRET "!@db.example:5432/jb",
                  "postgresql://u:***@db.example:5432/jb");
  expect_redacted("amqp://guest:" SECRET "@127.0.0.1:5672/vh",
                  "amqp://guest:***@127.0.0.1:5672/vh");
  expect_redacted("amqps://guest:" SECRET "@h", "amqps://guest:***@h");
  expect_redacted("postgresql://u@h/db", "postgresql://u@h/db");
  expect_redacted("postgresql://h/db", "postgresql://h/db");
}

Test(redact, unencoded_at_in_password) {
  expect_redacted("postgresql://u:p@" SECRET "@host/db", "postgresql://u:***@host/db");
  expect_redacted("amqp://u:p@" SECRET "@host:5672", "amqp://u:***@host:5672");
  /* libpq looks for credentials up to the first '/', across a '?': show none of them */
  expect_redacted("postgresql://h?password=p@" SECRET "/db", NULL);
}

Test(redact, uri_query_parameters) {
  expect_redacted("postgresql://u@h/db?password=" SECRET "!", "postgresql://u@h/db?password=***");
  expect_redacted("postgresql://u@h/db?sslmode=disable&password=" SECRET "&connect_timeout=2",
                  "postgresql://u@h/db?sslmode=disable&password=***&connect_timeout=2");
  expect_redacted("postgresql://h/db?sslpassword=" SECRET, "postgresql://h/db?sslpassword=***");
  expect_redacted("postgresql://h/db?PASSWORD=" SECRET, "postgresql://h/db?PASSWORD=***");
  /* libpq decodes parameter names too */
  expect_redacted("postgresql://h/db?%70assword=" SECRET, "postgresql://h/db?%70assword=***");
  expect_redacted("postgresql://u:" SECRET "@h/db?password=" SECRET,
                  "postgresql://u:***@h/db?password=***");
}

Test(redact, keyword_value_strings) {
  expect_redacted("host=h password=" SECRET " dbname=d", "host=h password=*** dbname=d");
  expect_redacted("host=h password = " SECRET "! dbname=d", "host=h password=*** dbname=d");
  expect_redacted("host=h password='s3 cret PW' dbname=d", "host=h password=*** dbname=d");
  expect_redacted("host=h password='s3\\' cret PW' dbname=d", "host=h password=*** dbname=d");
  expect_redacted("password=s3\\ cret\\ PW host=h", "password=*** host=h");
  expect_redacted("host=h\tpassword=\t" SECRET "\nport=5", "host=h\tpassword=***\nport=5");
  expect_redacted("sslpassword=" SECRET " host=h", "sslpassword=*** host=h");
  expect_redacted("host='my host' port=5432", "host='my host' port=5432");
}

Test(redact, unreadable_keyword_strings_hide_the_rest) {
  expect_redacted("host=h password='s3 cret PW", NULL);
  expect_redacted("host=h " SECRET, "host=h ***");
  expect_redacted("host=h s3 cret PW", "host=h ***");
  char buf[64];
  cr_expect_str_eq(jb_redact_url("jobbridge", buf, sizeof buf), "jobbridge"); /* a database name */
  expect_redacted("host=h password s3 cret PW", NULL);
}

Test(redact, small_buffers_never_hold_a_secret) {
  const char *urls[] = {"postgresql://u:" SECRET "@h/db", "host=h password='s3 cret PW' x=y",
                        "postgresql://h/db?password=" SECRET};
  for (size_t u = 0; u < sizeof urls / sizeof urls[0]; u++)
    for (size_t len = 1; len < 48; len++) {
      char buf[48];
      jb_redact_url(urls[u], buf, len);
      cr_expect(strlen(buf) < len);
      cr_expect(strstr(buf, "s3") == NULL, "\"%s\" at %zu", buf, len);
    }
}

Test(redact, url_problems_never_quote_the_url) {
  const char *bad[] = {
      "postgresql://u:p@" SECRET "@host/db",
      "postgresql://u:" SECRET "%ZZ@h/db",
      "postgresql://u:" SECRET "%4@h/db",
      "postgresql://u:" SECRET "%00@h/db",
      "host=h password='s3 cret PW",
      "host=h password s3cretPW",
      "amqp://u:p@" SECRET "@h",
      "postgresql://h?password=p@" SECRET "/db",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *p = jb_url_problem(bad[i]);
    cr_expect(p != NULL, "\"%s\" should be refused", bad[i]);
    if (p != NULL) cr_expect(strstr(p, "s3") == NULL && strstr(p, "PW") == NULL, "%s", p);
  }
  const char *good[] = {
      "postgresql://u:" SECRET "%40x@h:5432/db?sslmode=disable",
      "postgresql:///db?host=/tmp",
      "host=h password='s3 cret PW' dbname=d",
      "amqp://guest:guest@127.0.0.1:5672/%2f",
      "jobbridge",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_expect_null(jb_url_problem(good[i]), "\"%s\": %s", good[i], jb_url_problem(good[i]));
}

Test(redact, scrub_secret) {
  char msg[] = "could not translate host name \"" SECRET "x\": " SECRET;
  jb_scrub_secret(msg, SECRET);
  cr_expect_str_eq(msg, "could not translate host name \"***x\": ***");
  char same[] = "a *** b";
  jb_scrub_secret(same, "***");
  cr_expect_str_eq(same, "a *** b");
}
