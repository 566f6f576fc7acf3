/* jetsched workflow submit|add|list|cancel (and the dispatch to get,
 * cmd_workflow_get.c): DAGs of tasks through workflow.* (docs/WORKFLOWS.md).
 * submit sends a file in the workflow.submit body format (in chunks of
 * workflow.add when it is larger than one request). */
#include "cli.h"
#include "workflow.h"

#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WF_REQ_NODES 10000 /* nodes per workflow.submit / workflow.add (docs/WORKFLOWS.md) */
#define WF_SLOW_NODES 1000 /* a submit/add of more nodes waits WF_SLOW_TIMEOUT_MS for its reply */
#define WF_SLOW_TIMEOUT_MS 60000

static const char usage[] =
    "Usage: jetsched workflow submit [--id ID] [--open] [--validate] [--wait] FILE|-\n"
    "       jetsched workflow add ID [FILE|-] [--close]\n"
    "       jetsched workflow get [--all] [--full] [--counts] ID\n"
    "       jetsched workflow list [--status S] [--since T] [--until T] [-n N] [--cursor C] [--all]\n"
    "       jetsched workflow cancel ID\n\n"
    "A workflow is a DAG of tasks: a node runs once every node it depends_on has succeeded (or ended,\n"
    "on an edge with allow_failure); on_success and on_complete callbacks run once when it ends.\n"
    "See docs/WORKFLOWS.md; `jetsched workflow <sub-command> --help` for each.\n\n"
    "Examples:\n"
    "  jetsched workflow submit book.json\n"
    "  jetsched workflow get book-42\n"
    "  jetsched workflow list --status running\n"
    "  jetsched watch --workflow book-42\n\n"
    "Exit codes: 0 ok, 1 failed (e.g. invalid_argument, not_found), 2 usage error, 3 unavailable.\n";

/* ---- shared ---- */

bool wf_id_valid(const char *s)
{
    return s && strlen(s) <= WF_ID_MAX && jet_task_id_valid(s);
}

/* A request to a workflow.* verb: API errors printed (and the reply object
 * with --json) as cli_request does, plus a hint when the schedulerd
 * answering predates the workflow API. */
int wf_request(cli_ctx *ctx, const char *verb, json_t *req, json_t **out)
{
    json_t *reply = NULL;
    /* thousands of nodes are one transaction: wait longer than for a task */
    int64_t timeout = ctx->request_timeout_ms;
    if (json_array_size(json_object_get(req, "tasks")) > WF_SLOW_NODES && ctx->request_timeout_ms < WF_SLOW_TIMEOUT_MS)
        ctx->request_timeout_ms = WF_SLOW_TIMEOUT_MS;
    int rc = cli_request_quiet(ctx, verb, req, &reply);
    ctx->request_timeout_ms = timeout;
    if (rc == CLI_OK) {
        *out = reply;
        return rc;
    }
    *out = NULL;
    if (!reply) /* transport failure: printed already */
        return rc;
    cli_print_api_error(ctx, reply, NULL);
    const char *msg = cli_str(reply, "message");
    if (msg && strstr(msg, "unknown verb"))
        fprintf(stderr, "jetsched: this schedulerd has no workflow API (upgrade schedulerd; docs/WORKFLOWS.md)\n");
    if (ctx->json) {
        json_t *doc = json_pack("{s:O}", "error", reply);
        cli_print_json(doc);
        json_decref(doc);
    }
    json_decref(reply);
    return rc;
}

/* Reads FILE or "-" (stdin) as JSON; NULL with the error printed. */
static json_t *read_json(cli_ctx *ctx, const char *arg)
{
    char *buf = NULL, *at = NULL;
    size_t len = 0;
    if (strcmp(arg, "-") != 0) {
        size_t n = strlen(arg) + 2;
        at = malloc(n);
        if (!at)
            return NULL;
        snprintf(at, n, "@%s", arg);
    }
    bool ok = cli_read_payload(ctx, at ? at : arg, &buf, &len);
    free(at);
    if (!ok)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(buf, len, 0, &jerr);
    free(buf);
    if (!doc)
        fprintf(stderr, "jetsched %s: %s:%d:%d: %s\n", ctx->verb, strcmp(arg, "-") ? arg : "stdin", jerr.line,
                jerr.column, jerr.text);
    return doc;
}

static json_t *count_statuses(const json_t *items)
{
    json_t *counts = json_object();
    size_t i;
    const json_t *t;
    json_array_foreach(items, i, t)
    {
        const char *st = cli_str(t, "status");
        if (!st)
            continue;
        json_int_t n = json_integer_value(json_object_get(counts, st));
        json_object_set_new(counts, st, json_integer(n + 1));
    }
    return counts;
}

/* The reply of submit/add for people: one line, and the nodes with --verbose. */
static void print_created(const json_t *reply, bool list_nodes)
{
    const char *id = cli_str(reply, "id");
    char nbuf[32], cbuf[512];
    bool created = json_is_true(json_object_get(reply, "created"));
    if (!created) {
        printf("workflow %s exists already (%s, %s nodes): nothing stored\n", id, cli_str(reply, "status"),
               cli_intstr(reply, "nodes", nbuf));
        return;
    }
    json_t *counts = count_statuses(json_object_get(reply, "tasks"));
    cli_counts_text(counts, cbuf, sizeof cbuf);
    json_decref(counts);
    printf("workflow %s %s: %s nodes%s%s%s%s\n", id, cli_str(reply, "status") ? cli_str(reply, "status") : "?",
           cli_intstr(reply, "nodes", nbuf), cbuf[0] ? " (this request: " : "", cbuf, cbuf[0] ? ")" : "",
           json_is_true(json_object_get(reply, "open")) ? "; open (jetsched workflow add ... --close)" : "");
    if (!list_nodes)
        return;
    cli_table *t = cli_table_new("NODE", "TASK", "STATUS", NULL);
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(reply, "tasks"), i, n)
    {
        cli_table_add(t, cli_str(n, "id"));
        cli_table_add(t, cli_str(n, "task_id"));
        cli_table_add(t, cli_str(n, "status"));
    }
    cli_table_print(t, stdout);
}

/* Polls workflow.get until the workflow has ended (or timeout_ms, when
 * not 0, has passed: CLI_FAILED); CLI_OK when it succeeded. */
static int wait_end(cli_ctx *ctx, const char *id, int64_t timeout_ms)
{
    int64_t pause = 100, start = jet_mono_ms();
    for (;;) {
        json_t *reply = NULL;
        int rc = wf_request(ctx, "workflow.get", json_pack("{s:s,s:b}", "id", id, "nodes", 0), &reply);
        if (rc != CLI_OK)
            return rc;
        const json_t *w = json_object_get(reply, "workflow");
        if (cli_str(w, "finished_at")) {
            char cbuf[512];
            cli_counts_text(json_object_get(w, "counts"), cbuf, sizeof cbuf);
            const char *st = cli_str(w, "status");
            rc = st && !strcmp(st, "succeeded") ? CLI_OK : CLI_FAILED;
            if (ctx->json)
                cli_print_json(reply);
            else
                printf("workflow %s ended %s: %s\n", id, st ? st : "?", cbuf);
            json_decref(reply);
            return rc;
        }
        if (timeout_ms && jet_mono_ms() - start >= timeout_ms) {
            char d[32];
            fprintf(stderr, "jetsched: workflow %s is still %s after %s (it keeps running: jetsched workflow get %s)\n",
                    id, cli_str(w, "status") ? cli_str(w, "status") : "?", jet_duration_format(timeout_ms, d, sizeof d),
                    id);
            json_decref(reply);
            return CLI_FAILED;
        }
        json_decref(reply);
        struct timespec ts = {pause / 1000, (pause % 1000) * 1000000};
        nanosleep(&ts, NULL);
        if (pause < 1000)
            pause *= 2;
    }
}

/* ---- submit (chunked when larger than one request) ---- */

static const char submit_usage[] =
    "Usage: jetsched workflow submit [options] FILE|-\n\n"
    "Submits a workflow from FILE (or stdin) in the workflow.submit body format:\n"
    "  {\"id\": \"book-42\", \"tasks\": [{\"id\": \"p1\", \"handler\": \"render\"},\n"
    "                              {\"id\": \"merge\", \"handler\": \"merge\", \"depends_on\": [\"p1\"]}],\n"
    "   \"on_success\": {\"handler\": \"notify\"}}\n"
    "(a bare array of nodes is the \"tasks\"). Each node is a task.submit body plus \"id\" and\n"
    "\"depends_on\" (node ids, or {\"id\": ..., \"allow_failure\": true}). A file of more than 10000\n"
    "nodes, or larger than the NATS server's max_payload, is sent as workflow.submit (open) and\n"
    "workflow.add requests in dependency order, closed by the last one (the ids and dependencies are\n"
    "checked here first; a refused request leaves the workflow open with what was stored).\n"
    "Submitting an id that exists stores nothing (\"exists already\", exit 0). A request of more than\n"
    "1000 nodes waits up to 60 s for its reply (or --request-timeout, when longer).\n\n"
    "Options:\n"
    "      --id ID     the workflow id (overrides the file's; default: the file's, else a ULID)\n"
    "      --open      leave the workflow open for jetsched workflow add (it never ends until closed)\n"
    "      --validate  check only (validate_only: every check of the API, nothing stored)\n"
    "  -w, --wait      wait until the workflow ends; exit 0 only if it succeeded\n"
    "      --wait-timeout DUR  give up waiting after DUR (exit 1; the workflow keeps running)\n"
    "  -v, --verbose   list every node with its task id and status\n"
    "      --json      the API reply (chunked: {\"id\",\"status\",\"open\",\"created\",\"nodes\",\"requests\"})\n"
    "  -h, --help      this help\n\n"
    "Examples:\n"
    "  jetsched workflow submit book.json\n"
    "  jetsched workflow submit --wait --id nightly-$(date +%F) etl.json\n"
    "  generate-dag | jetsched workflow submit -\n"
    "  jetsched workflow submit --validate book.json\n\n"
    "Exit codes: 0 ok (with --wait: the workflow succeeded), 1 refused (the API's error names the node\n"
    "and field) or the workflow did not succeed, 2 usage or unreadable FILE, 3 unavailable.\n";

/* The nodes of tasks in dependency order (parents first, else file order);
 * duplicate ids, unknown parents and cycles are reported as the API would
 * (invalid_argument). NULL on such an error (printed). */
static json_t *dependency_order(const json_t *tasks)
{
    dag g;
    json_t *out = NULL;
    if (!dag_build(&g, tasks, true))
        goto out;
    if (!dag_sort(&g)) {
        fprintf(stderr, "jetsched: invalid_argument: the dependencies form a cycle (%zu nodes are on or behind it",
                g.n - g.nsorted);
        for (size_t i = 0, j = 0; i < g.n && j < 5; i++)
            if (g.v[i].layer < 0)
                fprintf(stderr, "%s%s", j++ ? ", " : ": ", g.v[i].id);
        fprintf(stderr, ")\n");
        goto out;
    }
    out = json_array();
    for (size_t i = 0; i < g.nsorted; i++)
        json_array_append(out, (json_t *)g.v[g.sorted[i]].obj);
out:
    dag_free(&g);
    return out;
}

static size_t json_size(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    size_t n = s ? strlen(s) : 0;
    free(s);
    return n;
}

/* Sends doc (its "tasks" in dependency order) as a submit and adds of at
 * most WF_REQ_NODES nodes and budget bytes each. */
static int submit_chunked(cli_ctx *ctx, json_t *doc, size_t budget, bool leave_open, json_t **final)
{
    json_t *ordered = dependency_order(json_object_get(doc, "tasks"));
    if (!ordered)
        return CLI_FAILED;
    size_t n = json_array_size(ordered), i = 0, requests = 0, base = json_size(doc) - json_size(json_object_get(doc, "tasks"));
    int rc = CLI_OK;
    char *wf = cli_str(doc, "id") ? strdup(cli_str(doc, "id")) : NULL;
    cli_progress bar;
    cli_progress_start(&bar, "nodes", (int64_t)n);
    json_t *last = NULL;
    while (i < n && rc == CLI_OK) {
        json_t *chunk = json_array();
        size_t bytes = base + 64;
        while (i < n && json_array_size(chunk) < WF_REQ_NODES) {
            size_t sz = json_size(json_array_get(ordered, i)) + 1;
            if (bytes + sz > budget && json_array_size(chunk))
                break;
            if (bytes + sz > budget) {
                cli_progress_clear(&bar);
                fprintf(stderr, "jetsched: payload_too_large: node \"%s\" is %zu bytes as JSON; one request takes at "
                                "most %zu (the NATS server's max_payload)\n",
                        cli_str(json_array_get(ordered, i), "id"), sz, budget);
                rc = CLI_FAILED;
                break;
            }
            bytes += sz;
            json_array_append(chunk, json_array_get(ordered, i++));
        }
        if (rc != CLI_OK) {
            json_decref(chunk);
            break;
        }
        json_t *req, *reply = NULL;
        if (requests == 0) {
            req = json_deep_copy(doc);
            json_object_set_new(req, "tasks", chunk);
            json_object_set_new(req, "open", json_true());
        } else {
            req = json_pack("{s:s,s:o}", "id", wf, "tasks", chunk);
            if (i == n && !leave_open)
                json_object_set_new(req, "close", json_true());
        }
        size_t sent = json_array_size(chunk);
        rc = wf_request(ctx, requests ? "workflow.add" : "workflow.submit", req, &reply);
        requests++;
        if (rc == CLI_OK && requests == 1 && !json_is_true(json_object_get(reply, "created"))) {
            json_decref(last);
            last = reply;
            i = n; /* exists already: nothing stored, nothing more to send */
            break;
        }
        if (rc == CLI_OK && !wf) {
            wf = strdup(cli_str(reply, "id") ? cli_str(reply, "id") : "");
            json_object_set_new(doc, "id", json_string(wf));
        }
        for (size_t k = 0; k < sent; k++)
            cli_progress_step(&bar, rc == CLI_OK);
        json_decref(last);
        last = reply;
    }
    /* one request of a single chunk that must still be closed */
    if (rc == CLI_OK && requests == 1 && json_is_true(json_object_get(last, "created")) && !leave_open) {
        json_t *reply = NULL;
        rc = wf_request(ctx, "workflow.add", json_pack("{s:s,s:[],s:b}", "id", wf, "tasks", "close", 1), &reply);
        if (rc == CLI_OK) {
            json_decref(last);
            last = reply;
        }
        requests++;
    }
    cli_progress_end(&bar);
    if (rc != CLI_OK && wf && requests > 1)
        fprintf(stderr,
                "jetsched: workflow %s is left open with the nodes stored by the first %zu request(s); add the rest "
                "with `jetsched workflow add %s FILE --close`, or `jetsched workflow cancel %s`\n",
                wf, requests - 1, wf, wf);
    if (rc == CLI_OK) {
        *final = json_pack("{s:s,s:O,s:O,s:O,s:O,s:I}", "id", wf ? wf : cli_str(last, "id"), "status",
                           json_object_get(last, "status"), "open", json_object_get(last, "open"), "created",
                           json_object_get(last, "created") ? json_object_get(last, "created") : json_true(), "nodes",
                           json_object_get(last, "nodes"), "requests", (json_int_t)requests);
        if (!*final)
            *final = json_incref(last);
    }
    json_decref(last);
    json_decref(ordered);
    free(wf);
    return rc;
}

static int wf_submit(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    static const struct option opts[] = {{"id", required_argument, NULL, 'i'}, {"open", no_argument, NULL, 'o'},
                                         {"validate", no_argument, NULL, 'V'}, {"wait", no_argument, NULL, 'w'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"wait-timeout", required_argument, NULL, 'T'}, CLI_COMMON_OPTS};
    const char *id = NULL;
    int64_t wait_timeout = 0;
    bool open = false, validate = false, wait = false, verbose = false;
    int c, rc = CLI_OK;
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "wvh", opts)) != -1) {
        switch (c) {
        case 'i':
            if (!wf_id_valid(optarg))
                return cli_usage_error(ctx, submit_usage, "--id \"%s\": 1-64 characters of A-Z a-z 0-9 _ -", optarg);
            id = optarg;
            break;
        case 'o': open = true; break;
        case 'V': validate = true; break;
        case 'w': wait = true; break;
        case 'v': verbose = true; break;
        case 'T':
            if (jet_duration_parse(optarg, &wait_timeout, NULL) != JET_OK || wait_timeout <= 0)
                return cli_usage_error(ctx, submit_usage, "--wait-timeout \"%s\": a duration like 30s", optarg);
            wait = true;
            break;
        case 'h': return cli_help(submit_usage);
        default: fputs(submit_usage, stderr); return CLI_USAGE;
        }
    }
    if (!cli_want_args(ctx, submit_usage, argc, argv, 1, "FILE (or - for stdin)", &rc))
        return rc;
    if (validate && (open || wait))
        return cli_usage_error(ctx, submit_usage, "--validate stores nothing: it takes no --open or --wait");
    if (open && wait)
        return cli_usage_error(ctx, submit_usage, "an --open workflow does not end until closed: no --wait");
    json_t *doc = read_json(ctx, argv[optind]);
    if (!doc)
        return CLI_USAGE;
    if (json_is_array(doc)) {
        json_t *o = json_pack("{s:o}", "tasks", doc);
        doc = o;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        fprintf(stderr, "jetsched %s: %s: a workflow is a JSON object {\"tasks\": [...], ...} or an array of nodes\n",
                ctx->verb, argv[optind]);
        return CLI_USAGE;
    }
    if (id)
        json_object_set_new(doc, "id", json_string(id));
    if (open)
        json_object_set_new(doc, "open", json_true());
    if (validate)
        json_object_set_new(doc, "validate_only", json_true());
    natsConnection *nc = cli_nats(ctx, &rc);
    if (!nc) {
        json_decref(doc);
        return rc;
    }
    int64_t max = natsConnection_GetMaxPayload(nc);
    size_t budget = max > 8192 ? (size_t)max - 4096 : (size_t)max;
    const json_t *tasks = json_object_get(doc, "tasks");
    bool chunked = json_is_array(tasks) && (json_array_size(tasks) > WF_REQ_NODES || json_size(doc) > budget);
    json_t *reply = NULL;
    if (chunked && validate) {
        json_decref(doc);
        fprintf(stderr, "jetsched %s: --validate checks one request: at most %d nodes and %zu bytes\n", ctx->verb,
                WF_REQ_NODES, budget);
        return CLI_USAGE;
    }
    if (chunked) {
        json_object_del(doc, "open");
        rc = submit_chunked(ctx, doc, budget, open, &reply);
    } else {
        rc = wf_request(ctx, "workflow.submit", json_incref(doc), &reply);
    }
    if (rc == CLI_OK) {
        if (ctx->json && !wait)
            cli_print_json(reply);
        else if (validate)
            printf("valid: the API takes this workflow (nothing stored)\n");
        else if (!ctx->json)
            print_created(reply, verbose && !chunked);
        if (wait)
            rc = wait_end(ctx, cli_str(reply, "id"), wait_timeout);
    }
    json_decref(reply);
    json_decref(doc);
    return rc;
}

/* ---- add ---- */

static const char add_usage[] =
    "Usage: jetsched workflow add [options] ID [FILE|-]\n\n"
    "Adds nodes to an open workflow (submitted with --open). FILE holds {\"tasks\": [...]} or an\n"
    "array of nodes (at most 10000), in the format of workflow submit; depends_on may name nodes\n"
    "of FILE or nodes added before. --close closes the workflow (without FILE: close only); a\n"
    "closed workflow ends when its last node ends.\n\n"
    "Options:\n"
    "      --close    close the workflow after adding\n"
    "  -v, --verbose  list every node added with its task id and status\n"
    "      --json     the API reply\n"
    "  -h, --help     this help\n\n"
    "Examples:\n"
    "  jetsched workflow submit --open --id crawl-7 seed.json\n"
    "  jetsched workflow add crawl-7 pages-2.json\n"
    "  jetsched workflow add crawl-7 --close\n\n"
    "Exit codes: 0 ok, 1 refused (not_found, failed_precondition: closed, invalid_argument), 2 usage,\n"
    "3 unavailable.\n";

static int wf_add(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    static const struct option opts[] = {{"close", no_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},
                                         CLI_COMMON_OPTS};
    bool close = false, verbose = false;
    int c;
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "vh", opts)) != -1) {
        switch (c) {
        case 'c': close = true; break;
        case 'v': verbose = true; break;
        case 'h': return cli_help(add_usage);
        default: fputs(add_usage, stderr); return CLI_USAGE;
        }
    }
    int have = argc - optind;
    if (have < 1)
        return cli_usage_error(ctx, add_usage, "missing ID");
    if (have > 2)
        return cli_usage_error(ctx, add_usage, "unexpected argument \"%s\"", argv[optind + 2]);
    if (have == 1 && !close)
        return cli_usage_error(ctx, add_usage, "missing FILE (or --close to close the workflow only)");
    const char *id = argv[optind];
    if (!wf_id_valid(id))
        return cli_usage_error(ctx, add_usage, "ID \"%s\": 1-64 characters of A-Z a-z 0-9 _ -", id);
    json_t *req = json_pack("{s:s}", "id", id);
    if (have == 2) {
        json_t *doc = read_json(ctx, argv[optind + 1]);
        json_t *tasks = json_is_array(doc) ? doc : json_object_get(doc, "tasks");
        if (!json_is_array(tasks)) {
            if (doc)
                fprintf(stderr, "jetsched %s: %s: {\"tasks\": [...]} or an array of nodes\n", ctx->verb,
                        argv[optind + 1]);
            json_decref(doc);
            json_decref(req);
            return CLI_USAGE;
        }
        json_object_set(req, "tasks", tasks);
        json_decref(doc);
    } else {
        json_object_set_new(req, "tasks", json_array());
    }
    if (close)
        json_object_set_new(req, "close", json_true());
    json_t *reply = NULL;
    int rc = wf_request(ctx, "workflow.add", req, &reply);
    if (rc == CLI_OK) {
        if (ctx->json)
            cli_print_json(reply);
        else
            print_created(reply, verbose);
    }
    json_decref(reply);
    return rc;
}

/* ---- list ---- */

static const char list_usage[] =
    "Usage: jetsched workflow list [options]\n\n"
    "Lists workflows, newest first, a page at a time.\n\n"
    "Options:\n"
    "  -s, --status S[,S]  only these states (running succeeded failed cancelled); repeatable\n"
    "      --since TIME    created at or after TIME: RFC 3339, or a duration ago (10m, 2h)\n"
    "      --until TIME    created before TIME (same forms)\n"
    "  -n, --limit N       workflows per page (default 50, at most 1000)\n"
    "      --cursor C      the page after the one that printed this cursor\n"
    "  -a, --all           follow the cursor to the end\n"
    "      --json          {\"workflows\":[...],\"next_cursor\":...}\n"
    "  -h, --help          this help\n\n"
    "Examples:\n"
    "  jetsched workflow list\n"
    "  jetsched workflow list --status failed,cancelled --since 1d\n"
    "  jetsched workflow list --json --all | jq -r '.workflows[].id'\n\n"
    "Exit codes: 0 ok, 1 failed (e.g. a bad filter: invalid_argument), 2 usage, 3 unavailable.\n";

static int wf_list(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    static const struct option opts[] = {
        {"status", required_argument, NULL, 's'}, {"since", required_argument, NULL, 'F'},
        {"until", required_argument, NULL, 'U'},  {"limit", required_argument, NULL, 'n'},
        {"cursor", required_argument, NULL, 'C'}, {"all", no_argument, NULL, 'a'},
        CLI_COMMON_OPTS,
    };
    json_t *req = json_object(), *status = json_array();
    bool all = false;
    int c, rc = CLI_OK;
    optind = 0;
    while (rc == CLI_OK && (c = cli_getopt(ctx, argc, argv, "s:n:ah", opts)) != -1) {
        if (cli_list_opt(ctx, list_usage, c, req, status, &all, &rc))
            continue;
        switch (c) {
        case 'h': rc = cli_help(list_usage); goto out;
        default: fputs(list_usage, stderr); rc = CLI_USAGE; break;
        }
    }
    if (rc == CLI_OK && optind < argc)
        rc = cli_usage_error(ctx, list_usage, "unexpected argument \"%s\"", argv[optind]);
    if (rc != CLI_OK)
        goto out;
    cli_list_status(req, status);
    json_t *list = NULL;
    char *next = NULL;
    rc = cli_request_pages(ctx, "workflow.list", req, "workflows", all, &list, &next);
    if (rc == CLI_OK && ctx->json) {
        json_t *doc = json_pack("{s:O,s:s?}", "workflows", list, "next_cursor", all ? NULL : next);
        cli_print_json(doc);
        json_decref(doc);
    } else if (rc == CLI_OK) {
        cli_table *t = cli_table_new("ID", "STATUS", "OPEN", "NODES", "AGE", "TOOK", NULL);
        size_t i;
        const json_t *w;
        json_array_foreach(list, i, w)
        {
            char nb[32], age[32];
            int64_t s, f;
            cli_table_add(t, cli_str(w, "id"));
            cli_table_add(t, cli_str(w, "status"));
            cli_table_add(t, json_is_true(json_object_get(w, "open")) ? "open" : "-");
            cli_table_add(t, cli_intstr(w, "nodes", nb));
            cli_table_add(t, cli_age(cli_str(w, "created_at"), age));
            if (cli_str(w, "created_at") && cli_str(w, "finished_at") &&
                jet_rfc3339_parse(cli_str(w, "created_at"), &s, NULL) == JET_OK &&
                jet_rfc3339_parse(cli_str(w, "finished_at"), &f, NULL) == JET_OK)
                cli_table_addf(t, "%.1fs", (double)(f - s) / 1000.0);
            else
                cli_table_add(t, NULL);
        }
        cli_table_print(t, stdout);
        if (next)
            fprintf(stderr, "(more: jetsched workflow list ... --cursor %s, or --all)\n", next);
    }
    free(next);
    json_decref(list);
out:
    json_decref(status);
    json_decref(req);
    return rc;
}

/* ---- cancel ---- */

static const char cancel_usage[] =
    "Usage: jetsched workflow cancel [--json] ID\n\n"
    "Cancels a workflow: it is closed and cancelled at once; its waiting nodes end cancelled in\n"
    "the same transaction, queued/running/retrying ones are marked for the agents (cancelling);\n"
    "nodes already ended keep their state. on_complete runs once every node has ended, on_success\n"
    "never. An ended workflow cannot be cancelled (failed_precondition).\n\n"
    "Options:\n"
    "  --json      the API reply {\"id\",\"status\",\"cancelled\",\"cancelling\"}\n"
    "  -h, --help  this help\n\n"
    "Examples:\n"
    "  jetsched workflow cancel book-42\n\n"
    "Exit codes: 0 cancelled, 1 failed (not_found, failed_precondition), 2 usage, 3 unavailable.\n";

static int wf_cancel(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    int rc = cli_plain_opts(ctx, cancel_usage, argc, argv);
    if (rc < 0)
        return cli_help(cancel_usage);
    if (rc != CLI_OK)
        return rc;
    if (!cli_want_args(ctx, cancel_usage, argc, argv, 1, "ID", &rc))
        return rc;
    if (!wf_id_valid(argv[optind]))
        return cli_usage_error(ctx, cancel_usage, "ID \"%s\": 1-64 characters of A-Z a-z 0-9 _ -", argv[optind]);
    json_t *reply = NULL;
    rc = wf_request(ctx, "workflow.cancel", json_pack("{s:s}", "id", argv[optind]), &reply);
    if (rc == CLI_OK) {
        char a[32], b[32];
        if (ctx->json)
            cli_print_json(reply);
        else
            printf("workflow %s cancelled: %s waiting node(s) cancelled, %s cancelling\n", argv[optind],
                   cli_intstr(reply, "cancelled", a), cli_intstr(reply, "cancelling", b));
    }
    json_decref(reply);
    return rc;
}

int cmd_workflow(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_sub subs[] = {
        {"submit", NULL, wf_submit}, {"add", NULL, wf_add},       {"get", "show", wf_get},
        {"list", "ls", wf_list},     {"cancel", NULL, wf_cancel},
    };
    while (argc > 1 && !strcmp(argv[1], "--json")) { /* jetsched workflow --json get ... */
        ctx->json = true;
        argv[1] = argv[0];
        argc--, argv++;
    }
    return cli_dispatch(ctx, usage, subs, sizeof subs / sizeof subs[0], argc, argv);
}
