/* jetsched: the command-line front door. Global options, verb dispatch. */
#include "cli.h"

#include <jetsched/log.h>
#include <jetsched/timeutil.h>
#include <jetsched/version.h>
#include <schedulerd.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    cli_verb_fn fn;
    const char *summary;
} verbs[] = {
    {"init", cmd_init, "create or check every NATS stream, consumer and bucket"},
    {"migrate", cmd_migrate, "apply PostgreSQL migrations (--status lists them)"},
    {"submit", cmd_submit, "submit a task (or many: --from-file), optionally --wait for it"},
    {"get", cmd_get, "show a task, its result and its attempts"},
    {"list", cmd_list, "list tasks (filters, paging)"},
    {"cancel", cmd_cancel, "cancel tasks"},
    {"watch", cmd_watch, "live events of a task, a queue, a workflow or everything"},
    {"schedule", cmd_schedule, "cron/every/at schedules: add list get preview pause resume trigger rm"},
    {"dlq", cmd_dlq, "dead letters: list show replay purge"},
    {"agents", cmd_agents, "the registered agentd processes"},
    {"leader", cmd_leader, "the schedulerd holding the leader lease"},
    {"queues", cmd_queues, "queue depth, consumer lag and rates per priority; pause resume"},
    {"limits", cmd_limits, "per-key concurrency and rate limits: list set get delete"},
    {"workflow", cmd_workflow, "DAGs of tasks with dependencies and callbacks: submit add get list cancel"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "jetsched %s - distributed task scheduler command line\n\n"
            "Usage: jetsched [global options] <verb> [options]\n\n"
            "Verbs:\n",
            JET_VERSION);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out,
            "\nGlobal options:\n"
            "  -c, --config FILE  configuration (default $JETSCHED_CONFIG, else /etc/jetsched/schedulerd.conf\n"
            "                     when present, else built-in defaults); JETSCHED_* variables override it\n"
            "  -s, --server URL   NATS server URL(s) (sets nats.url, like $JETSCHED_NATS_URL)\n"
            "      --json         machine-readable output (also accepted after the verb)\n"
            "      --request-timeout DUR  wait for an API reply at most DUR (default 5s)\n"
            "  -V, --version      print the version\n"
            "  -h, --help         this help; `jetsched <verb> --help` for a verb\n\n"
            "Examples:\n"
            "  jetsched submit --wait hello Ada           # run a task, print its result\n"
            "  jetsched list --status dead --since 1h     # what failed lately\n"
            "  jetsched schedule add nightly '0 3 * * *' batch_report --tz Europe/Paris\n"
            "  jetsched --json get 01JEXAMPLE0000000000000000 | jq .task.result\n\n"
            "Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 service unavailable.\n"
            "Manual: man jetsched (docs/jetsched.1).\n");
}

jet_config *cli_config(cli_ctx *ctx)
{
    if (ctx->cfg)
        return ctx->cfg;
    const char *file = ctx->config_file;
    if (!file)
        file = getenv("JETSCHED_CONFIG");
    if (!file && access("/etc/jetsched/schedulerd.conf", F_OK) == 0)
        file = "/etc/jetsched/schedulerd.conf";
    jet_err err;
    if (jet_config_load(schedulerd_schema, file, &ctx->cfg, &err) != JET_OK) {
        fprintf(stderr, "jetsched: invalid configuration:\n%s\n", err.msg);
        return NULL;
    }
    return ctx->cfg;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
        {"server", required_argument, NULL, 's'}, {"request-timeout", required_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    cli_ctx ctx = {.request_timeout_ms = 5000};
    int c;
    const char *env_timeout = getenv("JETSCHED_REQUEST_TIMEOUT");
    if (env_timeout && jet_duration_parse(env_timeout, &ctx.request_timeout_ms, NULL) != JET_OK) {
        fprintf(stderr, "jetsched: JETSCHED_REQUEST_TIMEOUT=\"%s\" is not a duration like 5s\n", env_timeout);
        return CLI_USAGE;
    }
    /* '+': stop at the verb; its options are its own. */
    while ((c = getopt_long(argc, argv, "+c:s:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ctx.config_file = optarg; break;
        case 'j': ctx.json = true; break;
        case 's': setenv("JETSCHED_NATS_URL", optarg, 1); break;
        case 't':
            if (jet_duration_parse(optarg, &ctx.request_timeout_ms, NULL) != JET_OK || ctx.request_timeout_ms <= 0) {
                fprintf(stderr, "jetsched: --request-timeout \"%s\": a positive duration like 5s, 500ms\n", optarg);
                return CLI_USAGE;
            }
            break;
        case 'V': printf("jetsched %s\n", JET_VERSION); return CLI_OK;
        case 'h': usage(stdout); return CLI_OK;
        default: usage(stderr); return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    jet_log_init("jetsched", JET_LOG_WARN, false);
    const char *verb = argv[optind];
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(verbs[i].name, verb) == 0) {
            ctx.verb = verbs[i].name;
            int rc = verbs[i].fn(&ctx, argc - optind, argv + optind);
            cli_close(&ctx);
            jet_config_free(ctx.cfg);
            return rc;
        }
    fprintf(stderr, "jetsched: unknown verb \"%s\" (see jetsched --help)\n", verb);
    return CLI_USAGE;
}
