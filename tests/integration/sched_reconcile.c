/* schedulerd reconciler (DESIGN §5, issue 6 item 5): a task committed in
 * PostgreSQL whose message was lost from the stream (the test deletes it)
 * is republished with Jetsched-Redispatch after reconcile.redispatch_after
 * and runs exactly once. The stream's duplicate window is short here (5s):
 * a republish with the same Nats-Msg-Id inside the window would be dropped
 * by JetStream (the reconciler then retries after it).
 * API publish sessions (sql/0016): a row committed by a task.submit whose
 * connection then ended without publishing it (schedulerd killed between
 * commit and publish; here a connection of the test that holds a session's
 * advisory lock, writes the row as the API does and closes) is republished
 * within seconds, long before redispatch_after, and runs once; the same
 * row of a session whose connection lives is left alone. */
#include "sched_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    ss_env();
    setenv("JETSCHED_JETSTREAM_DUPLICATE_WINDOW", "5s", 1);
    setenv("JETSCHED_RECONCILE_INTERVAL", "1s", 1);
    setenv("JETSCHED_RECONCILE_REDISPATCH_AFTER", "10s", 1);
    ts_setup("default");
    char *dir = th_tmpdir();
    char logf[600];
    snprintf(logf, sizeof logf, "%s/side-effects.log", dir);
    free(dir);
    ts_agent s1, ag;
    ss_start(&s1, "rec-1", NULL);
    char *holder = ss_wait_holder(NULL, 10000);
    CHECK(*holder, "a leader");
    free(holder);

    ts_pg_long("INSERT INTO tasks (id, queue, handler, status, scheduled_for)"
               " VALUES ('lost-1', 'default', 'log', 'scheduled', now())");
    long disp = ts_wait_long(1, 5000, "SELECT count(*) FROM tasks WHERE id = 'lost-1' AND dispatched_at IS NOT NULL");
    CHECK(disp == 1, "the task was published");
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == 1, "one message in the stream");

    /* Lose it: delete the message from the stream. */
    natsMsg *last = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetLastMsg(&last, ts_js(), "JETSCHED_TASKS", "jetsched.task.default.normal", NULL, &jerr);
    CHECK(st == NATS_OK, "found the message (%s)", natsStatus_GetText(st));
    if (st == NATS_OK) {
        CHECK(js_DeleteMsg(ts_js(), "JETSCHED_TASKS", natsMsg_GetSequence(last), NULL, &jerr) == NATS_OK,
              "deleted message %llu", (unsigned long long)natsMsg_GetSequence(last));
        natsMsg_Destroy(last);
    }
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == 0, "the stream lost it");

    ss_agent_with_log(&ag, "agent-r", logf);
    int64_t t0 = ts_now_ms();
    long ok = ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id = 'lost-1' AND status = 'succeeded'");
    CHECK(ok == 1, "the lost task was republished and ran");
    printf("recovered after %lld ms\n", (long long)(ts_now_ms() - t0));
    CHECK(ts_log_contains(&s1, "republished task lost-1"), "the reconciler logs the republish");
    ts_sleep_ms(3000);
    CHECK(ss_count_lines(logf, "lost-1") == 1, "it ran exactly once (%d)", ss_count_lines(logf, "lost-1"));
    CHECK(ts_pg_long("SELECT attempts FROM tasks WHERE id = 'lost-1'") == 1, "one attempt recorded");
    CHECK(ss_metric(&s1, "jetsched_scheduler_reconciled_total") >= 1, "reconciled metric (%g)",
          ss_metric(&s1, "jetsched_scheduler_reconciled_total"));

    /* A queued task that is running fine is not republished twice: the
     * one above is terminal now, so the reconciler has nothing left. */
    double before = ss_metric(&s1, "jetsched_scheduler_reconciled_total");
    ts_sleep_ms(2500);
    CHECK(ss_metric(&s1, "jetsched_scheduler_reconciled_total") == before, "nothing else republished");

    /* API publish sessions: "dead" ends, "live" stays connected */
    PGconn *conns[2];
    const char *names[2] = {"dead", "live"};
    for (int k = 0; k < 2; k++) {
        conns[k] = PQconnectdb(getenv("JETSCHED_TEST_PG_DSN"));
        CHECK(PQstatus(conns[k]) == CONNECTION_OK, "session connection %s", names[k]);
        char sql[600];
        snprintf(sql, sizeof sql,
                 "SELECT pg_advisory_lock(%d000000007); INSERT INTO api_sessions (key, scheduler) VALUES (%d000000007, 'test');"
                 " INSERT INTO tasks (id, queue, handler, status, dispatched_at, api_session)"
                 " VALUES ('sess-%s', 'default', 'log', 'queued', now(), %d000000007)",
                 k + 1, k + 1, names[k], k + 1);
        PGresult *r = PQexec(conns[k], sql);
        CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "session %s: row committed (%s)", names[k],
              PQresultErrorMessage(r));
        PQclear(r);
    }
    t0 = ts_now_ms();
    PQfinish(conns[0]); /* its lock goes: schedulerd died between the commit and the publish */
    ok = ts_wait_long(1, 9000, "SELECT count(*) FROM tasks WHERE id = 'sess-dead' AND status = 'succeeded'");
    CHECK(ok == 1, "the ended session's row was republished and ran before redispatch_after (10 s)");
    printf("ended API session: its row ran after %lld ms\n", (long long)(ts_now_ms() - t0));
    CHECK(ts_log_contains(&s1, "API session 1000000007 ended"), "the reconciler logs the ended session");
    CHECK(ts_pg_long("SELECT count(*) FROM api_sessions WHERE key = 1000000007") == 0, "its session row is gone");
    CHECK(ts_pg_long("SELECT count(*) FROM api_sessions WHERE key = 2000000007 AND seen_at > started_at") == 1,
          "the live session was seen alive");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'sess-live' AND status = 'queued'") == 1 &&
              !ts_log_contains(&s1, "republished task sess-live"),
          "the live session's row is left alone (it is being published)");
    ts_sleep_ms(2000);
    CHECK(ss_count_lines(logf, "sess-dead") == 1, "it ran exactly once (%d)", ss_count_lines(logf, "sess-dead"));
    PQfinish(conns[1]);

    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
