/* jetsched: the command-line front door. Global options, verb dispatch. */
#include "cli.h"

#include <jetsched/log.h>
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
            "      --json         machine-readable output\n"
            "  -V, --version      print the version\n"
            "  -h, --help         this help; `jetsched <verb> --help` for a verb\n\n"
            "Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 service unavailable.\n");
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
        {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    cli_ctx ctx = {0};
    int c;
    /* '+': stop at the verb; its options are its own. */
    while ((c = getopt_long(argc, argv, "+c:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ctx.config_file = optarg; break;
        case 'j': ctx.json = true; break;
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
            int rc = verbs[i].fn(&ctx, argc - optind, argv + optind);
            jet_config_free(ctx.cfg);
            return rc;
        }
    fprintf(stderr, "jetsched: unknown verb \"%s\" (see jetsched --help)\n", verb);
    return CLI_USAGE;
}
