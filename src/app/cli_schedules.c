/* `jobbridge schedules list|run NAME`: the configured schedules with their next fire times, and
 * one job of a schedule now, outside its timetable. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "app/args.h"
#include "jobbridge/job_service.h"
#include "jobbridge/json.h"
#include "jobbridge/schedule.h"
#include "postgres/pg.h"

/* One schedule and its next 5 fire times, in its zone and in UTC. */
static json_t *describe(const jb_schedule_cfg *s, int64_t now, jb_error *e) {
  jb_cron cron;
  jb_tz *tz = NULL;
  if (jb_schedule_compile(s, &cron, &tz, e) != JB_OK) return NULL;
  json_t *next = json_array();
  int64_t t = now;
  for (int i = 0; i < 5 && jb_cron_next(&cron, tz, t, &t); i++) {
    char local[40], utc[40];
    json_array_append_new(
        next, json_pack("{s:s, s:s}", "local", jb_cron_format(tz, t, local, sizeof local), "utc",
                        jb_cron_format(NULL, t, utc, sizeof utc)));
  }
  jb_tz_free(tz);
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:o}", "name", s->name, "cron", s->cron,
                   "timezone", s->timezone, "job_type", s->job_type, "queue", s->queue, "enabled",
                   s->enabled, "misfire", s->misfire, "next", next);
}

static int list(const jb_config *cfg) {
  json_t *all = json_array();
  int64_t now = (int64_t)time(NULL);
  for (size_t i = 0; i < cfg->schedules_len; i++) {
    jb_error e;
    json_t *one = describe(&cfg->schedules[i], now, &e);
    if (one == NULL) {
      json_decref(all);
      return jb_report(&e);
    }
    json_array_append_new(all, one);
  }
  return jb_print_json(all);
}

static int run_now(const jb_config *cfg, const char *name) {
  const jb_schedule_cfg *s = NULL;
  for (size_t i = 0; i < cfg->schedules_len && s == NULL; i++)
    if (strcmp(cfg->schedules[i].name, name) == 0) s = &cfg->schedules[i];
  if (s == NULL) {
    fprintf(stderr, "jobbridge: no schedule named \"%s\" in schedules[]\n", name);
    return JB_EXIT_NOT_FOUND;
  }
  jb_error e;
  jb_pg *pg = NULL;
  if (jb_pg_connect(cfg->database.url, cfg->database.schema, &pg, &e) != JB_OK)
    return jb_report(&e);
  jb_job_service svc;
  jb_job_service_init(&svc, jb_pg_store(pg), jb_pg_work_queue(pg), cfg);
  jb_job_creator c = jb_job_service_creator(&svc);
  jb_create_outcome out;
  int64_t now = (int64_t)time(NULL);
  int code;
  if (jb_schedule_fire(s, &c, now, JB_FIRE_MANUAL, 0, &out, &e) != JB_OK) {
    code = jb_report(&e);
  } else {
    char when[40];
    code = jb_print_json(json_pack("{s:s, s:s, s:s}", "schedule", s->name, "job_id", out.id,
                                   "fire_time", jb_cron_format(NULL, now, when, sizeof when)));
  }
  jb_pg_close(pg);
  return code;
}

int jb_cmd_schedules(int argc, char **argv) {
  static const char help[] =
      "usage: jobbridge schedules list [--config FILE]\n"
      "       jobbridge schedules run NAME [--config FILE]\n"
      "list: each schedule with its next 5 fire times, in its zone and in UTC.\n"
      "run: creates one job of schedule NAME now, outside its timetable (no dedupe key;\n"
      "metadata manual: true).\n";
  static const jb_opt_spec specs[] = {{"config", true}, {"help", false}};
  jb_args a;
  char err[256];
  if (!jb_args_parse(argc, argv, specs, 2, &a, err, sizeof err)) {
    fprintf(stderr, "jobbridge: %s\n\n%s", err, help);
    return JB_EXIT_USAGE;
  }
  if (jb_args_get(&a, specs, 2, "help")) {
    fputs(help, stdout);
    return JB_EXIT_OK;
  }
  bool is_list = a.npos == 1 && strcmp(a.pos[0], "list") == 0;
  bool is_run = a.npos == 2 && strcmp(a.pos[0], "run") == 0;
  if (!is_list && !is_run) {
    fprintf(stderr, "jobbridge: schedules takes list, or run NAME\n\n%s", help);
    return JB_EXIT_USAGE;
  }
  jb_error e;
  jb_config *cfg = NULL;
  const char *path = jb_config_path(jb_args_get(&a, specs, 2, "config"));
  if (jb_config_load(path, &cfg, &e) != JB_OK ||
      (is_run && jb_check_db_url(cfg, path, &e) != JB_OK)) {
    fprintf(stderr, "jobbridge: %s\n", e.msg);
    jb_config_free(cfg);
    return JB_EXIT_USAGE;
  }
  int code = is_list ? list(cfg) : run_now(cfg, a.pos[1]);
  jb_config_free(cfg);
  return code;
}
