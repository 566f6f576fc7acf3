/* jetsched limits [list] | set | get | delete: per-key concurrency and rate
 * limits and per-queue defaults through limit.set|get|list|delete. */
#include "cli.h"

#include <jetsched/names.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: jetsched limits [list]\n"
    "       jetsched limits set KEY|--queue QUEUE [--concurrency N] [--rate R] [--burst B]\n"
    "       jetsched limits get KEY|--queue QUEUE\n"
    "       jetsched limits delete KEY|--queue QUEUE\n\n"
    "A task with header Jetsched-Concurrency-Key: KEY starts only while fewer than N tasks with that key\n"
    "run across all agents; one with Jetsched-Rate-Key: KEY starts at most R times a second (token\n"
    "bucket of B, default 1). A held task is parked (status throttled, no attempt spent) and published\n"
    "again when a slot or token frees. --queue sets the default of every key of that queue's tasks\n"
    "that has no limit of its own. set replaces the whole limit; refused (failed_precondition) while\n"
    "an agentd without the limits feature serves the queue.\n\n"
    "Options:\n"
    "  -q, --queue QUEUE     the queue's default instead of a KEY\n"
    "  -n, --concurrency N   running tasks of the key at most (1-1000000)\n"
    "  -r, --rate R          starts per second (0.000001-1000000, like 10 or 0.5)\n"
    "  -b, --burst B         starts allowed at once after a quiet time (with --rate; default 1)\n"
    "      --json            the API reply\n\n"
    "Examples:\n"
    "  jetsched limits set partner-api --rate 10 --burst 10\n"
    "  jetsched limits set customer:42 --concurrency 3\n"
    "  jetsched limits set --queue exports --concurrency 2\n"
    "  jetsched limits\n"
    "  jetsched limits delete customer:42\n\n"
    "Exit codes: 0 ok, 1 failed (e.g. not_found, failed_precondition), 2 usage error, 3 unavailable.\n";

static void print_table(const json_t *limits)
{
    cli_table *t = cli_table_new("KEY", "CONCURRENCY", "IN USE", "RATE/S", "BURST", "WAITING", "HELD UNTIL", NULL);
    size_t i;
    const json_t *l;
    json_array_foreach(limits, i, l)
    {
        const char *q = cli_str(l, "queue");
        if (q)
            cli_table_addf(t, "queue %s (default)", q);
        else
            cli_table_add(t, cli_str(l, "key"));
        const json_t *c = json_object_get(l, "concurrency"), *r = json_object_get(l, "rate");
        if (json_is_integer(c))
            cli_table_addf(t, "%lld", (long long)json_integer_value(c));
        else
            cli_table_add(t, "-");
        if (q)
            cli_table_add(t, "-");
        else
            cli_table_addf(t, "%lld", (long long)json_integer_value(json_object_get(l, "in_use")));
        if (json_is_number(r))
            cli_table_addf(t, "%g", json_number_value(r));
        else
            cli_table_add(t, "-");
        if (json_is_number(r))
            cli_table_addf(t, "%lld", (long long)json_integer_value(json_object_get(l, "burst")));
        else
            cli_table_add(t, "-");
        if (q)
            cli_table_add(t, "-");
        else
            cli_table_addf(t, "%lld", (long long)json_integer_value(json_object_get(l, "waiting")));
        const char *held = cli_str(l, "held_until");
        cli_table_add(t, held ? held : "-");
    }
    cli_table_print(t, stdout); /* frees t */
}

/* Every page (limit.list pages by 1,000): one table, or one JSON reply
 * holding all of them. */
static int limits_list(cli_ctx *ctx)
{
    json_t *req = json_object(), *all = NULL;
    char *next = NULL;
    int rc = cli_request_pages(ctx, "limit.list", req, "limits", true, &all, &next);
    json_decref(req);
    free(next);
    if (rc == CLI_OK) {
        if (ctx->json) {
            json_t *out = json_pack("{s:O,s:n}", "limits", all, "next_cursor");
            cli_print_json(out);
            json_decref(out);
        } else {
            print_table(all);
        }
    }
    json_decref(all);
    return rc;
}

/* set|get|delete: the target (KEY or --queue) and, for set, the values. */
static int limits_verb(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"queue", required_argument, NULL, 'q'},
                                         {"concurrency", required_argument, NULL, 'n'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"burst", required_argument, NULL, 'b'},
                                         CLI_COMMON_OPTS};
    const char *sub = argv[1];
    bool set = !strcmp(sub, "set");
    json_t *req = json_object();
    int c, rc = CLI_OK;
    int64_t v;
    argc--, argv++;
    optind = 0;
    while (rc == CLI_OK && (c = cli_getopt(ctx, argc, argv, "q:n:r:b:h", opts)) != -1) {
        switch (c) {
        case 'q':
            if (!jet_name_valid(optarg))
                rc = cli_usage_error(ctx, usage, "--queue \"%s\": 1-64 characters of a-z 0-9 _ -", optarg);
            else
                json_object_set_new(req, "queue", cli_jstr(optarg));
            break;
        case 'n':
        case 'b':
            if (!set)
                rc = cli_usage_error(ctx, usage, "--%s is for set only", c == 'n' ? "concurrency" : "burst");
            else if (!cli_int_arg(optarg, 1, 1000000, &v))
                rc = cli_usage_error(ctx, usage, "--%s \"%s\": a number from 1 to 1000000",
                                     c == 'n' ? "concurrency" : "burst", optarg);
            else
                json_object_set_new(req, c == 'n' ? "concurrency" : "burst", json_integer(v));
            break;
        case 'r': {
            char *end = NULL;
            double r = strtod(optarg, &end);
            if (!set)
                rc = cli_usage_error(ctx, usage, "--rate is for set only");
            else if (!end || *end || !(r >= 1e-6 && r <= 1e6) || !isfinite(r))
                rc = cli_usage_error(ctx, usage, "--rate \"%s\": tasks per second, 0.000001 to 1000000 (like 10 or 0.5)",
                                     optarg);
            else
                json_object_set_new(req, "rate", json_real(r));
            break;
        }
        case 'h': json_decref(req); return cli_help(usage);
        default: json_decref(req); fputs(usage, stderr); return CLI_USAGE;
        }
    }
    if (rc != CLI_OK) {
        json_decref(req);
        return rc;
    }
    bool by_queue = json_object_get(req, "queue") != NULL;
    if (by_queue ? optind != argc : optind != argc - 1) {
        json_decref(req);
        return cli_usage_error(ctx, usage, "%s needs exactly one KEY, or --queue QUEUE", sub);
    }
    if (!by_queue) {
        if (!jet_limit_key_valid(argv[optind])) {
            json_decref(req);
            return cli_usage_error(ctx, usage, "KEY \"%s\": 1-128 characters of A-Z a-z 0-9 _ . : -", argv[optind]);
        }
        json_object_set_new(req, "key", cli_jstr(argv[optind]));
    }
    char verb[32];
    snprintf(verb, sizeof verb, "limit.%s", sub);
    json_t *reply = NULL;
    rc = cli_request(ctx, verb, req, &reply); /* steals req */
    if (rc != CLI_OK)
        return rc;
    if (ctx->json) {
        cli_print_json(reply);
    } else if (!strcmp(sub, "delete")) {
        printf("limit of %s %s deleted\n", by_queue ? "queue" : "key",
               cli_str(reply, by_queue ? "queue" : "key"));
    } else {
        json_t *one = json_pack("[O]", json_object_get(reply, "limit"));
        print_table(one);
        json_decref(one);
    }
    json_decref(reply);
    return CLI_OK;
}

int cmd_limits(cli_ctx *ctx, int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "set") || !strcmp(argv[1], "get") || !strcmp(argv[1], "delete")))
        return limits_verb(ctx, argc, argv);
    if (argc > 1 && strcmp(argv[1], "list") != 0) {
        if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
            return cli_help(usage);
        if (strcmp(argv[1], "--json") != 0)
            return cli_usage_error(ctx, usage, "unknown sub-command \"%s\" (list, set, get, delete)", argv[1]);
        ctx->json = true;
    }
    if (argc > 2) {
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--json"))
                ctx->json = true;
            else
                return cli_usage_error(ctx, usage, "unexpected argument \"%s\"", argv[i]);
        }
    }
    return limits_list(ctx);
}
