/* jetbench (f): schedulerd's API and burst rows (bench/README.md, issue 15),
 * `bench/run --api-only`. One schedulerd (the leader, api.pg_connections
 * default), nothing consumes the tasks (queue "bench" has its consumers but
 * no agent runs), and against the raw async publish rate R of the same run:
 *   - task.submit from one client with 64 requests in flight (tasks/s);
 *   - task.submit_many, 1,000 tasks per request, 4 requests in flight;
 *   - one task.submit at a time, paced at 10 % of the first rate: p50/p99;
 *   - 10,000 schedules due in the same second: each fire's arrival on its
 *     subject (a core subscription of this client) minus its fire time;
 *   - 100,000 delayed tasks due at one instant: time until the last is
 *     published, as a rate against R. */
#include "jetbench.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void purge(jsCtx *js)
{
    js_PurgeStream(js, TASK_STREAM, NULL, NULL);
}

/* ---- pipelined requests on one connection ---- */

typedef struct pipe_run {
    natsConnection *nc;
    const char *verb;
    char **bodies;
    long n;
    int in_flight;
    int64_t *sent_ns, *recv_ns; /* optional, by index */
    long errors;
    char first_error[300];
} pipe_run;

/* Sends bodies[0..n) keeping in_flight requests outstanding; returns the
 * seconds from the first send to the last reply (dies after 120 s without
 * progress). */
static double pipelined(pipe_run *p)
{
    natsSubscription *sub = NULL;
    static int round;
    char inbox[64], subject[128], reply[96];
    snprintf(inbox, sizeof inbox, "_INBOX.jbapi%d.*", ++round);
    snprintf(subject, sizeof subject, "jetsched.api.%s", p->verb);
    if (natsConnection_SubscribeSync(&sub, p->nc, inbox) != NATS_OK)
        jb_die("subscribe %s", inbox);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    long next = 0, got = 0;
    int64_t t0 = jb_now_ns(), last = t0;
    while (got < p->n) {
        while (next < p->n && next - got < p->in_flight) {
            snprintf(reply, sizeof reply, "_INBOX.jbapi%d.%ld", round, next);
            if (p->sent_ns)
                p->sent_ns[next] = jb_now_ns();
            natsConnection_PublishRequestString(p->nc, subject, reply, p->bodies[next]);
            next++;
        }
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 1000) != NATS_OK) {
            if (jb_now_ns() - last > (int64_t)120 * 1000000000)
                jb_die("%s: no reply for 120 s (%ld of %ld answered)", p->verb, got, p->n);
            continue;
        }
        last = jb_now_ns();
        long i = atol(strrchr(natsMsg_GetSubject(m), '.') + 1);
        if (p->recv_ns && i >= 0 && i < p->n)
            p->recv_ns[i] = last;
        if (strstr(natsMsg_GetData(m) ? natsMsg_GetData(m) : "", "\"error\"")) {
            if (!p->errors++)
                snprintf(p->first_error, sizeof p->first_error, "%.*s", natsMsg_GetDataLength(m),
                         natsMsg_GetData(m));
        }
        natsMsg_Destroy(m);
        got++;
    }
    natsSubscription_Destroy(sub);
    return (double)(last - t0) / 1e9;
}

/* Paced single requests at `rate` per second for n requests, each timed. */
static jb_lat paced(natsConnection *nc, const char *prefix, double rate, long n)
{
    natsSubscription *sub = NULL;
    if (natsConnection_SubscribeSync(&sub, nc, "_INBOX.jbpace.*") != NATS_OK)
        jb_die("subscribe");
    natsSubscription_SetPendingLimits(sub, -1, -1);
    int64_t *sent = calloc((size_t)n, sizeof *sent), *recv = calloc((size_t)n, sizeof *recv);
    int64_t t0 = jb_now_ns(), step = (int64_t)(1e9 / rate);
    long next = 0, got = 0;
    char body[256], reply[64];
    while (got < n) {
        int64_t now = jb_now_ns();
        while (next < n && now >= t0 + next * step) {
            snprintf(body, sizeof body, "{\"id\":\"%s%ld\",\"queue\":\"bench\",\"handler\":\"noop\",\"payload\":\"x\"}",
                     prefix, next);
            snprintf(reply, sizeof reply, "_INBOX.jbpace.%ld", next);
            sent[next] = jb_now_ns();
            natsConnection_PublishRequestString(nc, "jetsched.api.task.submit", reply, body);
            next++;
        }
        int64_t wait_ms = next < n ? (t0 + next * step - jb_now_ns()) / 1000000 : 1000;
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, wait_ms > 0 ? wait_ms : 1) == NATS_OK) {
            long i = atol(strrchr(natsMsg_GetSubject(m), '.') + 1);
            if (i >= 0 && i < n && !recv[i]) {
                recv[i] = jb_now_ns();
                got++;
            }
            natsMsg_Destroy(m);
        } else if (next == n && jb_now_ns() - t0 > (int64_t)(n / rate + 60) * 1000000000) {
            break;
        }
    }
    natsSubscription_Destroy(sub);
    jb_lat l = jb_latency(sent, recv, n);
    free(sent);
    free(recv);
    return l;
}

/* ---- arrivals on the task subject ---- */

static struct {
    const char *prefix;       /* id prefix counted */
    long n;
    int64_t *recv_ns;         /* wall clock, by index */
    _Atomic long got;
} arr;

static void on_task(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    int64_t now = wall_ns();
    const char *id = NULL;
    size_t pl = strlen(arr.prefix);
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id && !strncmp(id, arr.prefix, pl)) {
        long i = atol(id + pl);
        if (i >= 0 && i < arr.n && !arr.recv_ns[i]) {
            arr.recv_ns[i] = now;
            atomic_fetch_add(&arr.got, 1);
        }
    }
    natsMsg_Destroy(m);
}

/* The arrivals (ms after due_ms) of the n tasks: p50/p99/max ("last"). */
static jb_lat arrivals(int64_t due_ms)
{
    int64_t *sent = calloc((size_t)arr.n, sizeof *sent);
    for (long i = 0; i < arr.n; i++)
        sent[i] = due_ms * 1000000;
    jb_lat l = jb_latency(sent, arr.recv_ns, arr.n);
    free(sent);
    return l;
}

static natsSubscription *watch(natsConnection *nc, const char *subject, const char *prefix, long n)
{
    free(arr.recv_ns);
    arr.prefix = prefix;
    arr.n = n;
    arr.recv_ns = calloc((size_t)n, sizeof *arr.recv_ns);
    atomic_store(&arr.got, 0);
    natsSubscription *sub = NULL;
    if (natsConnection_Subscribe(&sub, nc, subject, on_task, NULL) != NATS_OK)
        jb_die("subscribe %s", subject);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(nc);
    return sub;
}

static void wait_got(long want, int timeout_ms)
{
    for (int64_t until = jb_now_ns() + (int64_t)timeout_ms * 1000000;
         atomic_load(&arr.got) < want && jb_now_ns() < until;)
        jb_sleep_ms(20);
}

/* ---- the run ---- */

static void sched_start(jb_agent *s, const jb_api_spec *sp)
{
    memset(s, 0, sizeof *s);
    s->http_port = th_free_port();
    snprintf(s->conf, sizeof s->conf, "%s/api-sched.conf", sp->workdir);
    snprintf(s->log, sizeof s->log, "%s/api-sched.log", sp->workdir);
    FILE *f = fopen(s->conf, "w");
    if (!f)
        jb_die("cannot write %s", s->conf);
    const char *lvl = getenv("JETBENCH_SCHEDULERD_LOG_LEVEL"); /* e.g. debug: the leader's burst timings */
    fprintf(f, "# written by jetbench (API rows)\nlog = { level = \"%s\"; };\n", lvl && *lvl ? lvl : "warn");
    fprintf(f, "scheduler = { id = \"api-bench\"; };\n");
    const char *conns = getenv("JETBENCH_API_PG_CONNECTIONS");
    if (conns && *conns)
        fprintf(f, "api = { pg_connections = %d; };\n", atoi(conns));
    fprintf(f, "http = { listen = \"127.0.0.1:%d\"; };\n", s->http_port);
    fprintf(f, "postgres = { migrate = false; }; # bench/run ran jetsched migrate\n");
    fclose(f);
    char bin[700];
    snprintf(bin, sizeof bin, "%s/scheduler/schedulerd", sp->build);
    jb_daemon_spawn(s, bin, "api-bench");
}

/* A counter of schedulerd's /metrics (-1 when absent). */
static double metric(const jb_agent *s, const char *name)
{
    static char buf[1 << 20];
    if (th_http_get(s->http_port, "/metrics", buf, sizeof buf) != 200)
        return -1;
    size_t nl = strlen(name);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, name, nl) && l[nl] == ' ')
            return atof(l + nl + 1);
    return -1;
}

static char **bodies_submit(const char *prefix, long n, const char *payload)
{
    char **b = calloc((size_t)n, sizeof *b);
    for (long i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s%ld", prefix, i);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "id", id, "queue", "bench", "handler", "noop", "payload", payload);
        b[i] = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    return b;
}

static void bodies_free(char **b, long n)
{
    for (long i = 0; i < n; i++)
        free(b[i]);
    free(b);
}

jb_api_result jb_api_run(const jb_api_spec *sp, PGconn *pg, natsConnection *nc, natsConnection *nc2, jsCtx *js)
{
    jb_api_result r = {.ran = true};
    /* the ceiling of this part: raw async publish of n messages */
    purge(js);
    jb_pub_spec ps = {.subject = "jetsched.task.rawjs.normal", .handler = "noop", .id_prefix = "apiraw-",
                      .payload = sp->payload, .payload_len = (int)strlen(sp->payload), .n = sp->n};
    jb_pub_result pr;
    long acked = jb_publish(js, &ps, &pr);
    r.raw_rate = acked / ((double)(pr.end_ns - pr.start_ns) / 1e9);
    purge(js);
    jb_log("api: raw async publish %.0f msg/s", r.raw_rate);

    jb_agent s;
    sched_start(&s, sp);
    for (int i = 0; i < 100; i++) { /* the leader: the burst rows need it */
        char *h = jb_pg_text(pg, "SELECT coalesce(holder, '') FROM scheduler_epoch");
        bool held = *h;
        free(h);
        if (held)
            break;
        jb_sleep_ms(100);
    }
    double cpu_s0 = jb_cpu_ms(s.pid), cpu_pg0 = sp->pg_pid ? jb_cpu_ms_tree(sp->pg_pid) : 0,
           cpu_nats0 = sp->nats_pid ? jb_cpu_ms(sp->nats_pid) : 0, cpu_me0 = jb_cpu_ms(getpid());

    /* JETBENCH_API_BURSTS_ONLY=1: only the two burst rows (a schedulerd
     * change to the fire path, measured in half the time) */
    const char *bo = getenv("JETBENCH_API_BURSTS_ONLY");
    if (bo && *bo && strcmp(bo, "0") != 0) {
        r.submit_rate = r.many_rate = r.submit_cpu_us = r.mean_group = NAN;
        goto bursts;
    }
    /* task.submit, 64 in flight */
    char **b = bodies_submit("apis-", sp->n, sp->payload);
    pipe_run p = {.nc = nc, .verb = "task.submit", .bodies = b, .n = sp->n, .in_flight = 64};
    double secs = pipelined(&p);
    r.submit_rate = sp->n / secs;
    r.submit_errors = p.errors;
    snprintf(r.first_error, sizeof r.first_error, "%s", p.first_error);
    bodies_free(b, sp->n);
    r.submit_cpu_us = (jb_cpu_ms(s.pid) - cpu_s0) * 1000.0 / (double)sp->n;
    r.submit_cpu_pg_us = sp->pg_pid ? (jb_cpu_ms_tree(sp->pg_pid) - cpu_pg0) * 1000.0 / (double)sp->n : NAN;
    r.submit_cpu_nats_us = sp->nats_pid ? (jb_cpu_ms(sp->nats_pid) - cpu_nats0) * 1000.0 / (double)sp->n : NAN;
    r.submit_cpu_client_us = (jb_cpu_ms(getpid()) - cpu_me0) * 1000.0 / (double)sp->n;
    double groups = metric(&s, "jetsched_api_submit_groups_total"), grouped = metric(&s, "jetsched_api_submit_grouped_total");
    r.mean_group = groups > 0 ? grouped / groups : NAN;
    jb_log("api: task.submit x64 in flight: %.0f tasks/s (%ld errors)", r.submit_rate, p.errors);
    purge(js);

    /* task.submit_many, 1,000 per request, 4 in flight */
    long nreq = (sp->n + 999) / 1000;
    b = calloc((size_t)nreq, sizeof *b);
    for (long k = 0; k < nreq; k++) {
        json_t *tasks = json_array();
        for (long i = k * 1000; i < (k + 1) * 1000 && i < sp->n; i++) {
            char id[64];
            snprintf(id, sizeof id, "apim-%ld", i);
            json_array_append_new(tasks, json_pack("{s:s,s:s,s:s,s:s}", "id", id, "queue", "bench", "handler",
                                                   "noop", "payload", sp->payload));
        }
        json_t *o = json_pack("{s:o}", "tasks", tasks);
        b[k] = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    p = (pipe_run){.nc = nc, .verb = "task.submit_many", .bodies = b, .n = nreq, .in_flight = 4};
    secs = pipelined(&p);
    r.many_rate = sp->n / secs;
    r.many_errors = p.errors;
    if (!r.first_error[0])
        snprintf(r.first_error, sizeof r.first_error, "%s", p.first_error);
    bodies_free(b, nreq);
    jb_log("api: task.submit_many: %.0f tasks/s (%ld errors)", r.many_rate, p.errors);
    purge(js);

    /* one at a time at 10 % of the 64-in-flight rate */
    r.paced_rate = r.submit_rate * 0.10;
    long np = (long)(r.paced_rate * sp->lat_seconds);
    if (np < 50)
        np = 50;
    r.paced = paced(nc, "apip-", r.paced_rate, np);
    jb_log("api: single submits at %.0f/s: p50 %.1f ms, p99 %.1f ms", r.paced_rate, r.paced.p50, r.paced.p99);
    purge(js);

bursts:;
    /* 10,000 schedules due in the same second */
    long ns = sp->schedules;
    natsSubscription *sub = watch(nc2, "jetsched.task.apib.>", "apic-", ns);
    int64_t due = (wall_ms() / 1000 + 6) * 1000; /* a whole second, 5-6 s from now */
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO schedules (id, kind, spec, queue, handler, next_fire_at)"
             " SELECT 'apic-' || g, 'every', '@every 1h', 'apib', 'noop', to_timestamp(%lld / 1000.0)"
             " FROM generate_series(0, %ld) g",
             (long long)due, ns - 1);
    jb_pg_exec(pg, sql);
    /* the fire ids are apic-<i>-<due ms>: atol stops at the '-' */
    wait_got(ns, (int)(due - wall_ms()) + 30000);
    r.cron = arrivals(due);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jb_pg_exec_retry(pg, "UPDATE schedules SET paused = true WHERE id LIKE 'apic-%'");
    jb_log("api: %ld schedules due at once: last fire %.1f ms after its time (p99 %.1f, %ld missing)", ns,
           r.cron.max, r.cron.p99, r.cron.missing);
    purge(js);

    /* 100,000 delayed tasks due at one instant */
    long nd = sp->delayed;
    sub = watch(nc2, "jetsched.task.apid.>", "apid-", nd);
    /* due far enough ahead for the INSERT (9.5 s for 100,000 rows at load
     * 12) and the plan's loading (from 2 s before the due time) */
    due = (wall_ms() / 1000 + (nd > 20000 ? 30 : 12)) * 1000;
    snprintf(sql, sizeof sql,
             "INSERT INTO tasks (id, queue, handler, status, scheduled_for)"
             " SELECT 'apid-' || g, 'apid', 'noop', 'scheduled', to_timestamp(%lld / 1000.0)"
             " FROM generate_series(0, %ld) g",
             (long long)due, nd - 1);
    int64_t ins0 = jb_now_ns();
    jb_pg_exec(pg, sql);
    r.delayed_insert_s = (double)(jb_now_ns() - ins0) / 1e9;
    if (wall_ms() > due - 2500)
        jb_log("api: WARNING: inserting %ld delayed tasks took %.1f s: some were due before the plan could load them",
               nd, r.delayed_insert_s);
    wait_got(nd, (int)(due - wall_ms()) + 120000);
    r.delayed = arrivals(due);
    r.delayed_rate = r.delayed.missing < nd && r.delayed.max > 0 ? (double)(nd - r.delayed.missing) / (r.delayed.max / 1000.0)
                                                                 : NAN;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jb_log("api: %ld delayed tasks due at once: last published %.0f ms after (%.0f tasks/s, %ld missing)", nd,
           r.delayed.max, r.delayed_rate, r.delayed.missing);
    purge(js);
    r.sched_rss_kb = jb_proc_mem(s.pid).hwm_kb;
    jb_agent_stop(&s, 20000);
    free(arr.recv_ns);
    arr.recv_ns = NULL;
    r.ok = true;
    return r;
}
