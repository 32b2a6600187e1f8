/* process_* metrics from /proc/self (include/jobbridge/process_metrics.h). */
#include "jobbridge/process_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct proc_series {
  jb_metric *cpu, *rss, *vsize, *fds, *max_fds, *start;
} proc_series;

static proc_series ps;

/* /proc/stat's btime: the boot time in unix seconds (0 when unknown). */
static long long boot_time(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return 0;
  char line[256];
  long long bt = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "btime %lld", &bt) == 1) break;
  fclose(f);
  return bt;
}

/* /proc/self/stat: utime, stime (fields 14, 15), starttime (22) in clock ticks, vsize (23). */
static void read_stat(double ticks) {
  FILE *f = fopen("/proc/self/stat", "r");
  if (f == NULL) return;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (p == NULL) return;
  unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
  /* After ")": state (3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt (13)
   * utime stime cutime cstime priority nice threads itrealvalue starttime vsize. */
  if (sscanf(p + 1,
             " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
             "%llu %llu",
             &utime, &stime, &start, &vsize) != 4)
    return;
  jb_metric_set(ps.cpu, (double)(utime + stime) / ticks);
  jb_metric_set(ps.vsize, (double)vsize);
  jb_metric_set(ps.start, (double)boot_time() + (double)start / ticks);
}

static void read_statm(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return;
  unsigned long long size = 0, resident = 0;
  if (fscanf(f, "%llu %llu", &size, &resident) == 2)
    jb_metric_set(ps.rss, (double)resident * (double)sysconf(_SC_PAGESIZE));
  fclose(f);
}

static void count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return;
  long n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.') n++;
  closedir(d);
  jb_metric_set(ps.fds, (double)(n - 1)); /* not the directory's own descriptor */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    jb_metric_set(ps.max_fds, rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
}

static void collect(void *arg) {
  (void)arg;
  long hz = sysconf(_SC_CLK_TCK);
  read_stat(hz > 0 ? (double)hz : 100.0);
  read_statm();
  count_fds();
}

bool jb_process_metrics_register(jb_metrics *m) {
  ps.cpu = jb_metric_get0(jb_metrics_counter_float(
      m, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", NULL));
  ps.rss = jb_metric_get0(
      jb_metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL));
  ps.vsize = jb_metric_get0(
      jb_metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL));
  ps.fds = jb_metric_get0(
      jb_metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", NULL));
  ps.max_fds = jb_metric_get0(
      jb_metrics_gauge(m, "process_max_fds", "Maximum number of open file descriptors.", NULL));
  ps.start = jb_metric_get0(
      jb_metrics_gauge(m, "process_start_time_seconds",
                       "Start time of the process since unix epoch in seconds.", NULL));
  if (ps.cpu == NULL || ps.rss == NULL || ps.fds == NULL || ps.start == NULL) return false;
  return jb_metrics_add_collector(m, collect, NULL);
}
