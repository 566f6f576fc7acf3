/* jetsched watch: live task events from core NATS
 * (<prefix>.event.<queue>.<task_id>, published by agentd on every state
 * change) for one task, one queue, one workflow (the events' "workflow"
 * field) or everything. */
#include "cli.h"

#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: jetsched watch [options] [TASK_ID]\n\n"
    "Prints task events as agents publish them (running, progress, succeeded, retrying,\n"
    "dead, expired, cancelled, duplicate). With TASK_ID: that task's events (after its\n"
    "current state), ending when it reaches a final state. With --queue: one queue's.\n"
    "With --workflow: the events of that workflow's nodes and callbacks (after its current\n"
    "state), ending when the workflow has ended and its callbacks too. Otherwise every event.\n"
    "Events are not stored: only what happens while watching is shown (use jetsched get /\n"
    "list / workflow get for the history).\n\n"
    "Options:\n"
    "  -q, --queue NAME  only tasks of this queue\n"
    "  -w, --workflow ID only tasks of this workflow (its nodes and callbacks)\n"
    "  -n, --count N     exit after N events\n"
    "      --for DUR     exit after DUR (e.g. 30s)\n"
    "      --json        one JSON object per line: {id,queue,status,attempt,agent,at,error?,progress?}\n"
    "                    (with TASK_ID the first line is the task as jetsched get shows it;\n"
    "                    with --workflow the first and last lines are the workflow object)\n"
    "  -h, --help        this help\n\n"
    "Examples:\n"
    "  jetsched watch                      # everything, until Ctrl-C\n"
    "  jetsched watch --queue emails\n"
    "  jetsched watch 01JEXAMPLE0000000000000000\n"
    "  jetsched watch --workflow book-42\n"
    "  jetsched watch --json --count 10 | jq -r .status\n\n"
    "Exit codes: 0 ok (for TASK_ID: the task succeeded; for --workflow: the workflow\n"
    "succeeded), 1 the task or workflow did not succeed,\n"
    "2 usage error, 3 NATS unavailable.\n";

static void print_event(cli_ctx *ctx, const char *subject, json_t *ev, size_t prefix_len)
{
    /* <prefix>.event.<queue>.<id> */
    const char *q = subject + prefix_len + strlen(".event.");
    const char *dot = strchr(q, '.');
    char queue[JET_NAME_MAX + 1] = "?";
    if (dot && dot - q <= JET_NAME_MAX)
        snprintf(queue, sizeof queue, "%.*s", (int)(dot - q), q);
    if (ctx->json) {
        json_object_set_new(ev, "queue", json_string(queue));
        char *s = json_dumps(ev, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    } else {
        const char *at = cli_str(ev, "at");
        char a[32], detail[600] = "";
        const json_t *prog = json_object_get(ev, "progress");
        if (json_is_integer(prog))
            snprintf(detail, sizeof detail, "%d%% %s", (int)json_integer_value(prog),
                     cli_str(ev, "note") ? cli_str(ev, "note") : "");
        else if (cli_str(ev, "error"))
            snprintf(detail, sizeof detail, "%s", cli_str(ev, "error"));
        for (char *p = detail; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = ' ';
        printf("%-12.12s  %-12s  %-28s  %-10s  %-3s  %-16s  %s\n", at && strlen(at) > 11 ? at + 11 : "-", queue,
               cli_str(ev, "id") ? cli_str(ev, "id") : "?", cli_str(ev, "status") ? cli_str(ev, "status") : "?",
               cli_intstr(ev, "attempt", a), cli_str(ev, "agent") ? cli_str(ev, "agent") : "-", detail);
    }
    fflush(stdout);
}

/* Where a watched workflow stands (workflow.get without nodes): 1 ended
 * with its callbacks (*ok: it succeeded), 0 not yet, -1 unknown (the API
 * did not answer; *reply then holds its error object, or NULL). */
static int workflow_state(cli_ctx *ctx, const char *id, json_t **reply, bool *ok)
{
    *reply = NULL;
    if (cli_request_quiet(ctx, "workflow.get", json_pack("{s:s,s:b}", "id", id, "nodes", 0), reply) != CLI_OK)
        return -1;
    const json_t *w = json_object_get(*reply, "workflow");
    if (!cli_str(w, "finished_at"))
        return 0;
    size_t i;
    const json_t *cb;
    json_array_foreach(json_object_get(*reply, "callbacks"), i, cb)
    {
        const char *st = cli_str(cb, "status"); /* null: not created (on_success of a failed workflow) */
        if (st && !jet_task_status_terminal(st))
            return 0;
    }
    *ok = cli_str(w, "status") && !strcmp(cli_str(w, "status"), "succeeded");
    return 1;
}

static void print_workflow_line(cli_ctx *ctx, const char *id, const json_t *reply, const char *how)
{
    const json_t *w = json_object_get(reply, "workflow");
    if (ctx->json) {
        char *line = json_dumps(w, JSON_COMPACT);
        if (line)
            puts(line);
        free(line);
        return;
    }
    char counts[400], n[32];
    cli_counts_text(json_object_get(w, "counts"), counts, sizeof counts);
    printf("workflow %s %s %s (%s nodes%s%s)\n", id, how, cli_str(w, "status") ? cli_str(w, "status") : "?",
           cli_intstr(w, "nodes", n), counts[0] ? ": " : "", counts);
}

int cmd_watch(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'}, {"count", required_argument, NULL, 'n'},
        {"for", required_argument, NULL, 'F'},   {"workflow", required_argument, NULL, 'w'},
        CLI_COMMON_OPTS,
    };
    const char *queue = NULL, *id = NULL, *workflow = NULL;
    int64_t count = 0, for_ms = 0;
    int c, rc = CLI_OK;
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "q:n:w:h", opts)) != -1) {
        switch (c) {
        case 'q':
            if (!jet_name_valid(optarg))
                return cli_usage_error(ctx, usage, "--queue \"%s\": 1-64 characters of a-z 0-9 _ -", optarg);
            queue = optarg;
            break;
        case 'w':
            if (!jet_task_id_valid(optarg) || strlen(optarg) > 64)
                return cli_usage_error(ctx, usage, "--workflow \"%s\": 1-64 characters of A-Z a-z 0-9 _ -", optarg);
            workflow = optarg;
            break;
        case 'n':
            if (!cli_int_arg(optarg, 1, INT64_MAX, &count))
                return cli_usage_error(ctx, usage, "--count \"%s\": a whole number from 1", optarg);
            break;
        case 'F':
            if (jet_duration_parse(optarg, &for_ms, NULL) != JET_OK || for_ms <= 0)
                return cli_usage_error(ctx, usage, "--for \"%s\": a duration like 30s", optarg);
            break;
        case 'h': return cli_help(usage);
        default: fputs(usage, stderr); return CLI_USAGE;
        }
    }
    if (argc - optind > 1)
        return cli_usage_error(ctx, usage, "unexpected argument \"%s\"", argv[optind + 1]);
    if (argc - optind == 1 && workflow)
        return cli_usage_error(ctx, usage, "a TASK_ID or --workflow, not both");
    if (argc - optind == 1) {
        id = argv[optind];
        if (!jet_task_id_valid(id))
            return cli_usage_error(ctx, usage, "TASK_ID \"%s\": 1-128 characters of A-Z a-z 0-9 _ -", id);
    }
    natsConnection *nc = cli_nats(ctx, &rc);
    if (!nc)
        return rc;
    const char *prefix = cli_prefix(ctx);
    char subject[400];
    snprintf(subject, sizeof subject, "%s.event.%s.%s", prefix, queue ? queue : id ? "*" : ">",
             id ? id : queue ? "*" : "");
    if (!queue && !id)
        subject[strlen(subject) - 1] = '\0'; /* "<prefix>.event.>" */
    natsSubscription *sub = NULL;
    if (natsConnection_SubscribeSync(&sub, nc, subject) != NATS_OK || natsConnection_Flush(nc) != NATS_OK) {
        fprintf(stderr, "jetsched: unavailable: cannot subscribe to %s\n", subject);
        natsSubscription_Destroy(sub);
        return CLI_UNAVAILABLE;
    }
    natsSubscription_SetPendingLimits(sub, 1000000, 1024 * 1024 * 1024);
    const char *last_status = NULL;
    char last_buf[32] = "";
    if (id) {
        /* the current state first (subscribed already: nothing falls in between) */
        json_t *reply = NULL;
        int r = cli_request_quiet(ctx, "task.get", json_pack("{s:s}", "id", id), &reply);
        const json_t *t = json_object_get(reply, "task");
        if (r == CLI_OK && t) {
            const char *st = cli_str(t, "status");
            char a[32];
            if (!ctx->json)
                printf("%s is %s (queue %s, %s attempt(s) so far)\n", id, st ? st : "?",
                       cli_str(t, "queue") ? cli_str(t, "queue") : "?", cli_intstr(t, "attempts", a));
            else { /* JSON lines: the current state is the first line */
                char *line = json_dumps(t, JSON_COMPACT);
                if (line)
                    puts(line);
                free(line);
            }
            if (jet_task_status_terminal(st)) {
                rc = jet_task_status_ok(st) ? CLI_OK : CLI_FAILED;
                json_decref(reply);
                natsSubscription_Destroy(sub);
                return rc;
            }
        } else if (reply) {
            fprintf(stderr, "jetsched watch: %s: %s (waiting for its events anyway)\n", id,
                    cli_str(reply, "code") ? cli_str(reply, "code") : "error");
        } else {
            fprintf(stderr, "jetsched watch: the API did not answer; showing live events only\n");
        }
        json_decref(reply);
    }
    bool wf_ok = false;
    if (workflow) {
        /* the workflow's current state first (subscribed already) */
        json_t *reply = NULL;
        int st = workflow_state(ctx, workflow, &reply, &wf_ok);
        if (st >= 0)
            print_workflow_line(ctx, workflow, reply, st ? "has ended" : "is");
        else if (reply)
            fprintf(stderr, "jetsched watch: workflow %s: %s (waiting for its events anyway)\n", workflow,
                    cli_str(reply, "code") ? cli_str(reply, "code") : "error");
        else
            fprintf(stderr, "jetsched watch: the API did not answer; showing live events only\n");
        json_decref(reply);
        if (st == 1) {
            natsSubscription_Destroy(sub);
            return wf_ok ? CLI_OK : CLI_FAILED;
        }
    }
    if (!ctx->json)
        printf("%-12s  %-12s  %-28s  %-10s  %-3s  %-16s  %s\n", "TIME", "QUEUE", "TASK", "STATUS", "TRY", "AGENT",
               "DETAIL");
    fflush(stdout);
    int64_t seen = 0, until = for_ms ? jet_mono_ms() + for_ms : 0, wf_check = jet_mono_ms() + 5000;
    for (;;) {
        /* a workflow ends in PostgreSQL (e.g. cancelled waiting nodes publish
         * no event): checked after each final event and every 5 s */
        if (workflow && jet_mono_ms() >= wf_check) {
            json_t *reply = NULL;
            int st = workflow_state(ctx, workflow, &reply, &wf_ok);
            if (st == 1)
                print_workflow_line(ctx, workflow, reply, "ended");
            json_decref(reply);
            if (st == 1) {
                rc = wf_ok ? CLI_OK : CLI_FAILED;
                break;
            }
            wf_check = jet_mono_ms() + 5000;
        }
        int64_t wait = 1000;
        if (until) {
            wait = until - jet_mono_ms();
            if (wait <= 0)
                break;
            if (wait > 1000)
                wait = 1000;
        }
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, wait);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            fprintf(stderr, "jetsched: unavailable: the subscription to %s ended: %s\n", subject,
                    natsStatus_GetText(s));
            rc = CLI_UNAVAILABLE;
            break;
        }
        json_t *ev = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
        if (workflow && !(cli_str(ev, "workflow") && !strcmp(cli_str(ev, "workflow"), workflow))) {
            json_decref(ev);
            natsMsg_Destroy(m);
            continue;
        }
        if (json_is_object(ev)) {
            print_event(ctx, natsMsg_GetSubject(m), ev, strlen(prefix));
            seen++;
            if (cli_str(ev, "status")) {
                snprintf(last_buf, sizeof last_buf, "%s", cli_str(ev, "status"));
                last_status = last_buf;
            }
        }
        json_decref(ev);
        natsMsg_Destroy(m);
        if (workflow && jet_task_status_terminal(last_status))
            wf_check = 0; /* now */
        if (id && jet_task_status_terminal(last_status)) {
            rc = jet_task_status_ok(last_status) ? CLI_OK : CLI_FAILED;
            break;
        }
        if (count && seen >= count)
            break;
    }
    natsSubscription_Destroy(sub);
    return rc;
}
