/* jobbridge: the executable's entry point and command dispatch. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "jobbridge/log.h"
#include "postgres/pg.h"

static const char usage[] =
    "usage: jobbridge COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run            run the service (migrates the database first)\n"
    "  migrate        apply database migrations\n"
    "  check-config   validate the config file and print the effective config\n"
    "  jobs           create|get|list|cancel|retry jobs\n"
    "  stats          per-queue job counts\n"
    "  --version      print the version\n"
    "  schedules      list|run NAME: cron schedules\n"
    "\n"
    "Every command takes --config FILE (default: $JOBBRIDGE_CONFIG, else ./jobbridge.json) and\n"
    "--help. JOBBRIDGE_AMQP_URL and JOBBRIDGE_DATABASE_URL override the config's URLs.\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 3 not found.\n";

int jb_exit_code(jb_err err) {
  switch (err) {
    case JB_OK:
      return JB_EXIT_OK;
    case JB_ERR_INVALID:
    case JB_ERR_CONFIG:
    case JB_ERR_UNREGISTERED:
    case JB_ERR_DB_REFUSED: /* the input's data: a retry fails the same way */
      return JB_EXIT_USAGE;
    case JB_ERR_NOT_FOUND:
      return JB_EXIT_NOT_FOUND;
    default:
      return JB_EXIT_FAILURE;
  }
}

int jb_report(const jb_error *e) {
  fprintf(stderr, "jobbridge: %s\n", e->msg[0] ? e->msg : jb_strerror(e->code));
  return jb_exit_code(e->code);
}

const char *jb_config_path(const char *opt) {
  if (opt != NULL) return opt;
  const char *env = getenv("JOBBRIDGE_CONFIG");
  return env != NULL && *env != '\0' ? env : "jobbridge.json";
}

jb_err jb_check_db_url(const jb_config *cfg, const char *path, jb_error *e) {
  const char *env = getenv("JOBBRIDGE_DATABASE_URL");
  char what[512];
  if (env != NULL && *env != '\0')
    snprintf(what, sizeof what, "%s: database.url (from JOBBRIDGE_DATABASE_URL)", path);
  else
    snprintf(what, sizeof what, "%s: database.url", path);
  return jb_pg_check_url(cfg->database.url, what, e);
}

int main(int argc, char **argv) {
  jb_log_init();
  /* jansson's hash seed must be set before any thread creates an object. */
  json_object_seed(0);
  if (argc < 2) {
    fputs(usage, stderr);
    return JB_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {
      {"run", jb_cmd_run},   {"migrate", jb_cmd_migrate}, {"check-config", jb_cmd_check_config},
      {"jobs", jb_cmd_jobs}, {"stats", jb_cmd_stats},     {"schedules", jb_cmd_schedules},
  };
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("jobbridge %s\n", JB_VERSION);
    return JB_EXIT_OK;
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage, stdout);
    return JB_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc - 2, argv + 2);
  fprintf(stderr, "jobbridge: unknown command \"%s\"\n\n%s", cmd, usage);
  return JB_EXIT_USAGE;
}
