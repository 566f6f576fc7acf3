/* The command line every daemon shares: --config, --check-config,
 * --print-schema, --version, --help; loading the configuration and setting
 * up logging from it. */
#ifndef JETSCHED_DAEMON_CLI_H
#define JETSCHED_DAEMON_CLI_H

#include <stdbool.h>
#include <jetsched/config.h>

typedef struct jet_daemon_info {
    const char *name;            /* "agentd" */
    const char *summary;         /* one line for --help */
    const char *default_config;  /* "/etc/jetsched/agentd.conf" */
    const jet_cfg_key *const *schema;
} jet_daemon_info;

/* Exit codes of the daemons. */
enum { JET_EXIT_OK = 0, JET_EXIT_FAILURE = 1, JET_EXIT_USAGE = 2 };

/* Parses argv. Returns -1 when the daemon should run (with *cfg loaded and
 * logging initialised), otherwise the exit code (after --help, --version,
 * --check-config, or an error already printed to stderr). */
int jet_daemon_start(const jet_daemon_info *info, int argc, char **argv, jet_config **cfg);

/* True when SIGTERM or SIGINT is pending. The daemons block those signals
 * in every thread and take them with sigtimedwait() once running; during
 * start-up their wait loops (NATS, PostgreSQL) poll this to stop early. */
bool jet_stop_signal_pending(void);

/* Ignores SIGPIPE and blocks SIGTERM, SIGINT and SIGHUP in the calling
 * thread, so every thread started afterwards inherits the mask and only
 * jet_daemon_run_signals() takes them. Call before starting any thread. */
void jet_daemon_block_signals(void);

/* The running daemon's main loop: sends WATCHDOG=1 at half the systemd
 * watchdog interval (when one is set), calls on_hup(arg) for every SIGHUP,
 * and returns the signal (SIGTERM or SIGINT) that asks it to stop. */
int jet_daemon_run_signals(void (*on_hup)(void *), void *arg);

/* Initialises logging from the log.* keys. */
void jet_log_init_from_config(const char *component, const jet_config *cfg);

#endif
