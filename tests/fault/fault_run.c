/* One fault-injection scenario of tests/fault/ under load, judged by the
 * history checker (checker.h):
 *
 *   fault_run SCENARIO [--long]      (inside tests/harness/with-servers)
 *
 * Every scenario runs two agentd (handler "sidefx" of tests/plugins/sidefx.c,
 * which appends a side-effect line per run), two schedulerd (leader TTL 3 s),
 * a load of tasks published straight to JetStream (kind direct, retried with
 * the same Nats-Msg-Id until acknowledged) and delayed tasks committed in
 * PostgreSQL (kind delayed, due 0-1.5 s later), and two schedules firing
 * every second (`@every 1s` and the 6-field cron `* * * * * *`). The fault is
 * injected during the load; then the load stops, everything drains, the
 * schedules are paused, and the checker reads the side-effect logs and
 * PostgreSQL. Its verdict is the exit status.
 *
 * Scenarios: agent_kill, leader_kill, leader_stop, nats_restart, pg_outage,
 * cluster_node_kill (--nats-cluster: R3 streams; DESIGN issue 8 item 5), pause_window
 * (no fault; the final pause straddles a fire: pause_schedules).
 * agentd runs with its defaults (idempotency.check = redelivered: the tasks
 * schedulerd publishes carry Jetsched-Idempotency-Check: always);
 * JETSCHED_FAULT_IDEMPOTENCY=redelivered|always sets the agents' key.
 * --long: longer load, higher rates, repeated faults, the 30 s PostgreSQL
 * outage. JETSCHED_FAULT_RESULTS=FILE appends the checker's JSON line. */
#include "checker.h"
#include "harness.h"
#include "sched_support.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TTL_MS 3000
#define NAGENTS 2
#define NSCHED 2

static const char *scenario;
static bool long_run, cluster;
static double direct_rate = 40, delayed_rate = 10, api_rate = 10; /* per second */
static int load_ms = 14000, fault_at_ms = 4000;
static const char *work_ms = "20"; /* payload: how long each handler run sleeps */
/* agentd's idempotency.check (docs/RELIABILITY.md: after a nats-server crash
 * acknowledged tasks can come back as first deliveries; API, delayed and
 * cron tasks are checked on every delivery all the same, by their header). */
static const char *idempotency = "redelivered";
static char workdir[600];
static ts_agent agents[NAGENTS], scheds[NSCHED];
static const char *agent_ids[NAGENTS] = {"agent-1", "agent-2"};
static const char *sched_ids[NSCHED] = {"sched-a", "sched-b"};
static int n_outages;
static int64_t outages[16][2]; /* wall ms: NATS or PostgreSQL (or a cluster node) down */
static char notes[1024];
static atomic_bool load_stop;
static atomic_long n_direct, n_delayed, n_api, n_retried_publishes, n_retried_api;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t used = strlen(notes);
    vsnprintf(notes + used, sizeof notes - used, fmt, ap);
    va_end(ap);
    printf("fault_run[%s]: %s\n", scenario, notes + used);
    if (strlen(notes) + 3 < sizeof notes)
        strcat(notes, "; ");
}

/* ---------------- processes ---------------- */

static void start_agent(int i)
{
    char fx[700], cfg[700], body[2400];
    fc_fx_path(agent_ids[i], fx, sizeof fx);
    snprintf(cfg, sizeof cfg, "%s/%s.plugins.json", workdir, agent_ids[i]);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"sidefx\": {\"log\": \"%s\", \"agent\": \"%s\"}}\n", fx, agent_ids[i]);
    fclose(f);
    snprintf(body, sizeof body,
             "plugins = { load = [\"%s/tests/plugins/sidefx.so\"]; config_file = \"%s\"; };\n"
             "queues = ( { name = \"default\"; concurrency = 4; timeout = \"1m\"; } );\n"
             "idempotency = { check = \"%s\"; };\n",
             th_require_env("JETSCHED_BUILD_DIR"), cfg, idempotency);
    ts_agent_start(&agents[i], agent_ids[i], body);
}

static void start_sched(int i)
{
    ss_start(&scheds[i], sched_ids[i], "reconcile = { interval = \"1s\"; redispatch_after = \"10s\"; };\n");
}

/* Index of the schedulerd holding the epoch (-1 when none within 15 s). */
static int leader_index(const char *not)
{
    char *h = ss_wait_holder(not, 15000);
    int li = -1;
    for (int i = 0; i < NSCHED; i++)
        if (!strcmp(h, sched_ids[i]))
            li = i;
    free(h);
    return li;
}

/* ---------------- the load ---------------- */

static natsConnection *load_connect(void)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    natsOptions_Create(&o);
    const char *url = getenv("JETSCHED_NATS_URL");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", url);
    const char *servers[8];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 8; t = strtok_r(NULL, ",", &save))
        servers[n++] = t;
    natsOptions_SetServers(o, servers, n);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 100);
    natsOptions_SetTimeout(o, 2000);
    natsOptions_SetPingInterval(o, 1000);
    natsOptions_SetMaxPingsOut(o, 2);
    natsOptions_SetReconnectBufSize(o, 0); /* fail fast while disconnected; we retry */
    natsStatus s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        fprintf(stderr, "FATAL: load: cannot connect to NATS: %s\n", natsStatus_GetText(s));
        exit(1);
    }
    return nc;
}

/* Publishes one task, retrying with the same Nats-Msg-Id until it is
 * acknowledged (a client's at-least-once submission). */
static void publish_direct(jsCtx *js, const char *id)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 2000;
    po.MsgId = id;
    int64_t give_up = ts_now_ms() + 60000;
    for (int attempt = 0;; attempt++) {
        natsMsg *m = NULL;
        natsMsg_Create(&m, "jetsched.task.default.normal", NULL, work_ms, (int)strlen(work_ms));
        natsMsgHeader_Set(m, "Jetsched-Handler", "sidefx");
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_PublishMsg(&pa, js, m, &po, &jerr);
        jsPubAck_Destroy(pa);
        natsMsg_Destroy(m);
        if (s == NATS_OK) {
            fc_submitted(id, FC_DIRECT);
            atomic_fetch_add(&n_direct, 1);
            return;
        }
        if (attempt == 0)
            atomic_fetch_add(&n_retried_publishes, 1);
        if (ts_now_ms() > give_up) {
            fc_unconfirmed(id);
            return;
        }
        ts_sleep_ms(100);
    }
}

static void insert_delayed(PGconn **pgp, const char *id, int64_t *next_reset)
{
    PGconn *pg = *pgp;
    if (PQstatus(pg) != CONNECTION_OK) {
        if (ts_now_ms() < *next_reset)
            return; /* refused: PostgreSQL is down; nothing was accepted */
        *next_reset = ts_now_ms() + 500;
        PQreset(pg);
        if (PQstatus(pg) != CONNECTION_OK)
            return;
    }
    char due[16];
    snprintf(due, sizeof due, "%d", rand() % 1500);
    const char *p[] = {id, due, work_ms};
    PGresult *r = PQexecParams(pg,
                               "INSERT INTO tasks (id, queue, handler, status, scheduled_for, payload)"
                               " VALUES ($1, 'default', 'sidefx', 'scheduled',"
                               " now() + $2::int * interval '1 millisecond', convert_to($3, 'UTF8'))",
                               3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        fc_submitted(id, FC_DELAYED);
        atomic_fetch_add(&n_delayed, 1);
    } else {
        fc_unconfirmed(id); /* the connection broke: it may or may not have committed */
    }
    PQclear(r);
}

/* Submits one task through the API (task.submit), retrying with the same id
 * until a reply says it exists (idempotent submit). */
static void submit_api(natsConnection *nc, const char *id)
{
    char req[256];
    snprintf(req, sizeof req, "{\"queue\":\"default\",\"handler\":\"sidefx\",\"payload\":\"%s\",\"id\":\"%s\"}",
             work_ms, id);
    int64_t give_up = ts_now_ms() + 60000;
    for (int attempt = 0;; attempt++) {
        natsMsg *reply = NULL;
        natsStatus s = natsConnection_RequestString(&reply, nc, "jetsched.api.task.submit", req, 2000);
        bool ok = s == NATS_OK && reply && natsMsg_GetData(reply) && strstr(natsMsg_GetData(reply), "\"id\"") &&
                  !strstr(natsMsg_GetData(reply), "\"error\"");
        if (s == NATS_OK && !ok && attempt == 0)
            printf("fault_run[%s]: task.submit of %s answered %.200s\n", scenario, id,
                   reply ? natsMsg_GetData(reply) : "nothing");
        natsMsg_Destroy(reply);
        if (ok) {
            fc_submitted(id, FC_API);
            atomic_fetch_add(&n_api, 1);
            return;
        }
        if (attempt == 0)
            atomic_fetch_add(&n_retried_api, 1);
        if (ts_now_ms() > give_up) {
            fc_unconfirmed(id);
            return;
        }
        ts_sleep_ms(200);
    }
}

/* One load thread per kind (an outage of one path does not hold up the
 * others): arg is the fc_kind it submits, at its rate. */
static void *load_main(void *arg)
{
    fc_kind kind = (fc_kind)(intptr_t)arg;
    natsConnection *nc = load_connect();
    jsCtx *js = NULL;
    natsConnection_JetStream(&js, nc, NULL);
    PGconn *pg = kind == FC_DELAYED ? PQconnectdb(th_require_env("JETSCHED_TEST_PG_DSN")) : NULL;
    double rate = kind == FC_DIRECT ? direct_rate : kind == FC_DELAYED ? delayed_rate : api_rate;
    const char *prefix = kind == FC_DIRECT ? "fd" : kind == FC_DELAYED ? "fl" : "fa";
    int64_t t0 = ts_now_ms(), next_reset = 0;
    long i = 0;
    char id[64];
    while (!atomic_load(&load_stop)) {
        double el = (double)(ts_now_ms() - t0) / 1000.0;
        while (i < (long)(el * rate) && !atomic_load(&load_stop)) {
            snprintf(id, sizeof id, "%s-%ld", prefix, i++);
            if (kind == FC_DIRECT)
                publish_direct(js, id);
            else if (kind == FC_DELAYED)
                insert_delayed(&pg, id, &next_reset);
            else
                submit_api(nc, id);
        }
        ts_sleep_ms(5);
    }
    if (pg)
        PQfinish(pg);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

/* ---------------- faults ---------------- */

static void outage_begin(void)
{
    if (n_outages < 16)
        outages[n_outages][0] = wall_ms();
}

static void outage_end(void)
{
    if (n_outages < 16)
        outages[n_outages++][1] = wall_ms();
}

static void fault_agent_kill(int round)
{
    int i = round % NAGENTS;
    int64_t t = ts_now_ms();
    ts_agent_stop(&agents[i], SIGKILL, 5000);
    note("kill -9 of %s (round %d)", agent_ids[i], round + 1);
    ts_sleep_ms(2000);
    start_agent(i);
    note("%s restarted %lld ms after the kill", agent_ids[i], (long long)(ts_now_ms() - t));
}

static void fault_leader_kill(int round)
{
    int li = leader_index(NULL);
    CHECK(li >= 0, "a leader before the kill");
    if (li < 0)
        return;
    int64_t t = ts_now_ms();
    ts_agent_stop(&scheds[li], SIGKILL, 5000);
    int nl = leader_index(sched_ids[li]);
    int64_t took = ts_now_ms() - t;
    CHECK(nl >= 0, "a new leader after the kill");
    note("kill -9 of leader %s (round %d): %s leads after %lld ms", sched_ids[li], round + 1,
         nl >= 0 ? sched_ids[nl] : "nobody", (long long)took);
    start_sched(li);
}

static void fault_leader_stop(int round)
{
    int li = leader_index(NULL);
    CHECK(li >= 0, "a leader before SIGSTOP");
    if (li < 0)
        return;
    int64_t t = ts_now_ms();
    kill(scheds[li].pid, SIGSTOP);
    int nl = leader_index(sched_ids[li]);
    int64_t took = ts_now_ms() - t;
    ts_sleep_ms(TTL_MS + 2000 - (int)(took > TTL_MS ? TTL_MS : took));
    char *resume = ts_pg_text("SELECT now()");
    kill(scheds[li].pid, SIGCONT);
    note("SIGSTOP of leader %s for %lld ms (round %d): %s took over after %lld ms", sched_ids[li],
         (long long)(ts_now_ms() - t), round + 1, nl >= 0 ? sched_ids[nl] : "nobody", (long long)took);
    ts_sleep_ms(2500);
    long after = ts_pg_long("SELECT count(*) FROM tasks WHERE fired_by = '%s' AND created_at >= '%s'", sched_ids[li],
                            resume);
    CHECK(after == 0, "the resumed old leader fired nothing (%ld rows)", after);
    CHECK(ts_log_contains(&scheds[li], "stepping down"), "the old leader logs that it steps down");
    free(resume);
}

static void fault_nats_restart(int round)
{
    outage_begin();
    CHECK(th_ctl("nats kill") == 0, "nats-server killed");
    ts_sleep_ms(1000);
    CHECK(th_ctl("nats start") == 0, "nats-server started");
    outage_end();
    note("kill -9 of nats-server, started again after 1 s (round %d)", round + 1);
}

static void fault_pg_outage(int round)
{
    int secs = long_run ? 30 : 10;
    outage_begin();
    CHECK(th_ctl("pg stop") == 0, "PostgreSQL stopped");
    ts_sleep_ms(secs * 1000);
    CHECK(th_ctl("pg start") == 0, "PostgreSQL started");
    outage_end();
    PQfinish(ts_pg()); /* ts_reconnect_pg replaces the connection */
    ts_reconnect_pg();
    note("PostgreSQL stopped for %d s under load (round %d)", secs, round + 1);
}

/* The node that leads the task stream's RAFT group. */
static const char *stream_leader(char *out, size_t len)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    out[0] = '\0';
    if (js_GetStreamInfo(&si, ts_js(), "JETSCHED_TASKS", NULL, &jerr) == NATS_OK && si->Cluster &&
        si->Cluster->Leader)
        snprintf(out, len, "%s", si->Cluster->Leader);
    jsStreamInfo_Destroy(si);
    return out;
}

static void fault_cluster_node_kill(int round)
{
    char leader[32];
    stream_leader(leader, sizeof leader);
    const char *node = (!strcmp(leader, "n1") || !strcmp(leader, "n2") || !strcmp(leader, "n3")) ? leader : "n2";
    int64_t t = ts_now_ms();
    /* While the node is down, a RAFT group it led (the leader bucket's, the
     * task stream's) elects a new leader; KV renewals can fail meanwhile, so
     * fires due in this window may be late by the rest of it + TTL + 1 s. */
    outage_begin();
    CHECK(th_ctl("nats-node kill %s", node) == 0, "cluster node %s killed", node);
    ts_sleep_ms(5000);
    char now_leader[32];
    stream_leader(now_leader, sizeof now_leader);
    CHECK(th_ctl("nats-node start %s", node) == 0, "cluster node %s started", node);
    outage_end();
    note("kill -9 of NATS node %s (the task stream's leader: %s), %s leads; back after %lld ms (round %d)", node,
         leader[0] ? leader : "?", now_leader[0] ? now_leader : "?", (long long)(ts_now_ms() - t), round + 1);
}

/* pause_window: no fault under the load; its test is the final pause
 * (pause_schedules). */
static void fault_none(int round)
{
    (void)round;
}

typedef struct scen {
    const char *name;
    void (*fault)(int round);
    int long_every_ms; /* --long: repeat the fault this often during the load */
} scen;

static const scen scens[] = {
    {"agent_kill", fault_agent_kill, 12000},
    {"leader_kill", fault_leader_kill, 15000},
    {"leader_stop", fault_leader_stop, 18000},
    {"nats_restart", fault_nats_restart, 15000},
    {"pg_outage", fault_pg_outage, 0},
    {"cluster_node_kill", fault_cluster_node_kill, 20000},
    {"pause_window", fault_none, 0},
};

/* ---------------- the run ---------------- */

static int64_t insert_schedule(const char *id, const char *kind, const char *spec)
{
    long first = ts_pg_long("INSERT INTO schedules (id, kind, spec, handler, payload, next_fire_at)"
                            " VALUES ('%s', '%s', '%s', 'sidefx', '10'::bytea,"
                            " date_trunc('second', now()) + interval '2s')"
                            " RETURNING round(extract(epoch from next_fire_at) * 1000)::bigint",
                            id, kind, spec);
    CHECK(first > 0, "schedule %s created", id);
    fc_schedule(id, first, 1000);
    return first;
}

/* True when both schedules' fires due at fire_ms have a side-effect line. */
static bool fires_ran(int64_t fire_ms)
{
    int found = 0;
    char want[2][64];
    snprintf(want[0], sizeof want[0], "fc-every-%lld ", (long long)fire_ms);
    snprintf(want[1], sizeof want[1], "fc-cron-%lld ", (long long)fire_ms);
    bool seen[2] = {false, false};
    for (int i = 0; i < NAGENTS; i++) {
        char fx[700], line[512];
        fc_fx_path(agent_ids[i], fx, sizeof fx);
        FILE *f = fopen(fx, "r");
        while (f && fgets(line, sizeof line, f))
            for (int k = 0; k < 2; k++)
                if (!seen[k] && !strncmp(line, want[k], strlen(want[k]))) {
                    seen[k] = true;
                    found++;
                }
        if (f)
            fclose(f);
    }
    return found == 2;
}

/* Pauses both schedules (the trigger of sql/0005 withdraws their planned
 * fires not yet due) and records each one's stop for the checker: the
 * instant the pause was acknowledged, i.e. its COMMIT returned. Not the
 * transaction's now(), which is when it began: a fire due between the two
 * may have been published, admitted and run before the pause committed
 * (docs/SCHEDULER.md, "Withdrawn fires do not run"); the CI run that
 * reported "UNEXPECTED FIRE: ... 1 ms later" had both fires published and
 * run while its pause's UPDATE was under way.
 *
 * straddle (scenario pause_window): the pause's transaction forces that
 * window: its UPDATE withdraws the fires due at the next whole second, which
 * the leader already holds in its plan; the COMMIT waits until both have run
 * (published from memory, admitted by agentd on the row PostgreSQL still
 * shows `scheduled`). The checker then wants them `succeeded` (their runs
 * recorded over the withdrawal: history tells what happened) and nothing
 * due after the acknowledgement run. */
static void pause_schedules(bool straddle)
{
    PGconn *pg = ts_pg();
    int64_t fire = 0;
    for (int tries = 0;; tries++) {
        if (straddle) {
            /* 150 ms before a whole second at least 600 ms away: planned (plan_ahead 2 s), not yet due */
            fire = (wall_ms() / 1000 + 2) * 1000;
            while (wall_ms() < fire - 150)
                ts_sleep_ms(5);
        }
        PQclear(PQexec(pg, "BEGIN"));
        PGresult *r = PQexec(pg, "UPDATE schedules SET paused = true WHERE id LIKE 'fc-%' RETURNING id");
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 2;
        PQclear(r);
        if (ok && straddle) {
            long began = ts_pg_long("SELECT floor(extract(epoch from now()) * 1000)::bigint");
            long withdrawn = ts_pg_long("SELECT count(*) FROM tasks WHERE id IN ('fc-every-%lld', 'fc-cron-%lld')"
                                        " AND status = 'skipped' AND error LIKE 'withdrawn before it was due%%'",
                                        (long long)fire, (long long)fire);
            if (began >= fire || withdrawn != 2) {
                PQclear(PQexec(pg, "ROLLBACK"));
                CHECK(tries < 5, "pause_window: the pause withdrew the fires due at %lld (began %ld ms before,"
                                 " %ld withdrawn)", (long long)fire, (long)(fire - began), withdrawn);
                if (tries < 5)
                    continue;
                return;
            }
            int64_t give_up = ts_now_ms() + 10000;
            while (!fires_ran(fire) && ts_now_ms() < give_up)
                ts_sleep_ms(20);
            CHECK(fires_ran(fire), "pause_window: the window was forced: both fires due at %lld ran while the "
                                   "pause that withdrew them was not committed", (long long)fire);
        }
        r = PQexec(pg, ok ? "COMMIT" : "ROLLBACK");
        ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        int64_t acked = wall_ms();
        CHECK(ok, "schedules paused");
        fc_schedule_stop("fc-every", acked);
        fc_schedule_stop("fc-cron", acked);
        if (straddle)
            note("pause_window: the pause began before the fires due at %lld and was acknowledged %lld ms after "
                 "them", (long long)fire, (long long)(acked - fire));
        return;
    }
}

/* Waits until `want` of our tasks have succeeded and none of any kind is
 * unfinished; returns how long it took, or -1 after timeout_ms. */
static int64_t drain(long want, int timeout_ms)
{
    int64_t t0 = ts_now_ms();
    for (;;) {
        long ok = ts_pg_long("SELECT count(*) FROM tasks WHERE (id LIKE 'fd-%%' OR id LIKE 'fl-%%' OR id LIKE 'fa-%%')"
                             " AND status = 'succeeded'");
        /* (a fire planned ahead and not yet due is no work yet) */
        long open = ts_pg_long("SELECT count(*) FROM tasks WHERE NOT jetsched_status_terminal(status)"
                               " AND NOT (status = 'scheduled' AND scheduled_for > now())");
        if (ok >= want && open == 0)
            return ts_now_ms() - t0;
        if (ts_now_ms() - t0 > timeout_ms) {
            printf("fault_run[%s]: drain incomplete after %d ms: %ld of %ld succeeded, %ld unfinished\n", scenario,
                   timeout_ms, ok, want, open);
            return -1;
        }
        ts_sleep_ms(250);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fault_run SCENARIO [--long]\n");
        return 2;
    }
    scenario = argv[1];
    long_run = argc > 2 && !strcmp(argv[2], "--long");
    const scen *sc = NULL;
    for (size_t i = 0; i < sizeof scens / sizeof *scens; i++)
        if (!strcmp(scens[i].name, scenario))
            sc = &scens[i];
    if (!sc) {
        fprintf(stderr, "fault_run: unknown scenario %s\n", scenario);
        return 2;
    }
    cluster = !strcmp(scenario, "cluster_node_kill");
    if (!strcmp(scenario, "agent_kill"))
        work_ms = "100"; /* more runs in flight when an agent is killed */
    const char *idem_env = getenv("JETSCHED_FAULT_IDEMPOTENCY");
    if (idem_env && (!strcmp(idem_env, "always") || !strcmp(idem_env, "redelivered")))
        idempotency = idem_env;
    if (long_run) {
        load_ms = 60000;
        direct_rate = 100;
        delayed_rate = 30;
        api_rate = 30;
    }
    if (!strcmp(scenario, "pause_window"))
        load_ms = 6000;
    if (!strcmp(scenario, "pg_outage"))
        load_ms = fault_at_ms + (long_run ? 30000 : 10000) + 5000;
    int64_t t_begin = ts_now_ms();
    setvbuf(stdout, NULL, _IOLBF, 0);
    ss_env();
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "4s", 1);
    if (cluster) {
        setenv("JETSCHED_TEST_NATS_URL", th_require_env("JETSCHED_TEST_NATS_CLUSTER_URLS"), 1);
        setenv("JETSCHED_JETSTREAM_REPLICAS", "3", 1);
    }
    ts_setup("default");
    char *dir = th_tmpdir();
    snprintf(workdir, sizeof workdir, "%s", dir);
    free(dir);
    char cdir[700];
    snprintf(cdir, sizeof cdir, "%s/check", workdir);
    fc_open(cdir);

    for (int i = 0; i < NAGENTS; i++)
        start_agent(i);
    for (int i = 0; i < NSCHED; i++)
        start_sched(i);
    CHECK(leader_index(NULL) >= 0, "a leader at the start");
    insert_schedule("fc-every", "every", "@every 1s");
    insert_schedule("fc-cron", "cron", "* * * * * *");

    note("load %d ms (%.0f direct/s, %.0f delayed/s, %.0f API/s), fault at %d ms%s, idempotency.check = %s",
         load_ms, direct_rate, delayed_rate, api_rate, fault_at_ms, long_run ? ", long" : "", idempotency);
    pthread_t lt[3];
    for (int k = 0; k < 3; k++)
        pthread_create(&lt[k], NULL, load_main, (void *)(intptr_t)k);
    int64_t t0 = ts_now_ms();
    ts_sleep_ms(fault_at_ms);
    int rounds = 0;
    do {
        sc->fault(rounds++);
        if (!long_run || !sc->long_every_ms)
            break;
        int64_t next = t0 + fault_at_ms + (int64_t)rounds * sc->long_every_ms;
        if (next + 5000 > t0 + load_ms)
            break;
        while (ts_now_ms() < next)
            ts_sleep_ms(50);
    } while (1);
    while (ts_now_ms() < t0 + load_ms)
        ts_sleep_ms(50);
    atomic_store(&load_stop, true);
    for (int k = 0; k < 3; k++)
        pthread_join(lt[k], NULL);
    long want = atomic_load(&n_direct) + atomic_load(&n_delayed) + atomic_load(&n_api);
    note("load: %ld direct, %ld delayed, %ld API tasks accepted (%ld publishes and %ld API requests needed retries)",
         atomic_load(&n_direct), atomic_load(&n_delayed), atomic_load(&n_api), atomic_load(&n_retried_publishes),
         atomic_load(&n_retried_api));

    int64_t drained = drain(want, long_run ? 120000 : 45000);
    CHECK(drained >= 0, "everything drained");
    if (drained >= 0)
        note("drained %lld ms after the load", (long long)drained);
    if (drained < 0 || drained > 15000) {
        /* a slow drain: what the daemons said (warnings and errors) */
        char cmd[4096];
        int k = snprintf(cmd, sizeof cmd, "grep -hE ' (warn|error) ' /dev/null");
        for (int i = 0; i < NAGENTS; i++)
            k += snprintf(cmd + k, sizeof cmd - (size_t)k, " %s", agents[i].log);
        for (int i = 0; i < NSCHED; i++)
            k += snprintf(cmd + k, sizeof cmd - (size_t)k, " %s", scheds[i].log);
        snprintf(cmd + k, sizeof cmd - (size_t)k, " | cut -c1-300 | tail -40");
        if (system(cmd) != 0) {
        }
        /* and the slowest tasks */
        PGresult *r = PQexec(ts_pg(), "SELECT id, status, attempts, to_char(created_at, 'HH24:MI:SS.MS'),"
                                      " to_char(dispatched_at, 'HH24:MI:SS.MS'), to_char(started_at, 'HH24:MI:SS.MS'),"
                                      " to_char(finished_at, 'HH24:MI:SS.MS') FROM tasks WHERE id LIKE 'f%'"
                                      " ORDER BY finished_at - created_at DESC NULLS FIRST LIMIT 8");
        for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
            printf("slow: %s %s attempts %s created %s dispatched %s started %s finished %s\n", PQgetvalue(r, i, 0),
                   PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                   PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
        PQclear(r);
    }
    /* Stop the schedules; fires in flight finish. */
    ts_sleep_ms(1500);
    pause_schedules(!strcmp(scenario, "pause_window"));
    ts_sleep_ms(1000);
    CHECK(drain(want, 30000) >= 0, "the last fires finished");
    /* Nothing is waiting to be delivered or acknowledged. */
    uint64_t left = ts_stream_msgs("JETSCHED_TASKS"), pending = 0, unacked = 0;
    const char *lanes[] = {"q_default_high", "q_default_normal", "q_default_low"};
    for (int i = 0; i < 3; i++) {
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        if (js_GetConsumerInfo(&ci, ts_js(), "JETSCHED_TASKS", lanes[i], NULL, &jerr) == NATS_OK) {
            pending += ci->NumPending;
            unacked += (uint64_t)ci->NumAckPending + (uint64_t)ci->NumRedelivered;
        } else {
            CHECK(false, "consumer info of %s", lanes[i]);
        }
        jsConsumerInfo_Destroy(ci);
    }
    CHECK(pending == 0 && unacked == 0, "no task waits for delivery or an ack (%llu pending, %llu unacked)",
          (unsigned long long)pending, (unsigned long long)unacked);
    if (left)
        note("%llu acknowledged message(s) stayed in the work-queue stream after the restart (no consumer will "
             "deliver them)", (unsigned long long)left);

    for (int i = 0; i < NAGENTS; i++)
        CHECK(ts_agent_stop(&agents[i], SIGTERM, 20000) == 0, "%s drains and exits 0", agent_ids[i]);
    for (int i = 0; i < NSCHED; i++)
        ts_agent_stop(&scheds[i], SIGTERM, 15000);
    fc_close();

    fc_limits lim = {.late_ms = TTL_MS + 1000, .end_grace_ms = 1500};
    lim.n_outages = n_outages;
    memcpy(lim.outages, outages, sizeof outages);
    fc_report rep;
    CHECK(fc_check(cdir, ts_pg(), &lim, &rep, stdout, 40) == 0, "the checker read its inputs");
    fc_print(&rep, scenario, stdout);
    CHECK(fc_pass(&rep), "the checker's verdict");
    CHECK(rep.submitted[FC_DIRECT] > 0 && rep.submitted[FC_DELAYED] > 0 && rep.submitted[FC_API] > 0 &&
              rep.fires_expected > 0,
          "there was a load to check");
    const char *res = getenv("JETSCHED_FAULT_RESULTS");
    if (res && *res) {
        FILE *f = fopen(res, "a");
        if (f) {
            char extra[1400];
            snprintf(extra, sizeof extra, "\"long\":%s,\"notes\":\"%s\"", long_run ? "true" : "false", notes);
            fc_json(&rep, scenario, (double)(ts_now_ms() - t_begin) / 1000.0, extra, f);
            fclose(f);
        }
    }
    printf("fault_run[%s]: %.1f s in all\n", scenario, (double)(ts_now_ms() - t_begin) / 1000.0);
    return ts_finish();
}
