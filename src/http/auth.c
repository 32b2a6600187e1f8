/* Bearer tokens and their scopes (http.tokens). A token is known only by its SHA-256 digest: the
 * presented token is hashed (GnuTLS) and compared with every configured digest in constant time,
 * so neither a match's position nor a near miss shows in the timing. Scopes are independent:
 * a token may do what its scopes list, nothing is implied (list read, write and admin for all).
 * With no token configured (allowed only on a loopback http.listen, config_http.c) every caller
 * may do everything. Tokens are never logged: a refusal logs the token's name, or that none
 * matched. */
#include <gnutls/crypto.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "jobbridge/log.h"

#define DIGEST_LEN 32

static unsigned scope_bit(const char *s) {
  if (strcmp(s, "read") == 0) return JB_SCOPE_READ;
  if (strcmp(s, "write") == 0) return JB_SCOPE_WRITE;
  if (strcmp(s, "admin") == 0) return JB_SCOPE_ADMIN;
  return 0;
}

static const char *scope_name(unsigned scope) {
  if (scope & JB_SCOPE_ADMIN) return "admin";
  if (scope & JB_SCOPE_WRITE) return "write";
  return "read";
}

static unsigned hexval(char c) {
  return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

/* 1 when the digest in hex (64 lower-case digits, checked at load) equals d, without a branch on
 * the bytes. */
static unsigned digest_equal(const char *hex, const unsigned char *d) {
  unsigned diff = 0;
  for (size_t i = 0; i < DIGEST_LEN; i++)
    diff |= (unsigned)d[i] ^ (hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
  return (unsigned)1 & ((diff - 1) >> 8);
}

/* The token of "Authorization: Bearer <token>", or NULL. *len gets its length. */
static const char *bearer(const jb_http_req *req, size_t *len) {
  const char *h = jb_http_header(req, "Authorization");
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) return NULL;
  h += 7;
  while (*h == ' ') h++;
  size_t n = strcspn(h, " \t");
  if (n == 0) return NULL;
  *len = n;
  return h;
}

/* The configured token the request presents, or NULL. Every digest is compared. */
static const jb_http_token_cfg *find_token(const jb_http_req *req, bool *presented) {
  const jb_http_cfg *c = &req->deps->cfg->http;
  size_t len = 0;
  const char *tok = bearer(req, &len);
  *presented = tok != NULL;
  if (tok == NULL) return NULL;
  unsigned char d[DIGEST_LEN];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, tok, len, d) != 0) return NULL;
  const jb_http_token_cfg *found = NULL;
  for (size_t i = 0; i < c->tokens_len; i++) {
    unsigned eq = digest_equal(c->tokens[i].sha256, d);
    if (eq && found == NULL) found = &c->tokens[i];
  }
  return found;
}

static void refuse_401(jb_http_req *req, jb_http_resp *resp, bool presented) {
  jb_log(JB_LOG_WARN, "http request refused: no valid token", "method", req->method, "path",
         req->path, "why", presented ? "the bearer token matches no http.tokens entry" : "no token",
         JB_LOG_END);
  jb_http_problem(resp, 401, "Authorization",
                  presented ? "the bearer token is not valid"
                            : "this route needs a token: send Authorization: Bearer <token>");
  jb_http_add_header(resp, "WWW-Authenticate",
                     presented ? "Bearer error=\"invalid_token\"" : "Bearer");
}

bool jb_http_authorize(jb_http_req *req, unsigned scope, jb_http_resp *resp) {
  const jb_http_cfg *c = &req->deps->cfg->http;
  if (c->tokens_len == 0) { /* loopback only (config_http.c) */
    req->caller = "anonymous";
    req->scopes = JB_SCOPE_READ | JB_SCOPE_WRITE | JB_SCOPE_ADMIN;
    return true;
  }
  bool presented = false;
  const jb_http_token_cfg *t = find_token(req, &presented);
  if (t == NULL) {
    refuse_401(req, resp, presented);
    return false;
  }
  unsigned have = 0;
  for (size_t i = 0; i < t->scopes_len; i++) have |= scope_bit(t->scopes[i]);
  req->caller = t->name;
  req->scopes = have;
  if ((have & scope) == scope) return true;
  jb_log(JB_LOG_WARN, "http request refused: scope missing", "token", t->name, "method",
         req->method, "path", req->path, "scope", scope_name(scope & ~have), JB_LOG_END);
  jb_http_problem(resp, 403, "Authorization", "token %s lacks the %s scope this route needs",
                  t->name, scope_name(scope & ~have));
  return false;
}
