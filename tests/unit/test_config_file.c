/* Config files that cannot be read, and URLs that cannot be parsed: each a config error whose
 * message names the file and what is wrong (and never a password). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobbridge/config.h"

static char dir[] = "/tmp/jb-config-file.XXXXXX";

static void setup(void) {
  unsetenv("JOBBRIDGE_AMQP_URL");
  unsetenv("JOBBRIDGE_DATABASE_URL");
  cr_assert(mkdtemp(dir) != NULL);
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}

TestSuite(config_file, .init = setup, .fini = teardown);

static char *path_of(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static char *write_file(const char *name, const char *text, mode_t mode) {
  char *p = path_of(name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return p;
}

/* Loads path, expecting a config error whose message contains each needle. */
static void expect_load_fails(const char *path, jb_err code, const char *n1, const char *n2) {
  jb_config *cfg = NULL;
  jb_error e;
  jb_error_clear(&e);
  jb_err rc = jb_config_load(path, &cfg, &e);
  cr_expect_eq(rc, code, "%s: %s", path, e.msg);
  cr_expect_null(cfg);
  cr_expect(strstr(e.msg, n1) != NULL, "\"%s\" should contain \"%s\"", e.msg, n1);
  if (n2 != NULL) cr_expect(strstr(e.msg, n2) != NULL, "\"%s\" should contain \"%s\"", e.msg, n2);
  cr_expect(strstr(e.msg, "s3cret") == NULL, "a password in \"%s\"", e.msg);
  jb_config_free(cfg);
}

static void expect_load_error(const char *path, const char *n1, const char *n2) {
  expect_load_fails(path, JB_ERR_CONFIG, n1, n2);
}

Test(config_file, a_directory_says_so) {
  char msg[300];
  snprintf(msg, sizeof msg, "%s is a directory", dir);
  expect_load_error(dir, msg, NULL);
}

Test(config_file, a_missing_file_says_so) {
  expect_load_fails(path_of("nope.json"), JB_ERR_IO, "nope.json: cannot open config file",
                    "No such file or directory");
}

Test(config_file, an_empty_file_says_so) {
  expect_load_error(write_file("empty.json", "", 0644), "empty.json is empty", NULL);
  expect_load_error(write_file("blank.json", " \n\t\n", 0644), "blank.json is empty", NULL);
}

Test(config_file, permission_denied_says_so) {
  char *p = write_file("secret.json", "{}", 0600);
  /* root reads any file: become nobody in this forked test process to see the refusal */
  if (geteuid() == 0) {
    cr_assert_eq(chown(dir, 65534, 65534), 0);
    cr_assert_eq(setgid(65534), 0);
    cr_assert_eq(setuid(65534), 0);
  }
  expect_load_fails(p, JB_ERR_IO, "secret.json: cannot open config file", "Permission denied");
}

Test(config_file, a_good_file_still_loads) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_load(write_file("ok.json", "{}", 0644), &cfg, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(cfg->amqp.input.queue, "jobbridge.events");
  jb_config_free(cfg);
}

/* URLs: refused at load, naming the key (and the variable it came from), never the value. */
Test(config_file, urls_that_cannot_be_parsed_are_config_errors) {
  expect_load_error(
      write_file("at.json", "{\"database\": {\"url\": \"postgresql://u:p@s3cret@h/db\"}}", 0644),
      "database.url: the URL has more than one '@'", "%40");
  expect_load_error(write_file("pct.json", "{\"amqp\": {\"url\": \"amqp://u:s3cret%ZZ@h\"}}", 0644),
                    "amqp.url: the URL has a '%' not followed by two hex digits", NULL);
  expect_load_error(
      write_file("kw.json", "{\"database\": {\"url\": \"host=h password='s3cret\"}}", 0644),
      "database.url: the URL has a quoted value whose closing quote is missing", NULL);
  expect_load_error(write_file("scheme.json", "{\"amqp\": {\"url\": \"http://u:s3cret@h\"}}", 0644),
                    "amqp.url: the URL must start with amqp:// or amqps://", NULL);
  setenv("JOBBRIDGE_DATABASE_URL", "postgresql://u:p@s3cret@h/db", 1);
  expect_load_error(write_file("env.json", "{}", 0644),
                    "database.url (from JOBBRIDGE_DATABASE_URL)", "not shown");
}
