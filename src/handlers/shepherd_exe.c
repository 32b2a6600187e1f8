/* jb-shepherd: the shepherd as a program of its own (see shepherd.h), started by posix_spawn from
 * a worker thread with the program's pipes on descriptors 0-4, its image on 5, every signal
 * blocked and at its default action. Not meant to be run by hand:
 *   jb-shepherd PARENT_PID GRACE_MS PROGRESS(0|1) PATH ARGV0 [ARG...]   (environment: the
 *   program's) */
#include <unistd.h>

#include "handlers/shepherd.h"

extern char **environ;

/* A decimal number (no C library's strtol: see shepherd_nolibc.c). */
static long number(const char *s) {
  long v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return v;
}

int main(int argc, char **argv) {
  close(5); /* this program's own image (a memfd), passed only to be executed */
  if (argc < 6) return 2;
  jb_shepherd_args a = {.parent = (pid_t)number(argv[1]),
                        .grace_ms = (int)number(argv[2]),
                        .path = argv[4],
                        .argv = argv + 5,
                        .envp = environ,
                        .fds = {0, 1, 2, 3, argv[3][0] == '1' ? 4 : -1},
                        .placed = true};
  jb_shepherd_main(&a);
}
