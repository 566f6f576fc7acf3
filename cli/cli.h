/* The jetsched command: shared context, the verb table and the helpers every
 * verb uses (cli_api.c: NATS connection and API requests with error mapping;
 * cli_args.c: option parsing, usage, payloads, times; cli_table.c: aligned
 * tables, JSON output and the terminal progress bar). Each verb family lives
 * in its own cmd_<family>.c and has the signature of cli_verb_fn. */
#ifndef JETSCHED_CLI_H
#define JETSCHED_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jetsched/config.h>

/* Exit codes, documented in docs/jetsched.1 and --help. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2, CLI_UNAVAILABLE = 3 };

typedef struct cli_ctx {
    const char *config_file;  /* --config, or NULL */
    bool json;                /* --json (global or after the verb) */
    jet_config *cfg;          /* loaded lazily by cli_config() */
    natsConnection *nc;       /* connected lazily by cli_nats() */
    int64_t request_timeout_ms; /* --request-timeout, default 5 s */
    const char *verb;         /* "submit", "schedule add": for messages */
} cli_ctx;

/* argv[0] is the verb. Returns an exit code. */
typedef int (*cli_verb_fn)(cli_ctx *ctx, int argc, char **argv);

/* Loads the configuration (schedulerd's schema: nats, jetstream, postgres, log)
 * from --config, $JETSCHED_CONFIG or /etc/jetsched/schedulerd.conf when present;
 * prints the error and returns NULL on failure. */
jet_config *cli_config(cli_ctx *ctx);

int cmd_init(cli_ctx *ctx, int argc, char **argv);
int cmd_migrate(cli_ctx *ctx, int argc, char **argv);
int cmd_submit(cli_ctx *ctx, int argc, char **argv);
int cmd_get(cli_ctx *ctx, int argc, char **argv);
int cmd_list(cli_ctx *ctx, int argc, char **argv);
int cmd_cancel(cli_ctx *ctx, int argc, char **argv);
int cmd_watch(cli_ctx *ctx, int argc, char **argv);
int cmd_schedule(cli_ctx *ctx, int argc, char **argv);
int cmd_dlq(cli_ctx *ctx, int argc, char **argv);
int cmd_agents(cli_ctx *ctx, int argc, char **argv);
int cmd_leader(cli_ctx *ctx, int argc, char **argv);
int cmd_queues(cli_ctx *ctx, int argc, char **argv);
int cmd_limits(cli_ctx *ctx, int argc, char **argv);
int cmd_workflow(cli_ctx *ctx, int argc, char **argv);

/* ---- cli_api.c ---- */

/* "cannot reach NATS at <urls> (nats.url): <reason>" (credentials removed). */
void cli_nats_error_text(const jet_config *cfg, const char *raw, char *out, size_t len);
/* The NATS connection (connects on first use). On failure prints the error
 * and sets *rc (CLI_UNAVAILABLE when NATS cannot be reached). */
natsConnection *cli_nats(cli_ctx *ctx, int *rc);
/* nats.prefix */
const char *cli_prefix(cli_ctx *ctx);
/* Closes the connection (quietly) if one was opened. */
void cli_close(cli_ctx *ctx);

/* Sends `req` (reference stolen; NULL means {}) to <prefix>.api.<verb>
 * (verb like "task.get") and waits for the reply. Returns CLI_OK with the
 * reply object in *out; otherwise prints "jetsched: <code>: <message>" (and,
 * with --json, {"error":...} on stdout) and returns the exit code:
 * unavailable / no responder / timeout => CLI_UNAVAILABLE, other API errors
 * => CLI_FAILED. */
int cli_request(cli_ctx *ctx, const char *verb, json_t *req, json_t **out);
/* Like cli_request but prints nothing for API errors: *out is then the
 * error object {"code","message","field"?} (a new reference) and the exit
 * code is returned. Transport failures are still printed (*out NULL). */
int cli_request_quiet(cli_ctx *ctx, const char *verb, json_t *req, json_t **out);
/* Prints an API error object as "jetsched: <code>: <message>", naming the
 * field and then the context (e.g. "file:line") unless the message does. */
void cli_print_api_error(cli_ctx *ctx, const json_t *error, const char *context);
/* Many requests to one verb, pipelined (up to `window` outstanding): reqs
 * are stolen; for each i, rcs[i] is its exit code and replies[i] the reply
 * object, the API error object, or NULL when it was not answered. Stops at
 * the first transport failure (printed; the rest get CLI_UNAVAILABLE). Steps
 * bar (may be NULL) once per answer. Returns CLI_OK or CLI_UNAVAILABLE. */
struct cli_progress;
int cli_request_many(cli_ctx *ctx, const char *verb, json_t **reqs, size_t n, size_t window, json_t **replies,
                     int *rcs, struct cli_progress *bar);
/* A list verb (task.list, schedule.list, dlq.list): sends req (borrowed)
 * and, when all, follows next_cursor to the end. *items: the array field of
 * every page concatenated; *next: the last next_cursor (malloc'ed) or NULL. */
int cli_request_pages(cli_ctx *ctx, const char *verb, const json_t *req, const char *field, bool all, json_t **items,
                      char **next);
/* The exit code for an API error code. */
int cli_error_exit(const char *code);

/* ---- cli_args.c ---- */

/* Common options of every verb; put at the end of a verb's option table. */
#define CLI_COMMON_OPTS {"json", no_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}
/* getopt_long over a verb's argv (restarted at argv[1]) that consumes --json
 * itself. Returns the option character like getopt_long. */
int cli_getopt(cli_ctx *ctx, int argc, char **argv, const char *shortopts, const struct option *opts);
/* Prints "jetsched <verb>: <message>" and the usage text to stderr; returns CLI_USAGE. */
int cli_usage_error(cli_ctx *ctx, const char *usage, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Options of a verb that has only --json and --help: returns CLI_OK,
 * CLI_USAGE (usage printed) or -1 for --help. */
int cli_plain_opts(cli_ctx *ctx, const char *usage, int argc, char **argv);
/* Sub-commands of a verb family ("schedule add", "dlq list"). */
typedef struct cli_sub {
    const char *name, *alias;
    int (*fn)(cli_ctx *ctx, const char *sub, int argc, char **argv); /* argv[0] is the sub-command */
} cli_sub;
/* Runs the sub-command named by argv[1] ("--help" prints usage). */
int cli_dispatch(cli_ctx *ctx, const char *usage, const cli_sub *subs, size_t n, int argc, char **argv);
/* Prints usage to stdout for --help; returns CLI_OK. */
int cli_help(const char *usage);
/* Exactly n positional arguments remain (optind..argc); otherwise a usage
 * error ("missing <what>" / "unexpected argument") into *rc. */
bool cli_want_args(cli_ctx *ctx, const char *usage, int argc, char **argv, int n, const char *what, int *rc);

/* The most the CLI reads as one payload ("@file", "-"), and as one line of
 * --from-file: input from a peer or a device (/dev/zero) is bounded. */
#define CLI_MAX_PAYLOAD_READ ((size_t)64 << 20)
#define CLI_MAX_LINE ((size_t)16 << 20)

/* Reads a payload: "@file", "-" (stdin) or the argument itself. *out is
 * malloc'ed (NUL-terminated, *len bytes). Reads at most
 * CLI_MAX_PAYLOAD_READ bytes. Prints the error and returns false. */
bool cli_read_payload(cli_ctx *ctx, const char *arg, char **out, size_t *len);
/* Reads one line of f into *buf (grown as needed, NUL-terminated, without
 * the newline): 1 a line (*len bytes), 0 end of input, -1 the line is longer
 * than max bytes (the rest of it is left unread), -2 a read error. */
int cli_read_line(FILE *f, char **buf, size_t *cap, size_t max, size_t *len);
/* Sets "payload" (valid UTF-8 without NUL) or "payload_base64" in obj. */
void cli_set_payload(json_t *obj, const char *buf, size_t len);
/* json_string(s), or s with U+FFFD for bytes that are not UTF-8 (never NULL for a string). */
json_t *cli_jstr(const char *s);
/* Adds a "-H Name:Value" header to the object *headers (created on first use). */
bool cli_add_header(cli_ctx *ctx, const char *usage, json_t **headers, const char *arg);
/* A time argument: RFC 3339, or a duration meaning that long ago (ago=true)
 * or from now (ago=false). Returns the RFC 3339 form in buf. */
bool cli_time_arg(const char *arg, bool ago, char *buf, size_t len);
/* The options the list verbs share (jetsched list, workflow list):
 * -s/--status S[,S] ('s': the states appended to status), --since ('F'),
 * --until ('U'), -n/--limit ('n', 1-1000), --cursor ('C'), -a/--all ('a').
 * True when c is one of them; a bad value prints the usage error and sets *rc. */
bool cli_list_opt(cli_ctx *ctx, const char *usage, int c, json_t *req, json_t *status, bool *all, int *rc);
/* Sets req's "status" from the states collected: one as a string, several as an array. */
void cli_list_status(json_t *req, json_t *status);
/* Parses a positive integer option value. */
bool cli_int_arg(const char *arg, int64_t min, int64_t max, int64_t *out);

/* ---- cli_table.c ---- */

typedef struct cli_table cli_table;
/* Columns named by the NULL-terminated header strings. */
cli_table *cli_table_new(const char *first, ...) __attribute__((sentinel));
/* Adds the next cell (rows wrap at the column count); NULL or "" shows "-".
 * Control characters are shown as spaces; cells are cut at 60 columns
 * except the last column. */
void cli_table_add(cli_table *t, const char *cell);
void cli_table_addf(cli_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints with aligned columns (two spaces between) and frees the table. */
void cli_table_print(cli_table *t, FILE *out);
/* Frees a table without printing it (NULL is fine). */
void cli_table_free(cli_table *t);

/* "key:           value" ("-" for NULL or ""). */
void cli_kv(const char *key, const char *value);
/* Pretty JSON of v on stdout. */
void cli_print_json(const json_t *v);
/* A string field of obj or NULL (also NULL for JSON null / other types). */
const char *cli_str(const json_t *obj, const char *field);
/* An integer field as text ("" when absent). */
const char *cli_intstr(const json_t *obj, const char *field, char buf[32]);
/* How long ago an RFC 3339 time was, "4s", "12m", "3h", "2d" ("-" when NULL). */
const char *cli_age(const char *rfc3339, char buf[32]);
/* "in 4s" / "4s ago" for a time relative to now. */
const char *cli_relative(const char *rfc3339, char buf[48]);
/* "3 succeeded, 1 running, 2 waiting" from an object of counts by task
 * state (states in the order of a task's life, failures last). */
void cli_counts_text(const json_t *counts, char *buf, size_t len);
/* A string array field joined with ",". */
const char *cli_join(const json_t *obj, const char *field, char *buf, size_t len);

/* A progress bar on stderr, drawn only when stderr is a terminal. */
typedef struct cli_progress {
    bool on;
    const char *label;
    int64_t total, done, failed;
    int64_t started_ms, drawn_ms;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, int64_t total);
void cli_progress_step(cli_progress *p, bool ok);
void cli_progress_end(cli_progress *p);
/* Clears the bar's line before other output to stderr. */
void cli_progress_clear(cli_progress *p);

#endif
