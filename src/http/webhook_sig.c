/* Webhook signatures: GitHub (X-Hub-Signature-256), Stripe (Stripe-Signature, timestamped) and
 * a plain HMAC in a header of the webhook's choosing. HMAC-SHA256 by GnuTLS; the digests are
 * compared in constant time (gnutls_memcmp). Nothing here logs, or puts a secret in `why`. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/webhook.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool jb_wh_hex32(const char *hex, size_t len, unsigned char out[32]) {
  if (len != 64) return false;
  for (size_t i = 0; i < 32; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (unsigned char)(hi * 16 + lo);
  }
  return true;
}

bool jb_wh_stripe_parse(const char *hdr, jb_wh_stripe_sig *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  bool have_t = false;
  const char *p = hdr;
  while (*p != '\0') {
    size_t n = strcspn(p, ",");
    const char *eq = memchr(p, '=', n);
    if (eq == NULL) {
      snprintf(why, whylen, "Stripe-Signature: a part has no '=' (expected t=...,v1=...)");
      return false;
    }
    size_t kl = (size_t)(eq - p), vl = n - kl - 1;
    const char *v = eq + 1;
    if (kl == 1 && p[0] == 't') {
      int64_t t = 0;
      size_t i = 0;
      for (; i < vl && i < 15 && v[i] >= '0' && v[i] <= '9'; i++) t = t * 10 + (v[i] - '0');
      if (vl == 0 || i != vl) {
        snprintf(why, whylen, "Stripe-Signature: t is not a Unix time in seconds");
        return false;
      }
      out->t = t;
      have_t = true;
    } else if (kl == 2 && p[0] == 'v' && p[1] == '1') {
      if (out->nv1 == JB_WH_STRIPE_MAX_V1) {
        snprintf(why, whylen, "Stripe-Signature: more than %d v1 signatures", JB_WH_STRIPE_MAX_V1);
        return false;
      }
      out->v1[out->nv1] = v;
      out->v1_len[out->nv1++] = vl;
    }
    p += n;
    if (*p == ',') p++;
  }
  if (!have_t || out->nv1 == 0) {
    snprintf(why, whylen, "Stripe-Signature: no %s", have_t ? "v1 signature" : "t= timestamp");
    return false;
  }
  return true;
}

/* HMAC-SHA256 of prefix (may be NULL) then body, with the webhook's secret. */
static bool hmac(const char *secret, const char *prefix, const char *body, size_t len,
                 unsigned char out[32]) {
  gnutls_hmac_hd_t h;
  if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, secret, strlen(secret)) < 0) return false;
  bool ok = (prefix == NULL || gnutls_hmac(h, prefix, strlen(prefix)) >= 0) &&
            gnutls_hmac(h, body, len) >= 0;
  gnutls_hmac_deinit(h, out);
  return ok;
}

/* The hex digest in header `name` after `prefix` equals want (constant time). */
static bool hex_matches(const char *got, const char *name, const char *prefix,
                        const unsigned char want[32], char *why, size_t whylen) {
  if (got == NULL) {
    snprintf(why, whylen, "no %s header", name);
    return false;
  }
  size_t pl = strlen(prefix);
  if (strncmp(got, prefix, pl) != 0) {
    snprintf(why, whylen, "%s does not start with \"%s\"", name, prefix);
    return false;
  }
  unsigned char sig[32];
  if (!jb_wh_hex32(got + pl, strlen(got + pl), sig)) {
    snprintf(why, whylen, "%s: the signature is not 64 hex digits", name);
    return false;
  }
  if (gnutls_memcmp(sig, want, 32) != 0) {
    snprintf(why, whylen, "%s does not match the body (wrong secret, or the body was changed)",
             name);
    return false;
  }
  return true;
}

static bool verify_stripe(const jb_webhook_cfg *w, const char *got, const char *body, size_t len,
                          int64_t now_s, char *why, size_t whylen) {
  jb_wh_stripe_sig sig;
  if (got == NULL) {
    snprintf(why, whylen, "no Stripe-Signature header");
    return false;
  }
  if (!jb_wh_stripe_parse(got, &sig, why, whylen)) return false;
  int64_t off = now_s - sig.t;
  if (off > w->tolerance_s || -off > w->tolerance_s) {
    snprintf(why, whylen,
             "Stripe-Signature: timestamp %lld is %lld s from now, beyond tolerance_s (%d)",
             (long long)sig.t, (long long)(off < 0 ? -off : off), w->tolerance_s);
    return false;
  }
  char t[32];
  snprintf(t, sizeof t, "%lld.", (long long)sig.t);
  unsigned char want[32], one[32];
  if (!hmac(w->secret, t, body, len, want)) {
    snprintf(why, whylen, "cannot compute the HMAC");
    return false;
  }
  bool match = false;
  for (size_t i = 0; i < sig.nv1; i++) /* every one compared: no early exit */
    match |= jb_wh_hex32(sig.v1[i], sig.v1_len[i], one) && gnutls_memcmp(one, want, 32) == 0;
  if (!match)
    snprintf(why, whylen,
             "Stripe-Signature: no v1 signature matches the body (wrong secret, or the body was "
             "changed)");
  return match;
}

bool jb_wh_verify(const jb_webhook_cfg *w, jb_wh_header_fn hdr, void *ctx, const char *body,
                  size_t len, int64_t now_s, char *why, size_t whylen) {
  if (w->secret == NULL || *w->secret == '\0') {
    snprintf(why, whylen, "the webhook has no secret");
    return false;
  }
  if (strcmp(w->signature, "stripe") == 0)
    return verify_stripe(w, hdr(ctx, "Stripe-Signature"), body, len, now_s, why, whylen);
  unsigned char want[32];
  if (!hmac(w->secret, NULL, body, len, want)) {
    snprintf(why, whylen, "cannot compute the HMAC");
    return false;
  }
  if (strcmp(w->signature, "github") == 0)
    return hex_matches(hdr(ctx, "X-Hub-Signature-256"), "X-Hub-Signature-256", "sha256=", want, why,
                       whylen);
  if (strcmp(w->signature, "hmac") == 0)
    return hex_matches(hdr(ctx, w->header), w->header, w->prefix ? w->prefix : "", want, why,
                       whylen);
  snprintf(why, whylen, "signature %s is not an HMAC signature", w->signature);
  return false;
}
