/* Reading the config file into memory. Private to src/core. */
#ifndef JB_CORE_CONFIG_FILE_H
#define JB_CORE_CONFIG_FILE_H

#include <stddef.h>

#include "jobbridge/config.h"
#include "jobbridge/err.h"

/* Reads the whole file at path into a new NUL-terminated buffer (*out, the caller frees; *n its
 * length). A missing or unreadable file is JB_ERR_IO; a directory or an empty file is
 * JB_ERR_CONFIG; each message names the path and what is wrong. */
jb_err jb_config_read_file(const char *path, char **out, size_t *n, jb_error *e) JB_MUST_CHECK;

/* The `*_file` secrets: database.url_file and amqp.url_file, when set, name a file whose content
 * (surrounding white space trimmed) replaces database.url / amqp.url; amqp.url_file may list a
 * cluster's URLs, one a line or comma-separated. The environment variables still override both.
 * JB_ERR_CONFIG (or JB_ERR_IO) naming `name`, the key and the file, never the file's content. */
jb_err jb_config_read_secrets(const char *name, jb_config *cfg, jb_error *e) JB_MUST_CHECK;

#endif
