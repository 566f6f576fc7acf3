/* jetsched schedule add|update|list|get|preview|pause|resume|trigger|rm: schedules
 * (cron, every, at) through the schedule.* API verbs. */
#include "cli.h"

#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: jetsched schedule <add|update|list|get|preview|pause|resume|trigger|rm> [options] ...\n\n"
    "  add ID SPEC HANDLER [PAYLOAD|@FILE|-]   create a schedule\n"
    "  update ID [--spec SPEC] [--handler H] [--payload PAYLOAD|@FILE|-] [options of add]\n"
    "                                         change some fields (a new spec or tz moves the next fire)\n"
    "  list [-q QUEUE] [-n N] [--cursor C] [--all]\n"
    "  get ID                                 one schedule, with its next fire time\n"
    "  preview SPEC [--tz TZ] [--count N] [--from TIME] | preview --id ID\n"
    "                                         the next fire times of a spec or schedule\n"
    "  pause ID... / resume ID...             stop / restart firing\n"
    "  trigger ID                             one run now (the next fire time is unchanged)\n"
    "  rm ID...                               delete (the history of its fires stays)\n\n"
    "SPEC: a cron expression (5 fields, or 6 with seconds first; @daily, H for a hashed\n"
    "value), \"@every 90s\", or an RFC 3339 time for a one-off (docs/CRON.md).\n\n"
    "Options of add and update:\n"
    "  -q, --queue NAME          queue of the fired tasks (default \"default\")\n"
    "  -p, --priority P          high, normal (default) or low\n"
    "      --tz ZONE             IANA time zone of the spec (default UTC)\n"
    "      --kind K              cron, every or at (default: derived from SPEC)\n"
    "  -H, --header K:V          an extra header of every fired task (repeatable)\n"
    "      --max-attempts N      attempts of each fired task\n"
    "      --misfire P           fire_once (default), fire_all or skip\n"
    "      --catchup-window DUR  how far back missed fires are caught up\n"
    "      --overlap P           allow (default) or forbid (skip while the last run is unfinished)\n"
    "      --paused              create it paused\n"
    "Every verb takes --json (the API reply) and -h/--help.\n\n"
    "Examples:\n"
    "  jetsched schedule add heartbeat '@every 10s' hello '{\"name\":\"cron\"}'\n"
    "  jetsched schedule add nightly-report '0 3 * * *' batch_report --tz Europe/Paris\n"
    "  jetsched schedule preview '*/15 9-17 * * mon-fri' --tz Europe/Paris --count 3\n"
    "  jetsched schedule update nightly-report --spec '30 3 * * *' --overlap forbid\n"
    "  jetsched schedule pause nightly-report\n"
    "  jetsched schedule trigger nightly-report && jetsched list --schedule nightly-report -n 1\n\n"
    "Exit codes: 0 ok, 1 failed (not_found, already_exists, invalid_argument: a bad spec names\n"
    "the position), 2 usage error, 3 NATS or schedulerd unavailable.\n";

static void print_schedule(const json_t *s)
{
    char rel[48], buf[200];
    cli_kv("id:", cli_str(s, "id"));
    snprintf(buf, sizeof buf, "%s (%s)", cli_str(s, "spec") ? cli_str(s, "spec") : "?",
             cli_str(s, "kind") ? cli_str(s, "kind") : "?");
    cli_kv("spec:", buf);
    cli_kv("tz:", cli_str(s, "tz"));
    cli_kv("queue:", cli_str(s, "queue"));
    cli_kv("priority:", cli_str(s, "priority"));
    cli_kv("handler:", cli_str(s, "handler"));
    cli_kv("payload:", cli_str(s, "payload"));
    cli_kv("paused:", json_is_true(json_object_get(s, "paused")) ? "yes" : "no");
    cli_kv("misfire:", cli_str(s, "misfire"));
    cli_kv("overlap:", cli_str(s, "overlap"));
    char n[32];
    cli_kv("max attempts:", cli_intstr(s, "max_attempts", n));
    static const char *const times[][2] = {{"next_fire_at", "next fire:"},
                                           {"last_fire_at", "last fire:"},
                                           {"created_at", "created:"},
                                           {"updated_at", "updated:"}};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        const char *v = cli_str(s, times[i][0]);
        snprintf(buf, sizeof buf, "%s (%s)", v ? v : "", cli_relative(v, rel));
        cli_kv(times[i][1], v ? buf : NULL);
    }
}

/* add (schedule.create) and update (schedule.update: ID, then only the
 * fields given as options). */
static int sched_add(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    const bool update = !strcmp(sub, "update");
    const char *payload_arg = NULL;
    static const struct option opts[] = {
        {"spec", required_argument, NULL, 'S'},     {"handler", required_argument, NULL, 'D'},
        {"payload", required_argument, NULL, 'Y'},
        {"queue", required_argument, NULL, 'q'},    {"priority", required_argument, NULL, 'p'},
        {"tz", required_argument, NULL, 'z'},       {"kind", required_argument, NULL, 'k'},
        {"header", required_argument, NULL, 'H'},   {"max-attempts", required_argument, NULL, 'm'},
        {"misfire", required_argument, NULL, 'M'},  {"catchup-window", required_argument, NULL, 'C'},
        {"overlap", required_argument, NULL, 'O'},  {"paused", no_argument, NULL, 'P'},
        CLI_COMMON_OPTS,
    };
    json_t *req = json_object(), *headers = NULL;
    int c, rc = CLI_OK;
    int64_t v;
    jet_priority prio;
    optind = 0;
    while (rc == CLI_OK && (c = cli_getopt(ctx, argc, argv, "q:p:H:h", opts)) != -1) {
        switch (c) {
        case 'q': json_object_set_new(req, "queue", cli_jstr(optarg)); break;
        case 'p':
            if (!jet_priority_parse(optarg, &prio))
                rc = cli_usage_error(ctx, usage, "--priority \"%s\": one of high, normal, low", optarg);
            json_object_set_new(req, "priority", cli_jstr(optarg));
            break;
        case 'z': json_object_set_new(req, "tz", cli_jstr(optarg)); break;
        case 'k': json_object_set_new(req, "kind", cli_jstr(optarg)); break;
        case 'M': json_object_set_new(req, "misfire", cli_jstr(optarg)); break;
        case 'O': json_object_set_new(req, "overlap", cli_jstr(optarg)); break;
        case 'C':
            if (jet_duration_parse(optarg, &v, NULL) != JET_OK)
                rc = cli_usage_error(ctx, usage, "--catchup-window \"%s\": a duration like 1h", optarg);
            json_object_set_new(req, "catchup_window", cli_jstr(optarg));
            break;
        case 'P': json_object_set_new(req, "paused", json_true()); break;
        case 'S':
        case 'D':
        case 'Y':
            if (!update)
                rc = cli_usage_error(ctx, usage, "--spec, --handler and --payload are options of update; add takes "
                                                 "ID SPEC HANDLER [PAYLOAD]");
            else if (c == 'Y')
                payload_arg = optarg;
            else
                json_object_set_new(req, c == 'S' ? "spec" : "handler", cli_jstr(optarg));
            break;
        case 'H':
            if (!cli_add_header(ctx, usage, &headers, optarg))
                rc = CLI_USAGE;
            break;
        case 'm':
            if (!cli_int_arg(optarg, 1, 1000000, &v))
                rc = cli_usage_error(ctx, usage, "--max-attempts \"%s\": a whole number from 1", optarg);
            json_object_set_new(req, "max_attempts", json_integer(v));
            break;
        case 'h': rc = cli_help(usage); goto out;
        default: fputs(usage, stderr); rc = CLI_USAGE; break;
        }
    }
    int npos = argc - optind;
    if (rc == CLI_OK && update && npos != 1)
        rc = cli_usage_error(ctx, usage, npos ? "unexpected argument \"%s\" (update takes ID, then options)"
                                              : "schedule update needs ID%s",
                             npos ? argv[optind + 1] : "");
    else if (rc == CLI_OK && !update && npos < 3)
        rc = cli_usage_error(ctx, usage, "schedule add needs ID SPEC HANDLER");
    else if (rc == CLI_OK && !update && npos > 4)
        rc = cli_usage_error(ctx, usage, "unexpected argument \"%s\" (quote the spec)", argv[optind + 4]);
    if (rc != CLI_OK)
        goto out;
    json_object_set_new(req, "id", cli_jstr(argv[optind]));
    if (!update) {
        json_object_set_new(req, "spec", cli_jstr(argv[optind + 1]));
        json_object_set_new(req, "handler", cli_jstr(argv[optind + 2]));
        if (npos == 4)
            payload_arg = argv[optind + 3];
    }
    if (payload_arg) {
        char *buf;
        size_t len;
        if (!cli_read_payload(ctx, payload_arg, &buf, &len)) {
            rc = CLI_FAILED;
            goto out;
        }
        cli_set_payload(req, buf, len);
        free(buf);
    }
    if (headers)
        json_object_set(req, "headers", headers);
    json_t *reply = NULL;
    rc = cli_request(ctx, update ? "schedule.update" : "schedule.create", json_incref(req), &reply);
    if (rc == CLI_OK && ctx->json) {
        cli_print_json(reply);
    } else if (rc == CLI_OK) {
        const json_t *s = json_object_get(reply, "schedule");
        char rel[48];
        const char *next = cli_str(s, "next_fire_at");
        printf("schedule %s %s (%s %s, %s); next fire %s (%s)\n", argv[optind], update ? "updated" : "created",
               cli_str(s, "kind") ? cli_str(s, "kind") : "?", cli_str(s, "spec") ? cli_str(s, "spec") : "?",
               cli_str(s, "tz") ? cli_str(s, "tz") : "UTC", next ? next : "-", cli_relative(next, rel));
    }
    json_decref(reply);
out:
    json_decref(headers);
    json_decref(req);
    return rc;
}

static int sched_list(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'}, {"limit", required_argument, NULL, 'n'},
        {"cursor", required_argument, NULL, 'C'}, {"all", no_argument, NULL, 'a'}, CLI_COMMON_OPTS,
    };
    json_t *req = json_object();
    bool all = false;
    int c, rc = CLI_OK;
    int64_t v;
    optind = 0;
    while (rc == CLI_OK && (c = cli_getopt(ctx, argc, argv, "q:n:ah", opts)) != -1) {
        switch (c) {
        case 'q': json_object_set_new(req, "queue", cli_jstr(optarg)); break;
        case 'C': json_object_set_new(req, "cursor", cli_jstr(optarg)); break;
        case 'a': all = true; break;
        case 'n':
            if (!cli_int_arg(optarg, 1, 1000, &v))
                rc = cli_usage_error(ctx, usage, "--limit \"%s\": a number from 1 to 1000", optarg);
            json_object_set_new(req, "limit", json_integer(v));
            break;
        case 'h': json_decref(req); return cli_help(usage);
        default: fputs(usage, stderr); rc = CLI_USAGE; break;
        }
    }
    if (rc == CLI_OK && optind < argc)
        rc = cli_usage_error(ctx, usage, "unexpected argument \"%s\"", argv[optind]);
    if (rc != CLI_OK) {
        json_decref(req);
        return rc;
    }
    json_t *everything = NULL;
    char *next = NULL;
    rc = cli_request_pages(ctx, "schedule.list", req, "schedules", all, &everything, &next);
    if (rc == CLI_OK && ctx->json) {
        json_t *doc = json_pack("{s:O,s:s?}", "schedules", everything, "next_cursor", all ? NULL : next);
        cli_print_json(doc);
        json_decref(doc);
    } else if (rc == CLI_OK) {
        cli_table *t = cli_table_new("ID", "KIND", "SPEC", "TZ", "QUEUE", "HANDLER", "PAUSED", "NEXT FIRE",
                                     "LAST FIRE", NULL);
        size_t i;
        const json_t *s;
        json_array_foreach(everything, i, s)
        {
            char a[48], b[48];
            cli_table_add(t, cli_str(s, "id"));
            cli_table_add(t, cli_str(s, "kind"));
            cli_table_add(t, cli_str(s, "spec"));
            cli_table_add(t, cli_str(s, "tz"));
            cli_table_add(t, cli_str(s, "queue"));
            cli_table_add(t, cli_str(s, "handler"));
            cli_table_add(t, json_is_true(json_object_get(s, "paused")) ? "yes" : "no");
            cli_table_add(t, cli_relative(cli_str(s, "next_fire_at"), a));
            cli_table_add(t, cli_relative(cli_str(s, "last_fire_at"), b));
        }
        cli_table_print(t, stdout);
        if (next)
            fprintf(stderr, "(more: jetsched schedule list --cursor %s, or --all)\n", next);
    }
    free(next);
    json_decref(everything);
    json_decref(req);
    return rc;
}

static int sched_preview(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    (void)sub;
    static const struct option opts[] = {
        {"tz", required_argument, NULL, 'z'},     {"kind", required_argument, NULL, 'k'},
        {"count", required_argument, NULL, 'n'},  {"from", required_argument, NULL, 'F'},
        {"id", required_argument, NULL, 'i'},     CLI_COMMON_OPTS,
    };
    json_t *req = json_object();
    int c, rc = CLI_OK;
    int64_t v;
    char when[40];
    optind = 0;
    while (rc == CLI_OK && (c = cli_getopt(ctx, argc, argv, "n:h", opts)) != -1) {
        switch (c) {
        case 'z': json_object_set_new(req, "tz", cli_jstr(optarg)); break;
        case 'k': json_object_set_new(req, "kind", cli_jstr(optarg)); break;
        case 'i': json_object_set_new(req, "id", cli_jstr(optarg)); break;
        case 'n':
            if (!cli_int_arg(optarg, 1, 100, &v))
                rc = cli_usage_error(ctx, usage, "--count \"%s\": a number from 1 to 100", optarg);
            json_object_set_new(req, "count", json_integer(v));
            break;
        case 'F':
            if (strcmp(optarg, "now") != 0 && !cli_time_arg(optarg, false, when, sizeof when))
                rc = cli_usage_error(ctx, usage, "--from \"%s\": now, an RFC 3339 time or a duration from now",
                                     optarg);
            json_object_set_new(req, "from", json_string(strcmp(optarg, "now") ? when : "now"));
            break;
        case 'h': json_decref(req); return cli_help(usage);
        default: fputs(usage, stderr); rc = CLI_USAGE; break;
        }
    }
    int npos = argc - optind;
    bool by_id = json_object_get(req, "id") != NULL;
    if (rc == CLI_OK && by_id && npos > 0)
        rc = cli_usage_error(ctx, usage, "preview takes a SPEC or --id ID, not both");
    else if (rc == CLI_OK && !by_id && npos != 1)
        rc = cli_usage_error(ctx, usage, npos ? "unexpected argument (quote the spec)" : "preview needs a SPEC or --id ID");
    if (rc != CLI_OK) {
        json_decref(req);
        return rc;
    }
    if (!by_id)
        json_object_set_new(req, "spec", cli_jstr(argv[optind]));
    json_t *reply = NULL;
    rc = cli_request(ctx, "schedule.preview", req, &reply);
    if (rc == CLI_OK && ctx->json) {
        cli_print_json(reply);
    } else if (rc == CLI_OK) {
        size_t i;
        const json_t *t;
        cli_table *tab = cli_table_new("#", "FIRE TIME (UTC)", "WHEN", NULL);
        json_array_foreach(json_object_get(reply, "next"), i, t)
        {
            char rel[48];
            cli_table_addf(tab, "%zu", i + 1);
            cli_table_add(tab, json_string_value(t));
            cli_table_add(tab, cli_relative(json_string_value(t), rel));
        }
        if (cli_str(reply, "kind"))
            printf("kind %s\n", cli_str(reply, "kind"));
        cli_table_print(tab, stdout);
    }
    json_decref(reply);
    return rc;
}

/* get, pause, resume, trigger, rm: one or more ids, one request each. */
static int sched_by_id(cli_ctx *ctx, const char *sub, int argc, char **argv)
{
    int rc = cli_plain_opts(ctx, usage, argc, argv);
    if (rc < 0)
        return cli_help(usage);
    if (rc != CLI_OK)
        return rc;
    bool single = !strcmp(sub, "get") || !strcmp(sub, "trigger");
    if (optind >= argc)
        return cli_usage_error(ctx, usage, "schedule %s needs an ID", sub);
    if (single && argc - optind > 1)
        return cli_usage_error(ctx, usage, "unexpected argument \"%s\"", argv[optind + 1]);
    const char *verb = !strcmp(sub, "get")       ? "schedule.get"
                       : !strcmp(sub, "pause")   ? "schedule.pause"
                       : !strcmp(sub, "resume")  ? "schedule.resume"
                       : !strcmp(sub, "trigger") ? "schedule.trigger"
                                                 : "schedule.delete";
    json_t *all = json_array();
    for (int i = optind; i < argc; i++) {
        json_t *reply = NULL;
        int r = cli_request_quiet(ctx, verb, json_pack("{s:o}", "id", cli_jstr(argv[i])), &reply);
        if (r != CLI_OK) {
            if (reply) {
                cli_print_api_error(ctx, reply, argv[i]);
                json_array_append_new(all, json_pack("{s:o,s:O}", "id", cli_jstr(argv[i]), "error", reply));
            }
            json_decref(reply);
            if (rc != CLI_UNAVAILABLE)
                rc = r;
            if (r == CLI_UNAVAILABLE)
                break;
            continue;
        }
        const json_t *s = json_object_get(reply, "schedule");
        char rel[48];
        if (ctx->json)
            json_array_append(all, reply);
        else if (!strcmp(sub, "get"))
            print_schedule(s);
        else if (!strcmp(sub, "trigger"))
            printf("schedule %s triggered: task %s (%s)\n", argv[i],
                   cli_str(reply, "task_id") ? cli_str(reply, "task_id") : "?",
                   cli_str(reply, "status") ? cli_str(reply, "status") : "?");
        else if (!strcmp(sub, "rm"))
            printf("schedule %s deleted\n", argv[i]);
        else
            printf("schedule %s %s; next fire %s\n", argv[i], json_is_true(json_object_get(s, "paused")) ? "paused" : "active",
                   json_is_true(json_object_get(s, "paused")) ? "-" : cli_relative(cli_str(s, "next_fire_at"), rel));
        json_decref(reply);
    }
    if (ctx->json) {
        if (argc - optind == 1 && json_array_size(all) == 1)
            cli_print_json(json_array_get(all, 0));
        else
            cli_print_json(all);
    }
    json_decref(all);
    return rc;
}

int cmd_schedule(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_sub subs[] = {
        {"add", NULL, sched_add},          {"update", NULL, sched_add},      {"list", "ls", sched_list},       {"preview", NULL, sched_preview},
        {"get", NULL, sched_by_id},        {"pause", NULL, sched_by_id},     {"resume", NULL, sched_by_id},
        {"trigger", NULL, sched_by_id},    {"rm", "delete", sched_by_id},
    };
    return cli_dispatch(ctx, usage, subs, sizeof subs / sizeof subs[0], argc, argv);
}
