/* schedulerd misfire and overlap policies (DESIGN §5). With every scheduler
 * stopped, three hourly schedules are left with next_fire_at five hours in
 * the past and a catch-up window of 3h30m (counted from T0, the start of
 * the current hour); then one schedulerd starts:
 *   fire_all  fires each missed time inside the window (4: T0-3h .. T0),
 *   fire_once fires one catch-up run (at T0, the latest missed time),
 *   skip      fires none and just advances to T0+1h.
 * overlap=forbid: an every-1s schedule whose first run never finishes (no
 * agent) records the next fires as 'skipped'; once the run is finished the
 * schedule fires again. Then the same policies in real time: every-1s
 * schedules, the only schedulerd stopped for 6 s, another one started. */
#include "sched_support.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    ss_env();
    setenv("JETSCHED_SCHEDULER_MISFIRE_THRESHOLD", "1s", 1);
    ts_setup("default");
    /* Not within the first seconds of an hour (T0 must be a missed fire). */
    while (ts_pg_long("SELECT extract(epoch from now() - date_trunc('hour', now()))::int") < 5)
        ts_sleep_ms(500);
    long t0 = ts_pg_long("SELECT (extract(epoch from date_trunc('hour', now())) * 1000)::bigint");
    const char *pol[] = {"fire_all", "fire_once", "skip"};
    for (int i = 0; i < 3; i++)
        ts_pg_long("INSERT INTO schedules (id, kind, spec, handler, misfire, catchup_window, next_fire_at)"
                   " VALUES (replace('mf-%s', '_', '-'), 'every', '1h', 'noop', '%s',"
                   " now() - date_trunc('hour', now()) + interval '3h30m', date_trunc('hour', now()) - interval '5h')",
                   pol[i], pol[i]);

    ts_agent s1;
    ss_start(&s1, "mis1", NULL);
    long ok = ts_wait_long(3, 20000,
                           "SELECT count(*) FROM schedules WHERE id LIKE 'mf-%%'"
                           " AND next_fire_at = date_trunc('hour', now()) + interval '1h'");
    CHECK(ok == 3, "all three schedules advanced to T0+1h (%ld)", ok);
    ts_sleep_ms(500);

    long n_all = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'mf-fire-all'");
    CHECK(n_all == 4, "fire_all: 4 fires inside the window (got %ld)", n_all);
    for (int k = 0; k <= 3; k++) {
        long have = ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'mf-fire-all-%ld' AND status = 'queued'",
                               t0 - k * 3600000L);
        CHECK(have == 1, "fire_all fired T0-%dh", k);
    }
    long old = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'mf-fire-all' AND scheduled_for <"
                          " to_timestamp(%ld / 1000.0) - interval '3h30m'", t0);
    CHECK(old == 0, "fire_all: nothing outside the catch-up window (%ld)", old);
    long n_once = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'mf-fire-once'");
    CHECK(n_once == 1, "fire_once: one catch-up run (got %ld)", n_once);
    long once_at = ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'mf-fire-once-%ld'", t0);
    CHECK(once_at == 1, "fire_once: the catch-up run is for the latest missed time");
    long n_skip = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'mf-skip'");
    CHECK(n_skip == 0, "skip: no fire (got %ld)", n_skip);
    long last = ts_pg_long("SELECT count(*) FROM schedules WHERE id = 'mf-fire-all' AND last_fire_at ="
                           " to_timestamp(%ld / 1000.0)", t0);
    CHECK(last == 1, "last_fire_at = T0");
    /* Published: 5 messages in the stream (no agent consumes them). */
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == 5, "5 messages published (%llu)",
          (unsigned long long)ts_stream_msgs("JETSCHED_TASKS"));
    long disp = ts_wait_long(5, 5000, "SELECT count(*) FROM tasks WHERE dispatched_at IS NOT NULL");
    CHECK(disp == 5, "dispatched_at recorded (%ld)", disp);

    /* overlap = forbid */
    ts_pg_long("INSERT INTO schedules (id, kind, spec, handler, overlap, next_fire_at)"
               " VALUES ('fb', 'every', '1s', 'noop', 'forbid', date_trunc('second', now()) + interval '1s')");
    long skipped = ts_wait_long(3, 8000, "SELECT count(*) FROM tasks WHERE schedule_id = 'fb' AND status = 'skipped'");
    CHECK(skipped >= 3, "forbid: later fires skipped while the first is queued (%ld)", skipped);
    long queued = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'fb' AND status = 'queued'");
    CHECK(queued == 1, "forbid: exactly one run queued (%ld)", queued);
    long why = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'fb' AND status = 'skipped'"
                          " AND error LIKE 'overlap forbidden%%' AND finished_at IS NOT NULL");
    CHECK(why == ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'fb' AND status = 'skipped'"),
          "skipped rows say why");
    ts_pg_long("UPDATE tasks SET status = 'succeeded', finished_at = now() WHERE schedule_id = 'fb' AND status = 'queued'");
    long again = ts_wait_long(1, 5000, "SELECT count(*) FROM tasks WHERE schedule_id = 'fb' AND status = 'queued'");
    CHECK(again == 1, "forbid: fires again once the previous run finished (%ld)", again);
    long gaps = ts_pg_long("SELECT extract(epoch from max(scheduled_for) - min(scheduled_for))::bigint + 1 - count(*)"
                           " FROM tasks WHERE schedule_id = 'fb'");
    CHECK(gaps == 0, "forbid: every fire time has a row, queued or skipped (gaps %ld)", gaps);
    double fires = ss_metric(&s1, "jetsched_scheduler_fires_total");
    CHECK(fires >= 5, "fires metric (%g)", fires);

    kill(s1.pid, SIGHUP);
    ts_sleep_ms(700);
    CHECK(ts_log_contains(&s1, "SIGHUP: configuration reloaded"), "SIGHUP reloads the configuration");
    char body[256];
    CHECK(ts_agent_http(&s1, "/readyz", body, sizeof body) == 200, "still ready after SIGHUP");
    CHECK(ts_agent_http(&s1, "/healthz", body, sizeof body) == 200, "/healthz");
    CHECK(ss_metric(&s1, "jetsched_scheduler_epoch") == (double)ts_pg_long("SELECT epoch FROM scheduler_epoch"),
          "epoch gauge = PostgreSQL epoch");
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0 on SIGTERM");
    CHECK(ts_log_contains(&s1, "resigned"), "resigned on SIGTERM");

    /* The same in real time: every-1s schedules, the only scheduler stopped
     * for 6 s, then another one started. A fire is missed when it is more
     * than 1 s (the threshold) late: created_at - scheduled_for > 1 s. */
    ts_pg_long("UPDATE schedules SET paused = true");
    for (int i = 0; i < 3; i++)
        ts_pg_long("INSERT INTO schedules (id, kind, spec, handler, misfire, next_fire_at)"
                   " VALUES (replace('rt-%s', '_', '-'), 'every', '1s', 'noop', '%s',"
                   " date_trunc('second', now()) + interval '1s')", pol[i], pol[i]);
    ts_agent s2, s3;
    /* At-due fires only: a fire planned ahead (scheduler.plan_ahead) is
     * committed before the stop and so never missed; sched_ahead covers
     * that path. */
    setenv("JETSCHED_SCHEDULER_PLAN_AHEAD", "0s", 1);
    ss_start(&s2, "mis2", NULL);
    ts_sleep_ms(2500);
    CHECK(ts_agent_stop(&s2, SIGTERM, 10000) == 0, "stopped");
    ts_sleep_ms(6000);
    ss_start(&s3, "mis3", NULL);
    ts_sleep_ms(2500);
    ts_pg_long("UPDATE schedules SET paused = true");
    ts_sleep_ms(300);
    const char *span_sql = "SELECT extract(epoch from max(scheduled_for) - min(scheduled_for))::bigint + 1 - count(*)"
                           " FROM tasks WHERE schedule_id = 'rt-%s'";
    const char *late_sql = "SELECT count(*) FROM tasks WHERE schedule_id = 'rt-%s'"
                           " AND created_at - scheduled_for > interval '1 second'";
    long g_all = ts_pg_long(span_sql, "fire-all"), l_all = ts_pg_long(late_sql, "fire-all");
    CHECK(g_all == 0 && l_all >= 4, "real time fire_all: no gap (%ld), %ld missed fires caught up", g_all, l_all);
    long g_once = ts_pg_long(span_sql, "fire-once"), l_once = ts_pg_long(late_sql, "fire-once");
    CHECK(g_once >= 3 && l_once == 1, "real time fire_once: one catch-up run (%ld) for the gap (%ld)", l_once, g_once);
    long g_skip = ts_pg_long(span_sql, "skip"), l_skip = ts_pg_long(late_sql, "skip");
    CHECK(g_skip >= 4 && l_skip == 0, "real time skip: no catch-up run (%ld), gap %ld", l_skip, g_skip);
    CHECK(ts_agent_stop(&s3, SIGTERM, 10000) == 0, "schedulerd exits 0");
    return ts_finish();
}
