/* jetsched init: create or check every NATS object of DESIGN §3 (streams,
 * KV buckets, the priority consumers of every configured queue) through
 * jet_js_ensure_all, and report each object as created or unchanged, for
 * people or (--json) as {"objects":[{"kind","name","outcome"}]}. */
#include "cli.h"

#include <jetsched/jsobjects.h>
#include <jetsched/log.h>
#include <jetsched/natsconn.h>

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct init_out {
    bool json;
    json_t *objects; /* --json: the array being built */
} init_out;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: jetsched init [--queue NAME]...\n\n"
            "Creates the task and dead-letter streams, the KV buckets and the high/normal/low\n"
            "consumers of every queue in jetstream.queues (and of each --queue), or checks\n"
            "that existing ones have the configured settings. Existing objects are never\n"
            "changed: one with different settings is reported and nothing is done.\n\n"
            "Options:\n"
            "  -q, --queue NAME  also create the consumers of queue NAME (repeatable)\n"
            "      --json        {\"objects\":[{\"kind\",\"name\",\"outcome\"}]}\n"
            "  -h, --help        this help\n\n"
            "Example:\n"
            "  jetsched init --queue emails --queue reports\n\n"
            "Exit codes: 0 every object exists as configured, 1 an existing object differs\n"
            "(or another failure), 2 usage error, 3 NATS/JetStream unreachable.\n");
}

static void report(void *ctx, const char *kind, const char *name, jet_js_outcome outcome)
{
    init_out *o = ctx;
    const char *word = outcome == JET_JS_CREATED ? "created" : "unchanged";
    if (o->json) {
        json_array_append_new(o->objects, json_pack("{s:s, s:s, s:s}", "kind", kind, "name", name, "outcome", word));
        return;
    }
    const char *shown = strcmp(kind, "kv") == 0 ? "kv bucket" : kind;
    if (outcome == JET_JS_CREATED)
        printf("created %s %s\n", shown, name);
    else
        printf("ok      %s %s (unchanged)\n", shown, name);
    fflush(stdout);
}

/* "cannot reach NATS at <urls> (nats.url): <reason>", without credentials. */
static void connect_error(const jet_config *cfg, jet_status st, jet_err *err)
{
    char text[sizeof err->msg];
    cli_nats_error_text(cfg, err->msg, text, sizeof text);
    jet_err_set(err, st, "%s", text);
}

static int exit_code(jet_status st)
{
    if (st == JET_OK)
        return CLI_OK;
    return st == JET_ERR_UNAVAILABLE || st == JET_ERR_TIMEOUT ? CLI_UNAVAILABLE : CLI_FAILED;
}

static void print_result(const init_out *o, jet_status st, const jet_err *err)
{
    if (st != JET_OK)
        fprintf(stderr, "jetsched init: %s\n", err->msg);
    if (!o->json)
        return;
    json_t *doc = json_pack("{s:O}", "objects", o->objects);
    if (st != JET_OK)
        json_object_set_new(doc, "error",
                            json_pack("{s:s, s:s}", "code", jet_status_code(st), "message", err->msg));
    char *text = json_dumps(doc, JSON_INDENT(2));
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(doc);
}

/* Connects, ensures every object, reports. */
static jet_status run(const jet_config *cfg, const char *const *queues, size_t n_queues, init_out *o, jet_err *err)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jet_status st = jet_nats_connect(cfg, "jetsched-init", false, &nc, err);
    if (st != JET_OK)
        connect_error(cfg, st, err);
    if (st == JET_OK)
        st = jet_nats_jetstream(nc, cfg, &js, err);
    if (st == JET_OK)
        st = jet_js_ensure_all(js, cfg, queues, n_queues, report, o, err);
    /* Our own close fires the library's disconnected callback, which would
     * log "disconnected; reconnecting": nothing worth a warning is left. */
    jet_log_set_level(JET_LOG_ERROR);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return st;
}

int cmd_init(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'}, CLI_COMMON_OPTS};
    const char **queues = calloc((size_t)argc, sizeof *queues);
    size_t n_queues = 0;
    int c;
    if (!queues) {
        fprintf(stderr, "jetsched init: out of memory\n");
        return CLI_FAILED;
    }
    optind = 0; /* GNU getopt: restart scanning at argv[1] */
    while ((c = cli_getopt(ctx, argc, argv, "q:h", opts)) != -1) {
        if (c == 'h') {
            usage(stdout);
            free(queues);
            return CLI_OK;
        }
        if (c != 'q' || !jet_name_valid(optarg)) {
            if (c == 'q')
                fprintf(stderr, "jetsched init: --queue \"%s\": a queue name is 1-64 characters of a-z, 0-9, "
                                "'_' and '-'\n", optarg);
            usage(stderr);
            free(queues);
            return CLI_USAGE;
        }
        queues[n_queues++] = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "jetsched init: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        free(queues);
        return CLI_USAGE;
    }
    jet_config *cfg = cli_config(ctx);
    if (!cfg) {
        free(queues);
        return CLI_FAILED;
    }
    init_out o = {.json = ctx->json, .objects = json_array()};
    jet_err err = {0};
    jet_status st = run(cfg, queues, n_queues, &o, &err);
    print_result(&o, st, &err);
    json_decref(o.objects);
    free(queues);
    return exit_code(st);
}
