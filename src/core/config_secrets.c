/* The `*_file` secrets of the config (config_file.h): URLs with passwords read from files, such
 * as a Kubernetes Secret mounted as a volume, instead of written into the config. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_file.h"

/* Reads `path` for key into *text, trimmed of surrounding white space; never empty. A secret is
 * small: more than 64 KiB is refused. */
static jb_err read_secret(const char *name, const char *key, const char *path, char **text,
                          jb_error *e) {
  enum { MAX = 65536 };
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return jb_fail(e, JB_ERR_IO, "%s: %s: cannot open %s: %s", name, key, path, strerror(errno));
  char *s = malloc(MAX + 1);
  if (s == NULL) {
    fclose(f);
    return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  size_t len = fread(s, 1, MAX + 1, f);
  bool failed = ferror(f);
  int err = errno;
  fclose(f);
  if (failed || len > MAX) {
    free(s);
    return failed
               ? jb_fail(e, JB_ERR_IO, "%s: %s: cannot read %s: %s", name, key, path, strerror(err))
               : jb_fail(e, JB_ERR_CONFIG, "%s: %s: %s is over 64 KiB: not a URL", name, key, path);
  }
  s[len] = '\0';
  while (len > 0 && isspace((unsigned char)s[len - 1])) s[--len] = '\0';
  size_t lead = strspn(s, " \t\r\n");
  memmove(s, s + lead, len - lead + 1);
  if (*s == '\0') {
    free(s);
    return jb_fail(e, JB_ERR_CONFIG, "%s: %s: %s holds no URL (empty)", name, key, path);
  }
  *text = s;
  return JB_OK;
}

/* Splits text at newlines and commas into a new NULL-ended list (empty pieces skipped). */
static jb_err split_urls(const char *name, const char *path, char *text, char ***out, size_t *n,
                         jb_error *e) {
  size_t cap = 1;
  for (const char *p = text; *p; p++) cap += *p == ',' || *p == '\n';
  char **v = calloc(cap + 1, sizeof *v);
  if (v == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  size_t k = 0;
  char *save = NULL;
  for (char *tok = strtok_r(text, ",\n", &save); tok != NULL; tok = strtok_r(NULL, ",\n", &save)) {
    while (isspace((unsigned char)*tok)) tok++;
    size_t l = strlen(tok);
    while (l > 0 && isspace((unsigned char)tok[l - 1])) tok[--l] = '\0';
    if (l == 0) continue;
    if ((v[k] = strdup(tok)) == NULL) {
      for (size_t i = 0; i < k; i++) free(v[i]);
      free(v);
      return jb_fail(e, JB_ERR_NOMEM, "out of memory");
    }
    k++;
  }
  if (k == 0) {
    free(v);
    return jb_fail(e, JB_ERR_CONFIG, "%s: amqp.url_file: %s lists no URL", name, path);
  }
  *out = v;
  *n = k;
  return JB_OK;
}

jb_err jb_config_read_secrets(const char *name, jb_config *cfg, jb_error *e) {
  char *text = NULL;
  if (cfg->database.url_file != NULL) {
    jb_err rc = read_secret(name, "database.url_file", cfg->database.url_file, &text, e);
    if (rc != JB_OK) return rc;
    free(cfg->database.url);
    cfg->database.url = text;
  }
  if (cfg->amqp.url_file != NULL) {
    jb_err rc = read_secret(name, "amqp.url_file", cfg->amqp.url_file, &text, e);
    if (rc != JB_OK) return rc;
    char **urls = NULL;
    size_t n = 0;
    rc = split_urls(name, cfg->amqp.url_file, text, &urls, &n, e);
    free(text);
    if (rc != JB_OK) return rc;
    for (size_t i = 0; i < cfg->amqp.urls_len; i++) free(cfg->amqp.urls[i]);
    free(cfg->amqp.urls);
    cfg->amqp.urls = urls;
    cfg->amqp.urls_len = n;
  }
  return JB_OK;
}
