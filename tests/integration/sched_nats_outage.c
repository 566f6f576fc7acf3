/* schedulerd through a NATS outage longer than the leader TTL: renewals
 * fail, so the leader stops acting at its own monotonic deadline (no fire
 * recorded in PostgreSQL, which stays up, after TTL); when NATS is back a
 * leader is elected again, the fires of the outage are caught up (late, not
 * missed: once each, no gap), and fires whose publish failed are republished
 * by the reconciler. */
#include "sched_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    ss_env();
    setenv("JETSCHED_RECONCILE_INTERVAL", "1s", 1);
    setenv("JETSCHED_RECONCILE_REDISPATCH_AFTER", "10s", 1);
    ts_setup("default");
    ts_agent s1;
    ss_start(&s1, "out-1", NULL);
    char *h = ss_wait_holder(NULL, 10000);
    CHECK(*h, "a leader");
    free(h);
    long epoch1 = ss_epoch();
    ts_pg_long("INSERT INTO schedules (id, kind, spec, handler, next_fire_at)"
               " VALUES ('ob', 'every', '1s', 'noop', date_trunc('second', now()) + interval '1s')");
    ts_sleep_ms(2500);

    char *stopped = ts_pg_text("SELECT now()");
    CHECK(th_ctl("nats stop") == 0, "NATS stopped");
    ts_sleep_ms(7000);
    long during = ts_pg_long("SELECT count(*) FROM tasks WHERE created_at > '%s'::timestamptz + interval '3s'", stopped);
    CHECK(during == 0, "no fire recorded after the lease ran out (%ld)", during);
    CHECK(ts_log_contains(&s1, "stepping down"), "the leader stepped down");
    CHECK(th_ctl("nats start") == 0, "NATS started");

    int64_t t_up = ts_now_ms();
    long ep = ts_wait_long(1, 20000, "SELECT (epoch > %ld)::int FROM scheduler_epoch", epoch1);
    CHECK(ep == 1, "leader again with a newer epoch");
    printf("leader again %lld ms after NATS restart\n", (long long)(ts_now_ms() - t_up));
    ts_sleep_ms(3000);
    ts_pg_long("UPDATE schedules SET paused = true WHERE id = 'ob'");
    ts_sleep_ms(300);
    /* Fires planned ahead and withdrawn by the pause (not yet due) are no fires. */
    ts_pg_long("DELETE FROM tasks WHERE schedule_id = 'ob' AND status = 'skipped'"
               " AND error LIKE 'withdrawn before it was due%%'");
    long n = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'ob'");
    long span = ts_pg_long("SELECT extract(epoch from max(scheduled_for) - min(scheduled_for))::bigint + 1"
                           " FROM tasks WHERE schedule_id = 'ob'");
    CHECK(n == span && n >= 10, "every second fired exactly once across the outage: %ld rows, %ld seconds", n, span);
    long undisp = ts_wait_long(0, 30000, "SELECT count(*) FROM tasks WHERE schedule_id = 'ob' AND dispatched_at IS NULL");
    printf("all published %lld ms after NATS restart\n", (long long)(ts_now_ms() - t_up));
    uint64_t msgs = 0;
    for (int64_t until = ts_now_ms() + 10000; ts_now_ms() < until; ts_sleep_ms(200))
        if ((msgs = ts_stream_msgs("JETSCHED_TASKS")) == (uint64_t)n)
            break;
    CHECK(msgs == (uint64_t)n, "each fire is in the stream once: %llu messages for %ld fires",
          (unsigned long long)msgs, n);
    CHECK(undisp == 0, "every fire published, failed publishes by the reconciler (%ld left)", undisp);
    CHECK(ts_agent_stop(&s1, SIGTERM, 15000) == 0, "schedulerd exits 0");
    if (ts_failures || getenv("SCHED_TEST_VERBOSE")) {
        PGresult *r = PQexec(ts_pg(), "SELECT id, status, created_at, updated_at, dispatched_at, now() FROM tasks"
                                      " WHERE dispatched_at IS NULL");
        for (int i = 0; i < PQntuples(r); i++)
            printf("undispatched: %s %s created %s updated %s now %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 5));
        PQclear(r);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "grep -v '^    #' %s | grep -v 'republished task'", s1.log);
        if (system(cmd) != 0) {
        }
    }
    free(stopped);
    return ts_finish();
}
