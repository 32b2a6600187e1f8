/* The checks of http.webhooks.* that one key's declaration cannot make (see config_check.h), and
 * the secrets they hold kept out of the config's dump. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_check.h"

static bool in(const char *s, const char *const *set) {
  for (; *set != NULL; set++)
    if (strcmp(s, *set) == 0) return true;
  return false;
}

/* A webhook's name is the last segment of its URL: letters, digits, '.', '_' and '-'. */
static bool url_segment(const char *s) {
  for (const char *p = s; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return false;
  return *s != '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The secret: secret_env (when set in the environment) wins over secret. An HMAC signature
 * needs one; a token webhook has no use for one. The value is never put in a message. */
static jb_err resolve_secret(const char *file, jb_webhook_cfg *w, jb_error *e) {
  bool hmac = strcmp(w->signature, "token") != 0;
  if (!hmac) {
    if (w->secret != NULL || w->secret_env != NULL)
      return jb_fail(e, JB_ERR_CONFIG,
                     "%s: http.webhooks.%s.%s: signature token takes no secret (callers send a "
                     "bearer token from http.tokens)",
                     file, w->name, w->secret != NULL ? "secret" : "secret_env");
    return JB_OK;
  }
  const char *v = w->secret_env != NULL ? getenv(w->secret_env) : NULL;
  if (v != NULL && *v != '\0') {
    char *copy = strdup(v);
    if (copy == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    free(w->secret);
    w->secret = copy;
  }
  if (w->secret != NULL && *w->secret != '\0') return JB_OK;
  if (w->secret_env != NULL)
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s.secret_env: the environment variable %s is not set (or "
                   "empty) and there is no secret: signature %s needs one",
                   file, w->name, w->secret_env, w->signature);
  return jb_fail(e, JB_ERR_CONFIG,
                 "%s: http.webhooks.%s.secret: signature %s needs a secret (secret or secret_env)",
                 file, w->name, w->signature);
}

static jb_err check_one(const char *file, const jb_config *cfg, jb_webhook_cfg *w, jb_error *e) {
  static const char *const modes[] = {"event", "job", NULL};
  static const char *const sigs[] = {"github", "stripe", "hmac", "token", NULL};
  const char *n = w->name;
  if (!url_segment(n))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s: a webhook name is one URL segment of letters, digits, "
                   "'.', '_' and '-'",
                   file, n);
  if (!in(w->mode, modes))
    return jb_fail(e, JB_ERR_CONFIG, "%s: http.webhooks.%s.mode: \"%s\" is not event or job", file,
                   n, w->mode);
  if (!in(w->signature, sigs))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s.signature: \"%s\" is not github, stripe, hmac or token",
                   file, n, w->signature);
  bool hmac = strcmp(w->signature, "hmac") == 0;
  if (hmac && (w->header == NULL || *w->header == '\0'))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s.header: signature hmac needs the header that carries it",
                   file, n);
  if (!hmac && (w->header != NULL || w->prefix != NULL))
    return jb_fail(e, JB_ERR_CONFIG, "%s: http.webhooks.%s.%s: only signature hmac takes it", file,
                   n, w->header != NULL ? "header" : "prefix");
  bool job = strcmp(w->mode, "job") == 0;
  if (job && w->allowed_job_types_len == 0)
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s.allowed_job_types: mode job needs at least one job type",
                   file, n);
  if (!job && w->allowed_job_types_len != 0)
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s.allowed_job_types: only mode job takes it (mode event "
                   "creates what the mappings say)",
                   file, n);
  for (size_t i = 0; i < w->allowed_job_types_len; i++)
    if (jb_config_job_type(cfg, w->allowed_job_types[i]) == NULL)
      return jb_fail(e, JB_ERR_CONFIG,
                     "%s: http.webhooks.%s.allowed_job_types[%zu]: job type \"%s\" is not "
                     "registered in job_types",
                     file, n, i, w->allowed_job_types[i]);
  if (job && w->event_type_header != NULL)
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s.event_type_header: only mode event takes it", file, n);
  if (w->event_type_header != NULL && *w->event_type_header == '\0')
    return jb_fail(e, JB_ERR_CONFIG, "%s: http.webhooks.%s.event_type_header: must not be empty",
                   file, n);
  const char *d = w->dedupe;
  if (d != NULL && d[0] != '/' && !(strncmp(d, "header:", 7) == 0 && d[7] != '\0'))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.webhooks.%s.dedupe: \"%s\" is neither a JSON pointer (/a/b) nor "
                   "header:<Name>",
                   file, n, d);
  return resolve_secret(file, w, e);
}

jb_err jb_config_check_webhooks(const char *name, jb_config *cfg, jb_error *e) {
  for (size_t i = 0; i < cfg->http.webhooks_len; i++) {
    jb_err rc = check_one(name, cfg, &cfg->http.webhooks[i], e);
    if (rc != JB_OK) return rc;
  }
  return JB_OK;
}

void jb_config_redact_webhooks(json_t *dump) {
  json_t *hooks = json_object_get(json_object_get(dump, "http"), "webhooks");
  const char *name;
  json_t *w;
  json_object_foreach(hooks, name, w) {
    if (json_is_string(json_object_get(w, "secret")))
      json_object_set_new(w, "secret", json_string("<redacted>"));
  }
}
