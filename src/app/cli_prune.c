/* `jobbridge prune [--dry-run]`: one pruning pass on demand (jobbridge/retention.h), the same
 * batches `jobbridge run` prunes in; prints what it deleted (or, dry, would delete) as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/args.h"
#include "jobbridge/json.h"
#include "jobbridge/retention.h"
#include "postgres/pg.h"

static const char help[] =
    "usage: jobbridge prune [--dry-run] [--config FILE]\n"
    "Deletes the finished jobs older than retention.completed / retention.failed /\n"
    "retention.dead_letter, with their attempts and set-aside outbox rows, in batches of\n"
    "retention.batch (one short transaction each). --dry-run only counts them. Prints the counts\n"
    "as JSON. Waiting and running jobs are never touched; a running instance may prune at the\n"
    "same time (each batch skips the rows the other holds).\n";

static const jb_opt_spec specs[] = {{"config", true}, {"help", false}, {"dry-run", false}};
#define NSPECS (sizeof specs / sizeof specs[0])

static int print_counts(const jb_prune_counts *c, bool dry, const jb_retention_cfg *r) {
  json_t *o =
      json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:{s:s?, s:s?, s:s?}}", "dry_run", dry, "completed",
                (json_int_t)c->completed, "failed", (json_int_t)c->failed, "dead_letter",
                (json_int_t)c->dead_letter, "attempts", (json_int_t)c->attempts, "outbox",
                (json_int_t)c->outbox, "retention", "completed", r->completed, "failed", r->failed,
                "dead_letter", r->dead_letter);
  return jb_print_json(o);
}

int jb_cmd_prune(int argc, char **argv) {
  jb_args a;
  char err[256];
  if (!jb_args_parse(argc, argv, specs, NSPECS, &a, err, sizeof err)) {
    fprintf(stderr, "jobbridge: %s\n\n%s", err, help);
    return JB_EXIT_USAGE;
  }
  if (jb_args_get(&a, specs, NSPECS, "help") != NULL) {
    fputs(help, stdout);
    return JB_EXIT_OK;
  }
  if (a.npos != 0) {
    fprintf(stderr, "jobbridge: prune takes no argument\n\n%s", help);
    return JB_EXIT_USAGE;
  }
  bool dry = jb_args_get(&a, specs, NSPECS, "dry-run") != NULL;
  jb_error e;
  jb_error_clear(&e);
  jb_config *cfg = NULL;
  jb_pg *pg = NULL;
  int code = JB_EXIT_OK;
  const char *path = jb_config_path(jb_args_get(&a, specs, NSPECS, "config"));
  if (jb_config_load(path, &cfg, &e) != JB_OK || jb_check_db_url(cfg, path, &e) != JB_OK) {
    fprintf(stderr, "jobbridge: %s\n", e.msg);
    code = JB_EXIT_USAGE;
    goto out;
  }
  if (!jb_retention_enabled(&cfg->retention))
    fprintf(stderr,
            "jobbridge: %s sets no retention.completed, retention.failed or "
            "retention.dead_letter: every finished job is kept\n",
            path);
  if (jb_pg_connect(cfg->database.url, cfg->database.schema, &pg, &e) != JB_OK) {
    code = jb_report(&e);
    goto out;
  }
  jb_prune_counts c = {0};
  if (jb_retention_run(jb_pg_retention(pg), &cfg->retention, dry, NULL, &c, &e) != JB_OK) {
    code = jb_report(&e); /* the batches before it stay deleted */
    goto out;
  }
  code = print_counts(&c, dry, &cfg->retention);
out:
  jb_pg_close(pg);
  jb_config_free(cfg);
  return code;
}
