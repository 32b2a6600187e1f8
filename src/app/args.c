/* Command-line parsing for the jobbridge CLI. */
#include "app/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool jb_args_parse(int argc, char **argv, const jb_opt_spec *specs, size_t nspecs, jb_args *a,
                   char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  bool options_done = false;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (options_done || strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
      if (!options_done && strcmp(arg, "--") == 0) {
        options_done = true;
        continue;
      }
      if (a->npos >= JB_ARGS_MAX) {
        snprintf(err, errlen, "too many arguments");
        return false;
      }
      a->pos[a->npos++] = arg;
      continue;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    size_t k = 0;
    while (k < nspecs && !(strlen(specs[k].name) == len && strncmp(specs[k].name, name, len) == 0))
      k++;
    if (k == nspecs || k >= JB_ARGS_MAX) {
      snprintf(err, errlen, "unknown option --%.*s", (int)len, name);
      return false;
    }
    if (!specs[k].takes_value) {
      if (eq) {
        snprintf(err, errlen, "option --%s takes no value", specs[k].name);
        return false;
      }
      a->val[k] = "";
    } else if (eq) {
      a->val[k] = eq + 1;
    } else if (i + 1 < argc) {
      a->val[k] = argv[++i];
    } else {
      snprintf(err, errlen, "option --%s needs a value", specs[k].name);
      return false;
    }
  }
  return true;
}

const char *jb_args_get(const jb_args *a, const jb_opt_spec *specs, size_t nspecs,
                        const char *name) {
  for (size_t k = 0; k < nspecs && k < JB_ARGS_MAX; k++)
    if (strcmp(specs[k].name, name) == 0) return a->val[k];
  return NULL;
}

/* Digits with an optional sign and nothing else (strtol would also take blanks before them). */
static bool integer_text(const char *s) {
  if (s == NULL) return false;
  if (*s == '-' || *s == '+') s++;
  return *s != '\0' && strspn(s, "0123456789") == strlen(s);
}

bool jb_parse_long(const char *s, long min, long max, long *out) {
  if (!integer_text(s)) return false;
  errno = 0;
  long v = strtol(s, NULL, 10);
  if (errno != 0 || v < min || v > max) return false;
  *out = v;
  return true;
}

bool jb_parse_long_opt(const char *name, const char *s, long min, long max, long *out, char *err,
                       size_t errlen) {
  if (jb_parse_long(s, min, max, out)) return true;
  if (!integer_text(s))
    snprintf(err, errlen, "--%s \"%s\" is not a whole decimal number", name, s ? s : "");
  else
    snprintf(err, errlen, "--%s %s is out of range: it must be from %ld to %ld", name, s, min, max);
  return false;
}
