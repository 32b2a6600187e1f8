/* The shepherd of one exec run: started from a worker thread (shepherd_spawn.c), it starts the
 * program and makes sure no process of its tree outlives the run (see shepherd.h). This file is
 * also linked, alone with shepherd_exe.c, into the small static jb-shepherd program. */
/* pipe2, close_range, O_CLOEXEC and the prctl options need the GNU names. */
#define _GNU_SOURCE
#include "handlers/shepherd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Everything below runs in the forked child of a multi-threaded process: another thread may have
 * held a lock (malloc's, stdio's) at the fork, so only async-signal-safe system calls are used,
 * no allocation, no stdio, no library state. */

static void report(int fd, int32_t kind, int32_t value) {
  jb_run_msg m = {kind, value};
  ssize_t w;
  do w = write(fd, &m, sizeof m);
  while (w < 0 && errno == EINTR);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Signals one process; never pid 0, 1 or -1, whatever a caller computed. */
static void signal_pid(pid_t pid, int sig) {
  if (pid > 1) kill(pid, sig);
}

/* Signals a whole process group; never group 0 or 1 (kill(-1) would hit every process). */
static void signal_group(pid_t pgid, int sig) {
  if (pgid > 1) kill(-pgid, sig);
}

/* Calls fn(pid) for every number in a whitespace-separated list read from fd. */
static void each_pid_in(int fd, void (*fn)(pid_t, int), int sig) {
  char chunk[512];
  pid_t cur = 0;
  bool in_num = false;
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) > 0) {
    for (ssize_t i = 0; i < n; i++) {
      if (chunk[i] >= '0' && chunk[i] <= '9') {
        cur = cur * 10 + (chunk[i] - '0');
        in_num = true;
      } else if (in_num) {
        fn(cur, sig);
        cur = 0;
        in_num = false;
      }
    }
  }
  if (in_num) fn(cur, sig);
}

/* Parses "/proc/<pid>/stat" for its parent pid: the 4th field, after the ")" closing comm. */
static pid_t stat_ppid(const char *name) {
  char path[64] = "/proc/", buf[512];
  size_t len = strlen(path), nl = strlen(name);
  if (nl > 20) return -1;
  memcpy(path + len, name, nl);
  memcpy(path + len + nl, "/stat", 6);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (p == NULL || p[1] == '\0' || p[2] == '\0') return -1;
  p += 3; /* ") S " */
  while (*p && *p != ' ') p++;
  pid_t ppid = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) ppid = ppid * 10 + (*p - '0');
  return ppid;
}

/* Calls fn(d_name, arg) for every entry of the directory dfd, getdents64 straight (opendir
 * allocates). Stops early when fn returns true; returns true then. */
static bool each_dirent(int dfd, bool (*fn)(const char *, void *), void *arg) {
  _Alignas(struct dirent64) char buf[4096]; /* getdents64 writes struct dirent64 records */
  long n;
  while ((n = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n;) {
      struct dirent64 *d = (struct dirent64 *)(buf + off);
      off += d->d_reclen;
      if (fn(d->d_name, arg)) return true;
    }
  }
  return false;
}

/* A decimal name as a number, or -1 when it is not one. */
static long name_number(const char *name) {
  if (name[0] < '0' || name[0] > '9') return -1;
  long v = 0;
  for (const char *c = name; *c; c++) {
    if (*c < '0' || *c > '9' || v > 100000000) return -1;
    v = v * 10 + (*c - '0');
  }
  return v;
}

typedef struct scan_args {
  pid_t self;
  void (*fn)(pid_t, int);
  int sig;
} scan_args;

static bool signal_if_child(const char *name, void *arg) {
  const scan_args *a = arg;
  long pid = name_number(name);
  if (pid > 1 && stat_ppid(name) == a->self) a->fn((pid_t)pid, a->sig);
  return false;
}

/* Without /proc/thread-self/children (a kernel without CONFIG_PROC_CHILDREN): every process in
 * /proc whose parent is us. */
static void each_child_by_scan(void (*fn)(pid_t, int), int sig) {
  int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  scan_args a = {getpid(), fn, sig};
  each_dirent(dfd, signal_if_child, &a);
  close(dfd);
}

/* Sends sig to every direct child of the shepherd: the program and the orphans of its tree. */
static void signal_children(int sig) {
  int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    each_child_by_scan(signal_pid, sig);
    return;
  }
  each_pid_in(fd, signal_pid, sig);
  close(fd);
}

/* Waits up to ms for a signal of set; returns it, or 0 on timeout. */
static int wait_signal(const sigset_t *set, int64_t ms) {
  if (ms < 0) ms = 0;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  int sig = sigtimedwait(set, NULL, &ts);
  return sig > 0 ? sig : 0;
}

/* Kills every process left in the tree after the program was reaped: each child of ours, again
 * after each reaped child (its own children have been reparented to us by then), until none is
 * left (true), or until JB_RUN_KILL_STALL_MS pass with none reaped or JB_RUN_KILL_MAX_MS in all
 * (false: something survives SIGKILL, may not be signalled, or cannot be found). The program's
 * group is not signalled here: its number may belong to another process by now. */
static bool kill_tree(const sigset_t *set) {
  int64_t start = now_ms(), last_reaped = start;
  for (;;) {
    /* No child at all (the usual end): done, without reading /proc. */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD) return true;
    signal_children(SIGKILL);
    pid_t r;
    while ((r = waitpid(-1, NULL, WNOHANG)) > 0) last_reaped = now_ms();
    if (r < 0 && errno == ECHILD) return true;
    int64_t now = now_ms();
    if (now - last_reaped >= JB_RUN_KILL_STALL_MS || now - start >= JB_RUN_KILL_MAX_MS)
      return false;
    wait_signal(set, 50);
  }
}

static bool close_if_fd(const char *name, void *arg) {
  long fd = name_number(name);
  if (fd >= *((int *)arg + 2) && fd != *(int *)arg) {
    close((int)fd);
    *((int *)arg + 1) = 1; /* closed one: the listing changed, read it again */
  }
  return false;
}

/* Closes every descriptor from `first` up, without close_range (a kernel before 5.9): those
 * listed in /proc/self/fd, or without /proc every number below RLIMIT_NOFILE. */
static void close_from(int first) {
  int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int arg[3] = {dfd, 1, first};
    while (arg[1]) {
      arg[1] = 0;
      lseek(dfd, 0, SEEK_SET);
      each_dirent(dfd, close_if_fd, arg);
    }
    close(dfd);
    return;
  }
  struct rlimit rl;
  rlim_t max = 1 << 20; /* the kernel's default ceiling (fs.nr_open) when the limit is unknown */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) max = rl.rlim_cur;
  if (max > (rlim_t)INT_MAX) max = INT_MAX;
  for (int fd = first; fd < (int)max; fd++) close(fd);
}

/* Puts the four pipe ends on descriptors 0-3, and the progress pipe's write end (if any,
 * src[4] >= 0) on 4, and closes every other descriptor the fork copied (other runs' pipes,
 * sockets): 0 if done, else an errno value. */
static int place_fds(const int src[5]) {
  int tmp[5], n = src[4] >= 0 ? 5 : 4;
  /* First drop every copied descriptor but these: the dups below then need no room beyond the
   * run's own, also when jobbridge holds nearly all it may (RLIMIT_NOFILE): a run that fits in
   * jobbridge fits here. (Without close_range the dups may fail, as they did before.) */
  int keep[5];
  for (int i = 0; i < n; i++) {
    int j = i;
    for (; j > 0 && keep[j - 1] > src[i]; j--) keep[j] = keep[j - 1];
    keep[j] = src[i];
  }
  unsigned from = 0;
  for (int i = 0; i < n; i++) {
    if ((unsigned)keep[i] > from) close_range(from, (unsigned)keep[i] - 1, 0);
    from = (unsigned)keep[i] + 1;
  }
  close_range(from, ~0U, 0);
  for (int i = 0; i < n; i++) {
    tmp[i] = fcntl(src[i], F_DUPFD, 10);
    if (tmp[i] < 0) return errno;
  }
  for (int i = 0; i < n; i++)
    if (dup2(tmp[i], i) < 0) return errno;
  if (close_range((unsigned)n, ~0U, 0) != 0) close_from(n);
  return 0;
}

/* The program's process: its own group, a default signal state, descriptor 3 (the report pipe)
 * closed by exec; on an exec failure the errno goes to the worker. */
static void __attribute__((noreturn))
program_main(pid_t shepherd, const char *path, char *const *argv, char *const *envp) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != shepherd) _exit(127);
  fcntl(3, F_SETFD, FD_CLOEXEC);
  /* The shepherd left every signal at its default but SIGPIPE (jb_shepherd_main). */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &dfl, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(path, argv, envp);
  report(3, JB_RUN_EXEC_FAILED, errno);
  _exit(127);
}

/* Whether the program (our child pid) has exited, without reaping it: while it is an unreaped
 * zombie its pid, and so its group number, cannot be taken by another process. */
static bool program_exited(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Reaps every exited child but the program (orphans of its tree that ended). Returns false when
 * we have no child at all (cannot happen while the program is unreaped). */
static bool reap_others(pid_t pid) {
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return errno != ECHILD;
    if (si.si_pid == 0 || si.si_pid == pid) return true;
    waitpid(si.si_pid, NULL, WNOHANG);
  }
}

/* The program's child shares the shepherd's memory until its exec (CLONE_VM | CLONE_VFORK, as
 * posix_spawn does): nothing is copied, and the shepherd resumes once the program runs (or
 * failed to). It runs on a stack of its own and only makes system calls. */
typedef struct program_args {
  pid_t shepherd;
  const jb_shepherd_args *a;
} program_args;

static int program_entry(void *arg) {
  const program_args *p = arg;
  program_main(p->shepherd, p->a->path, p->a->argv, p->a->envp);
}

static pid_t start_program(pid_t self, const jb_shepherd_args *a) {
  static char stack[64 * 1024] __attribute__((aligned(16)));
  program_args p = {self, a};
  return clone(program_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &p);
}

typedef enum { SUP_EXITED, SUP_HANGUP, SUP_LOST } sup_end;

/* Runs until the program exited (left unreaped: see program_exited), stopping it gracefully on
 * SIGTERM; SUP_HANGUP when jobbridge died (SIGHUP) and the tree must go at once; SUP_LOST when
 * the program is not our child any more (cannot happen). */
static sup_end supervise(pid_t pid, const jb_shepherd_args *a, const sigset_t *set) {
  int64_t kill_at = 0;
  for (;;) {
    if (!reap_others(pid)) return SUP_LOST;
    if (program_exited(pid)) return SUP_EXITED;
    int64_t wait_ms = 1000;
    if (kill_at != 0) {
      if (now_ms() >= kill_at) {
        signal_group(pid, SIGKILL);
        signal_children(SIGKILL);
        kill_at = now_ms() + 1000; /* again, if something in the tree is still there */
      }
      wait_ms = kill_at - now_ms();
    }
    int sig = wait_signal(set, wait_ms);
    if (sig == SIGHUP) return SUP_HANGUP;
    if (sig == SIGTERM && kill_at == 0 && !program_exited(pid)) {
      report(3, JB_RUN_STOPPING, 0); /* before the signal: an exit read after it may be ours */
      signal_group(pid, SIGTERM);
      signal_children(SIGTERM);
      kill_at = now_ms() + a->grace_ms;
    }
  }
}

void jb_shepherd_main(const jb_shepherd_args *a) {
  /* Signals stay blocked (as the forking thread set them) and are taken with sigtimedwait. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  /* Also in the jb-shepherd program: posix_spawn leaves glibc's internal signals ignored. */
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &sa, NULL);
  sa.sa_handler = SIG_IGN; /* the worker may have given up on us: a write must not kill us */
  sigaction(SIGPIPE, &sa, NULL);
  prctl(PR_SET_NAME, "jb-shepherd");
  prctl(PR_SET_PDEATHSIG, SIGHUP);
  if (getppid() != a->parent) _exit(1);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    report(a->fds[3], JB_RUN_START_FAILED, errno);
    _exit(1);
  }
  int err = a->placed ? 0 : place_fds(a->fds);
  if (err != 0) {
    report(a->fds[3], JB_RUN_START_FAILED, err);
    _exit(1);
  }
  pid_t self = getpid();
  pid_t pid = start_program(self, a);
  if (pid < 0) {
    report(3, JB_RUN_START_FAILED, errno);
    _exit(1);
  }
  setpgid(pid, pid); /* the program did (EACCES here once it exec'd): the group exists */
  close(0);
  close(1);
  close(2);
  if (a->fds[4] >= 0) close(4); /* the program's alone */
  report(3, JB_RUN_STARTED, pid);
  sup_end end = supervise(pid, a, &set);
  if (end != SUP_LOST) {
    /* The program is not reaped yet (a zombie, or alive on SIGHUP): its group is still ours.
     * The other children (orphans of its tree) are killed by kill_tree below; on SIGHUP also
     * here, before anything else. */
    signal_group(pid, SIGKILL);
    if (end == SUP_HANGUP) signal_children(SIGKILL);
  }
  if (end == SUP_EXITED) { /* a zombie: waitpid returns at once */
    int st;
    pid_t r;
    do r = waitpid(pid, &st, 0);
    while (r < 0 && errno == EINTR);
    /* No status (cannot happen) is reported as none: the worker takes that as a failure. */
    if (r == pid) report(3, JB_RUN_EXITED, st);
  }
  if (!kill_tree(&set)) report(3, JB_RUN_TREE_LEFT, 0);
  _exit(0);
}
