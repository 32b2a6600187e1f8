/* Starting a shepherd (shepherd.h): the jb-shepherd program by posix_spawn, or a fork of
 * jobbridge where that program cannot run. */
/* pipe2, memfd_create and posix_spawn_file_actions_addclosefrom_np need the GNU names. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handlers/shepherd.h"
#include "handlers/shepherd_image.h"
#include "jobbridge/log.h"

/* The jb-shepherd program in a memfd (close-on-exec), or -1: fork instead. Written once. */
static pthread_once_t image_once = PTHREAD_ONCE_INIT;
static int image_fd = -1;
/* Set when running the program failed once for a reason other than a shortage: fork from then
 * on. */
static atomic_bool spawn_broken;

static void image_load(void) {
  /* MFD_EXEC (Linux 6.3, not in older headers): executable also where vm.memfd_noexec makes
   * memfds non-executable by default; an older kernel refuses the flag (EINVAL). */
  const unsigned mfd_exec = 0x0010U;
  int fd = memfd_create("jb-shepherd", MFD_CLOEXEC | mfd_exec);
  if (fd < 0 && errno == EINVAL) fd = memfd_create("jb-shepherd", MFD_CLOEXEC);
  int e = fd < 0 ? errno : 0;
  /* Two symbols of one blob: their addresses, not pointers into one C object. */
  size_t len = (size_t)((uintptr_t)jb_shepherd_image_end - (uintptr_t)jb_shepherd_image), off = 0;
  while (fd >= 0 && off < len) {
    ssize_t w = write(fd, jb_shepherd_image + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      e = w < 0 ? errno : EIO;
      close(fd);
      fd = -1;
      break;
    }
    off += (size_t)w;
  }
  /* posix_spawn's file actions place it on descriptor 5: keep it above the five below. */
  if (fd >= 0 && fd < 6) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 6);
    e = high < 0 ? errno : 0;
    close(fd);
    fd = high;
  }
  if (fd < 0)
    jb_log(JB_LOG_WARN,
           "the exec handler cannot keep its shepherd program in memory (memfd); shepherds are "
           "forked from jobbridge instead (slower)",
           "error", strerror(e), JB_LOG_END);
  image_fd = fd;
}

/* A shortage of descriptors, memory or processes: the run fails, the next may succeed. */
static bool shortage(int e) {
  return e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN;
}

/* Starts jb-shepherd with src[0..4] on descriptors 0-4 (src[4] may be -1): 0 and *pid, or an
 * errno value. Every src is 6 or above (pipe2 gave them after the image's descriptor, or they
 * were moved there). */
static int spawn_shepherd(const jb_shepherd_args *a, pid_t *pid) {
  size_t n = 0;
  while (a->argv[n]) n++;
  char **hargv = malloc((n + 6) * sizeof *hargv);
  if (hargv == NULL) return ENOMEM;
  char parent[24], grace[24];
  snprintf(parent, sizeof parent, "%ld", (long)a->parent);
  snprintf(grace, sizeof grace, "%d", a->grace_ms);
  hargv[0] = "jb-shepherd";
  hargv[1] = parent;
  hargv[2] = grace;
  hargv[3] = a->fds[4] >= 0 ? "1" : "0";
  hargv[4] = (char *)a->path;
  memcpy(hargv + 5, a->argv, (n + 1) * sizeof *hargv);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t all;
  sigfillset(&all);
  int e = posix_spawn_file_actions_init(&fa);
  if (e != 0) {
    free(hargv);
    return e;
  }
  e = posix_spawnattr_init(&attr);
  for (int i = 0; e == 0 && i < 5; i++)
    if (a->fds[i] >= 0) e = posix_spawn_file_actions_adddup2(&fa, a->fds[i], i);
  if (e == 0) e = posix_spawn_file_actions_adddup2(&fa, image_fd, 5);
  if (e == 0) e = posix_spawn_file_actions_addclosefrom_np(&fa, 6);
  /* Every signal blocked (the shepherd takes them with sigtimedwait) and at its default. */
  if (e == 0) e = posix_spawnattr_setsigmask(&attr, &all);
  if (e == 0) e = posix_spawnattr_setsigdefault(&attr, &all);
  if (e == 0) e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (e == 0) e = posix_spawn(pid, "/proc/self/fd/5", &fa, &attr, hargv, a->envp);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  free(hargv);
  return e;
}

/* Forks the shepherd from this process (see the top of shepherd.c): 0 and *pid, or errno. */
static int fork_shepherd(const jb_shepherd_args *a, pid_t *pid) {
  /* The child starts with every signal blocked: none may run a jobbridge handler in it, and a
   * SIGTERM from the worker waits for its sigtimedwait. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t p = fork();
  if (p == 0) jb_shepherd_main(a);
  int e = p < 0 ? errno : 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  *pid = p;
  return e;
}

void jb_run_use_fork(bool on) {
  atomic_store(&spawn_broken, on);
}

/* Starts the shepherd one way or the other. */
static int start_shepherd(const jb_shepherd_args *a, pid_t *pid) {
  pthread_once(&image_once, image_load);
  if (image_fd < 0 || atomic_load(&spawn_broken)) return fork_shepherd(a, pid);
  int e = spawn_shepherd(a, pid);
  if (e == 0 || shortage(e)) return e;
  if (!atomic_exchange(&spawn_broken, true))
    jb_log(JB_LOG_WARN,
           "the exec handler cannot run its shepherd program from memory (is /proc mounted? is "
           "exec from a memfd forbidden?); shepherds are forked from jobbridge instead (slower)",
           "error", strerror(e), JB_LOG_END);
  return fork_shepherd(a, pid);
}

static void close_pair(int p[2]) {
  for (int i = 0; i < 2; i++)
    if (p[i] >= 0) close(p[i]);
  p[0] = p[1] = -1;
}

/* A pipe whose both ends are 6 or above (below, they would collide with the descriptors the
 * shepherd's file actions place). */
static int high_pipe(int p[2]) {
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    if (p[i] >= 6) continue;
    int high = fcntl(p[i], F_DUPFD_CLOEXEC, 6);
    if (high < 0) {
      int e = errno;
      close_pair(p);
      errno = e;
      return -1;
    }
    close(p[i]);
    p[i] = high;
  }
  return 0;
}

int jb_run_start(const char *path, char *const *argv, char *const *envp, int grace_ms,
                 bool progress, jb_run *run) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, msg[2] = {-1, -1};
  int prog[2] = {-1, -1};
  int e = 0;
  if (high_pipe(in) || high_pipe(out) || high_pipe(err) || high_pipe(msg) ||
      (progress && high_pipe(prog))) {
    e = errno;
    goto out;
  }
  jb_shepherd_args a = {
      getpid(), path, argv, envp, grace_ms, {in[0], out[1], err[1], msg[1], prog[1]}, false};
  pid_t pid;
  e = start_shepherd(&a, &pid);
  if (e != 0) goto out;
  close(in[0]);
  close(out[1]);
  close(err[1]);
  close(msg[1]);
  if (prog[1] >= 0) close(prog[1]);
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  *run = (jb_run){pid, in[1], out[0], err[0], msg[0], prog[0]};
  return 0;
out:
  close_pair(prog);
  close_pair(in);
  close_pair(out);
  close_pair(err);
  close_pair(msg);
  return e;
}
