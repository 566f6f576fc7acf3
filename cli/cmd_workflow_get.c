/* jetsched workflow get: a workflow's state, counts and callbacks, and its
 * DAG in topological layers with each node's state (coloured on a
 * terminal); the DAG builder it shares with submit's dependency order. */
#include "cli.h"
#include "workflow.h"

#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the DAG of an array of nodes: submit's dependency order, get's layers ---- */

const char *wf_dep_id(const json_t *d)
{
    return json_is_string(d) ? json_string_value(d) : cli_str(d, "id");
}

static int cmp_gnode_id(const void *a, const void *b)
{
    return strcmp(((const gnode *)a)->id, ((const gnode *)b)->id);
}

static gnode *dag_find(const dag *g, const char *id)
{
    gnode key = {.id = id};
    return id ? bsearch(&key, g->v, g->n, sizeof *g->v, cmp_gnode_id) : NULL;
}

void dag_free(dag *g)
{
    free(g->v);
    free(g->start);
    free(g->child);
    free(g->sorted);
    memset(g, 0, sizeof *g);
}

/* The graph of nodes ({"id","depends_on",...} each). strict: a node
 * without id, a duplicate id, an unknown parent or a self edge is an error
 * (printed as the API words it; false); otherwise such edges are left out. */
bool dag_build(dag *g, const json_t *nodes, bool strict)
{
    size_t n = json_array_size(nodes), i, j, edges = 0, *fill = NULL;
    memset(g, 0, sizeof *g);
    g->n = n;
    g->v = calloc(n ? n : 1, sizeof *g->v);
    g->start = calloc(n + 1, sizeof *g->start);
    for (i = 0; i < n; i++) {
        const json_t *o = json_array_get(nodes, i);
        g->v[i] = (gnode){o, cli_str(o, "id"), cli_str(o, "status"), i, -1, 0};
        if (!g->v[i].id && strict) {
            fprintf(stderr, "jetsched: invalid_argument: tasks[%zu]: a node needs an \"id\" (field \"tasks[%zu].id\")\n",
                    i, i);
            return false;
        }
        if (!g->v[i].id)
            g->v[i].id = "?";
    }
    qsort(g->v, n, sizeof *g->v, cmp_gnode_id);
    for (i = 1; strict && i < n; i++)
        if (!strcmp(g->v[i].id, g->v[i - 1].id)) {
            size_t a = g->v[i - 1].order, b = g->v[i].order;
            fprintf(stderr, "jetsched: invalid_argument: node \"%s\" is defined twice (tasks[%zu] and tasks[%zu])\n",
                    g->v[i].id, a < b ? a : b, a < b ? b : a);
            return false;
        }
    /* pass 0 counts the children of each node, pass 1 files them */
    for (int pass = 0; pass < 2; pass++) {
        for (i = 0; i < n; i++) {
            const json_t *d;
            json_array_foreach(json_object_get(g->v[i].obj, "depends_on"), j, d)
            {
                gnode *p = dag_find(g, wf_dep_id(d));
                if (strict && (!p || p == &g->v[i])) {
                    if (p)
                        fprintf(stderr, "jetsched: invalid_argument: node \"%s\" depends on itself\n", g->v[i].id);
                    else
                        fprintf(stderr,
                                "jetsched: invalid_argument: node \"%s\" depends on \"%s\", which is not a node of "
                                "this workflow (field \"tasks[%zu].depends_on[%zu]\")\n",
                                g->v[i].id, wf_dep_id(d) ? wf_dep_id(d) : "?", g->v[i].order, j);
                    return false;
                }
                if (!p || p == &g->v[i])
                    continue;
                size_t k = (size_t)(p - g->v);
                if (pass == 0)
                    g->start[k]++, edges++;
                else
                    g->child[g->start[k] + fill[k]++] = i;
            }
        }
        if (pass == 0) {
            for (i = 0, j = 0; i <= n; i++) { /* prefix sums: start[i] = the first slot of i */
                size_t c = i < n ? g->start[i] : 0;
                g->start[i] = j;
                j += c;
            }
            g->child = calloc(edges ? edges : 1, sizeof *g->child);
            fill = calloc(n ? n : 1, sizeof *fill);
        }
    }
    free(fill);
    return true;
}

/* Kahn's algorithm: g->sorted holds the nodes parents first (the roots in
 * array order, then as they are released) and each placed node its layer
 * (0 without parents, else one more than its deepest parent). False when
 * some nodes are on or behind a cycle (their layer stays -1). */
bool dag_sort(dag *g)
{
    size_t n = g->n, i, j, head = 0, tail = 0;
    size_t *indeg = calloc(n ? n : 1, sizeof *indeg), *by_order = calloc(n ? n : 1, sizeof *by_order);
    g->sorted = calloc(n ? n : 1, sizeof *g->sorted);
    for (i = 0; i < n; i++) {
        by_order[g->v[i].order] = i;
        for (j = g->start[i]; j < g->start[i + 1]; j++)
            indeg[g->child[j]]++;
    }
    for (i = 0; i < n; i++)
        if (!indeg[by_order[i]]) {
            g->v[by_order[i]].layer = 0;
            g->sorted[tail++] = by_order[i];
        }
    while (head < tail) {
        size_t k = g->sorted[head++];
        for (j = g->start[k]; j < g->start[k + 1]; j++) {
            gnode *c = &g->v[g->child[j]];
            if (c->layer < g->v[k].layer + 1)
                c->layer = g->v[k].layer + 1;
            if (--indeg[g->child[j]] == 0)
                g->sorted[tail++] = g->child[j];
        }
    }
    for (i = 0; i < n; i++) /* a child of a node that was placed, itself behind a cycle */
        if (indeg[i])
            g->v[i].layer = -1;
    g->nsorted = tail;
    free(indeg);
    free(by_order);
    return tail == n;
}

/* ---- get: the DAG in layers ---- */

static const char get_usage[] =
    "Usage: jetsched workflow get [options] ID\n\n"
    "Shows a workflow: its state, node counts and callbacks, and its DAG in topological layers\n"
    "(layer 0: nodes without parents; a node's layer is one more than its deepest parent), each\n"
    "node with its state, handler, attempts, run time, parents (\"?\" marks an edge that allows\n"
    "failure) and error. States are coloured on a terminal (NO_COLOR turns it off). A layer of\n"
    "more than 12 nodes shows the failed and unfinished ones first and counts the rest (--full\n"
    "shows every node). The first 10000 nodes are read (--all: every node).\n\n"
    "Options:\n"
    "  -a, --all     read every node (pages of 1000)\n"
    "  -f, --full    every node of every layer\n"
    "      --counts  the workflow and its counts only (no nodes: cheap for huge workflows)\n"
    "      --json    the workflow.get reply (with --all: every node, next_cursor null)\n"
    "  -h, --help    this help\n\n"
    "Examples:\n"
    "  jetsched workflow get book-42\n"
    "  jetsched workflow get --counts crawl-7\n"
    "  jetsched workflow get --json book-42 | jq '.nodes[] | select(.status==\"dead\") | .id'\n\n"
    "Exit codes: 0 ok, 1 no such workflow (not_found) or another error, 2 usage, 3 unavailable.\n";

#define LAYER_SHOW 12

static bool use_colour(void)
{
    const char *term = getenv("TERM");
    return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && !strcmp(term, "dumb"));
}

/* symbol, ANSI colour and rank of a node state */
static void state_style(const char *st, const char **sym, const char **col, int *rank)
{
    static const struct {
        const char *st, *sym, *col;
        int rank;
    } styles[] = {
        {"succeeded", "\xe2\x9c\x93", "32", 4}, {"duplicate", "\xe2\x9c\x93", "32", 4},
        {"dead", "\xe2\x9c\x97", "31;1", 0},    {"expired", "\xe2\x9c\x97", "31", 0},
        {"cancelled", "\xe2\x8a\x98", "33", 0}, {"failed", "\xe2\x9c\x97", "31;1", 0},
        {"running", "\xe2\x96\xb6", "34;1", 1}, {"retrying", "\xe2\x86\xbb", "35", 1},
        {"queued", "\xc2\xb7", "36", 2},        {"waiting", "\xe2\x97\x8b", "2", 3},
    };
    for (size_t i = 0; i < sizeof styles / sizeof styles[0]; i++)
        if (st && !strcmp(st, styles[i].st)) {
            *sym = styles[i].sym, *col = styles[i].col, *rank = styles[i].rank;
            return;
        }
    *sym = "?", *col = "0", *rank = 2;
}

static void print_state(const char *st, bool colour, int width)
{
    const char *sym, *col;
    int rank;
    state_style(st, &sym, &col, &rank);
    if (colour)
        printf("\033[%sm%s %-*s\033[0m", col, sym, width, st ? st : "?");
    else
        printf("%s %-*s", sym, width, st ? st : "?");
}

static int cmp_layer_rank(const void *a, const void *b)
{
    const gnode *x = a, *y = b;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    if (x->rank != y->rank)
        return x->rank - y->rank;
    return strcmp(x->id, y->id);
}

static void parents_text(const json_t *node, char *buf, size_t len)
{
    size_t j = 0, i, total = json_array_size(json_object_get(node, "depends_on"));
    const json_t *d;
    buf[0] = '\0';
    json_array_foreach(json_object_get(node, "depends_on"), i, d)
    {
        const char *id = wf_dep_id(d);
        bool may_fail = json_is_true(json_object_get(d, "allow_failure"));
        int w = snprintf(buf + j, len - j, "%s%s%s", i ? ", " : "", id ? id : "?", may_fail ? "?" : "");
        if (w < 0 || j + (size_t)w + 24 >= len) {
            snprintf(buf + j, len - j, " \xe2\x80\xa6 (%zu parents)", total);
            return;
        }
        j += (size_t)w;
    }
}

static void print_graph(const json_t *nodes, bool full, bool colour)
{
    dag d;
    dag_build(&d, nodes, false);
    dag_sort(&d);
    size_t n = d.n, i;
    gnode *g = d.v;
    for (i = 0; i < n; i++) {
        const char *sym, *col;
        state_style(g[i].status, &sym, &col, &g[i].rank);
        if (g[i].layer < 0) /* on a cycle (the API refuses them): shown last */
            g[i].layer = (long)n;
    }
    qsort(g, n, sizeof *g, cmp_layer_rank);
    int wid = 4, wst = 6, wh = 7;
    for (i = 0; i < n; i++) {
        int a = (int)strlen(g[i].id), b = g[i].status ? (int)strlen(g[i].status) : 1;
        int c = cli_str(g[i].obj, "handler") ? (int)strlen(cli_str(g[i].obj, "handler")) : 1;
        wid = a > wid ? (a > 40 ? 40 : a) : wid;
        wst = b > wst ? b : wst;
        wh = c > wh ? (c > 24 ? 24 : c) : wh;
    }
    for (i = 0; i < n;) {
        size_t end = i;
        while (end < n && g[end].layer == g[i].layer)
            end++;
        size_t shown = full || end - i <= LAYER_SHOW ? end - i : LAYER_SHOW;
        if (i == 0)
            printf("\n  %-*s  %-*s  %-*s  %5s  %8s  %s\n", wid, "NODE", wst + 2, "STATUS", wh, "HANDLER", "TRIES",
                   "TOOK", "PARENTS / ERROR");
        if (g[i].layer == (long)n)
            printf("\xe2\x94\x80\xe2\x94\x80 on a cycle (%zu)\n", end - i);
        else
            printf("\xe2\x94\x80\xe2\x94\x80 layer %ld (%zu node%s)\n", g[i].layer, end - i, end - i == 1 ? "" : "s");
        for (size_t k = i; k < i + shown; k++) {
            const json_t *o = g[k].obj;
            char tries[32], took[32] = "-", parents[100];
            int64_t s, f;
            if (cli_str(o, "started_at") && cli_str(o, "finished_at") &&
                jet_rfc3339_parse(cli_str(o, "started_at"), &s, NULL) == JET_OK &&
                jet_rfc3339_parse(cli_str(o, "finished_at"), &f, NULL) == JET_OK)
                snprintf(took, sizeof took, f - s < 10000 ? "%lldms" : "%llds",
                         (long long)(f - s < 10000 ? f - s : (f - s) / 1000));
            parents_text(o, parents, sizeof parents);
            printf("  %-*.*s  ", wid, wid, g[k].id);
            print_state(g[k].status, colour, wst);
            printf("  %-*.*s  %5s  %8s", wh, wh, cli_str(o, "handler") ? cli_str(o, "handler") : "-",
                   cli_intstr(o, "attempts", tries)[0] ? tries : "-", took);
            if (parents[0])
                printf("  \xe2\x86\x90 %s", parents);
            const char *err = cli_str(o, "error");
            if (err) {
                printf("  ");
                for (const char *p = err; *p && p - err < 160; p++)
                    putchar((unsigned char)*p < 0x20 ? ' ' : *p);
            }
            putchar('\n');
        }
        if (shown < end - i) {
            json_t *rest = json_object();
            for (size_t k = i + shown; k < end; k++) {
                const char *st = g[k].status ? g[k].status : "?";
                json_object_set_new(rest, st, json_integer(json_integer_value(json_object_get(rest, st)) + 1));
            }
            char cbuf[400];
            cli_counts_text(rest, cbuf, sizeof cbuf);
            json_decref(rest);
            printf("  \xe2\x80\xa6 %zu more: %s (--full shows them)\n", end - i - shown, cbuf);
        }
        i = end;
    }
    dag_free(&d);
}

static void print_workflow(const json_t *reply, const json_t *nodes, bool partial, bool full)
{
    const json_t *w = json_object_get(reply, "workflow");
    bool colour = use_colour();
    char buf[600], rel[48], nbuf[32];
    cli_kv("workflow:", cli_str(w, "id"));
    printf("%-15s ", "status:");
    print_state(cli_str(w, "status"), colour, 0);
    printf("%s\n", json_is_true(json_object_get(w, "open")) ? " (open: takes more nodes)" : "");
    const char *created = cli_str(w, "created_at"), *finished = cli_str(w, "finished_at");
    snprintf(buf, sizeof buf, "%s (%s)", created ? created : "", cli_relative(created, rel));
    cli_kv("created:", created ? buf : NULL);
    snprintf(buf, sizeof buf, "%s (%s)", finished ? finished : "", cli_relative(finished, rel));
    cli_kv("finished:", finished ? buf : NULL);
    char cbuf[512];
    cli_counts_text(json_object_get(w, "counts"), cbuf, sizeof cbuf);
    snprintf(buf, sizeof buf, "%s%s%s", cli_intstr(w, "nodes", nbuf), cbuf[0] ? ": " : "", cbuf);
    cli_kv("nodes:", buf);
    size_t i;
    const json_t *cb;
    json_array_foreach(json_object_get(reply, "callbacks"), i, cb)
    {
        char key[32];
        snprintf(key, sizeof key, "%s:", cli_str(cb, "kind") ? cli_str(cb, "kind") : "callback");
        const char *st = cli_str(cb, "status");
        snprintf(buf, sizeof buf, "%s  %s", cli_str(cb, "task_id") ? cli_str(cb, "task_id") : "?",
                 st ? st : "(not created)");
        cli_kv(key, buf);
    }
    if (!nodes)
        return;
    print_graph(nodes, full, colour);
    if (partial)
        printf("\n(%zu of %s nodes read: jetsched workflow get --all %s for every one)\n", json_array_size(nodes),
               cli_intstr(w, "nodes", nbuf), cli_str(w, "id"));
}

int wf_get(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, {"full", no_argument, NULL, 'f'},
                                         {"counts", no_argument, NULL, 'C'}, CLI_COMMON_OPTS};
    bool all = false, full = false, counts = false;
    int c, rc = CLI_OK;
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "afh", opts)) != -1) {
        switch (c) {
        case 'a': all = true; break;
        case 'f': full = true; break;
        case 'C': counts = true; break;
        case 'h': return cli_help(get_usage);
        default: fputs(get_usage, stderr); return CLI_USAGE;
        }
    }
    if (!cli_want_args(ctx, get_usage, argc, argv, 1, "ID", &rc))
        return rc;
    const char *id = argv[optind];
    if (!wf_id_valid(id))
        return cli_usage_error(ctx, get_usage, "ID \"%s\": 1-64 characters of A-Z a-z 0-9 _ -", id);
    if (counts && (all || full))
        return cli_usage_error(ctx, get_usage, "--counts shows no nodes: no --all or --full");
    json_t *req = counts ? json_pack("{s:s,s:b}", "id", id, "nodes", 0)
                         : json_pack("{s:s,s:i}", "id", id, "limit", WF_GET_PAGE);
    json_t *first = NULL, *nodes = counts ? NULL : json_array();
    bool partial = false;
    for (;;) {
        json_t *reply = NULL;
        rc = wf_request(ctx, "workflow.get", json_incref(req), &reply);
        if (rc != CLI_OK)
            break;
        if (nodes)
            json_array_extend(nodes, json_object_get(reply, "nodes"));
        const char *next = cli_str(reply, "next_cursor");
        bool more = next && json_array_size(json_object_get(reply, "nodes")) > 0;
        if (more)
            json_object_set_new(req, "cursor", json_string(next));
        if (first) /* the pages read end where this one does */
            json_object_set(first, "next_cursor", json_object_get(reply, "next_cursor"));
        if (!first)
            first = reply;
        else
            json_decref(reply);
        if (!more)
            break;
        if (!all && json_array_size(nodes) >= WF_GET_SHOWN) {
            partial = true;
            break;
        }
    }
    if (rc == CLI_OK && ctx->json) {
        if (nodes) {
            json_object_set(first, "nodes", nodes);
            if (all)
                json_object_set_new(first, "next_cursor", json_null());
        }
        cli_print_json(first);
    } else if (rc == CLI_OK) {
        print_workflow(first, nodes, partial, full);
    }
    json_decref(first);
    json_decref(nodes);
    json_decref(req);
    return rc;
}
