/* The checks of http.* that span keys or read the environment: tokens (digests, scopes, names),
 * TLS files given in pairs, and no open API on a network address (config_check.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_check.h"

static const char *const scope_names[] = {"read", "write", "admin", NULL};

/* 64 hex digits, lower-cased in place. */
static bool hex_digest(char *s) {
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    if (!isxdigit((unsigned char)s[n])) return false;
    s[n] = (char)tolower((unsigned char)s[n]);
  }
  return n == 64;
}

/* Fills t->sha256 from the environment when sha256_env names a variable. */
static jb_err token_digest(const char *file, size_t i, jb_http_token_cfg *t, jb_error *e) {
  if ((t->sha256 == NULL) == (t->sha256_env == NULL))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.tokens[%zu] (%s): give exactly one of sha256 (the token's hex SHA-256 "
                   "digest) and sha256_env (the environment variable holding it)",
                   file, i, t->name);
  if (t->sha256_env != NULL) {
    const char *v = getenv(t->sha256_env);
    if (v == NULL || *v == '\0')
      return jb_fail(e, JB_ERR_CONFIG,
                     "%s: http.tokens[%zu].sha256_env: the environment variable %s is not set (it "
                     "must hold the hex SHA-256 digest of token %s)",
                     file, i, t->sha256_env, t->name);
    if ((t->sha256 = strdup(v)) == NULL) return jb_fail(e, JB_ERR_NOMEM, "out of memory");
  }
  if (!hex_digest(t->sha256))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.tokens[%zu].%s: the digest of token %s is not 64 hex digits (a "
                   "SHA-256: printf %%s \"$TOKEN\" | sha256sum)",
                   file, i, t->sha256_env != NULL ? "sha256_env" : "sha256", t->name);
  return JB_OK;
}

static jb_err check_token(const char *file, const jb_http_cfg *h, size_t i, jb_error *e) {
  jb_http_token_cfg *t = &h->tokens[i];
  if (t->name[0] == '\0')
    return jb_fail(e, JB_ERR_CONFIG, "%s: http.tokens[%zu].name: must not be empty", file, i);
  for (size_t j = 0; j < i; j++)
    if (strcmp(h->tokens[j].name, t->name) == 0)
      return jb_fail(e, JB_ERR_CONFIG,
                     "%s: http.tokens[%zu].name: \"%s\" is also the name of http.tokens[%zu]", file,
                     i, t->name, j);
  jb_err rc = token_digest(file, i, t, e);
  if (rc != JB_OK) return rc;
  if (t->scopes_len == 0)
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.tokens[%zu].scopes: token %s has no scope (give read, write, admin)",
                   file, i, t->name);
  for (size_t s = 0; s < t->scopes_len; s++) {
    size_t k = 0;
    while (scope_names[k] != NULL && strcmp(scope_names[k], t->scopes[s]) != 0) k++;
    if (scope_names[k] == NULL)
      return jb_fail(e, JB_ERR_CONFIG,
                     "%s: http.tokens[%zu].scopes: \"%s\" is not read, write or admin", file, i,
                     t->scopes[s]);
  }
  return JB_OK;
}

/* A loopback host in http.listen: 127.x.y.z, [::1] or localhost. */
static bool loopback_listen(const char *listen) {
  return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
         strncmp(listen, "localhost:", 10) == 0;
}

jb_err jb_config_check_http(const char *file, jb_config *cfg, jb_error *e) {
  jb_http_cfg *h = &cfg->http;
  for (size_t i = 0; i < h->tokens_len; i++) {
    jb_err rc = check_token(file, h, i, e);
    if (rc != JB_OK) return rc;
  }
  if ((h->tls_cert == NULL) != (h->tls_key == NULL))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.tls.%s: HTTPS needs both http.tls.cert and http.tls.key (PEM files)",
                   file, h->tls_cert == NULL ? "cert" : "key");
  if (h->listen != NULL && h->tokens_len == 0 && !loopback_listen(h->listen))
    return jb_fail(e, JB_ERR_CONFIG,
                   "%s: http.tokens: none is configured, and http.listen (%s) is not a loopback "
                   "address: the Jobs API would be open to the network; add a token (README: "
                   "\"HTTP tokens\") or listen on 127.0.0.1",
                   file, h->listen);
  return JB_OK;
}
