/* jetsched get, list, cancel: tasks through task.get, task.list (filters,
 * cursor paging) and task.cancel. */
#include "cli.h"

#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>

/* ---- get ---- */

static const char get_usage[] =
    "Usage: jetsched get [--json] TASK_ID\n\n"
    "Shows a task from the history in PostgreSQL: its state, payload, result or error,\n"
    "and every attempt (agent, status, times, error).\n\n"
    "Options:\n"
    "  --json      the task.get reply: {\"task\":{...},\"attempts\":[...]}\n"
    "  -h, --help  this help\n\n"
    "Examples:\n"
    "  jetsched get 01JEXAMPLE0000000000000000\n"
    "  jetsched get --json heartbeat-1764646800000 | jq -r .task.result\n\n"
    "Exit codes: 0 ok, 1 no such task (not_found) or another error, 2 usage, 3 unavailable.\n";

static void print_task(const json_t *reply)
{
    const json_t *t = json_object_get(reply, "task");
    char buf[80], buf2[32], buf3[32];
    cli_kv("id:", cli_str(t, "id"));
    cli_kv("status:", cli_str(t, "status"));
    cli_kv("queue:", cli_str(t, "queue"));
    cli_kv("priority:", cli_str(t, "priority"));
    cli_kv("handler:", cli_str(t, "handler"));
    snprintf(buf, sizeof buf, "%s of %s", cli_intstr(t, "attempts", buf2), cli_intstr(t, "max_attempts", buf3));
    cli_kv("attempts:", buf);
    cli_kv("agent:", cli_str(t, "agent"));
    cli_kv("schedule:", cli_str(t, "schedule_id"));
    if (cli_str(t, "workflow_id")) /* a workflow's node or callback (docs/WORKFLOWS.md) */
        cli_kv("workflow:", cli_str(t, "workflow_id"));
    cli_kv("trace:", cli_str(t, "trace_id"));
    static const char *const times[] = {"created_at", "scheduled_for", "dispatched_at", "started_at", "finished_at"};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        const char *v = cli_str(t, times[i]);
        char key[32], line[128], rel[48];
        snprintf(key, sizeof key, "%.*s:", (int)strcspn(times[i], "_"), times[i]);
        if (strcmp(times[i], "scheduled_for") == 0)
            strcpy(key, "scheduled:");
        else if (strcmp(times[i], "dispatched_at") == 0)
            strcpy(key, "dispatched:");
        snprintf(line, sizeof line, "%s (%s)", v ? v : "", cli_relative(v, rel));
        cli_kv(key, v ? line : NULL);
    }
    if (cli_str(t, "payload"))
        cli_kv("payload:", cli_str(t, "payload"));
    else if (cli_str(t, "payload_base64"))
        printf("%-15s (binary) base64 %s\n", "payload:", cli_str(t, "payload_base64"));
    cli_kv("result:", cli_str(t, "result"));
    cli_kv("error:", cli_str(t, "error"));
    const json_t *attempts = json_object_get(reply, "attempts");
    if (json_array_size(attempts) == 0)
        return;
    printf("\n");
    cli_table *tab = cli_table_new("ATTEMPT", "STATUS", "AGENT", "STARTED", "DURATION", "ERROR", NULL);
    size_t i;
    const json_t *a;
    json_array_foreach(attempts, i, a)
    {
        char n[32];
        cli_table_add(tab, cli_intstr(a, "attempt", n));
        cli_table_add(tab, cli_str(a, "status"));
        cli_table_add(tab, cli_str(a, "agent"));
        cli_table_add(tab, cli_str(a, "started_at"));
        int64_t s, f;
        if (cli_str(a, "started_at") && cli_str(a, "finished_at") &&
            jet_rfc3339_parse(cli_str(a, "started_at"), &s, NULL) == JET_OK &&
            jet_rfc3339_parse(cli_str(a, "finished_at"), &f, NULL) == JET_OK)
            cli_table_addf(tab, "%lldms", (long long)(f - s));
        else
            cli_table_add(tab, NULL);
        cli_table_add(tab, cli_str(a, "error"));
    }
    cli_table_print(tab, stdout);
}

int cmd_get(cli_ctx *ctx, int argc, char **argv)
{
    int rc = cli_plain_opts(ctx, get_usage, argc, argv);
    if (rc < 0)
        return cli_help(get_usage);
    if (rc != CLI_OK)
        return rc;
    if (!cli_want_args(ctx, get_usage, argc, argv, 1, "TASK_ID", &rc))
        return rc;
    json_t *reply = NULL;
    rc = cli_request(ctx, "task.get", json_pack("{s:o}", "id", cli_jstr(argv[optind])), &reply);
    if (rc == CLI_OK) {
        if (ctx->json)
            cli_print_json(reply);
        else
            print_task(reply);
    }
    json_decref(reply);
    return rc;
}

/* ---- list ---- */

static const char list_usage[] =
    "Usage: jetsched list [options]\n\n"
    "Lists tasks from the history, newest first, a page at a time.\n\n"
    "Options:\n"
    "  -q, --queue NAME      only this queue\n"
    "  -s, --status S[,S]    only these states (scheduled queued running retrying succeeded\n"
    "                        dead expired cancelled duplicate); repeatable\n"
    "      --handler NAME    only this handler\n"
    "      --schedule ID     only the fires of this schedule\n"
    "      --since TIME      created at or after TIME: RFC 3339, or a duration ago (10m, 2h)\n"
    "      --until TIME      created before TIME (same forms)\n"
    "  -n, --limit N         tasks per page (default 50, at most 1000)\n"
    "      --cursor C        the page after the one that printed this cursor\n"
    "  -a, --all             follow the cursor to the end (every page)\n"
    "      --json            {\"tasks\":[...],\"next_cursor\":...} (with --all: every task, no cursor)\n"
    "  -h, --help            this help\n\n"
    "Examples:\n"
    "  jetsched list\n"
    "  jetsched list --queue emails --status dead,expired --since 1h\n"
    "  jetsched list --schedule heartbeat -n 5\n"
    "  jetsched list --json --all --status succeeded | jq '.tasks | length'\n\n"
    "Exit codes: 0 ok, 1 failed (e.g. a bad filter: invalid_argument), 2 usage, 3 unavailable.\n";

static void add_task_row(cli_table *t, const json_t *task)
{
    char a[32], m[32], age[32];
    cli_table_add(t, cli_str(task, "id"));
    cli_table_add(t, cli_str(task, "queue"));
    cli_table_add(t, cli_str(task, "priority"));
    cli_table_add(t, cli_str(task, "handler"));
    cli_table_add(t, cli_str(task, "status"));
    cli_intstr(task, "max_attempts", m);
    cli_table_addf(t, "%s/%s", cli_intstr(task, "attempts", a), m[0] ? m : "-");
    cli_table_add(t, cli_age(cli_str(task, "created_at"), age));
    cli_table_add(t, cli_str(task, "agent"));
    cli_table_add(t, cli_str(task, "error"));
}

int cmd_list(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'},    {"status", required_argument, NULL, 's'},
        {"handler", required_argument, NULL, 'H'},  {"schedule", required_argument, NULL, 'S'},
        {"since", required_argument, NULL, 'F'},    {"until", required_argument, NULL, 'U'},
        {"limit", required_argument, NULL, 'n'},    {"cursor", required_argument, NULL, 'C'},
        {"all", no_argument, NULL, 'a'},            CLI_COMMON_OPTS,
    };
    json_t *req = json_object(), *status = json_array();
    bool all = false;
    int c, rc = CLI_OK;
    optind = 0;
    while (rc == CLI_OK && (c = cli_getopt(ctx, argc, argv, "q:s:n:ah", opts)) != -1) {
        if (cli_list_opt(ctx, list_usage, c, req, status, &all, &rc))
            continue;
        switch (c) {
        case 'q': json_object_set_new(req, "queue", cli_jstr(optarg)); break;
        case 'H': json_object_set_new(req, "handler", cli_jstr(optarg)); break;
        case 'S': json_object_set_new(req, "schedule_id", cli_jstr(optarg)); break;
        case 'h': rc = cli_help(list_usage); goto out;
        default: fputs(list_usage, stderr); rc = CLI_USAGE; break;
        }
    }
    if (rc == CLI_OK && optind < argc)
        rc = cli_usage_error(ctx, list_usage, "unexpected argument \"%s\"", argv[optind]);
    if (rc != CLI_OK)
        goto out;
    cli_list_status(req, status);

    json_t *tasks = NULL;
    char *next = NULL;
    rc = cli_request_pages(ctx, "task.list", req, "tasks", all, &tasks, &next);
    if (rc == CLI_OK && ctx->json) {
        json_t *doc = json_pack("{s:O,s:s?}", "tasks", tasks, "next_cursor", all ? NULL : next);
        cli_print_json(doc);
        json_decref(doc);
    } else if (rc == CLI_OK) {
        cli_table *tab = cli_table_new("ID", "QUEUE", "PRIORITY", "HANDLER", "STATUS", "ATTEMPTS", "AGE", "AGENT",
                                       "ERROR", NULL);
        size_t i;
        const json_t *t;
        json_array_foreach(tasks, i, t)
            add_task_row(tab, t);
        cli_table_print(tab, stdout);
        if (next)
            fprintf(stderr, "(more: jetsched list ... --cursor %s, or --all)\n", next);
    }
    free(next);
    json_decref(tasks);
out:
    json_decref(status);
    json_decref(req);
    return rc;
}

/* ---- cancel ---- */

static const char cancel_usage[] =
    "Usage: jetsched cancel [--json] TASK_ID...\n\n"
    "Cancels tasks. A delayed (scheduled) task is cancelled at once; a queued, retrying or\n"
    "running one is marked for the agents (\"cancelling\" until an agent records it\n"
    "cancelled). A finished task cannot be cancelled (failed_precondition).\n\n"
    "Options:\n"
    "  --json      {\"results\":[{\"id\",\"status\"} or {\"id\",\"error\"}]}\n"
    "  -h, --help  this help\n\n"
    "Examples:\n"
    "  jetsched cancel 01JEXAMPLE0000000000000000\n"
    "  jetsched list --status scheduled --json | jq -r '.tasks[].id' | xargs jetsched cancel\n\n"
    "Exit codes: 0 every task cancelled or cancelling, 1 one failed, 2 usage, 3 unavailable.\n";

int cmd_cancel(cli_ctx *ctx, int argc, char **argv)
{
    int rc = cli_plain_opts(ctx, cancel_usage, argc, argv);
    if (rc < 0)
        return cli_help(cancel_usage);
    if (rc != CLI_OK)
        return rc;
    if (optind >= argc)
        return cli_usage_error(ctx, cancel_usage, "missing TASK_ID");
    json_t *results = json_array();
    for (int i = optind; i < argc; i++) {
        json_t *reply = NULL;
        int r = cli_request_quiet(ctx, "task.cancel", json_pack("{s:o}", "id", cli_jstr(argv[i])), &reply);
        if (r == CLI_OK) {
            if (!ctx->json)
                printf("%s %s\n", argv[i], cli_str(reply, "status") ? cli_str(reply, "status") : "?");
            json_array_append_new(results, json_pack("{s:o,s:O?}", "id", cli_jstr(argv[i]), "status",
                                                     json_object_get(reply, "status")));
        } else if (reply) {
            cli_print_api_error(ctx, reply, argv[i]);
            json_array_append_new(results, json_pack("{s:o,s:O}", "id", cli_jstr(argv[i]), "error", reply));
        }
        json_decref(reply);
        if (r != CLI_OK && rc != CLI_UNAVAILABLE)
            rc = r;
        if (r == CLI_UNAVAILABLE)
            break;
    }
    if (ctx->json) {
        json_t *doc = json_pack("{s:O}", "results", results);
        cli_print_json(doc);
        json_decref(doc);
    }
    json_decref(results);
    return rc;
}
