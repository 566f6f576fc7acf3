/* The jetsched command: shared context and the verb table. Each verb lives
 * in its own cmd_<verb>.c and has the signature of cli_verb_fn. */
#ifndef JETSCHED_CLI_H
#define JETSCHED_CLI_H

#include <stdbool.h>
#include <jetsched/config.h>

/* Exit codes, documented in docs/jetsched.1 and --help. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2, CLI_UNAVAILABLE = 3 };

typedef struct cli_ctx {
    const char *config_file;  /* --config, or NULL */
    bool json;                /* --json */
    jet_config *cfg;          /* loaded lazily by cli_config() */
} cli_ctx;

/* argv[0] is the verb. Returns an exit code. */
typedef int (*cli_verb_fn)(cli_ctx *ctx, int argc, char **argv);

/* Loads the configuration (schedulerd's schema: nats, jetstream, postgres, log)
 * from --config, $JETSCHED_CONFIG or /etc/jetsched/schedulerd.conf when present;
 * prints the error and returns NULL on failure. */
jet_config *cli_config(cli_ctx *ctx);

int cmd_init(cli_ctx *ctx, int argc, char **argv);
int cmd_migrate(cli_ctx *ctx, int argc, char **argv);

#endif
