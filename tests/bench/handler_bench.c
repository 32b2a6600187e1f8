/* Raw ceilings for the handler benchmark (tests/bench/handlers.py), with none of jobbridge's
 * code:
 *   handler_bench sink            a tiny HTTP endpoint (libmicrohttpd, epoll, a thread per core)
 *                                 answering every request 200 {"ok":true}; prints its port
 *   handler_bench spawn N P PROG  N runs of PROG (posix_spawn + waitpid) by P threads at once;
 *                                 prints {"runs": N, "seconds": s, "rate": runs/s}
 * The sink serves both wrk (its ceiling) and jobbridge's http handler in the same run. */
#include <microhttpd.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **state) {
  (void)cls, (void)url, (void)method, (void)version, (void)data;
  if (*state == NULL) { /* the headers: come back for the body */
    *state = c;
    return MHD_YES;
  }
  if (*size > 0) { /* a piece of the body: taken */
    *size = 0;
    return MHD_YES;
  }
  static const char body[] = "{\"ok\":true}";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, "Content-Type", "application/json");
  enum MHD_Result rc = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return rc;
}

static int sink(void) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  struct MHD_Daemon *d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, answer, NULL,
                       MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cores > 0 ? cores : 1),
                       MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "handler_bench sink: cannot start the HTTP server\n");
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("%u\n", (unsigned)info->port);
  fflush(stdout);
  for (;;) pause();
}

static atomic_long left;
static char **prog;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *spawner(void *arg) {
  (void)arg;
  while (atomic_fetch_sub(&left, 1) > 0) {
    pid_t pid;
    if (posix_spawn(&pid, prog[0], NULL, NULL, prog, environ) != 0) {
      perror("posix_spawn");
      exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
  }
  return NULL;
}

static int spawn(long n, int p, char **argv) {
  prog = argv;
  atomic_store(&left, n);
  pthread_t t[256];
  if (p < 1 || p > 256) p = 1;
  double t0 = now_s();
  for (int i = 0; i < p; i++) pthread_create(&t[i], NULL, spawner, NULL);
  for (int i = 0; i < p; i++) pthread_join(t[i], NULL);
  double s = now_s() - t0;
  printf("{\"runs\": %ld, \"threads\": %d, \"seconds\": %.3f, \"rate\": %.1f}\n", n, p, s,
         (double)n / s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "sink") == 0) return sink();
  if (argc >= 5 && strcmp(argv[1], "spawn") == 0)
    return spawn(atol(argv[2]), atoi(argv[3]), argv + 4);
  fprintf(stderr, "usage: handler_bench sink | handler_bench spawn N THREADS PROG [ARG...]\n");
  return 2;
}
