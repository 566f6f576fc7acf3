/* The fire-ahead path (docs/SCHEDULER.md "Fires planned ahead", issue 15),
 * with scheduler.plan_ahead = 5s and the leader TTL 3 s:
 *  1. a fire is committed `scheduled` before it is due, published on time
 *     (not early) and run once;
 *  2. a schedule paused and one deleted inside the window: their planned
 *     fires become `skipped` in the same transaction and nothing runs;
 *  3. overlap=forbid with a fire_all catch-up: not planned ahead; the
 *     missed fires are recorded in one batch, the first queued and the rest
 *     skipped;
 *  4. leader change after the commit, before the due time (kill -9 of the
 *     planner): the successor publishes the fire, which runs once;
 *  5. a leader SIGSTOPped across the due time: the successor fires it within
 *     TTL + 1 s, the old leader publishes nothing after SIGCONT (its lease
 *     check) and steps down; one run;
 *  6. after the publish, before the `queued` update (the message in the
 *     stream, the row still `scheduled`, as when a leader dies between the
 *     two): the successor publishes it again under the same Nats-Msg-Id,
 *     the stream drops the copy, one run. */
#include "sched_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char logf[600];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Inserts an hourly schedule whose next fire is in `in_ms`; returns its fire time (Unix ms). */
static long hourly_in(const char *id, int in_ms, const char *extra_cols, const char *extra_vals)
{
    return ts_pg_long("WITH s AS (INSERT INTO schedules (id, kind, spec, handler, next_fire_at%s)"
                      " VALUES ('%s', 'every', '1h', 'log', date_trunc('milliseconds', now())"
                      " + interval '%d milliseconds'%s) RETURNING next_fire_at)"
                      " SELECT (extract(epoch from next_fire_at) * 1000)::bigint FROM s",
                      extra_cols, id, in_ms, extra_vals);
}

static int runs(const char *sid, long t)
{
    char id[128];
    snprintf(id, sizeof id, "%s-%ld", sid, t);
    return ss_count_lines(logf, id);
}

static void expect_one_run(const char *sid, long t, int timeout_ms)
{
    char id[128];
    snprintf(id, sizeof id, "%s-%ld", sid, t);
    long done = ts_wait_long(1, timeout_ms, "SELECT count(*) FROM tasks WHERE id = '%s' AND status = 'succeeded'", id);
    CHECK(done == 1, "%s ran (%ld)", id, done);
    ts_sleep_ms(300);
    CHECK(ss_count_lines(logf, id) == 1, "%s ran exactly once (%d)", id, ss_count_lines(logf, id));
}

int main(void)
{
    ss_env();
    setenv("JETSCHED_SCHEDULER_PLAN_AHEAD", "5s", 1);
    setenv("JETSCHED_SCHEDULER_MISFIRE_THRESHOLD", "1s", 1);
    ts_setup("default");
    char *dir = th_tmpdir();
    snprintf(logf, sizeof logf, "%s/side-effects.log", dir);
    free(dir);
    ts_agent ag, a, b, c, d;
    ss_agent_with_log(&ag, "agent-ahead", logf);
    ss_start(&a, "ahead-a", NULL);
    char *h = ss_wait_holder(NULL, 10000);
    CHECK(!strcmp(h, "ahead-a"), "ahead-a leads (%s)", h);
    free(h);
    ss_start(&b, "ahead-b", NULL);

    /* 1 and 2 */
    long t_run = hourly_in("ah-run", 3000, "", "");
    long t_pause = hourly_in("ah-pause", 3000, "", "");
    long t_del = hourly_in("ah-del", 3000, "", "");
    long planned = ts_wait_long(3, 3000, "SELECT count(*) FROM tasks WHERE schedule_id IN ('ah-run', 'ah-pause',"
                                         " 'ah-del') AND status = 'scheduled' AND created_at < scheduled_for");
    CHECK(planned == 3, "three fires committed `scheduled` before they are due (%ld)", planned);
    CHECK(ts_pg_long("SELECT count(*) FROM schedules WHERE id = 'ah-run' AND next_fire_at > to_timestamp(%ld / 1000.0)",
                     t_run) == 1,
          "the schedule advanced past the planned fire in the same transaction");
    ts_pg_long("UPDATE schedules SET paused = true, updated_at = now() WHERE id = 'ah-pause'");
    ts_pg_long("DELETE FROM schedules WHERE id = 'ah-del'");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id IN ('ah-pause-%ld', 'ah-del-%ld') AND status = 'skipped'"
                     " AND error LIKE 'withdrawn before it was due: schedule %%' AND finished_at IS NOT NULL",
                     t_pause, t_del) == 2,
          "the paused and the deleted schedule's planned fires are skipped");
    expect_one_run("ah-run", t_run, 10000);
    long early = ts_pg_long("SELECT (extract(epoch from dispatched_at - scheduled_for) * 1000)::bigint"
                            " FROM tasks WHERE id = 'ah-run-%ld'", t_run);
    CHECK(early >= 0 && early < 1000, "published on time, not early: dispatched %ld ms after the fire time", early);
    ts_sleep_ms(1000);
    CHECK(runs("ah-pause", t_pause) == 0, "the paused schedule's fire did not run");
    CHECK(runs("ah-del", t_del) == 0, "the deleted schedule's fire did not run");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id IN ('ah-pause-%ld', 'ah-del-%ld') AND status = 'skipped'",
                     t_pause, t_del) == 2,
          "and both stay skipped");

    /* 3: overlap=forbid, fire_all: six missed fires (threshold 1 s) in one
     * batch; queue "idle" has no agent, so the first stays unfinished. */
    ts_pg_long("INSERT INTO schedules (id, kind, spec, queue, handler, misfire, overlap, next_fire_at)"
               " VALUES ('ah-fb', 'every', '1s', 'idle', 'log', 'fire_all', 'forbid',"
               " date_trunc('second', now()) - interval '5s')");
    long fb = ts_wait_long(6, 3000, "SELECT count(*) FROM tasks WHERE schedule_id = 'ah-fb'");
    CHECK(fb >= 6, "fire_all: the missed fires are recorded (%ld)", fb);
    long first = ts_pg_long("SELECT (extract(epoch from min(scheduled_for)) * 1000)::bigint FROM tasks"
                            " WHERE schedule_id = 'ah-fb'");
    long batch = ts_pg_long("SELECT count(DISTINCT created_at) FROM tasks WHERE schedule_id = 'ah-fb'"
                            " AND scheduled_for < to_timestamp(%ld / 1000.0) + interval '5.5s'", first);
    CHECK(batch == 1, "the six catch-up fires were written in one batch (%ld transactions)", batch);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'ah-fb' AND status = 'queued'") == 1 &&
              ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'ah-fb-%ld' AND status = 'queued'", first) == 1,
          "forbid: the first catch-up fire is queued");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'ah-fb' AND status = 'skipped'"
                     " AND error LIKE 'overlap forbidden%%'") >= 5,
          "forbid: the other catch-up fires are skipped");
    ts_sleep_ms(1500);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'ah-fb' AND created_at < scheduled_for") == 0,
          "forbid: never planned ahead (its overlap check stays at the due time)");

    /* 4: kill -9 of the planner after the commit, before the due time. */
    long t_kill = hourly_in("ah-kill", 4000, "", "");
    CHECK(ts_wait_long(1, 3000, "SELECT count(*) FROM tasks WHERE id = 'ah-kill-%ld' AND status = 'scheduled'"
                                " AND fired_by = 'ahead-a'", t_kill) == 1,
          "ahead-a committed the fire ahead");
    kill(a.pid, SIGKILL);
    ts_agent_stop(&a, SIGKILL, 5000);
    expect_one_run("ah-kill", t_kill, 15000);
    long lag = ts_pg_long("SELECT (extract(epoch from dispatched_at - scheduled_for) * 1000)::bigint"
                          " FROM tasks WHERE id = 'ah-kill-%ld'", t_kill);
    CHECK(lag <= 4000, "the successor published it within TTL + 1 s of its fire time (%ld ms)", lag);
    h = ss_wait_holder("ahead-a", 10000);
    CHECK(!strcmp(h, "ahead-b"), "ahead-b leads (%s)", h);
    free(h);

    /* 5: the leader SIGSTOPped across the due time. */
    ss_start(&c, "ahead-c", NULL);
    long t_stop = hourly_in("ah-stop", 3000, "", "");
    CHECK(ts_wait_long(1, 3000, "SELECT count(*) FROM tasks WHERE id = 'ah-stop-%ld' AND status = 'scheduled'"
                                " AND fired_by = 'ahead-b'", t_stop) == 1,
          "ahead-b committed the fire ahead");
    while (wall_ms() < t_stop - 1000)
        ts_sleep_ms(20);
    kill(b.pid, SIGSTOP);
    while (wall_ms() < t_stop + 4500)
        ts_sleep_ms(50);
    expect_one_run("ah-stop", t_stop, 10000);
    lag = ts_pg_long("SELECT (extract(epoch from dispatched_at - scheduled_for) * 1000)::bigint"
                     " FROM tasks WHERE id = 'ah-stop-%ld'", t_stop);
    CHECK(lag <= 4000, "the successor fired it within TTL + 1 s (%ld ms)", lag);
    uint64_t msgs = ts_stream_msgs("JETSCHED_TASKS");
    kill(b.pid, SIGCONT);
    ts_sleep_ms(2500);
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == msgs, "the resumed old leader published nothing (%llu -> %llu)",
          (unsigned long long)msgs, (unsigned long long)ts_stream_msgs("JETSCHED_TASKS"));
    CHECK(ts_log_contains(&b, "stepping down"), "the resumed old leader stepped down");
    CHECK(runs("ah-stop", t_stop) == 1, "ah-stop still ran once");

    /* 6: published, not yet marked queued; no schedulerd runs. */
    CHECK(ts_agent_stop(&b, SIGTERM, 10000) == 0, "ahead-b stops");
    CHECK(ts_agent_stop(&c, SIGTERM, 10000) == 0, "ahead-c stops");
    /* Queue "idle" has no agent: the stream count shows every copy. */
    ts_pg_long("INSERT INTO tasks (id, queue, handler, status, scheduled_for)"
               " VALUES ('ah-pub', 'idle', 'log', 'scheduled', now() - interval '100 milliseconds')");
    const char *hdrs[] = {"Jetsched-Idempotency-Check: always", NULL};
    ts_publish("idle", "normal", "log", "ah-pub", "", 0, hdrs);
    msgs = ts_stream_msgs("JETSCHED_TASKS");
    ss_start(&d, "ahead-d", NULL);
    long pub = ts_wait_long(1, 15000, "SELECT count(*) FROM tasks WHERE id = 'ah-pub' AND status = 'queued'"
                                      " AND dispatched_at IS NOT NULL AND fired_by = 'ahead-d'");
    CHECK(pub == 1, "the successor published ah-pub again and marked it queued (%ld)", pub);
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == msgs, "the stream dropped the second copy (same Nats-Msg-Id): %llu -> %llu",
          (unsigned long long)msgs, (unsigned long long)ts_stream_msgs("JETSCHED_TASKS"));

    CHECK(ts_agent_stop(&d, SIGTERM, 10000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
