/* systemd notification: READY, STOPPING, WATCHDOG and STATUS, no-ops when
 * not started by systemd (NOTIFY_SOCKET unset). */
#ifndef JETSCHED_SDNOTIFY_H
#define JETSCHED_SDNOTIFY_H

#include <stdint.h>

void jet_sd_ready(const char *status);
void jet_sd_stopping(const char *status);
void jet_sd_status(const char *status);
void jet_sd_watchdog(void);
/* Watchdog interval requested by systemd in ms (WATCHDOG_USEC), 0 when none. */
int64_t jet_sd_watchdog_interval_ms(void);

#endif
