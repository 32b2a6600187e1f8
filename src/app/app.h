/* Shared pieces of the jobbridge executable: exit codes, config loading, the commands. */
#ifndef JB_APP_H
#define JB_APP_H

#include "jobbridge/config.h"
#include "jobbridge/err.h"

/* Exit codes of every command. */
enum {
  JB_EXIT_OK = 0,
  JB_EXIT_FAILURE = 1,   /* a runtime failure: database down, illegal transition, ... */
  JB_EXIT_USAGE = 2,     /* bad arguments, bad config, invalid input */
  JB_EXIT_NOT_FOUND = 3, /* no such job */
};

/* The exit code for an error. */
int jb_exit_code(jb_err err);

/* Prints "jobbridge: <msg>" on stderr and returns the matching exit code. */
int jb_report(const jb_error *e);

/* The config path: --config, else $JOBBRIDGE_CONFIG, else ./jobbridge.json. */
const char *jb_config_path(const char *opt);

/* Checks that the database URL of cfg (loaded from path) can be parsed: JB_ERR_CONFIG with a
 * message naming the setting, never the URL, when it cannot (jb_pg_check_url). */
jb_err jb_check_db_url(const jb_config *cfg, const char *path, jb_error *e) JB_MUST_CHECK;

int jb_cmd_run(int argc, char **argv);
int jb_cmd_migrate(int argc, char **argv);
int jb_cmd_check_config(int argc, char **argv);
int jb_cmd_jobs(int argc, char **argv);
int jb_cmd_stats(int argc, char **argv);
int jb_cmd_schedules(int argc, char **argv);
int jb_cmd_prune(int argc, char **argv);

/* Prints v (taken: its reference is released) as indented JSON with jobbridge's writer, exact
 * numbers verbatim; JB_EXIT_OK, or JB_EXIT_FAILURE when v is NULL or memory ran out. */
int jb_print_json(json_t *v);

#endif
