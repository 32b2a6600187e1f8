/* Config loading: every key declared once in the tables below (path, type, default, bounds,
 * reloadable, doc); loading, defaults, validation with key paths, and the effective-config dump
 * are all driven by those tables. */
#include "jobbridge/config.h"

#include "core/config_check.h"
#include "core/config_file.h"
#include "core/config_keys.h"

#include "jobbridge/topic.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/log.h"

/* Parsing context: the file name for messages. */
typedef struct ctx {
  const char *name;
  jb_error *e;
} ctx;

static char **strv_free(char **v) {
  if (v != NULL)
    for (char **p = v; *p != NULL; p++) free(*p);
  free(v);
  return NULL;
}

static void free_table(const table *t, void *target);

/* The elements of an array or map of tables are held in a field of the element's own pointer
 * type (jb_mapping *, jb_job_type_cfg *): read and written through memcpy, never through an
 * lvalue of another pointer type. */
static char *elements_get(const key_decl *k, const char *base) {
  void *p;
  memcpy(&p, base + k->off, sizeof p);
  return p;
}

static void elements_set(const key_decl *k, char *base, void *p) {
  memcpy(base + k->off, &p, sizeof p);
}

/* Frees the elements of an array or map of tables and the array itself. */
static void free_elements(const key_decl *k, char *base) {
  char *elems = elements_get(k, base);
  size_t *len = (size_t *)(base + k->len_off);
  for (size_t i = 0; i < *len; i++) {
    char *elem = elems + i * k->elem_size;
    if (k->type == K_MAP) free(*(char **)(elem + k->name_off));
    free_table(k->sub, elem);
  }
  free(elems);
  elements_set(k, base, NULL);
  *len = 0;
}

static void free_value(const key_decl *k, void *target) {
  char *base = target;
  switch (k->type) {
    case K_STRING:
    case K_NSTRING: {
      char **s = (char **)(base + k->off);
      free(*s);
      *s = NULL;
      break;
    }
    case K_STRINGS:
    case K_STRLIST:
      *(char ***)(base + k->off) = strv_free(*(char ***)(base + k->off));
      *(size_t *)(base + k->len_off) = 0;
      break;
    case K_OBJECT: {
      json_t **o = (json_t **)(base + k->off);
      json_decref(*o);
      *o = NULL;
      break;
    }
    case K_ARRAY:
    case K_MAP:
      free_elements(k, base);
      break;
    default:
      break;
  }
}

static void free_table(const table *t, void *target) {
  for (size_t i = 0; i < t->n; i++) free_value(&t->keys[i], target);
}

static const char *type_word(key_type t) {
  switch (t) {
    case K_STRING:
      return "a string";
    case K_NSTRING:
      return "a string or null";
    case K_INT:
      return "an integer";
    case K_NUMBER:
      return "a number";
    case K_BOOL:
      return "true or false";
    case K_STRINGS:
      return "an array of strings";
    case K_STRLIST:
      return "a string or an array of strings";
    case K_OBJECT:
      return "a JSON object";
    case K_ARRAY:
      return "an array of objects";
    case K_MAP:
      return "an object of objects";
  }
  return "?";
}

/* What key k expects, for messages: its type, with the element's name for tables of elements
 * ("an array of mapping objects", "an object of job types"). */
static const char *type_phrase(const key_decl *k, char *buf, size_t len) {
  if (k->type == K_ARRAY)
    snprintf(buf, len, "an array of %s objects", k->sub->noun);
  else if (k->type == K_MAP)
    snprintf(buf, len, "an object of %ss", k->sub->noun);
  else
    return type_word(k->type);
  return buf;
}

static jb_err apply_table(ctx *c, const table *t, json_t *obj, const char *shown, void *target);

/* Sets an array (K_ARRAY) or map (K_MAP) of tables from v, each element applied with k->sub.
 * Elements are counted in *len as they are started, so a failure frees what was filled. */

/* K_STRINGS / K_STRLIST: an array of strings (K_STRLIST: or one string; never empty, nor any of
 * its strings) into a NULL-terminated char ** and its length. */
static jb_err set_strings(ctx *c, const key_decl *k, json_t *v, const char *shown, char *base) {
  json_t *one = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
  if (one == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  size_t n = json_array_size(one);
  bool list = k->type == K_STRLIST;
  jb_err rc = list && n == 0 ? jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: must not be an empty list",
                                       c->name, shown)
                             : JB_OK;
  for (size_t i = 0; rc == JB_OK && i < n; i++) {
    json_t *x = json_array_get(one, i);
    if (!json_is_string(x) || (list && json_string_length(x) == 0))
      rc = jb_fail(c->e, JB_ERR_CONFIG, "%s: %s[%zu]: expected a%s string", c->name, shown, i,
                   list ? " non-empty" : "");
  }
  char **strv = rc == JB_OK ? calloc(n + 1, sizeof *strv) : NULL;
  if (rc == JB_OK && strv == NULL) rc = jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  for (size_t i = 0; rc == JB_OK && i < n; i++)
    if ((strv[i] = strdup(json_string_value(json_array_get(one, i)))) == NULL)
      rc = jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  json_decref(one);
  if (rc != JB_OK) {
    strv_free(strv);
    return rc;
  }
  char ***field = (char ***)(base + k->off);
  strv_free(*field);
  *field = strv;
  *(size_t *)(base + k->len_off) = n;
  return JB_OK;
}

static jb_err set_elements(ctx *c, const key_decl *k, json_t *v, const char *shown, char *base) {
  free_elements(k, base);
  size_t n = k->type == K_ARRAY ? json_array_size(v) : json_object_size(v);
  size_t *len = (size_t *)(base + k->len_off);
  char *elems = calloc(n ? n : 1, k->elem_size);
  if (elems == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  elements_set(k, base, elems);
  void *iter = k->type == K_MAP ? json_object_iter(v) : NULL;
  for (size_t i = 0; i < n; i++) {
    char show[256];
    const char *name = iter ? json_object_iter_key(iter) : NULL;
    json_t *item = iter ? json_object_iter_value(iter) : json_array_get(v, i);
    if (k->type == K_ARRAY)
      snprintf(show, sizeof show, "%s[%zu]", shown, i);
    else
      snprintf(show, sizeof show, "%s.%s", shown, name);
    if (!json_is_object(item))
      return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: expected a %s object", c->name, show,
                     k->sub->noun);
    if (name != NULL && *name == '\0')
      return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: a %s name is empty", c->name, shown,
                     k->sub->noun);
    char *elem = elems + i * k->elem_size;
    *len = i + 1;
    if (name != NULL) {
      char *copy = strdup(name);
      if (copy == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
      *(char **)(elem + k->name_off) = copy;
    }
    jb_err rc = apply_table(c, k->sub, item, show, elem);
    if (rc != JB_OK) return rc;
    if (iter != NULL) iter = json_object_iter_next(v, iter);
  }
  return JB_OK;
}

/* Stores v (already JSON) for key k into target; `shown` is the user-visible key path. */
static jb_err set_value(ctx *c, const key_decl *k, json_t *v, const char *shown, void *target) {
  char *base = target;
  char got[64];
  char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  snprintf(got, sizeof got, "%s", dump ? dump : "?");
  free(dump);
  switch (k->type) {
    case K_STRING:
    case K_NSTRING:
      if (!json_is_string(v) &&
          !(json_is_null(v) && ((k->def && strcmp(k->def, "null") == 0) || k->type == K_NSTRING)))
        goto wrong_type;
      /* Only keys whose default is null may be empty (an empty pointer selects the body). */
      if (json_is_string(v) && json_string_length(v) == 0 &&
          !(k->def != NULL && strcmp(k->def, "null") == 0))
        return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: must not be empty", c->name, shown);
      free_value(k, target);
      if (json_is_string(v)) {
        char *s = strdup(json_string_value(v));
        if (s == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
        *(char **)(base + k->off) = s;
      }
      return JB_OK;
    case K_INT:
    case K_NUMBER: {
      if (k->type == K_NUMBER && json_is_null(v) && k->def && strcmp(k->def, "null") == 0) {
        *(double *)(base + k->off) = NAN;
        return JB_OK;
      }
      if (k->type == K_INT ? !json_is_integer(v) : !json_is_number(v)) goto wrong_type;
      double d = json_number_value(v);
      if (d < k->min || d > k->max)
        return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: %s is out of range (%g to %g)", c->name, shown,
                       got, k->min, k->max);
      if (k->type == K_INT)
        *(int *)(base + k->off) = (int)json_integer_value(v);
      else
        *(double *)(base + k->off) = d;
      return JB_OK;
    }
    case K_BOOL:
      if (!json_is_boolean(v)) goto wrong_type;
      *(bool *)(base + k->off) = json_is_true(v);
      return JB_OK;
    case K_STRINGS:
    case K_STRLIST:
      if (!json_is_array(v) && !(k->type == K_STRLIST && json_is_string(v))) goto wrong_type;
      return set_strings(c, k, v, shown, base);
    case K_OBJECT:
      if (!json_is_object(v) && !json_is_null(v)) goto wrong_type;
      free_value(k, target);
      *(json_t **)(base + k->off) = json_is_null(v) ? NULL : json_incref(v);
      return JB_OK;
    case K_ARRAY:
    case K_MAP:
      if (k->type == K_ARRAY ? !json_is_array(v) : !json_is_object(v)) goto wrong_type;
      return set_elements(c, k, v, shown, base);
  }
wrong_type:;
  char phrase[96];
  return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: expected %s, got %s", c->name, shown,
                 type_phrase(k, phrase, sizeof phrase), got);
}

static jb_err apply_defaults(ctx *c, const table *t, void *target) {
  for (size_t i = 0; i < t->n; i++) {
    const key_decl *k = &t->keys[i];
    if (k->def == NULL) continue;
    json_t *v = json_loads(k->def, JSON_DECODE_ANY, NULL);
    if (v == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "bad default for %s", k->path);
    jb_err rc = set_value(c, k, v, k->path, target);
    json_decref(v);
    if (rc != JB_OK) return rc;
  }
  return JB_OK;
}

/* Is `prefix` (ending in '.') the start of some declared key path, i.e. a section? */
static bool is_section(const table *t, const char *prefix) {
  size_t len = strlen(prefix);
  for (size_t i = 0; i < t->n; i++)
    if (strncmp(t->keys[i].path, prefix, len) == 0) return true;
  return false;
}

/* Applies every member of obj (a section at declared path `rel`, shown as `shown`). */
static jb_err apply_members(ctx *c, const table *t, json_t *obj, const char *rel, const char *shown,
                            void *target, bool *seen) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char path[256], show[320];
    snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "." : "", key);
    snprintf(show, sizeof show, "%s%s%s", shown, *shown ? "." : "", key);
    const key_decl *k = NULL;
    for (size_t i = 0; i < t->n && k == NULL; i++)
      if (strcmp(t->keys[i].path, path) == 0) k = &t->keys[i];
    if (k != NULL) {
      seen[k - t->keys] = true;
      jb_err rc = set_value(c, k, v, show, target);
      if (rc != JB_OK) return rc;
      continue;
    }
    char sect[260];
    snprintf(sect, sizeof sect, "%s.", path);
    if (!is_section(t, sect))
      return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: unknown key", c->name, show);
    if (!json_is_object(v))
      return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: expected an object", c->name, show);
    jb_err rc = apply_members(c, t, v, path, show, target, seen);
    if (rc != JB_OK) return rc;
  }
  return JB_OK;
}

static jb_err apply_table(ctx *c, const table *t, json_t *obj, const char *shown, void *target) {
  bool seen[64] = {false};
  jb_err rc = apply_defaults(c, t, target);
  if (rc == JB_OK) rc = apply_members(c, t, obj, "", shown, target, seen);
  for (size_t i = 0; rc == JB_OK && i < t->n; i++)
    if (t->keys[i].def == NULL && !seen[i])
      rc = jb_fail(c->e, JB_ERR_CONFIG, "%s: %s%s%s: required key is missing", c->name, shown,
                   *shown ? "." : "", t->keys[i].path);
  return rc;
}

/* Compiles the mapping table's patterns into the index ingest matches event types with, once
 * per load (a reload loads a new config). */
static jb_err compile_mappings(ctx *c, jb_config *cfg) {
  const char **patterns = malloc((cfg->mappings_len ? cfg->mappings_len : 1) * sizeof *patterns);
  if (patterns == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < cfg->mappings_len; i++) patterns[i] = cfg->mappings[i].event_type;
  jb_err rc = jb_topic_index_new(patterns, cfg->mappings_len, &cfg->mapping_index, c->e);
  if (rc == JB_OK)
    cfg->mapping_patterns = patterns;
  else
    free(patterns);
  return rc;
}

static jb_err env_override(ctx *c, char **field, const char *var) {
  const char *v = getenv(var);
  if (v == NULL || *v == '\0') return JB_OK;
  char *s = strdup(v);
  if (s == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  free(*field);
  *field = s;
  return JB_OK;
}

/* The same for a list: the variable's value split at commas (a URL holds no bare comma). */
static jb_err env_override_list(ctx *c, char ***field, size_t *len, const char *var) {
  const char *v = getenv(var);
  if (v == NULL || *v == '\0') return JB_OK;
  size_t n = 1;
  for (const char *p = v; *p; p++) n += *p == ',';
  char **strv = calloc(n + 1, sizeof *strv);
  if (strv == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  size_t i = 0;
  for (const char *p = v; i < n; i++) {
    size_t l = strcspn(p, ",");
    if (l == 0) {
      strv_free(strv);
      return jb_fail(c->e, JB_ERR_CONFIG, "%s: %s: an empty URL in the comma-separated list",
                     c->name, var);
    }
    if ((strv[i] = strndup(p, l)) == NULL) {
      strv_free(strv);
      return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
    }
    p += l + (p[l] == ',');
  }
  strv_free(*field);
  *field = strv;
  *len = n;
  return JB_OK;
}

/* A URL that cannot be read is refused here (a URI must use one of `schemes`; a database URL
 * may also be a keyword/value string), before anything connects: a client library would
 * otherwise misread it (an unencoded '@' makes part of a password the host name) or quote it
 * back in its error, and `run` would retry a config error forever. The messages name the setting
 * the URL came from and never the URL. */
static jb_err check_url(ctx *c, const char *url, const char *key, const char *var,
                        const char *const *schemes, bool uri_only) {
  const char *v = getenv(var);
  char from[96];
  if (v != NULL && *v != '\0')
    snprintf(from, sizeof from, "%s (from %s)", key, var);
  else
    snprintf(from, sizeof from, "%s", key);
  bool uri = strstr(url, "://") != NULL && strstr(url, "://") < url + strcspn(url, "= \t");
  if (uri || uri_only) {
    bool known = false;
    for (const char *const *s = schemes; *s != NULL; s++)
      known = known || strncmp(url, *s, strlen(*s)) == 0;
    if (!known)
      return jb_fail(c->e, JB_ERR_CONFIG,
                     "%s: %s: the URL must start with %s or %s (the URL is not shown: it may hold "
                     "a password)",
                     c->name, from, schemes[0], schemes[1]);
  }
  const char *problem = jb_url_problem(url);
  if (problem != NULL)
    return jb_fail(c->e, JB_ERR_CONFIG,
                   "%s: %s: the URL %s (the URL is not shown: it may hold a password)", c->name,
                   from, problem);
  return JB_OK;
}

static jb_err load_root(ctx *c, json_t *root, jb_config **out) {
  if (!json_is_object(root))
    return jb_fail(c->e, JB_ERR_CONFIG, "%s: the top level must be a JSON object", c->name);
  jb_config *cfg = calloc(1, sizeof *cfg);
  if (cfg == NULL) return jb_fail(c->e, JB_ERR_NOMEM, "out of memory");
  jb_err rc = apply_table(c, &jb_config_root, root, "", cfg);
  if (rc == JB_OK) rc = jb_config_read_secrets(c->name, cfg, c->e);
  if (rc == JB_OK)
    rc = env_override_list(c, &cfg->amqp.urls, &cfg->amqp.urls_len, "JOBBRIDGE_AMQP_URL");
  if (rc == JB_OK) rc = env_override(c, &cfg->database.url, "JOBBRIDGE_DATABASE_URL");
  static const char *const amqp_schemes[] = {"amqp://", "amqps://", NULL};
  static const char *const pg_schemes[] = {"postgresql://", "postgres://", NULL};
  for (size_t i = 0; rc == JB_OK && i < cfg->amqp.urls_len; i++) {
    char key[32] = "amqp.url";
    if (cfg->amqp.urls_len > 1) snprintf(key, sizeof key, "amqp.url[%zu]", i);
    rc = check_url(c, cfg->amqp.urls[i], key, "JOBBRIDGE_AMQP_URL", amqp_schemes, true);
  }
  if (rc == JB_OK) cfg->amqp.url = cfg->amqp.urls[0];
  if (rc == JB_OK)
    rc = check_url(c, cfg->database.url, "database.url", "JOBBRIDGE_DATABASE_URL", pg_schemes,
                   false);
  if (rc == JB_OK) rc = jb_config_cross_check(c->name, cfg, c->e);
  if (rc == JB_OK) rc = compile_mappings(c, cfg);
  if (rc != JB_OK) {
    jb_config_free(cfg);
    return rc;
  }
  *out = cfg;
  return JB_OK;
}

jb_err jb_config_parse(const char *text, const char *name, jb_config **out, jb_error *e) {
  ctx c = {name, e};
  json_error_t jerr;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL)
    return jb_fail(e, JB_ERR_CONFIG, "%s: line %d, column %d: %s", name, jerr.line, jerr.column,
                   jerr.text);
  jb_err rc = load_root(&c, root, out);
  json_decref(root);
  return rc;
}

jb_err jb_config_load(const char *path, jb_config **out, jb_error *e) {
  ctx c = {path, e};
  char *text;
  size_t len = 0;
  jb_err rc = jb_config_read_file(path, &text, &len, e);
  if (rc != JB_OK) return rc;
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (root == NULL)
    return jb_fail(e, JB_ERR_CONFIG, "%s: line %d, column %d: %s", path, jerr.line, jerr.column,
                   jerr.text);
  rc = load_root(&c, root, out);
  json_decref(root);
  return rc;
}

void jb_config_free(jb_config *cfg) {
  if (cfg == NULL) return;
  jb_topic_index_free(cfg->mapping_index);
  free(cfg->mapping_patterns);
  free_table(&jb_config_root, cfg);
  free(cfg);
}

const jb_job_type_cfg *jb_config_job_type(const jb_config *cfg, const char *name) {
  for (size_t i = 0; name != NULL && i < cfg->job_types_len; i++)
    if (strcmp(cfg->job_types[i].name, name) == 0) return &cfg->job_types[i];
  return NULL;
}

jb_retry_policy jb_config_retry_policy(const jb_config *cfg, const char *job_type) {
  const jb_job_type_cfg *jt = jb_config_job_type(cfg, job_type);
  if (jt != NULL) return jt->retry;
  return cfg->retry;
}

/* Puts value v at dotted path in obj, creating sections. Steals v. */
static void put_path(json_t *obj, const char *path, json_t *v) {
  const char *dot;
  while ((dot = strchr(path, '.')) != NULL) {
    char sect[128];
    snprintf(sect, sizeof sect, "%.*s", (int)(dot - path), path);
    json_t *child = json_object_get(obj, sect);
    if (child == NULL) {
      child = json_object();
      json_object_set_new(obj, sect, child);
    }
    obj = child;
    path = dot + 1;
  }
  json_object_set_new(obj, path, v);
}

static json_t *table_to_json(const table *t, const void *target);

static json_t *value_to_json(const key_decl *k, const void *target) {
  const char *base = target;
  switch (k->type) {
    case K_STRING:
    case K_NSTRING: {
      const char *s = *(char *const *)(base + k->off);
      return s ? json_string(s) : json_null();
    }
    case K_INT:
      return json_integer(*(const int *)(base + k->off));
    case K_NUMBER: {
      double d = *(const double *)(base + k->off);
      return isnan(d) ? json_null() : json_real(d);
    }
    case K_BOOL:
      return json_boolean(*(const bool *)(base + k->off));
    case K_STRINGS:
    case K_STRLIST: {
      json_t *a = json_array();
      char *const *v = *(char **const *)(base + k->off);
      for (; v && *v; v++) json_array_append_new(a, json_string(*v));
      return a;
    }
    case K_OBJECT: {
      json_t *o = *(json_t *const *)(base + k->off);
      return o ? json_deep_copy(o) : json_null();
    }
    case K_ARRAY:
    case K_MAP: {
      const char *elems = elements_get(k, base);
      size_t n = *(const size_t *)(base + k->len_off);
      json_t *all = k->type == K_ARRAY ? json_array() : json_object();
      for (size_t i = 0; i < n; i++) {
        const char *elem = elems + i * k->elem_size;
        json_t *one = table_to_json(k->sub, elem);
        if (k->type == K_ARRAY)
          json_array_append_new(all, one);
        else
          json_object_set_new(all, *(char *const *)(elem + k->name_off), one);
      }
      return all;
    }
  }
  return json_null();
}

static json_t *table_to_json(const table *t, const void *target) {
  json_t *o = json_object();
  for (size_t i = 0; i < t->n; i++)
    put_path(o, t->keys[i].path, value_to_json(&t->keys[i], target));
  return o;
}

json_t *jb_config_to_json(const jb_config *cfg) {
  json_t *o = table_to_json(&jb_config_root, cfg);
  char buf[1024];
  json_t *urls = json_array();
  for (size_t i = 0; i < cfg->amqp.urls_len; i++)
    json_array_append_new(urls, json_string(jb_redact_url(cfg->amqp.urls[i], buf, sizeof buf)));
  if (json_array_size(urls) == 1) {
    json_t *first = json_incref(json_array_get(urls, 0));
    json_decref(urls);
    urls = first;
  }
  json_object_set_new(json_object_get(o, "amqp"), "url", urls);
  json_object_set_new(json_object_get(o, "database"), "url",
                      json_string(jb_redact_url(cfg->database.url, buf, sizeof buf)));
  jb_config_redact_webhooks(o);
  /* An http job type's signing secret is a password, and its headers may hold credentials
   * (Authorization): both are shown only as set. */
  json_t *jts = json_object_get(o, "job_types");
  for (size_t i = 0; i < cfg->job_types_len; i++) {
    json_t *jt = json_object_get(jts, cfg->job_types[i].name);
    if (cfg->job_types[i].signing_secret != NULL)
      json_object_set_new(jt, "signing_secret", json_string("(set)"));
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(jt, "headers"), name, v) {
      json_object_set_new(json_object_get(jt, "headers"), name, json_string("(set)"));
    }
  }
  if (cfg->http.progress_key != NULL) /* a credential: shown only as set */
    json_object_set_new(json_object_get(o, "http"), "progress_key", json_string("***"));
  return o;
}

size_t jb_config_keys(jb_config_key_info *out, size_t max) {
  /* The root's keys, then those of each table of elements (mappings[].*, job_types.*.*). */
  const table *tables[8] = {&jb_config_root};
  size_t nt = 1;
  for (size_t i = 0; i < jb_config_root.n; i++)
    if (jb_config_root.keys[i].sub != NULL && nt < NKEYS(tables))
      tables[nt++] = jb_config_root.keys[i].sub;
  size_t n = 0;
  for (size_t t = 0; t < nt; t++) {
    for (size_t i = 0; i < tables[t]->n; i++, n++) {
      if (n >= max) continue;
      const key_decl *k = &tables[t]->keys[i];
      out[n] = (jb_config_key_info){.doc = k->doc, .reloadable = k->reloadable};
      snprintf(out[n].path, sizeof out[n].path, "%s%s", tables[t]->shown, k->path);
    }
  }
  return n;
}
