/* schedulerd leader failover (DESIGN §5, issue 6 item 1): three schedulerd
 * processes, a schedule every second, kill -9 of the leader.
 *   - a new leader holds the epoch within TTL + one renewal interval;
 *   - every fire time of the test window has exactly one task row (ids
 *     <schedule>-<ms>, consecutive seconds, no gap), fired in order;
 *   - agentd runs every fire once: the exec handler's side-effect log has
 *     each task id exactly once. */
#include "sched_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TTL_MS 3000

int main(void)
{
    ss_env();
    ts_setup("default");
    char *dir = th_tmpdir();
    char logf[600];
    snprintf(logf, sizeof logf, "%s/side-effects.log", dir);
    free(dir);

    ts_agent ag;
    ss_agent_with_log(&ag, "agent-1", logf);
    ts_agent s[3];
    const char *ids[3] = {"sched-a", "sched-b", "sched-c"};
    for (int i = 0; i < 3; i++)
        ss_start(&s[i], ids[i], NULL);
    char *leader = ss_wait_holder(NULL, 10000);
    CHECK(*leader, "a leader holds the epoch");
    long epoch1 = ss_epoch();

    ts_pg_long("INSERT INTO schedules (id, kind, spec, handler, next_fire_at)"
               " VALUES ('tick', 'every', '@every 1s', 'log', date_trunc('second', now()) + interval '1s')");
    ts_sleep_ms(4500);
    long before = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'tick'");
    CHECK(before >= 3, "the leader fires every second (%ld fires)", before);

    int li = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(leader, ids[i]))
            li = i;
    CHECK(li >= 0, "leader %s is one of ours", leader);
    if (li < 0)
        return ts_finish();
    int leaders = 0;
    for (int i = 0; i < 3; i++)
        leaders += ss_metric(&s[i], "jetsched_scheduler_is_leader") == 1;
    CHECK(leaders == 1, "exactly one instance reports is_leader 1 (%d)", leaders);

    long kill_ms = ts_pg_long("SELECT (extract(epoch from now()) * 1000)::bigint");
    int64_t t_kill = ts_now_ms();
    CHECK(ts_agent_stop(&s[li], SIGKILL, 5000) == 128 + SIGKILL, "leader killed with SIGKILL");
    char *leader2 = ss_wait_holder(leader, 15000);
    int64_t took = ts_now_ms() - t_kill;
    CHECK(*leader2 && strcmp(leader2, leader) != 0, "a new leader (%s) after the kill", leader2);
    /* TTL + one renewal interval (TTL/3, +10 % jitter) + tick and slack. */
    CHECK(took <= TTL_MS + TTL_MS / 3 + 700, "new leader within TTL + one renewal interval: %lld ms",
          (long long)took);
    printf("new leader %s after %lld ms\n", leader2, (long long)took);
    CHECK(ss_epoch() > epoch1, "the epoch grew (%ld > %ld)", ss_epoch(), epoch1);

    ts_sleep_ms(5000);
    ts_pg_long("UPDATE schedules SET paused = true WHERE id = 'tick'");
    ts_sleep_ms(500);

    /* Fires planned ahead and withdrawn by the pause (not yet due) are no fires. */
    ts_pg_long("DELETE FROM tasks WHERE schedule_id = 'tick' AND status = 'skipped'"
               " AND error LIKE 'withdrawn before it was due%%'");
    long n = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'tick'");
    long span = ts_pg_long("SELECT extract(epoch from max(scheduled_for) - min(scheduled_for))::bigint + 1"
                           " FROM tasks WHERE schedule_id = 'tick'");
    CHECK(n == span, "every second of the window fired exactly once: %ld rows for %ld seconds", n, span);
    long badid = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'tick' AND"
                            " id <> 'tick-' || (extract(epoch from scheduled_for) * 1000)::bigint");
    CHECK(badid == 0, "task ids are <schedule>-<fire ms> (%ld bad)", badid);
    long across = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'tick' AND"
                             " scheduled_for BETWEEN to_timestamp(%ld / 1000.0) AND to_timestamp(%ld / 1000.0)",
                             kill_ms, kill_ms + TTL_MS + 1000);
    CHECK(across >= 4, "the fires due during the failover were fired (%ld)", across);
    long lag = ts_pg_long("SELECT (max(extract(epoch from dispatched_at - scheduled_for)) * 1000)::bigint"
                          " FROM tasks WHERE schedule_id = 'tick'");
    CHECK(lag >= 0 && lag <= TTL_MS + 2000, "worst fire lag %ld ms <= TTL + 2 s", lag);
    printf("worst fire lag %ld ms\n", lag);
    long by2 = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'tick' AND fired_by = '%s'", leader2);
    CHECK(by2 >= 4, "the new leader fired (%ld)", by2);

    long done = ts_wait_long(n, 20000, "SELECT count(*) FROM tasks WHERE schedule_id = 'tick' AND status = 'succeeded'");
    CHECK(done == n, "agentd ran every fire (%ld of %ld succeeded)", done, n);
    CHECK(ss_total_lines(logf) == n, "side-effect log: %d lines for %ld fires", ss_total_lines(logf), n);
    PGresult *r = PQexec(ts_pg(), "SELECT id FROM tasks WHERE schedule_id = 'tick'");
    int once = 0;
    for (int i = 0; i < PQntuples(r); i++)
        once += ss_count_lines(logf, PQgetvalue(r, i, 0)) == 1;
    CHECK(once == PQntuples(r), "each fire ran exactly once (%d of %d)", once, PQntuples(r));
    PQclear(r);

    for (int i = 0; i < 3; i++)
        if (i != li)
            CHECK(ts_agent_stop(&s[i], SIGTERM, 10000) == 0, "%s exits 0 on SIGTERM", ids[i]);
    ts_agent_stop(&ag, SIGTERM, 15000);
    free(leader);
    free(leader2);
    return ts_finish();
}
