/* The few C library functions the jb-shepherd program uses (shepherd.c, shepherd_exe.c), as
 * bare system calls, and its entry point: the program is linked with no C library at all
 * (x86_64 with GCC, where it was measured and tested; elsewhere it is linked with static glibc).
 * Why: a glibc program's start-up runs CPUID dozens of times (cache and CPU feature detection), and
 * in a virtual machine every CPUID traps to the hypervisor: that start-up cost as much as the
 * rest of the shepherd's life. Only what shepherd.c needs is here, for x86_64 Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "shepherd_nolibc.c: only x86_64 (CMake links static glibc elsewhere)"
#endif

char **environ;
static int errno_value;

int *__errno_location(void) {
  return &errno_value;
}

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

/* A system call's result the C library's way: -1 and errno on failure. */
static long sys(long n, long a, long b, long c, long d, long e, long f) {
  long r = sys6(n, a, b, c, d, e, f);
  if (r < 0 && r > -4096) {
    errno_value = (int)-r;
    return -1;
  }
  return r;
}

#define SYS0(n) sys(n, 0, 0, 0, 0, 0, 0)
#define SYS1(n, a) sys(n, (long)(a), 0, 0, 0, 0, 0)
#define SYS2(n, a, b) sys(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define SYS3(n, a, b, c) sys(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(n, a, b, c, d) sys(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define SYS5(n, a, b, c, d, e) sys(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* The kernel's sigset_t is the first 8 bytes of glibc's. */
#define KSIGSET 8

void _exit(int status) {
  for (;;) SYS1(SYS_exit_group, status);
}

ssize_t read(int fd, void *buf, size_t n) {
  return SYS3(SYS_read, fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n) {
  return SYS3(SYS_write, fd, buf, n);
}

int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int mode = (flags & O_CREAT) ? va_arg(ap, int) : 0;
  va_end(ap);
  return (int)SYS4(SYS_openat, AT_FDCWD, path, flags, mode);
}

int close(int fd) {
  return (int)SYS1(SYS_close, fd);
}

int close_range(unsigned first, unsigned last, int flags) {
  return (int)SYS3(SYS_close_range, first, last, flags);
}

int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return (int)SYS3(SYS_fcntl, fd, cmd, arg);
}

int dup2(int from, int to) {
  if (from == to) return fcntl(from, F_GETFD, 0) < 0 ? -1 : to; /* dup3 refuses equal ones */
  return (int)SYS3(SYS_dup3, from, to, 0);
}

off_t lseek(int fd, off_t off, int whence) {
  return SYS3(SYS_lseek, fd, off, whence);
}

long syscall(long n, ...) {
  va_list ap;
  va_start(ap, n);
  long a[6];
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  return sys(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int execve(const char *path, char *const argv[], char *const envp[]) {
  return (int)SYS3(SYS_execve, path, argv, envp);
}

pid_t fork(void) {
  return (pid_t)SYS5(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

/* clone(fn, stack, flags, arg): the child runs fn(arg) on stack and exits with its result; it
 * never returns through the caller's frames (which a CLONE_VM child would corrupt). */
long jb_clone_raw(int (*fn)(void *), void *stack, unsigned long flags, void *arg);
__asm__(
    ".text\n.type jb_clone_raw, @function\njb_clone_raw:\n"
    " and $-16, %rsi\n sub $16, %rsi\n mov %rdi, (%rsi)\n mov %rcx, 8(%rsi)\n"
    " mov %rdx, %rdi\n xor %edx, %edx\n xor %r10d, %r10d\n xor %r8d, %r8d\n"
    " mov $56, %eax\n syscall\n test %rax, %rax\n jnz 1f\n"
    " xor %ebp, %ebp\n pop %rax\n pop %rdi\n call *%rax\n"
    " mov %eax, %edi\n mov $60, %eax\n syscall\n hlt\n"
    "1: ret\n");

int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...) {
  long r = jb_clone_raw(fn, stack, (unsigned long)(unsigned)flags, arg);
  if (r < 0 && r > -4096) {
    errno_value = (int)-r;
    return -1;
  }
  return (int)r;
}

pid_t getpid(void) {
  return (pid_t)SYS0(SYS_getpid);
}

pid_t getppid(void) {
  return (pid_t)SYS0(SYS_getppid);
}

int setpgid(pid_t pid, pid_t pgid) {
  return (int)SYS2(SYS_setpgid, pid, pgid);
}

int kill(pid_t pid, int sig) {
  return (int)SYS2(SYS_kill, pid, sig);
}

int prctl(int option, ...) {
  va_list ap;
  va_start(ap, option);
  unsigned long a[4];
  for (int i = 0; i < 4; i++) a[i] = va_arg(ap, unsigned long);
  va_end(ap);
  return (int)SYS5(SYS_prctl, option, a[0], a[1], a[2], a[3]);
}

int getrlimit(__rlimit_resource_t res, struct rlimit *rl) {
  return (int)SYS4(SYS_prlimit64, 0, res, 0, rl);
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
  return (int)SYS2(SYS_clock_gettime, clock, ts);
}

pid_t waitpid(pid_t pid, int *status, int options) {
  return (pid_t)SYS4(SYS_wait4, pid, status, options, 0);
}

int waitid(idtype_t type, id_t id, siginfo_t *info, int options) {
  return (int)SYS5(SYS_waitid, type, id, info, options, 0);
}

int sigemptyset(sigset_t *set) {
  memset(set, 0, sizeof *set);
  return 0;
}

int sigaddset(sigset_t *set, int sig) {
  if (sig < 1 || sig > 64) {
    errno_value = EINVAL;
    return -1;
  }
  ((unsigned long *)set)[0] |= 1UL << (sig - 1);
  return 0;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
  return (int)SYS4(SYS_rt_sigprocmask, how, set, old, KSIGSET);
}

int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts) {
  return (int)SYS4(SYS_rt_sigtimedwait, set, info, ts, KSIGSET);
}

/* Only SIG_DFL and SIG_IGN are ever set (a handler would need a restorer): the kernel's layout. */
struct ksigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)(void);
  unsigned long mask;
};

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  struct ksigaction k = {0}, ko = {0};
  if (act != NULL) {
    k.handler = act->sa_handler;
    k.flags = (unsigned long)act->sa_flags;
    k.mask = ((const unsigned long *)&act->sa_mask)[0];
  }
  int r = (int)SYS4(SYS_rt_sigaction, sig, act ? &k : NULL, old ? &ko : NULL, KSIGSET);
  if (r == 0 && old != NULL) {
    memset(old, 0, sizeof *old);
    old->sa_handler = ko.handler;
    old->sa_flags = (int)ko.flags;
    ((unsigned long *)&old->sa_mask)[0] = ko.mask;
  }
  return r;
}

/* The compiler may call these four itself; built with -fno-tree-loop-distribute-patterns so that
 * their loops do not become calls to themselves. */
void *memset(void *d, int c, size_t n) {
  unsigned char *p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--) *p++ = *q++;
  return d;
}

size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

char *strrchr(const char *s, int c) {
  const char *last = NULL;
  for (;; s++) {
    if (*s == (char)c) last = s;
    if (*s == '\0') return (char *)last;
  }
}

int main(int argc, char **argv);

/* Called by _start with the initial stack: argc, argv..., NULL, envp..., NULL. */
__attribute__((used, noreturn)) void jb_nolibc_start(long *sp) {
  int argc = (int)sp[0];
  char **argv = (char **)(sp + 1);
  environ = argv + argc + 1;
  _exit(main(argc, argv));
}

__asm__(
    ".text\n.global _start\n_start:\n xor %ebp, %ebp\n mov %rsp, %rdi\n"
    " and $-16, %rsp\n call jb_nolibc_start\n hlt\n");
