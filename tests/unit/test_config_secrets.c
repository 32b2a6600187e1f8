/* Issue 15, item 1: URLs (secrets) read from files named by database.url_file and amqp.url_file;
 * the environment still overrides them; a missing or empty file is an error naming key and file,
 * never the content. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobbridge/config.h"

static char dir[] = "/tmp/jb-secrets.XXXXXX";

static void setup(void) {
  unsetenv("JOBBRIDGE_AMQP_URL");
  unsetenv("JOBBRIDGE_DATABASE_URL");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

TestSuite(config_secrets, .init = setup, .fini = teardown);

static const char *write_file(const char *name, const char *text) {
  static char path[4][256];
  static int k;
  char *p = path[k++ % 4];
  snprintf(p, 256, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  return p;
}

static jb_err parse(const char *db_file, const char *amqp_file, jb_config **cfg, jb_error *e) {
  char text[1024];
  snprintf(text, sizeof text,
           "{\"database\": {\"url\": \"postgresql://inline@h/db\", \"url_file\": \"%s\"},"
           " \"amqp\": {\"url\": \"amqp://inline@h\", \"url_file\": \"%s\"}}",
           db_file, amqp_file);
  return jb_config_parse(text, "t.json", cfg, e);
}

Test(config_secrets, urls_come_from_the_files) {
  const char *db = write_file("db", "  postgresql://u:s3cret@h/db\n");
  const char *mq = write_file("mq", "amqp://u:s3cret@a:1\namqps://u:s3cret@b:2, amqp://c:3\n\n");
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(parse(db, mq, &cfg, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(cfg->database.url, "postgresql://u:s3cret@h/db");
  cr_assert_eq(cfg->amqp.urls_len, 3);
  cr_expect_str_eq(cfg->amqp.url, "amqp://u:s3cret@a:1");
  cr_expect_str_eq(cfg->amqp.urls[1], "amqps://u:s3cret@b:2");
  cr_expect_str_eq(cfg->amqp.urls[2], "amqp://c:3");
  cr_expect_null(cfg->amqp.urls[3]);
  jb_config_free(cfg);
}

Test(config_secrets, the_environment_still_overrides) {
  const char *db = write_file("db", "postgresql://file@h/db");
  const char *mq = write_file("mq", "amqp://file@h");
  setenv("JOBBRIDGE_DATABASE_URL", "postgresql://env@h/db", 1);
  setenv("JOBBRIDGE_AMQP_URL", "amqp://env@h", 1);
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(parse(db, mq, &cfg, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(cfg->database.url, "postgresql://env@h/db");
  cr_expect_str_eq(cfg->amqp.url, "amqp://env@h");
  jb_config_free(cfg);
}

Test(config_secrets, a_missing_or_empty_file_is_named) {
  const char *mq = write_file("mq", "amqp://u:s3cret@h");
  const char *empty = write_file("empty", " \n\t\n");
  jb_config *cfg = NULL;
  jb_error e;
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nope", dir);
  cr_assert_neq(parse(missing, mq, &cfg, &e), JB_OK);
  cr_expect(strstr(e.msg, "database.url_file") != NULL && strstr(e.msg, "nope") != NULL, "%s",
            e.msg);
  cr_assert_neq(parse(mq, empty, &cfg, &e), JB_OK);
  cr_expect(strstr(e.msg, "amqp.url_file") != NULL && strstr(e.msg, "holds no URL") != NULL, "%s",
            e.msg);
  const char *commas = write_file("commas", ",\n,");
  cr_assert_neq(parse(mq, commas, &cfg, &e), JB_OK);
  cr_expect(strstr(e.msg, "lists no URL") != NULL, "%s", e.msg);
  cr_expect(strstr(e.msg, "s3cret") == NULL, "%s", e.msg);
}
