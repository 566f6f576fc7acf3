/* schedulerd delayed tasks (DESIGN §5): tasks rows in state 'scheduled'
 * whose scheduled_for has come are moved to 'queued' in batches (fenced by
 * the epoch), published and run by agentd exactly once; rows not yet due
 * stay 'scheduled'. The batch size (200) is below the number of due rows,
 * so several batches are needed. */
#include "sched_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    ss_env();
    ts_setup("default");
    char *dir = th_tmpdir();
    char logf[600];
    snprintf(logf, sizeof logf, "%s/side-effects.log", dir);
    free(dir);
    ts_agent ag, s1;
    ss_agent_with_log(&ag, "agent-d", logf);
    ss_start(&s1, "delay-1", NULL);
    char *holder = ss_wait_holder(NULL, 10000);
    CHECK(*holder, "a leader");
    free(holder);

    /* 500 due in 2 s, 5 due in an hour, 3 with a payload and headers. */
    ts_pg_long("INSERT INTO tasks (id, queue, handler, priority, status, scheduled_for, max_attempts)"
               " SELECT 'd-' || g, 'default', 'log', 'normal', 'scheduled', now() + interval '2s', 3"
               " FROM generate_series(1, 500) g");
    ts_pg_long("INSERT INTO tasks (id, queue, handler, status, scheduled_for)"
               " SELECT 'later-' || g, 'default', 'log', 'scheduled', now() + interval '1h'"
               " FROM generate_series(1, 5) g");
    ts_pg_long("INSERT INTO tasks (id, queue, handler, priority, status, scheduled_for, payload, headers)"
               " SELECT 'h-' || g, 'default', 'echo', 'high', 'scheduled', now() + interval '1s', 'hello'::bytea,"
               " '{\"X-Test\": \"yes\"}'::jsonb FROM generate_series(1, 3) g");
    ts_sleep_ms(500);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE status <> 'scheduled'") == 0, "nothing runs early");

    long done = ts_wait_long(500, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'd-%%' AND status = 'succeeded'");
    CHECK(done == 500, "all 500 due delayed tasks ran (%ld)", done);
    long echo = ts_wait_long(3, 10000, "SELECT count(*) FROM tasks WHERE id LIKE 'h-%%' AND status = 'succeeded'"
                                       " AND result LIKE '%%hello%%'");
    CHECK(echo == 3, "payload delivered to the handler (%ld)", echo);
    long early = ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'd-%%' AND dispatched_at < scheduled_for");
    CHECK(early == 0, "none published before it was due (%ld)", early);
    long lag = ts_pg_long("SELECT (max(extract(epoch from dispatched_at - scheduled_for)) * 1000)::bigint"
                          " FROM tasks WHERE id LIKE 'd-%%'");
    CHECK(lag >= 0 && lag < 3000, "publish lag of the due batch: max %ld ms", lag);
    printf("delayed: max publish lag %ld ms for 500 tasks due at once\n", lag);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'later-%%' AND status = 'scheduled'") == 5,
          "tasks not yet due stay scheduled");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'd-%%' AND fired_by = 'delay-1' AND fire_epoch > 0")
              == 500, "queued under the leader's epoch");
    CHECK(ss_total_lines(logf) == 500, "side effects: %d lines", ss_total_lines(logf));
    int once = 0;
    for (int i = 1; i <= 500; i++) {
        char id[32];
        snprintf(id, sizeof id, "d-%d", i);
        once += ss_count_lines(logf, id) == 1;
    }
    CHECK(once == 500, "each delayed task ran exactly once (%d)", once);
    CHECK(ss_metric(&s1, "jetsched_scheduler_delayed_queued_total") == 503, "delayed metric (%g)",
          ss_metric(&s1, "jetsched_scheduler_delayed_queued_total"));
    CHECK(ss_metric(&s1, "jetsched_scheduler_fire_lag_seconds_count") >= 503, "fire lag histogram (%g)",
          ss_metric(&s1, "jetsched_scheduler_fire_lag_seconds_count"));

    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
