/* jetsched agents, leader, queues: the cluster through cluster.agents,
 * cluster.leader and cluster.queues (sampled twice for rates); jetsched
 * queues pause|resume through queue.pause / queue.resume. */
#include "cli.h"

#include <jetsched/jsobjects.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>

static int no_args(cli_ctx *ctx, const char *usage, int argc, char **argv)
{
    int rc = cli_plain_opts(ctx, usage, argc, argv);
    if (rc == CLI_OK && optind < argc)
        return cli_usage_error(ctx, usage, "unexpected argument \"%s\"", argv[optind]);
    return rc;
}

/* ---- agents ---- */

static const char agents_usage[] =
    "Usage: jetsched agents [--json]\n\n"
    "Lists the agentd processes in the registry (KV jetsched_agents; an agent that stops\n"
    "heartbeating disappears after about three heartbeats).\n\n"
    "Options:\n"
    "  --json      {\"agents\":[{id,host,pid,version,queues,handlers,concurrency,in_flight,started_at}]}\n"
    "  -h, --help  this help\n\n"
    "Example:\n"
    "  jetsched agents\n\n"
    "Exit codes: 0 ok, 1 failed, 2 usage error, 3 NATS or schedulerd unavailable.\n";

int cmd_agents(cli_ctx *ctx, int argc, char **argv)
{
    int rc = no_args(ctx, agents_usage, argc, argv);
    if (rc < 0)
        return cli_help(agents_usage);
    if (rc != CLI_OK)
        return rc;
    json_t *reply = NULL;
    rc = cli_request(ctx, "cluster.agents", NULL, &reply);
    if (rc == CLI_OK && ctx->json) {
        cli_print_json(reply);
    } else if (rc == CLI_OK) {
        cli_table *t = cli_table_new("ID", "HOST", "PID", "VERSION", "QUEUES", "CONCURRENCY", "IN-FLIGHT", "UP",
                                     "HANDLERS", NULL);
        size_t i;
        const json_t *a;
        json_array_foreach(json_object_get(reply, "agents"), i, a)
        {
            char n[32], q[256], h[1024], age[32];
            cli_table_add(t, cli_str(a, "id"));
            cli_table_add(t, cli_str(a, "host"));
            cli_table_add(t, cli_intstr(a, "pid", n));
            cli_table_add(t, cli_str(a, "version"));
            cli_table_add(t, cli_join(a, "queues", q, sizeof q));
            cli_table_add(t, cli_intstr(a, "concurrency", n));
            cli_table_add(t, cli_intstr(a, "in_flight", n));
            cli_table_add(t, cli_age(cli_str(a, "started_at"), age));
            cli_table_add(t, cli_join(a, "handlers", h, sizeof h));
        }
        size_t count = json_array_size(json_object_get(reply, "agents"));
        cli_table_print(t, stdout);
        if (count == 0)
            fprintf(stderr, "(no agent is registered: is agentd running?)\n");
    }
    json_decref(reply);
    return rc;
}

/* ---- leader ---- */

static const char leader_usage[] =
    "Usage: jetsched leader [--json]\n\n"
    "Shows the schedulerd that holds the leader lease (KV jetsched_leader) and its\n"
    "fencing epoch. Only the leader fires schedules and delayed tasks; every schedulerd\n"
    "serves the API.\n\n"
    "Options:\n"
    "  --json      {\"leader\":{id,pid,revision,epoch,since}} or {\"leader\":null}\n"
    "  -h, --help  this help\n\n"
    "Example:\n"
    "  jetsched leader\n\n"
    "Exit codes: 0 a leader holds the lease, 1 no leader (or another failure), 2 usage,\n"
    "3 NATS or schedulerd unavailable.\n";

int cmd_leader(cli_ctx *ctx, int argc, char **argv)
{
    int rc = no_args(ctx, leader_usage, argc, argv);
    if (rc < 0)
        return cli_help(leader_usage);
    if (rc != CLI_OK)
        return rc;
    json_t *reply = NULL;
    rc = cli_request(ctx, "cluster.leader", NULL, &reply);
    if (rc == CLI_OK) {
        const json_t *l = json_object_get(reply, "leader");
        if (ctx->json)
            cli_print_json(reply);
        if (!json_is_object(l)) {
            if (!ctx->json)
                printf("no schedulerd holds the leader lease\n");
            rc = CLI_FAILED;
        } else if (!ctx->json) {
            char pid[32], ep[32], rev[32], age[32];
            printf("leader %s (pid %s), epoch %s, revision %s, since %s (%s)\n",
                   cli_str(l, "id") ? cli_str(l, "id") : "?", cli_intstr(l, "pid", pid), cli_intstr(l, "epoch", ep),
                   cli_intstr(l, "revision", rev), cli_str(l, "since") ? cli_str(l, "since") : "-",
                   cli_age(cli_str(l, "since"), age));
        }
    }
    json_decref(reply);
    return rc;
}

/* ---- queues ---- */

static const char queues_usage[] =
    "Usage: jetsched queues [--interval DUR] [--json]\n"
    "       jetsched queues pause|resume QUEUE [--priority P] [--reason TEXT] [--json]\n\n"
    "Per queue and priority (one consumer each): DEPTH (messages in the stream: waiting\n"
    "plus in flight), PENDING (not yet delivered: the consumer lag), IN-FLIGHT (delivered,\n"
    "not yet acked), REDELIVERED, WAITING (pull requests of agents), and the delivery and\n"
    "ack rates measured between two samples DUR apart, and PAUSED (queue: the whole queue\n"
    "is paused, lane: this priority only).\n\n"
    "pause stops every agent pulling from the queue (or from one lane with --priority)\n"
    "within a second: tasks stay queued, running ones finish. resume without --priority\n"
    "resumes the queue and all its lanes.\n\n"
    "Options:\n"
    "  -i, --interval DUR  time between the two samples (default 1s; 0 for one sample, no rates)\n"
    "      --json          the cluster.queues reply, each entry with depth, delivered_per_s and\n"
    "                      acked_per_s (and the consumer sequences they come from) added\n"
    "  -p, --priority P    pause/resume: only this lane (high, normal, low)\n"
    "  -r, --reason TEXT   pause: why (shown by jetsched queues --json and the console)\n"
    "  -h, --help          this help\n\n"
    "Examples:\n"
    "  jetsched queues\n"
    "  jetsched queues pause emails --reason \"SMTP relay down\"\n"
    "  jetsched queues resume emails\n"
    "  jetsched queues --interval 5s\n\n"
    "Exit codes: 0 ok, 1 failed, 2 usage error, 3 NATS or schedulerd unavailable.\n";

static const json_t *find_consumer(const json_t *reply, const char *consumer)
{
    size_t i;
    const json_t *q;
    json_array_foreach(json_object_get(reply, "queues"), i, q)
    {
        const char *c = cli_str(q, "consumer");
        if (c && consumer && !strcmp(c, consumer))
            return q;
    }
    return NULL;
}

static json_int_t num(const json_t *o, const char *f) { return json_integer_value(json_object_get(o, f)); }

/* jetsched queues pause|resume QUEUE [--priority P] [--reason TEXT] */
static int queue_control(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"priority", required_argument, NULL, 'p'}, {"reason", required_argument, NULL, 'r'}, CLI_COMMON_OPTS};
    bool pause = !strcmp(argv[1], "pause");
    json_t *req = json_object();
    int c;
    argc--, argv++; /* argv[0] is now pause/resume; optind = 0 resets getopt */
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "p:r:h", opts)) != -1) {
        switch (c) {
        case 'p': json_object_set_new(req, "priority", cli_jstr(optarg)); break;
        case 'r':
            if (!pause) {
                json_decref(req);
                return cli_usage_error(ctx, queues_usage, "--reason is for pause only");
            }
            json_object_set_new(req, "reason", cli_jstr(optarg));
            break;
        case 'h': json_decref(req); return cli_help(queues_usage);
        default: json_decref(req); fputs(queues_usage, stderr); return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        json_decref(req);
        return cli_usage_error(ctx, queues_usage, "%s needs exactly one QUEUE", argv[0]);
    }
    json_object_set_new(req, "queue", cli_jstr(argv[optind]));
    const char *user = getenv("USER");
    if (pause && user && *user)
        json_object_set_new(req, "by", cli_jstr(user));
    json_t *reply = NULL;
    int rc = cli_request(ctx, pause ? "queue.pause" : "queue.resume", req, &reply); /* steals req */
    if (rc != CLI_OK)
        return rc;
    if (ctx->json) {
        cli_print_json(reply);
    } else {
        const char *p = cli_str(reply, "priority");
        printf("queue %s%s%s %s\n", cli_str(reply, "queue"), p ? " lane " : "", p ? p : "",
               pause ? "paused: agents stop pulling it within a second" : "resumed");
    }
    json_decref(reply);
    return CLI_OK;
}

int cmd_queues(cli_ctx *ctx, int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "pause") || !strcmp(argv[1], "resume")))
        return queue_control(ctx, argc, argv);
    static const struct option opts[] = {{"interval", required_argument, NULL, 'i'}, CLI_COMMON_OPTS};
    int64_t interval = 1000;
    int c, rc = CLI_OK;
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "i:h", opts)) != -1) {
        switch (c) {
        case 'i':
            if (!strcmp(optarg, "0"))
                interval = 0;
            else if (jet_duration_parse(optarg, &interval, NULL) != JET_OK || interval > 3600000)
                return cli_usage_error(ctx, queues_usage, "--interval \"%s\": a duration like 1s (at most 1h)",
                                       optarg);
            break;
        case 'h': return cli_help(queues_usage);
        default: fputs(queues_usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(ctx, queues_usage, "unexpected argument \"%s\"", argv[optind]);
    json_t *first = NULL, *second = NULL;
    int64_t t0 = jet_mono_ms();
    rc = cli_request(ctx, "cluster.queues", NULL, &first);
    if (rc == CLI_OK && interval > 0) {
        jet_sleep_ms(interval);
        rc = cli_request(ctx, "cluster.queues", NULL, &second);
    }
    if (rc != CLI_OK) {
        json_decref(first);
        json_decref(second);
        return rc;
    }
    double secs = (double)(jet_mono_ms() - t0) / 1000.0;
    json_t *now = second ? second : first;
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(now, "queues"), i, q)
    {
        json_object_set_new(q, "depth", json_integer(num(q, "pending") + num(q, "ack_pending")));
        const json_t *before = second ? find_consumer(first, cli_str(q, "consumer")) : NULL;
        if (before && secs > 0) {
            /* Rates from the consumer sequences (this lane's deliveries
             * and acks); the stream sequences of delivered/ack_floor also
             * move past other lanes' messages in the shared stream. */
            const char *df = "delivered_consumer", *af = "ack_floor_consumer";
            json_int_t d = num(q, df) - num(before, df);
            json_int_t a = num(q, af) - num(before, af);
            json_object_set_new(q, "delivered_per_s", json_real((double)(d < 0 ? 0 : d) / secs));
            json_object_set_new(q, "acked_per_s", json_real((double)(a < 0 ? 0 : a) / secs));
        }
    }
    if (ctx->json) {
        cli_print_json(now);
    } else {
        cli_table *t = cli_table_new("QUEUE", "PRIORITY", "DEPTH", "PENDING", "IN-FLIGHT", "REDELIVERED", "WAITING",
                                     "DELIVERED/S", "ACKED/S", "PAUSED", NULL);
        json_array_foreach(json_object_get(now, "queues"), i, q)
        {
            char n[32];
            cli_table_add(t, cli_str(q, "queue"));
            cli_table_add(t, cli_str(q, "priority"));
            cli_table_add(t, cli_intstr(q, "depth", n));
            cli_table_add(t, cli_intstr(q, "pending", n));
            cli_table_add(t, cli_intstr(q, "ack_pending", n));
            cli_table_add(t, cli_intstr(q, "redelivered", n));
            cli_table_add(t, cli_intstr(q, "waiting", n));
            const json_t *d = json_object_get(q, "delivered_per_s"), *a = json_object_get(q, "acked_per_s");
            if (d)
                cli_table_addf(t, "%.1f", json_real_value(d));
            else
                cli_table_add(t, NULL);
            if (a)
                cli_table_addf(t, "%.1f", json_real_value(a));
            else
                cli_table_add(t, NULL);
            const json_t *pz = json_object_get(q, "pause");
            cli_table_add(t, json_is_true(json_object_get(q, "paused")) ? cli_str(pz, "scope") : NULL);
        }
        cli_table_print(t, stdout);
    }
    json_decref(first);
    json_decref(second);
    return rc;
}
