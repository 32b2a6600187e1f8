/* The process handler benchmark's raw side (tests/bench/procbench.py), with none of jobbridge's
 * code:
 *   proc_bench pipe JOBS PROCESSES COMMAND [ARGS...]
 *       starts PROCESSES copies of COMMAND (a worker speaking the process handler's line
 *       protocol), and from one thread per copy writes one job line and reads its answer line,
 *       in a loop, until JOBS jobs are answered in all; prints {"rate": jobs per second}. The
 *       job lines have the shape and size of the ones jobbridge writes.
 *   proc_bench worker
 *       a line-protocol worker in C: for each job line, answers
 *       {"id": "<its id>", "ok": true, "result": {"n": <payload's n>}} (the ceiling comparison
 *       when the Python worker is the bottleneck). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- worker ---- */

static int worker(void) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  setvbuf(stdout, NULL, _IOFBF, 65536);
  while ((n = getline(&line, &cap, stdin)) > 0) {
    const char *id = strstr(line, "\"id\":\"");
    const char *num = strstr(line, "\"n\":");
    if (id == NULL) {
      fprintf(stderr, "proc_bench worker: a line without an id\n");
      return 1;
    }
    id += 6;
    printf("{\"id\":\"%.36s\",\"ok\":true,\"result\":{\"n\":%ld,\"lang\":\"c\"}}\n", id,
           num ? strtol(num + 4, NULL, 10) : 0L);
    fflush(stdout);
  }
  return 0;
}

/* ---- pipe driver ---- */

typedef struct child {
  pid_t pid;
  FILE *in, *out;
  pthread_t thread;
} child;

static atomic_long remaining;
static atomic_int failed;

static void *drive(void *arg) {
  child *c = arg;
  char job[512], *answer = NULL;
  size_t cap = 0;
  unsigned long k = 0;
  while (atomic_fetch_sub(&remaining, 1) > 0) {
    k++;
    /* The shape of jb_exec_job_input's line, with a job id of 36 characters. */
    int len = snprintf(job, sizeof job,
                       "{\"id\":\"01a22eea-d285-7e62-a2bb-%012lx\",\"job_type\":\"p\","
                       "\"queue_name\":\"default\",\"payload\":{\"n\":%lu,\"pad\":\"%s\"},"
                       "\"metadata\":{},\"retry_count\":0,\"max_retries\":3}\n",
                       k, k,
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxx");
    if (fwrite(job, 1, (size_t)len, c->in) != (size_t)len || fflush(c->in) != 0 ||
        getline(&answer, &cap, c->out) <= 0 || strstr(answer, "\"ok\":") == NULL ||
        strstr(answer, "\"ok\": false") != NULL || strstr(answer, "\"ok\":false") != NULL) {
      atomic_store(&failed, 1);
      break;
    }
  }
  free(answer);
  return NULL;
}

static int spawn(char **argv, child *c) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return -1; /* not inherited */
  c->pid = fork();
  if (c->pid < 0) return -1;
  if (c->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  c->in = fdopen(in[1], "w");
  c->out = fdopen(out[0], "r");
  return c->in && c->out ? 0 : -1;
}

static int pipes(long jobs, int n, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  child *cs = calloc((size_t)n, sizeof *cs);
  for (int i = 0; i < n; i++)
    if (spawn(argv, &cs[i]) != 0) {
      perror("proc_bench: spawn");
      return 1;
    }
  /* One warm-up job each (the interpreter's start is not a round trip). */
  atomic_store(&remaining, n);
  for (int i = 0; i < n; i++) pthread_create(&cs[i].thread, NULL, drive, &cs[i]);
  for (int i = 0; i < n; i++) pthread_join(cs[i].thread, NULL);
  atomic_store(&remaining, jobs);
  double t0 = now();
  for (int i = 0; i < n; i++) pthread_create(&cs[i].thread, NULL, drive, &cs[i]);
  for (int i = 0; i < n; i++) pthread_join(cs[i].thread, NULL);
  double t = now() - t0;
  for (int i = 0; i < n; i++) {
    fclose(cs[i].in);
    fclose(cs[i].out);
    waitpid(cs[i].pid, NULL, 0);
  }
  free(cs);
  if (atomic_load(&failed)) {
    fprintf(stderr, "proc_bench: a worker did not answer a job with ok\n");
    return 1;
  }
  printf("{\"rate\": %.1f, \"jobs\": %ld, \"processes\": %d, \"seconds\": %.3f}\n", jobs / t, jobs,
         n, t);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "worker") == 0) return worker();
  if (argc >= 5 && strcmp(argv[1], "pipe") == 0)
    return pipes(atol(argv[2]), atoi(argv[3]), argv + 4);
  fprintf(stderr, "usage: proc_bench pipe JOBS PROCESSES COMMAND [ARGS...] | proc_bench worker\n");
  return 2;
}
