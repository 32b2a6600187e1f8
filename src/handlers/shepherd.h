/* A program run under a shepherd: a small forked process that bounds the program's whole process
 * tree (private to src/handlers). */
#ifndef JOBBRIDGE_HANDLERS_SHEPHERD_H
#define JOBBRIDGE_HANDLERS_SHEPHERD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The shepherd is forked from the calling thread. It is a child subreaper
 * (PR_SET_CHILD_SUBREAPER), so every descendant of the program that loses its parent, even one
 * in its own session, becomes the shepherd's child. It starts the program in a process group of
 * its own and reports on its pipe (jb_run_msg records). When the program has exited, it kills
 * every descendant left (its group once, while the program is an unreaped zombie and the group
 * number is still ours; then every child of its own, again and again until waitpid says ECHILD)
 * and exits itself: once the pipe reads end-of-file, the run is over. That killing is bounded:
 * after JB_RUN_KILL_STALL_MS with no child reaped, or JB_RUN_KILL_MAX_MS in all, the shepherd
 * reports JB_RUN_TREE_LEFT and exits anyway (a process in D state, one it may not signal, or
 * one it cannot find without /proc may then outlive the run). SIGTERM to the shepherd sends
 * SIGTERM to the program's group and to the orphans, and SIGKILL to all of them `grace_ms`
 * later. If the thread that forked it ends (jobbridge crashed), the shepherd gets SIGHUP
 * (PR_SET_PDEATHSIG) and kills the whole tree at once. It never signals pid -1 or group 1. */
typedef struct jb_run {
  pid_t shepherd;
  int in_fd;       /* write end of the program's stdin, O_NONBLOCK, close-on-exec */
  int out_fd;      /* read end of the program's stdout */
  int err_fd;      /* read end of the program's stderr */
  int msg_fd;      /* read end of the shepherd's reports; end-of-file once the shepherd exited */
  int progress_fd; /* read end of the program's descriptor 4 (JOBBRIDGE_PROGRESS_FD), or -1 */
} jb_run;

enum {
  JB_RUN_STARTED = 1,  /* value: the program's pid */
  JB_RUN_START_FAILED, /* value: errno of the shepherd's own setup or its fork */
  JB_RUN_EXEC_FAILED,  /* value: errno of execve */
  JB_RUN_EXITED,       /* value: the program's wait status */
  JB_RUN_STOPPING,     /* value 0: SIGTERM was passed to the program before it exited (so an
                          exit reported after this may be the stop's doing) */
  JB_RUN_TREE_LEFT,    /* value 0: the shepherd gave up killing the tree; processes may remain */
};

/* How long the shepherd keeps killing the tree after the program exited (see above). */
#define JB_RUN_KILL_STALL_MS 2000
#define JB_RUN_KILL_MAX_MS 5000

/* One report, written at once (smaller than PIPE_BUF). */
typedef struct jb_run_msg {
  int32_t kind;
  int32_t value;
} jb_run_msg;

/* Starts `path` (an absolute or relative file name, not searched in PATH) with argv and envp
 * (NULL-terminated; borrowed, copied by fork). Returns 0 and fills *run (the caller closes its
 * descriptors and reaps run->shepherd), or an errno value from pipe2 or fork, with nothing left
 * open. With `progress`, the program also gets the write end of a pipe as descriptor 4 (read
 * end: run->progress_fd); else progress_fd is -1. */
int jb_run_start(const char *path, char *const *argv, char *const *envp, int grace_ms,
                 bool progress, jb_run *run);

/* How the shepherd is started (shepherd_spawn.c): normally the small static program jb-shepherd
 * (shepherd_exe.c with shepherd.c; its bytes are built into jobbridge and put in a memfd once),
 * by posix_spawn: a vfork-like start that copies nothing of jobbridge's memory. Forking
 * jobbridge itself (a large multi-threaded process: its page tables copied, then torn down,
 * its pages made copy-on-write for every thread) took most of a short run's time. Where that
 * program cannot be run (no memfd, no /proc, exec from memory forbidden) the shepherd is a
 * fork of jobbridge running the same code: the same guarantees, only slower. */
typedef struct jb_shepherd_args {
  pid_t parent; /* jobbridge's pid: the shepherd exits at once if its parent is not that */
  const char *path;
  char *const *argv;
  char *const *envp;
  int grace_ms;
  int fds[5];  /* the program's stdin, stdout, stderr; the report pipe's write end; the progress
                  pipe's write end or -1 */
  bool placed; /* started as the jb-shepherd program: the fds are already 0-4 and nothing else
                  is open */
} jb_shepherd_args;

/* For tests: start shepherds by forking jobbridge (as where jb-shepherd cannot run) when on. */
void jb_run_use_fork(bool on);

/* The shepherd's life; the calling process must have every signal blocked. Never returns. */
void jb_shepherd_main(const jb_shepherd_args *a) __attribute__((noreturn));

#endif
