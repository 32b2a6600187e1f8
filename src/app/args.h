/* Command-line parsing for the jobbridge CLI: options may stand before or after positionals. */
#ifndef JB_APP_ARGS_H
#define JB_APP_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#define JB_ARGS_MAX 16

typedef struct jb_opt_spec {
  const char *name; /* without the leading "--" */
  bool takes_value;
} jb_opt_spec;

typedef struct jb_args {
  const char *pos[JB_ARGS_MAX];
  int npos;
  const char *val[JB_ARGS_MAX]; /* by spec index; "" for a flag that was given, NULL if absent */
} jb_args;

/* Parses argv[0..argc) against specs (`--name VALUE`, `--name=VALUE`, `--` ends options).
 * Returns false with err filled on an unknown option or a missing value. Strings are borrowed
 * from argv. */
bool jb_args_parse(int argc, char **argv, const jb_opt_spec *specs, size_t nspecs, jb_args *a,
                   char *err, size_t errlen);

/* The value of option `name` (NULL if absent). */
const char *jb_args_get(const jb_args *a, const jb_opt_spec *specs, size_t nspecs,
                        const char *name);

/* Parses a whole decimal integer within [min, max]: an optional sign, digits, nothing else (no
 * blanks); out of range (also past LONG_MAX) is false. */
bool jb_parse_long(const char *s, long min, long max, long *out);

/* jb_parse_long for the value s of option --name; on failure err gets a sentence that says
 * which: "--limit \"x\" is not a whole decimal number" or "--limit 0 is out of range: it must
 * be from 1 to 10000". */
bool jb_parse_long_opt(const char *name, const char *s, long min, long max, long *out, char *err,
                       size_t errlen);

#endif
