/* The pieces of the ScheduleTrigger that the CLI shares: checking schedules[], compiling an
 * entry, and creating the job of one firing. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "jobbridge/schedule.h"

static bool name_ok(const char *s) {
  if (*s == '\0' || strlen(s) > 200) return false;
  for (; *s; s++)
    if (!(isalnum((unsigned char)*s) || strchr("_.-", *s))) return false;
  return true;
}

jb_err jb_schedule_compile(const jb_schedule_cfg *s, jb_cron *cron, jb_tz **tz, jb_error *e) {
  size_t pos = 0;
  char why[200];
  if (!jb_cron_parse(s->cron, cron, &pos, why, sizeof why))
    return jb_fail(e, JB_ERR_CONFIG, "\"%.100s\": at position %zu: %s", s->cron, pos, why);
  return jb_tz_load(s->timezone, tz, e);
}

static jb_err check_one(const char *file, const jb_config *cfg, size_t i, jb_error *e) {
  const jb_schedule_cfg *s = &cfg->schedules[i];
  if (!name_ok(s->name))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: schedules[%zu].name: \"%.100s\" must be 1 to 200 characters of "
                   "A-Z a-z 0-9 _ . -",
                   file, i, s->name);
  for (size_t j = 0; j < i; j++)
    if (strcmp(cfg->schedules[j].name, s->name) == 0)
      return jb_fail(e, JB_ERR_CONFIG, "%s: schedules[%zu].name: \"%s\" is also schedules[%zu]",
                     file, i, s->name, j);
  jb_cron cron;
  size_t pos = 0;
  char why[200];
  if (!jb_cron_parse(s->cron, &cron, &pos, why, sizeof why))
    return jb_fail(e, JB_ERR_CONFIG, "%s: schedules[%zu].cron: \"%.100s\": at position %zu: %s",
                   file, i, s->cron, pos, why);
  jb_tz *tz = NULL;
  jb_error te;
  if (jb_tz_load(s->timezone, &tz, &te) != JB_OK)
    return jb_fail(e, te.code, "%s: schedules[%zu].timezone: %s", file, i, te.msg);
  jb_tz_free(tz);
  if (jb_config_job_type(cfg, s->job_type) == NULL)
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: schedules[%zu].job_type: job type \"%s\" is not registered in job_types",
                   file, i, s->job_type);
  if (strcmp(s->misfire, "skip") != 0 && strcmp(s->misfire, "once") != 0 &&
      strcmp(s->misfire, "all") != 0)
    return jb_fail(e, JB_ERR_CONFIG, "%s: schedules[%zu].misfire: \"%s\" is not skip, once or all",
                   file, i, s->misfire);
  if (s->payload == NULL)
    return jb_fail(e, JB_ERR_CONFIG, "%s: schedules[%zu].payload: must be a JSON object", file, i);
  return JB_OK;
}

jb_err jb_schedules_check(const char *file, const jb_config *cfg, jb_error *e) {
  for (size_t i = 0; i < cfg->schedules_len; i++) {
    jb_err rc = check_one(file, cfg, i, e);
    if (rc != JB_OK) return rc;
  }
  return JB_OK;
}

void jb_schedule_dedupe_key(const char *name, int64_t fire, char *buf, size_t len) {
  char when[40];
  snprintf(buf, len, "schedule:%s:%s", name, jb_cron_format(NULL, fire, when, sizeof when));
}

jb_err jb_schedule_fire(const jb_schedule_cfg *s, const jb_job_creator *c, int64_t fire,
                        jb_fire_kind kind, double jitter, jb_create_outcome *out, jb_error *e) {
  char when[40], key[300];
  jb_cron_format(NULL, fire, when, sizeof when);
  jb_schedule_dedupe_key(s->name, fire, key, sizeof key);
  json_t *meta = s->metadata != NULL ? json_deep_copy(s->metadata) : json_object();
  if (meta == NULL || json_object_set_new(meta, "schedule", json_string(s->name)) != 0 ||
      json_object_set_new(meta, "fire_time", json_string(when)) != 0 ||
      (kind == JB_FIRE_CATCH_UP &&
       json_object_set_new(meta, "misfire", json_string(s->misfire)) != 0) ||
      (kind == JB_FIRE_MANUAL && json_object_set_new(meta, "manual", json_true()) != 0)) {
    json_decref(meta);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory building the job of schedule \"%s\"", s->name);
  }
  jb_time at = 0;
  if (s->jitter_s > 0 && kind != JB_FIRE_MANUAL)
    at = fire * 1000000 + (jb_time)(jitter * s->jitter_s * 1e6);
  jb_job_request req = {.job_type = s->job_type,
                        .payload = s->payload,
                        .queue_name = s->queue,
                        .priority = s->priority,
                        .opts = {.scheduled_at = at,
                                 .max_retries = s->max_retries,
                                 .metadata = meta,
                                 .dedupe_key = kind == JB_FIRE_MANUAL ? NULL : key}};
  jb_err rc = jb_create_job(c, &req, out, e);
  json_decref(meta);
  return rc;
}
