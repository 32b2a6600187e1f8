/* sd_notify through libsystemd (Debian's libsystemd-dev). */
#include "app/notify.h"

#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

void jb_notify_ready(const char *status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void jb_notify_status(const char *status) {
  sd_notifyf(0, "STATUS=%s", status);
}

void jb_notify_stopping(const char *status) {
  sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

void jb_notify_reloading(void) {
  sd_notify(0, "RELOADING=1");
}

long jb_notify_watchdog_ms(void) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return -1;
  return (long)(usec / 2000); /* ping at half the interval */
}

void jb_notify_watchdog(bool healthy) {
  if (healthy) sd_notify(0, "WATCHDOG=1");
}
