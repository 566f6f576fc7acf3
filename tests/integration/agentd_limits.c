/* Per-key concurrency and rate limits across agents (issue 17, DESIGN §12
 * "Flow control"): a real schedulerd (the leader releases parked tasks) and
 * four real agentd processes, one of them killed with SIGKILL mid-run.
 * The handler appends "<task> s|e <ns>" to a sink file when it starts and
 * ends (the ground truth, reference flow-control §6): the tasks of a
 * concurrency key never run more than its limit at once; starts of a rate
 * key (from PostgreSQL history) stay within rate x 1.1 + burst in every 10 s
 * window and come close to the rate; every task succeeds, none is lost, and
 * no attempt is spent waiting (a task has more than one attempt only when
 * the killed agent had started it). A held task's row passes through
 * `throttled`; a task with an invalid key header is dead-lettered with
 * reason invalid_header. */
#include "sched_api_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONC_TASKS 60
#define CONC_LIMIT 3
#define RATE_TASKS 40
#define RATE 2.0
#define BURST 2
#define FREE_TASKS 40
#define AGENTS 4

static char sink[512];

static void agent_conf(char *buf, size_t len)
{
    snprintf(buf, len,
             "limits = { lease = \"4s\"; };\n"
             "history = { running_after = \"0s\"; };\n" /* a 'running' row at once: the kill below waits for one */
             "queues = ( { name = \"lim\"; concurrency = 4; } );\n"
             "exec = { commands = ( { name = \"nap\"; argv = [\"/bin/sh\", \"-c\", "
             "\"echo \\\"$JETSCHED_TASK_ID s $(date +%%s%%N)\\\" >> %s; sleep 0.3; "
             "echo \\\"$JETSCHED_TASK_ID e $(date +%%s%%N)\\\" >> %s\"]; } ); };\n",
             sink, sink);
}

static void publish(const char *prefix, int n, const char *header)
{
    char id[64];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s-%03d", prefix, i);
        const char *h[] = {header, NULL};
        ts_publish("lim", "normal", "nap", id, "x", 1, header ? h : NULL);
    }
}

/* Most tasks with this id prefix running at once, from the sink file. */
static int max_running(const char *prefix)
{
    FILE *f = fopen(sink, "r");
    CHECK(f != NULL, "sink file %s", sink);
    if (!f)
        return -1;
    struct ev {
        long long t;
        int d;
    } *ev = calloc(4096, sizeof *ev);
    int n = 0;
    char task[128], kind[4];
    long long t;
    while (n < 4096 && fscanf(f, "%127s %3s %lld", task, kind, &t) == 3)
        if (!strncmp(task, prefix, strlen(prefix)))
            ev[n++] = (struct ev){t, kind[0] == 's' ? 1 : -1};
    fclose(f);
    /* by time; an end before a start at the same instant */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && (ev[j].t < ev[j - 1].t || (ev[j].t == ev[j - 1].t && ev[j].d < ev[j - 1].d)); j--) {
            struct ev x = ev[j];
            ev[j] = ev[j - 1];
            ev[j - 1] = x;
        }
    int run = 0, most = 0, starts = 0;
    for (int i = 0; i < n; i++) {
        run += ev[i].d;
        starts += ev[i].d > 0;
        if (run > most)
            most = run;
    }
    printf("limits: %s: %d handler starts in the sink, at most %d at once\n", prefix, starts, most);
    free(ev);
    return most;
}

static void checks(const char *killed)
{
    long total = CONC_TASKS + RATE_TASKS + FREE_TASKS;
    long done = ts_wait_long(total, 90000, "SELECT count(*) FROM tasks WHERE id ~ '^(ck|rk|fk)-' AND status = 'succeeded'");
    CHECK(done == total, "every task succeeded (%ld of %ld)", done, total);
    if (done != total) {
        char *left = ts_pg_text("SELECT string_agg(t.id || ' ' || t.status || ' attempts ' || t.attempts || ' parks ' || "
                                "coalesce(w.parks::text, '-') || ' released ' || coalesce(w.released_at::text, '-') || "
                                "' updated ' || t.updated_at::text, '; ') FROM tasks t LEFT JOIN limit_waiting w ON "
                                "w.task_id = t.id WHERE t.id ~ '^(ck|rk|fk)-' AND t.status <> 'succeeded'");
        printf("limits: not succeeded: %s\n", left);
        free(left);
    }
    int most = max_running("ck-");
    CHECK(most >= 1 && most <= CONC_LIMIT, "tasks of key cust:1 never ran more than %d at once (%d)", CONC_LIMIT, most);
    CHECK(max_running("fk-") > CONC_LIMIT, "tasks without a key are not limited");
    /* rate: starts of rk- tasks in any 10 s window, from PostgreSQL */
    long worst = ts_pg_long("SELECT coalesce(max(c), 0) FROM (SELECT (SELECT count(*) FROM task_attempts y WHERE "
                            "y.task_id LIKE 'rk-%%' AND y.started_at >= x.started_at AND y.started_at < x.started_at + "
                            "interval '10 seconds') c FROM task_attempts x WHERE x.task_id LIKE 'rk-%%') z");
    double bound = RATE * 10 * 1.1 + BURST;
    printf("limits: rate key: at most %ld starts in a 10 s window (bound %.0f)\n", worst, bound);
    CHECK(worst <= bound, "rate key: %ld starts in a 10 s window, more than %.0f", worst, bound);
    long span_ms = ts_pg_long("SELECT ((extract(epoch FROM max(started_at) - min(started_at))) * 1000)::bigint FROM "
                              "task_attempts WHERE task_id LIKE 'rk-%%'");
    double achieved = (RATE_TASKS - BURST) / (span_ms / 1000.0);
    printf("limits: rate key: %d starts over %ld ms: %.2f/s after the burst (limit %.1f/s)\n", RATE_TASKS, span_ms,
           achieved, RATE);
    CHECK(achieved >= RATE * 0.75 && achieved <= RATE * 1.1, "rate key runs close to its rate (%.2f/s)", achieved);
    /* no attempt spent waiting: only tasks the killed agent had started have a second attempt */
    long extra = ts_pg_long("SELECT count(*) FROM (SELECT task_id FROM task_attempts WHERE task_id ~ '^(ck|rk|fk)-' "
                            "GROUP BY task_id HAVING count(*) > 1 AND count(*) FILTER (WHERE agent = '%s' OR "
                            "status IN ('lost', 'duplicate')) = 0) x",
                            killed);
    CHECK(extra == 0, "%ld tasks have more than one attempt without the killed agent having run them", extra);
    if (extra) {
        char *why = ts_pg_text("SELECT string_agg(task_id || '#' || attempt || ' ' || status || ' ' || coalesce(agent, '-') "
                               "|| ' ' || started_at::text, '; ' ORDER BY task_id, attempt) FROM task_attempts WHERE "
                               "task_id IN (SELECT task_id FROM task_attempts WHERE task_id ~ '^(ck|rk|fk)-' GROUP BY "
                               "task_id HAVING count(*) > 1)");
        printf("limits: tasks with more than one attempt: %s\n", why);
        free(why);
    }
    long attempts = ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id ~ '^(ck|rk|fk)-'");
    long by_killed = ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id ~ '^(ck|rk|fk)-' AND ((agent = '%s' "
                                "AND status <> 'succeeded') OR status IN ('lost', 'duplicate'))",
                                killed);
    /* the killed agent's unfinished attempts, 'lost' rows for them, and 'duplicate' rows of copies
     * redelivered after it committed a task but died before its ack */
    printf("limits: %ld attempts for %ld tasks; %ld left by the killed agent\n", attempts, total,
           by_killed);
    CHECK(attempts == total + by_killed, "attempts = tasks + the killed agent's unfinished ones (%ld, %ld + %ld)",
          attempts, total, by_killed);
    long parked = ts_pg_long("SELECT coalesce(sum(parks), 0) FROM limit_waiting");
    CHECK(ts_pg_long("SELECT count(*) FROM limit_waiting WHERE released_at IS NULL") == 0, "nothing left parked");
    printf("limits: limit_waiting rows left (released, being cleaned): %ld parks\n", parked);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id ~ '^(ck|rk|fk)-' AND attempts > 2") == 0,
          "no task has more than two attempts");
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1);
    ss_env();
    ts_setup("lim");
    snprintf(sink, sizeof sink, "%s/limits-sink.log", getenv("JETSCHED_TEST_STATE"));
    ts_agent s, ag[AGENTS];
    ss_start(&s, "limits-s", NULL);
    char conf[2048], name[32];
    agent_conf(conf, sizeof conf);
    for (int i = 0; i < AGENTS; i++) {
        snprintf(name, sizeof name, "lim-agent-%d", i);
        ts_agent_start(&ag[i], name, conf);
    }
    sa_expect_ok(sa_reqf("limit.set", "{\"key\":\"cust:1\",\"concurrency\":%d}", CONC_LIMIT), "limit.set cust:1");
    sa_expect_ok(sa_reqf("limit.set", "{\"key\":\"partner.api\",\"rate\":%g,\"burst\":%d}", RATE, BURST),
                 "limit.set partner.api");
    ts_sleep_ms(1500); /* agents read the limits every second */

    /* an invalid key is dead-lettered like other bad headers */
    const char *bad[] = {"Jetsched-Concurrency-Key: no spaces allowed", NULL};
    ts_publish("lim", "normal", "nap", "badkey-1", "x", 1, bad);

    int64_t t0 = ts_now_ms();
    publish("ck", CONC_TASKS, "Jetsched-Concurrency-Key: cust:1");
    publish("rk", RATE_TASKS, "Jetsched-Rate-Key: partner.api");
    publish("fk", FREE_TASKS, NULL);
    printf("limits: %d tasks published in %lld ms\n", CONC_TASKS + RATE_TASKS + FREE_TASKS,
           (long long)(ts_now_ms() - t0));
    CHECK(ts_wait_long(1, 20000, "SELECT least(count(*), 1) FROM tasks WHERE id LIKE 'ck-%%' AND status = 'throttled'") == 1,
          "tasks of a saturated key are parked as throttled");
    /* kill an agent while it runs a task of the key (it holds a slot) */
    char *victim = NULL;
    for (int i = 0; i < 100 && !(victim && *victim); i++) {
        free(victim);
        victim = ts_pg_text("SELECT agent FROM task_attempts WHERE task_id LIKE 'ck-%%' AND status = 'running' AND "
                            "agent LIKE 'lim-agent-%%' LIMIT 1");
        if (!*victim)
            ts_sleep_ms(50);
    }
    CHECK(victim && *victim, "an agent runs a task of the key");
    int k = victim && *victim ? atoi(victim + strlen("lim-agent-")) : 0;
    ts_agent_stop(&ag[k], SIGKILL, 1000);
    printf("limits: %s killed %lld ms after the first publish\n", victim, (long long)(ts_now_ms() - t0));

    checks(victim);
    printf("limits: everything finished %lld ms after the first publish\n", (long long)(ts_now_ms() - t0));
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'badkey-1' AND status = 'dead'") == 1,
          "a task with an invalid key is dead");
    char *err = ts_pg_text("SELECT error FROM tasks WHERE id = 'badkey-1'");
    CHECK(strstr(err, "invalid_header") && strstr(err, "Jetsched-Concurrency-Key"), "reason invalid_header: %s", err);
    free(err);
    for (int i = 0; i < AGENTS; i++)
        if (i != k)
            CHECK(ts_agent_stop(&ag[i], SIGTERM, 20000) == 0, "agent %d exits 0", i);
    CHECK(ts_pg_long("SELECT count(*) FROM limit_leases WHERE agent <> '%s'", victim) == 0,
          "drained agents returned their slots");
    free(victim);
    CHECK(ts_agent_stop(&s, SIGTERM, 20000) == 0, "schedulerd exits 0");
    return ts_finish();
}
