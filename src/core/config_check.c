/* The checks of a loaded config that span several keys (see config_check.h). */
#include "core/config_check.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jobbridge/retention.h"
#include "jobbridge/schedule.h"
#include "jobbridge/topic.h"

/* The file name for messages, and where they go. */
typedef struct ctx {
  const char *name;
  jb_error *e;
} ctx;

/* An environment variable name: non-empty, no '=' (the JSON parser refuses NUL anywhere). */
static const char *env_name_problem(const char *name) {
  if (*name == '\0') return "an environment variable name must not be empty";
  if (strchr(name, '=') != NULL) return "an environment variable name must not contain '='";
  return NULL;
}

/* A job type's env and env_passthrough: valid names, string values; the job's own variables
 * and jobbridge's (whose URLs hold passwords) cannot be set or passed this way. */
static jb_err check_env(ctx *c, const jb_job_type_cfg *jt) {
  const char *name;
  json_t *v;
  json_object_foreach(jt->env, name, v) {
    const char *problem = env_name_problem(name);
    if (problem == NULL && !json_is_string(v)) problem = "the value must be a string";
    if (problem == NULL && strlen(json_string_value(v)) != json_string_length(v))
      problem = "the value must not contain a NUL byte";
    if (problem == NULL &&
        (strcmp(name, "JOBBRIDGE_JOB_ID") == 0 || strcmp(name, "JOBBRIDGE_JOB_TYPE") == 0))
      problem = "jobbridge sets this variable for each job";
    if (problem != NULL)
      return jb_fail(c->e, JB_ERR_CONFIG, "%s: job_types.%s.env.%s: %s", c->name, jt->name, name,
                     problem);
  }
  for (size_t i = 0; i < jt->env_passthrough_len; i++) {
    const char *n = jt->env_passthrough[i];
    const char *problem = env_name_problem(n);
    if (problem == NULL && strncmp(n, "JOBBRIDGE_", 10) == 0)
      problem = "jobbridge's own variables are never passed to handlers (its URLs hold passwords)";
    if (problem != NULL)
      return jb_fail(c->e, JB_ERR_CONFIG, "%s: job_types.%s.env_passthrough[%zu]: \"%s\": %s",
                     c->name, jt->name, i, n, problem);
  }
  return JB_OK;
}

static bool one_of(const char *s, const char *const *set) {
  for (; *set != NULL; set++)
    if (strcmp(s, *set) == 0) return true;
  return false;
}

static bool valid_identifier(const char *s) {
  if (!(islower((unsigned char)*s) || *s == '_')) return false;
  for (; *s; s++)
    if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_')) return false;
  return true;
}

/* Fills a job type's unset retry.* with the global ones; its delay cap must not be below its
 * base delay, wherever each comes from. */
static jb_err resolve_retry(ctx *c, const jb_config *cfg, jb_job_type_cfg *jt) {
  jb_retry_policy *r = &jt->retry;
  bool own_base = !isnan(r->base_s), own_max = !isnan(r->max_s);
  if (!own_base) r->base_s = cfg->retry.base_s;
  if (!own_max) r->max_s = cfg->retry.max_s;
  if (isnan(r->jitter)) r->jitter = cfg->retry.jitter;
  if (r->max_s >= r->base_s) return JB_OK;
  char max_from[300], base_from[300];
  snprintf(max_from, sizeof max_from, "%s%s%s", own_max ? "job_types." : "",
           own_max ? jt->name : "", own_max ? ".retry.max_s" : "retry.max_s");
  snprintf(base_from, sizeof base_from, "%s%s%s", own_base ? "job_types." : "",
           own_base ? jt->name : "", own_base ? ".retry.base_s" : "retry.base_s");
  return jb_fail(c->e, JB_ERR_CONFIG,
                 "%s: job_types.%s.retry: max_s %g (%s) is below base_s %g (%s); a job type's "
                 "retry cap must be at least its base delay",
                 c->name, jt->name, r->max_s, max_from, r->base_s, base_from);
}

/* Each job type: a known handler and what it needs, its environment, its retry policy. */
static jb_err check_job_types(ctx *c, jb_config *cfg) {
  static const char *const handlers[] = {"noop", "exec", "process", "http", NULL};
  for (size_t i = 0; i < cfg->job_types_len; i++) {
    const jb_job_type_cfg *jt = &cfg->job_types[i];
    if (!one_of(jt->handler, handlers))
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: job_types.%s.handler: \"%s\" is not noop, exec, process or http", c->name,
                     jt->name, jt->handler);
    if ((strcmp(jt->handler, "exec") == 0 || strcmp(jt->handler, "process") == 0) &&
        jt->command_len == 0)
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: job_types.%s.command: the %s handler needs a command (argv array)",
                     c->name, jt->name, jt->handler);
    if (strcmp(jt->handler, "http") == 0 && (jt->url == NULL || jt->url[0] == '\0'))
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: job_types.%s.url: the http handler needs a url (http:// or https://)",
                     c->name, jt->name);
    if (strcmp(jt->handler, "http") == 0 && strncasecmp(jt->url, "http://", 7) != 0 &&
        strncasecmp(jt->url, "https://", 8) != 0)
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: job_types.%s.url: \"%s\" is not an http:// or https:// URL", c->name,
                     jt->name, jt->url);
    jb_err rc = check_env(c, jt);
    if (rc == JB_OK) rc = resolve_retry(c, cfg, &cfg->job_types[i]);
    if (rc != JB_OK) return rc;
  }
  return JB_OK;
}

/* Each mapping: a valid pattern, a registered job type, a JSON pointer. */
static jb_err check_mappings(ctx *c, const jb_config *cfg) {
  for (size_t i = 0; i < cfg->mappings_len; i++) {
    const jb_mapping *m = &cfg->mappings[i];
    char why[160];
    if (!jb_topic_pattern_check(m->event_type, why, sizeof why))
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: mappings[%zu].event_type: \"%.80s%s\" is not a valid pattern: %s",
                     c->name, i, m->event_type, strlen(m->event_type) > 80 ? "..." : "", why);
    if (jb_config_job_type(cfg, m->job_type) == NULL)
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: mappings[%zu].job_type: job type \"%s\" is not registered in job_types",
                     c->name, i, m->job_type);
    if (m->payload != NULL && m->payload[0] != '\0' && m->payload[0] != '/')
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: mappings[%zu].payload: \"%s\" is not a JSON pointer (must start with /)",
                     c->name, i, m->payload);
  }
  return JB_OK;
}

/* Checks that span several keys. */
static jb_err cross_check(ctx *c, jb_config *cfg) {
  static const char *const xtypes[] = {"topic", "direct", "fanout", "headers", NULL};
  static const char *const qtypes[] = {"classic", "quorum", NULL};
  if (!one_of(cfg->amqp.input.exchange_type, xtypes))
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: amqp.input.exchange_type: \"%s\" is not topic, direct, fanout or headers",
                   c->name, cfg->amqp.input.exchange_type);
  if (!one_of(cfg->amqp.output.exchange_type, xtypes))
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: amqp.output.exchange_type: \"%s\" is not topic, direct, fanout or headers",
                   c->name, cfg->amqp.output.exchange_type);
  /* Exchange and queue names are AMQP short strings. */
  const char *ae = cfg->amqp.output.alternate_exchange ? cfg->amqp.output.alternate_exchange : "";
  if (strlen(cfg->amqp.output.exchange) > 255 || strlen(ae) > 255)
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: amqp.output.%s: longer than 255 bytes (AMQP names are short strings)",
                   c->name,
                   strlen(cfg->amqp.output.exchange) > 255 ? "exchange" : "alternate_exchange");
  if (strcmp(cfg->amqp.output.exchange, ae) == 0)
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: amqp.output.alternate_exchange: \"%s\" is the output exchange itself",
                   c->name, cfg->amqp.output.exchange);
  if (!one_of(cfg->amqp.input.queue_type, qtypes))
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: amqp.input.queue_type: \"%s\" is not classic or quorum", c->name,
                   cfg->amqp.input.queue_type);
  if (!valid_identifier(cfg->database.schema))
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: database.schema: \"%s\" must be a lower-case SQL identifier "
                   "([a-z_][a-z0-9_]*)",
                   c->name, cfg->database.schema);
  if (cfg->retry.max_s < cfg->retry.base_s)
    return jb_fail(c->e, JB_ERR_CONFIG, "%s: retry.max_s: %g is below retry.base_s (%g)", c->name,
                   cfg->retry.max_s, cfg->retry.base_s);
  if (cfg->ingest.max_waiting > 0 && cfg->ingest.resume_waiting >= cfg->ingest.max_waiting)
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: ingest.resume_waiting: %d is not below ingest.max_waiting (%d)", c->name,
                   cfg->ingest.resume_waiting, cfg->ingest.max_waiting);
  if (cfg->ingest.max_waiting > 0 && cfg->ingest.resume_waiting == 0)
    cfg->ingest.resume_waiting = (int)((int64_t)cfg->ingest.max_waiting * 8 / 10);
  jb_err rc = check_job_types(c, cfg);
  if (rc != JB_OK) return rc;
  rc = jb_config_check_http(c->name, cfg, c->e);
  if (rc != JB_OK) return rc;
  rc = check_mappings(c, cfg);
  if (rc != JB_OK) return rc;
  rc = jb_schedules_check(c->name, cfg, c->e);
  return rc == JB_OK ? jb_config_check_webhooks(c->name, cfg, c->e) : rc;
}

jb_err jb_config_cross_check(const char *name, jb_config *cfg, jb_error *e) {
  ctx c = {name, e};
  jb_err rc = cross_check(&c, cfg);
  return rc == JB_OK ? jb_retention_config_check(name, cfg, e) : rc;
}
