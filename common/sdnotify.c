/* systemd notifications through libsystemd's sd_notify. */
#include <jetsched/sdnotify.h>

#include <stdio.h>
#include <systemd/sd-daemon.h>

static void notify(const char *state, const char *status)
{
    char buf[512];
    if (status)
        snprintf(buf, sizeof buf, "%s\nSTATUS=%s", state, status);
    else
        snprintf(buf, sizeof buf, "%s", state);
    sd_notify(0, buf);
}

void jet_sd_ready(const char *status) { notify("READY=1", status); }
void jet_sd_stopping(const char *status) { notify("STOPPING=1", status); }
void jet_sd_watchdog(void) { sd_notify(0, "WATCHDOG=1"); }

void jet_sd_status(const char *status)
{
    char buf[512];
    snprintf(buf, sizeof buf, "STATUS=%s", status);
    sd_notify(0, buf);
}

int64_t jet_sd_watchdog_interval_ms(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? (int64_t)(usec / 1000) : 0;
}
