/* The service manager's notifications (systemd's sd_notify, Type=notify): READY once serving,
 * STATUS lines, STOPPING on shutdown, and the watchdog. Every call does nothing when jobbridge is
 * not started by systemd (no NOTIFY_SOCKET), so they are safe everywhere. */
#ifndef JB_APP_NOTIFY_H
#define JB_APP_NOTIFY_H

#include <stdbool.h>

void jb_notify_ready(const char *status);
void jb_notify_status(const char *status);
void jb_notify_stopping(const char *status);
void jb_notify_reloading(void);

/* The watchdog: how often to ping (half of WatchdogSec), or -1 when there is no watchdog. */
long jb_notify_watchdog_ms(void);
/* One ping; `healthy` false sends nothing, so systemd restarts a wedged jobbridge. */
void jb_notify_watchdog(bool healthy);

#endif
