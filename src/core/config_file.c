/* Reading the config file: every way a path can fail to be a readable file gets its own
 * sentence naming it (split from config.c, which parses and validates what this reads). */
#include "core/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads the whole config file into a new NUL-terminated buffer (*out, the caller frees; *n its
 * length). Every way a path can fail to be a readable file gets its own sentence naming it. */
jb_err jb_config_read_file(const char *path, char **out, size_t *n, jb_error *e) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return jb_fail(e, JB_ERR_IO, "%s: cannot open config file: %s", path, strerror(errno));
  jb_err rc = JB_OK;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = jb_fail(e, JB_ERR_IO, "%s: cannot read config file: %s", path, strerror(errno));
    goto out;
  }
  if (S_ISDIR(st.st_mode)) {
    rc = jb_fail(e, JB_ERR_CONFIG, "%s is a directory, not a config file", path);
    goto out;
  }
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? cap * 2 : 65536;
      char *grown = realloc(buf, cap);
      if (grown == NULL) {
        rc = jb_fail(e, JB_ERR_NOMEM, "%s: out of memory reading the config file", path);
        goto out;
      }
      buf = grown;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = jb_fail(e, JB_ERR_IO, "%s: cannot read config file: %s", path, strerror(errno));
      goto out;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  if (len == strspn(buf, " \t\r\n"))
    rc = jb_fail(e, JB_ERR_CONFIG, "%s is empty: expected a JSON object", path);
out:
  close(fd);
  if (rc != JB_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  *n = len;
  return JB_OK;
}
