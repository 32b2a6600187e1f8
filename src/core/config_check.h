/* The checks of a loaded config that span several keys. Private to src/core. */
#ifndef JB_CORE_CONFIG_CHECK_H
#define JB_CORE_CONFIG_CHECK_H

#include "jobbridge/config.h"
#include "jobbridge/err.h"

/* Checks what one key's declaration cannot (enumerated values, names, a mapping's job type is
 * registered, env names) and fills each job type's unset retry.* from the global retry.*.
 * JB_ERR_CONFIG with e->msg naming `name` (the file) and the key path at fault. */
jb_err jb_config_cross_check(const char *name, jb_config *cfg, jb_error *e) JB_MUST_CHECK;

/* http.*: tokens (one of sha256 / sha256_env, the latter read from the environment now; 64 hex
 * digits, lower-cased; scopes read, write, admin; unique names), http.tls.cert and .key given
 * together, and no token-less API on an address other than loopback (config_http.c). */
jb_err jb_config_check_http(const char *file, jb_config *cfg, jb_error *e) JB_MUST_CHECK;

#endif
