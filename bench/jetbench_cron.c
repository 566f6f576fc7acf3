/* jetbench (d): cron fire lag of schedulerd (bench/README.md, issue 6 item 8).
 * Two schedulerd instances, N schedules firing every second (6-field cron
 * `* * * * * *`, all due at the same whole second: the burst case). The
 * fire lag of one fire is the arrival of its task message on its subject
 * (a core NATS subscription of this client on jetsched.task.cronb.>, so
 * nothing consumes the tasks) minus its fire time (the task id is
 * <schedule>-<fire ms>); both are wall-clock times of this machine.
 * Measured in steady state (after a 3 s warm-up), then for the fires due
 * while the leader is killed with SIGKILL and a follower takes over. Missed
 * fires come from PostgreSQL (one row per fire time and schedule). */
#include "jetbench.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NSCHED 2

static struct {
    int64_t first_ms;         /* first fire time */
    long nsched, nsec;        /* index = schedule * nsec + second */
    int64_t *recv_ns;         /* wall-clock arrival, by index */
    _Atomic long got, repeats, foreign;
} cr;

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_task(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    int64_t now = wall_ns();
    const char *id = NULL;
    long s = -1;
    long long ms = -1;
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id && sscanf(id, "cb-%ld-%lld", &s, &ms) == 2 &&
        s >= 0 && s < cr.nsched && ms >= cr.first_ms && (ms - cr.first_ms) % 1000 == 0 &&
        (ms - cr.first_ms) / 1000 < cr.nsec) {
        long i = s * cr.nsec + (long)((ms - cr.first_ms) / 1000);
        if (cr.recv_ns[i] == 0) {
            cr.recv_ns[i] = now;
            atomic_fetch_add(&cr.got, 1);
        } else {
            atomic_fetch_add(&cr.repeats, 1);
        }
    } else {
        atomic_fetch_add(&cr.foreign, 1);
    }
    natsMsg_Destroy(m);
}

static void sched_start(jb_agent *s, const jb_cron_spec *sp, const char *id)
{
    memset(s, 0, sizeof *s);
    s->http_port = th_free_port();
    snprintf(s->conf, sizeof s->conf, "%s/%s.conf", sp->workdir, id);
    snprintf(s->log, sizeof s->log, "%s/%s.log", sp->workdir, id);
    FILE *f = fopen(s->conf, "w");
    if (!f)
        jb_die("cannot write %s", s->conf);
    const char *lvl = getenv("JETBENCH_SCHEDULERD_LOG_LEVEL"); /* e.g. debug: the leader's round timings */
    fprintf(f, "# written by jetbench (cron fire lag)\nlog = { level = \"%s\"; };\n", lvl && *lvl ? lvl : "warn");
    fprintf(f, "scheduler = { id = \"%s\";%s%s%s };\n", id, sp->tick ? " tick = \"" : "", sp->tick ? sp->tick : "",
            sp->tick ? "\";" : "");
    fprintf(f, "http = { listen = \"127.0.0.1:%d\"; };\n", s->http_port);
    fprintf(f, "postgres = { migrate = false; }; # bench/run ran jetsched migrate\n");
    fclose(f);
    char bin[700];
    snprintf(bin, sizeof bin, "%s/scheduler/schedulerd", sp->build);
    jb_daemon_spawn(s, bin, id);
}

/* The holder in scheduler_epoch, waiting up to timeout_ms for one that is
 * not `not`; "" when none. Caller frees. */
static char *wait_holder(PGconn *pg, const char *not, int timeout_ms)
{
    for (int64_t until = jb_now_ns() + (int64_t)timeout_ms * 1000000;; jb_sleep_ms(10)) {
        char *h = jb_pg_text(pg, "SELECT coalesce(holder, '') FROM scheduler_epoch");
        if (*h && (!not || strcmp(h, not) != 0))
            return h;
        free(h);
        if (jb_now_ns() > until)
            return strdup("");
    }
}

/* Lag of the fires whose time is in [from_ms, to_ms). */
static jb_lat window_lag(int64_t from_ms, int64_t to_ms)
{
    long n = cr.nsched * cr.nsec;
    int64_t *sent = calloc((size_t)n, sizeof *sent);
    for (long s = 0; s < cr.nsched; s++)
        for (long k = 0; k < cr.nsec; k++) {
            int64_t t = cr.first_ms + k * 1000;
            if (t >= from_ms && t < to_ms)
                sent[s * cr.nsec + k] = t * 1000000;
        }
    jb_lat l = jb_latency(sent, cr.recv_ns, n);
    free(sent);
    return l;
}

/* Per fire second of the window: when the first and the last of the N
 * messages arrived (ms after the fire time); medians over the seconds. */
static void burst_shape(int64_t from_ms, int64_t to_ms, double *first_ms, double *last_ms)
{
    double f[256], l[256];
    int n = 0;
    for (long k = 0; k < cr.nsec && n < 256; k++) {
        int64_t t = cr.first_ms + k * 1000;
        if (t < from_ms || t >= to_ms)
            continue;
        int64_t lo = 0, hi = 0;
        for (long s = 0; s < cr.nsched; s++) {
            int64_t r = cr.recv_ns[s * cr.nsec + k];
            if (!r)
                continue;
            if (!lo || r < lo)
                lo = r;
            if (r > hi)
                hi = r;
        }
        if (!lo)
            continue;
        f[n] = (double)(lo - t * 1000000) / 1e6;
        l[n] = (double)(hi - t * 1000000) / 1e6;
        n++;
    }
    for (int i = 1; i < n; i++) /* insertion sort, n <= 256 */
        for (int j = i; j > 0 && f[j] < f[j - 1]; j--) {
            double x = f[j];
            f[j] = f[j - 1];
            f[j - 1] = x;
        }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && l[j] < l[j - 1]; j--) {
            double x = l[j];
            l[j] = l[j - 1];
            l[j - 1] = x;
        }
    *first_ms = n ? f[n / 2] : -1;
    *last_ms = n ? l[n / 2] : -1;
}

jb_cron_result jb_cron_run(const jb_cron_spec *sp, PGconn *pg, natsConnection *nc, jsCtx *js)
{
    jb_cron_spec spc = *sp;
    const char *env_n = getenv("JETBENCH_CRON_SCHEDULES"), *env_tick = getenv("JETBENCH_CRON_TICK");
    if (env_n && atoi(env_n) > 0)
        spc.schedules = atoi(env_n);
    if (env_tick && *env_tick)
        spc.tick = env_tick;
    sp = &spc;
    jb_cron_result r = {.ran = true, .schedules = sp->schedules, .tick = sp->tick};
    const char *ttl = getenv("JETSCHED_JETSTREAM_LEADER_TTL");
    r.ttl_ms = ttl && *ttl ? atoi(ttl) * (strstr(ttl, "ms") ? 1 : 1000) : 10000;
    jb_log("(d) cron fire lag: %d schedules every second, %d s steady state, then a leader kill (TTL %d ms)",
           sp->schedules, sp->steady_s, r.ttl_ms);
    jb_pg_exec(pg, "DELETE FROM schedules WHERE id LIKE 'cb-%'");
    jb_pg_exec(pg, "TRUNCATE tasks, task_attempts CASCADE");
    jb_agent sch[NSCHED];
    const char *ids[NSCHED] = {"bench-sched-a", "bench-sched-b"};
    sched_start(&sch[0], sp, ids[0]);
    char *leader = wait_holder(pg, NULL, 20000);
    if (!*leader) {
        snprintf(r.why, sizeof r.why, "no schedulerd became leader in 20 s");
        jb_agent_stop(&sch[0], 10000);
        free(leader);
        return r;
    }
    sched_start(&sch[1], sp, ids[1]);
    jb_sleep_ms(1000);
    int li = !strcmp(leader, ids[1]);
    r.rss_idle_kb = jb_proc_mem(sch[li].pid).rss_kb;

    /* the window: warm-up 3 s, steady state, the kill and what follows */
    int warm_s = 3, lead_s = 3;
    cr.nsched = sp->schedules;
    cr.nsec = lead_s + warm_s + sp->steady_s + 30 + sp->after_kill_s;
    cr.recv_ns = calloc((size_t)(cr.nsched * cr.nsec), sizeof *cr.recv_ns);
    atomic_store(&cr.got, 0);
    atomic_store(&cr.repeats, 0);
    atomic_store(&cr.foreign, 0);
    char sql[600];
    cr.first_ms = jb_pg_long(pg, "SELECT round(extract(epoch from date_trunc('second', now()) + interval '3s')"
                                 " * 1000)::bigint");
    natsSubscription *sub = NULL;
    if (natsConnection_Subscribe(&sub, nc, "jetsched.task.cronb.>", on_task, NULL) != NATS_OK)
        jb_die("cannot subscribe to jetsched.task.cronb.>");
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(nc);
    snprintf(sql, sizeof sql,
             "INSERT INTO schedules (id, kind, spec, queue, handler, next_fire_at)"
             " SELECT 'cb-' || g, 'cron', '* * * * * *', 'cronb', 'noop', to_timestamp(%lld / 1000.0)"
             " FROM generate_series(0, %d) g",
             (long long)cr.first_ms, sp->schedules - 1);
    jb_pg_exec(pg, sql);
    jb_sampler_watch(1, sch[li].pid);

    /* steady state */
    int64_t steady_from = cr.first_ms + warm_s * 1000, steady_to = steady_from + sp->steady_s * 1000;
    while (wall_ns() / 1000000 < steady_to + 1500)
        jb_sleep_ms(50);
    r.rss_peak_kb = jb_sampler_max_kb(1);

    /* the leader kill, half-way into a second */
    while (wall_ns() / 1000000 % 1000 < 500)
        jb_sleep_ms(5);
    int64_t kill_ms = wall_ns() / 1000000, t0 = jb_now_ns();
    kill(sch[li].pid, SIGKILL);
    waitpid(sch[li].pid, NULL, 0);
    sch[li].pid = 0;
    char *next = wait_holder(pg, leader, 30000);
    r.takeover_ms = (double)(jb_now_ns() - t0) / 1e6;
    int64_t takeover_wall = wall_ns() / 1000000;
    if (!*next)
        snprintf(r.why, sizeof r.why, "no new leader within 30 s of the kill");
    jb_sampler_watch(1, sch[!li].pid);
    while (wall_ns() / 1000000 < takeover_wall + sp->after_kill_s * 1000)
        jb_sleep_ms(50);
    r.rss_peak_kb = jb_sampler_max_kb(1) > r.rss_peak_kb ? jb_sampler_max_kb(1) : r.rss_peak_kb;
    /* Every fire due up to now must exist; a leader that is behind gets up
     * to 20 s to catch up before the schedules are paused. */
    int64_t end_ms = wall_ns() / 1000000;
    long seconds = (long)((end_ms - cr.first_ms) / 1000) + 1;
    r.fires_expected = seconds * sp->schedules;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tasks WHERE schedule_id LIKE 'cb-%%' AND scheduled_for <= to_timestamp(%lld / 1000.0)"
             " AND id = schedule_id || '-' || round(extract(epoch from scheduled_for) * 1000)::bigint",
             (long long)(cr.first_ms + (seconds - 1) * 1000));
    long rows = 0;
    for (int64_t until = jb_now_ns() + 20000000000LL; jb_now_ns() < until; jb_sleep_ms(200))
        if ((rows = jb_pg_long(pg, sql)) >= r.fires_expected)
            break;
    r.catchup_ms = (double)(wall_ns() / 1000000 - end_ms);
    jb_pg_exec_retry(pg, "UPDATE schedules SET paused = true WHERE id LIKE 'cb-%'");
    r.fires_missed = r.fires_expected - rows;
    jb_sleep_ms(1500);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);

    /* figures */
    r.steady = window_lag(steady_from, steady_to);
    burst_shape(steady_from, steady_to, &r.burst_first_ms, &r.burst_last_ms);
    /* fires due from the kill until one second after the new leader holds the epoch */
    r.kill = window_lag(kill_ms, takeover_wall + 1000);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(round(percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch from created_at -"
             " scheduled_for) * 1000)), -1) FROM tasks WHERE schedule_id LIKE 'cb-%%' AND scheduled_for >="
             " to_timestamp(%lld / 1000.0) AND scheduled_for < to_timestamp(%lld / 1000.0)",
             (long long)steady_from, (long long)steady_to);
    r.steady_commit_p99_ms = (double)jb_pg_long(pg, sql);
    if (getenv("JETBENCH_CRON_PER_SECOND"))
        for (long k = 0; k < cr.nsec; k++) {
            int64_t t = cr.first_ms + k * 1000;
            if (t >= steady_to)
                break;
            int64_t lo = 0, hi = 0;
            for (long i = 0; i < cr.nsched; i++) {
                int64_t v = cr.recv_ns[i * cr.nsec + k];
                if (v && (!lo || v < lo))
                    lo = v;
                if (v > hi)
                    hi = v;
            }
            if (lo)
                jb_log("    second %+ld (%lld): first %.1f ms, last %.1f ms after the fire time", k - warm_s,
                       (long long)t, (double)(lo - t * 1000000) / 1e6, (double)(hi - t * 1000000) / 1e6);
        }
    r.republished = atomic_load(&cr.repeats);
    r.ok = !r.why[0] && r.steady.n > 0;
    if (!r.ok && !r.why[0])
        snprintf(r.why, sizeof r.why, "no fire arrived in the steady-state window");

    for (int i = 0; i < NSCHED; i++)
        if (sch[i].pid > 0)
            jb_agent_stop(&sch[i], 15000);
    jb_sampler_watch(1, 0);
    jb_pg_exec(pg, "DELETE FROM schedules WHERE id LIKE 'cb-%'");
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Purge.Subject = "jetsched.task.cronb.>";
    jsErrCode jerr = 0;
    js_PurgeStream(js, TASK_STREAM, &o, &jerr);
    jb_pg_exec(pg, "TRUNCATE tasks, task_attempts CASCADE");
    jb_log("    steady p50 %.1f ms p99 %.1f ms max %.1f ms (%ld fires, %ld missing); kill: takeover %.0f ms, "
           "p99 %.0f ms max %.0f ms; %ld of %ld fires missing in PostgreSQL after %.0f ms of catch-up",
           r.steady.p50, r.steady.p99, r.steady.max, r.steady.n, r.steady.missing, r.takeover_ms, r.kill.p99,
           r.kill.max, r.fires_missed, r.fires_expected, r.catchup_ms);
    free(cr.recv_ns);
    cr.recv_ns = NULL;
    free(leader);
    free(next);
    return r;
}
