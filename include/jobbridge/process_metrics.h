/* The process's own figures, as the Prometheus client libraries name them:
 * process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds. Read from /proc at each scrape. */
#ifndef JOBBRIDGE_PROCESS_METRICS_H
#define JOBBRIDGE_PROCESS_METRICS_H

#include <stdbool.h>

#include "jobbridge/metrics.h"

/* Registers the families and their collector in m (once per registry: a second call adds a
 * second collector). False when memory ran out. */
bool jb_process_metrics_register(jb_metrics *m);

#endif
