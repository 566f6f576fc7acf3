/* jetsched dlq list|show|replay|purge: dead letters (JETSCHED_DLQ) through
 * the dlq.* API verbs; `replay --all` replays message by message with a
 * progress bar on a terminal. */
#include "cli.h"

#include <jetsched/names.h>

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: jetsched dlq <list|show|replay|purge> [options] ...\n\n"
    "  list [-q QUEUE] [-n N] [--cursor C] [--all]   dead letters, oldest first\n"
    "  show SEQ                  one dead letter: reason, attempts, last error, headers, payload\n"
    "  replay SEQ...             publish again to the original subject, keeping the task id\n"
    "                            (its history continues, with a fresh budget of attempts)\n"
    "  replay --all [-q QUEUE]   every dead letter (of QUEUE); progress bar on a terminal\n"
    "  purge SEQ... | purge --all [-q QUEUE]   delete dead letters for good\n\n"
    "SEQ is the dead letter's sequence number in the DLQ stream (first column of list).\n"
    "Every verb takes --json (the API replies) and -h/--help.\n\n"
    "Examples:\n"
    "  jetsched dlq list --queue emails\n"
    "  jetsched dlq show 12\n"
    "  jetsched dlq replay 12 13\n"
    "  jetsched dlq replay --all --queue emails\n"
    "  jetsched dlq purge --all --queue scratch\n\n"
    "Exit codes: 0 ok, 1 failed (e.g. not_found for a SEQ), 2 usage error, 3 unavailable.\n";

static int64_t parse_seq(cli_ctx *ctx, const char *arg, int *rc)
{
    int64_t seq;
    if (!cli_int_arg(arg, 1, INT64_MAX, &seq)) {
        *rc = cli_usage_error(ctx, usage, "SEQ \"%s\": a sequence number from dlq list", arg);
        return 0;
    }
    return seq;
}

typedef struct dlq_opts {
    const char *queue, *cursor;
    int64_t limit;
    bool all;
} dlq_opts;

/* Options of every dlq verb; positional arguments are left at optind. */
static int parse(cli_ctx *ctx, int argc, char **argv, dlq_opts *o)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'}, {"limit", required_argument, NULL, 'n'},
        {"cursor", required_argument, NULL, 'C'}, {"all", no_argument, NULL, 'a'}, CLI_COMMON_OPTS,
    };
    int c;
    memset(o, 0, sizeof *o);
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "q:n:ah", opts)) != -1) {
        switch (c) {
        case 'q':
            if (!jet_name_valid(optarg))
                return cli_usage_error(ctx, usage, "--queue \"%s\": 1-64 characters of a-z 0-9 _ -", optarg);
            o->queue = optarg;
            break;
        case 'n':
            if (!cli_int_arg(optarg, 1, 1000, &o->limit))
                return cli_usage_error(ctx, usage, "--limit \"%s\": a number from 1 to 1000", optarg);
            break;
        case 'C': o->cursor = optarg; break;
        case 'a': o->all = true; break;
        case 'h': return -1;
        default: fputs(usage, stderr); return CLI_USAGE;
        }
    }
    return CLI_OK;
}

/* Dead letters (of o->queue) from dlq.list, every page when all. */
static int fetch(cli_ctx *ctx, const dlq_opts *o, bool all, json_t **out, char **next)
{
    json_t *req = json_object();
    if (o->queue)
        json_object_set_new(req, "queue", cli_jstr(o->queue));
    if (o->limit || all)
        json_object_set_new(req, "limit", json_integer(o->limit ? o->limit : 1000));
    if (o->cursor)
        json_object_set_new(req, "cursor", cli_jstr(o->cursor));
    int rc = cli_request_pages(ctx, "dlq.list", req, "messages", all, out, next);
    json_decref(req);
    return rc;
}

static int dlq_list(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    dlq_opts o;
    int rc = parse(ctx, argc, argv, &o);
    if (rc < 0)
        return cli_help(usage);
    if (rc != CLI_OK)
        return rc;
    if (optind < argc)
        return cli_usage_error(ctx, usage, "unexpected argument \"%s\"", argv[optind]);
    json_t *msgs = NULL;
    char *next = NULL;
    rc = fetch(ctx, &o, o.all, &msgs, &next);
    if (rc == CLI_OK && ctx->json) {
        json_t *doc = json_pack("{s:O,s:s?}", "messages", msgs, "next_cursor", o.all ? NULL : next);
        cli_print_json(doc);
        json_decref(doc);
    } else if (rc == CLI_OK) {
        cli_table *t = cli_table_new("SEQ", "QUEUE", "TASK", "HANDLER", "REASON", "ATTEMPTS", "AGE", "LAST ERROR",
                                     NULL);
        size_t i;
        const json_t *m;
        json_array_foreach(msgs, i, m)
        {
            char n[32], a[32], age[32];
            cli_table_add(t, cli_intstr(m, "seq", n));
            cli_table_add(t, cli_str(m, "queue"));
            cli_table_add(t, cli_str(m, "task_id"));
            cli_table_add(t, cli_str(m, "handler"));
            cli_table_add(t, cli_str(m, "reason"));
            cli_table_add(t, cli_intstr(m, "attempts", a));
            cli_table_add(t, cli_age(cli_str(m, "dead_at"), age));
            cli_table_add(t, cli_str(m, "last_error"));
        }
        cli_table_print(t, stdout);
        if (next && !o.all)
            fprintf(stderr, "(more: jetsched dlq list --cursor %s, or --all)\n", next);
    }
    json_decref(msgs);
    free(next);
    return rc;
}

static int dlq_show(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    dlq_opts o;
    int rc = parse(ctx, argc, argv, &o);
    if (rc < 0)
        return cli_help(usage);
    if (rc != CLI_OK || !cli_want_args(ctx, usage, argc, argv, 1, "SEQ", &rc))
        return rc;
    int64_t seq = parse_seq(ctx, argv[optind], &rc);
    if (rc != CLI_OK)
        return rc;
    json_t *reply = NULL;
    rc = cli_request(ctx, "dlq.get", json_pack("{s:I}", "seq", (json_int_t)seq), &reply);
    if (rc == CLI_OK && ctx->json) {
        cli_print_json(reply);
    } else if (rc == CLI_OK) {
        const json_t *m = json_object_get(reply, "message");
        char n[32], rel[48];
        printf("%-12s %s\n", "seq:", cli_intstr(m, "seq", n));
        static const char *const f[][2] = {{"queue", "queue:"},   {"task_id", "task:"},  {"handler", "handler:"},
                                           {"reason", "reason:"}, {"last_error", "last error:"}};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            printf("%-12s %s\n", f[i][1], cli_str(m, f[i][0]) ? cli_str(m, f[i][0]) : "-");
        printf("%-12s %s\n", "attempts:", cli_intstr(m, "attempts", n));
        printf("%-12s %s (%s)\n", "dead at:", cli_str(m, "dead_at") ? cli_str(m, "dead_at") : "-",
               cli_relative(cli_str(m, "dead_at"), rel));
        const char *k;
        const json_t *v;
        printf("headers:\n");
        json_object_foreach((json_t *)json_object_get(m, "headers"), k, v)
        {
            if (json_is_string(v))
                printf("  %s: %s\n", k, json_string_value(v));
            else {
                char *s = json_dumps(v, JSON_COMPACT);
                printf("  %s: %s\n", k, s ? s : "?");
                free(s);
            }
        }
        if (cli_str(m, "payload"))
            printf("payload:\n%s\n", cli_str(m, "payload"));
        else if (cli_str(m, "payload_base64"))
            printf("payload (binary, base64):\n%s\n", cli_str(m, "payload_base64"));
    }
    json_decref(reply);
    return rc;
}

/* replay or purge of the SEQ arguments, one request each. */
static int by_seq(cli_ctx *ctx, const char *verb, cli_progress *bar, int64_t *count, json_t *task_ids,
                  const int64_t *seqs, size_t nseqs)
{
    int rc = CLI_OK;
    bool replay = strstr(verb, "replay") != NULL;
    for (size_t i = 0; i < nseqs; i++) {
        json_t *reply = NULL;
        int r = cli_request_quiet(ctx, verb, json_pack("{s:I}", "seq", (json_int_t)seqs[i]), &reply);
        if (r == CLI_OK) {
            json_int_t n = json_integer_value(json_object_get(reply, replay ? "replayed" : "purged"));
            *count += n;
            json_array_extend(task_ids, json_object_get(reply, "task_ids"));
            if (!ctx->json && !bar->on && replay && n) {
                const json_t *ids = json_object_get(reply, "task_ids");
                printf("replayed %lld: task %s\n", (long long)seqs[i],
                       json_array_size(ids) ? json_string_value(json_array_get(ids, 0)) : "?");
            } else if (!ctx->json && !replay) {
                printf("purged %lld\n", (long long)seqs[i]);
            }
        } else if (reply) {
            cli_progress_clear(bar);
            char where[40];
            snprintf(where, sizeof where, "seq %lld", (long long)seqs[i]);
            cli_print_api_error(ctx, reply, where);
        }
        json_decref(reply);
        cli_progress_step(bar, r == CLI_OK);
        if (r != CLI_OK && rc != CLI_UNAVAILABLE)
            rc = r;
        if (r == CLI_UNAVAILABLE)
            break;
    }
    return rc;
}

static int dlq_replay_purge(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    bool replay = !strcmp(sub, "replay");
    dlq_opts o;
    int rc = parse(ctx, argc, argv, &o);
    if (rc < 0)
        return cli_help(usage);
    if (rc != CLI_OK)
        return rc;
    if (o.all && optind < argc)
        return cli_usage_error(ctx, usage, "%s takes SEQ... or --all, not both", sub);
    if (!o.all && optind >= argc)
        return cli_usage_error(ctx, usage, "%s needs SEQ... or --all", sub);
    if (!o.all && o.queue)
        return cli_usage_error(ctx, usage, "--queue goes with --all");
    int64_t count = 0;
    json_t *task_ids = json_array();
    cli_progress bar;
    if (o.all && !replay) { /* purge --all: one request */
        json_t *req = json_pack("{s:b}", "all", 1), *reply = NULL;
        if (o.queue)
            json_object_set_new(req, "queue", cli_jstr(o.queue));
        rc = cli_request(ctx, "dlq.purge", req, &reply);
        if (rc == CLI_OK)
            count = json_integer_value(json_object_get(reply, "purged"));
        json_decref(reply);
    } else {
        size_t n = 0;
        int64_t *seqs = NULL;
        if (o.all) {
            json_t *msgs = NULL;
            char *next = NULL;
            rc = fetch(ctx, &o, true, &msgs, &next);
            n = json_array_size(msgs);
            seqs = calloc(n ? n : 1, sizeof *seqs);
            for (size_t i = 0; i < n; i++)
                seqs[i] = json_integer_value(json_object_get(json_array_get(msgs, i), "seq"));
            json_decref(msgs);
            free(next);
        } else {
            n = (size_t)(argc - optind);
            seqs = calloc(n, sizeof *seqs);
            for (size_t i = 0; i < n && rc == CLI_OK; i++)
                seqs[i] = parse_seq(ctx, argv[optind + (int)i], &rc);
        }
        if (rc == CLI_OK) {
            cli_progress_start(&bar, replay ? "replaying" : "purging", o.all ? (int64_t)n : 0);
            rc = by_seq(ctx, replay ? "dlq.replay" : "dlq.purge", &bar, &count, task_ids, seqs, n);
            cli_progress_end(&bar);
        }
        free(seqs);
    }
    if (ctx->json && (rc == CLI_OK || rc == CLI_FAILED)) {
        json_t *doc = replay ? json_pack("{s:I,s:O}", "replayed", (json_int_t)count, "task_ids", task_ids)
                             : json_pack("{s:I}", "purged", (json_int_t)count);
        cli_print_json(doc);
        json_decref(doc);
    } else if (rc == CLI_OK || (rc == CLI_FAILED && count)) {
        printf("%s %lld dead letter(s)\n", replay ? "replayed" : "purged", (long long)count);
    }
    json_decref(task_ids);
    return rc;
}

int cmd_dlq(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_sub subs[] = {
        {"list", "ls", dlq_list},
        {"show", "get", dlq_show},
        {"replay", NULL, dlq_replay_purge},
        {"purge", NULL, dlq_replay_purge},
    };
    return cli_dispatch(ctx, usage, subs, sizeof subs / sizeof subs[0], argc, argv);
}
