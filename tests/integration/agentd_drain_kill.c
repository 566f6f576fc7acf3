/* An agent SIGKILLed in the middle of its drain spends no attempt of the
 * tasks it had handed back (DESIGN §12). An idle agent is stopped with
 * SIGTERM while its long-poll pull requests are out; tasks published then
 * are delivered to it and handed back (tasks.handed_back, then a Nak); the
 * agent is killed right after the first hand-back of each round is
 * committed. A handed-back task must not come back to the same agent's pull
 * requests (still open for up to 1 s): a delivery to an agent that dies
 * before it can record the hand-back counts in JetStream and nowhere else,
 * and the next agent numbers the attempt past it (a `lost` row). A second
 * agent then runs every task: exactly one attempt row each, attempt 1
 * succeeded. */
#include "agentd_lua_util.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A task a worker took but could not start before the drain gave up on it
 * (here: blocked in its concurrency-slot request, the test holding
 * limit_leases locked, past shutdown.grace) is handed back at the end of
 * the drain: recorded as handed back like the others, so the next agent
 * runs it as attempt 1 (it got a `lost` row and ran as attempt 2). */
static void stuck_before_start(void)
{
    const char *conf = "queues = ( { name = \"ds\"; concurrency = 2; } );\n"
                       "shutdown = { grace = \"1s\"; };\n"
                       "exec = { commands = ( { name = \"quick\"; argv = [\"/bin/sh\", \"-c\", \"echo ok\"]; } ); };\n";
    ts_pg_long("INSERT INTO limits (scope, name, concurrency) VALUES ('key', 'ds', 5) RETURNING 1");
    CHECK(ts_pg_long("INSERT INTO tasks (id, queue, handler, status, dispatched_at) VALUES ('ds-1', 'ds', 'quick',"
                     " 'queued', now()) RETURNING 1") == 1,
          "ds-1's row");
    ts_agent a;
    ts_agent_start(&a, "stuck", conf);
    ts_sleep_ms(1500); /* the agent reads the limits every second */
    PGconn *hold = PQconnectdb(th_require_env("JETSCHED_TEST_PG_DSN"));
    PQclear(PQexec(hold, "BEGIN"));
    PGresult *r = PQexec(hold, "LOCK TABLE limit_leases IN ACCESS EXCLUSIVE MODE");
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "limit_leases locked: %s", PQerrorMessage(hold));
    PQclear(r);
    const char *h[] = {"Jetsched-Concurrency-Key: ds", NULL};
    ts_publish("ds", "normal", "quick", "ds-1", "", 0, h);
    CHECK(ts_wait_long(1, 5000, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                " AND query LIKE '%%jetsched_limit_acquire%%'") == 1,
          "the worker waits for its slot");
    kill(a.pid, SIGTERM);
    CHECK(lt_wait_log(&a, "drained; exiting", 10000), "the agent's drain ends (grace 1 s, then the hand-back)");
    ts_sleep_ms(300);
    kill(a.pid, SIGKILL); /* its worker is still blocked: nothing of it may run after the lock goes */
    ts_agent_stop(&a, SIGKILL, 5000);
    PQclear(PQexec(hold, "ROLLBACK"));
    PQfinish(hold);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'ds-1' AND handed_back = 1") == 1,
          "the drain recorded ds-1 as handed back (handed_back %ld)",
          ts_pg_long("SELECT coalesce(handed_back, 0) FROM tasks WHERE id = 'ds-1'"));
    ts_agent b;
    ts_agent_start(&b, "stuck-runner", conf);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'ds-1' AND status = 'succeeded'") == 1,
          "ds-1 succeeded");
    char *rows = ts_pg_text("SELECT string_agg(attempt || ':' || status, ',' ORDER BY attempt) FROM task_attempts"
                            " WHERE task_id = 'ds-1'");
    CHECK(!strcmp(rows, "1:succeeded"), "ds-1: one attempt, attempt 1 succeeded (%s)", rows);
    free(rows);
    CHECK(ts_agent_stop(&b, SIGTERM, 20000) == 0, "stuck-runner exits 0");
}

/* Tasks published straight to NATS (no row) with Jetsched-Max-Attempts: 1
 * handed back by a draining agent: counted in task_handbacks (sql/0021), so
 * the next agent runs each as attempt 1; before, the hand-back spent the
 * only attempt and each was dead-lettered `poison` without running. */
static void direct_tasks_handed_back(void)
{
    const char *conf = "queues = ( { name = \"dd\"; concurrency = 4; } );\n"
                       "exec = { commands = ( { name = \"quick\"; argv = [\"/bin/sh\", \"-c\", \"echo ok\"]; } ); };\n";
    const char *h[] = {"Jetsched-Max-Attempts: 1", NULL};
    int rounds = 0;
    for (; rounds < 6 && ts_pg_long("SELECT count(*) FROM task_handbacks WHERE task_id LIKE 'dd-%%'") == 0; rounds++) {
        ts_agent a;
        ts_drain_round(&a, "drainer-dd", conf, "dd", "quick", "dd", rounds, false, h);
        CHECK(ts_agent_stop(&a, SIGTERM, 20000) == 0, "drainer-dd exits 0");
    }
    long handed = ts_pg_long("SELECT count(*) FROM task_handbacks WHERE task_id LIKE 'dd-%%'");
    CHECK(handed >= 1, "no direct task was handed back in %d rounds: the test proved nothing", rounds);
    ts_agent b;
    ts_agent_start(&b, "runner-dd", conf);
    long all = 3L * rounds;
    CHECK(ts_wait_long(all, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'dd-%%' AND status = 'succeeded'") == all,
          "all %ld direct tasks succeeded (%ld handed back): %s", all, handed,
          ts_pg_text("SELECT string_agg(id || ':' || status || ':' || coalesce(error, ''), ' | ') FROM tasks"
                     " WHERE id LIKE 'dd-%%' AND status <> 'succeeded'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'dd-%%' AND status = 'lost'") == 0,
          "handed-back direct tasks got lost attempts");
    CHECK(ts_agent_stop(&b, SIGTERM, 20000) == 0, "runner-dd exits 0");
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1); /* what the killed agent held comes back soon */
    ts_setup("dk,ds,dd");
    const char *conf = "queues = ( { name = \"dk\"; concurrency = 4; } );\n"
                       "exec = { commands = ( { name = \"quick\"; argv = [\"/bin/sh\", \"-c\", \"echo ok\"]; } ); };\n";
    enum { ROUNDS = 4 };
    int killed_after_handback = 0;
    for (int round = 0; round < ROUNDS; round++) {
        ts_agent a;
        ts_drain_round(&a, "drainer", conf, "dk", "quick", "dk", round, true, NULL);
        long back = 0;
        for (int64_t until = ts_now_ms() + 1500; ts_now_ms() < until; ts_sleep_ms(1)) {
            back = ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'dk-%d-%%' AND handed_back >= 1", round);
            if (back > 0)
                break;
        }
        ts_sleep_ms(round * 100); /* 0 to 300 ms into its hand-backs */
        kill(a.pid, SIGKILL);
        ts_agent_stop(&a, SIGKILL, 5000);
        if (back > 0)
            killed_after_handback++;
    }
    CHECK(killed_after_handback >= 1, "no round killed the agent after a hand-back: the test proved nothing");
    char *backs = ts_pg_text("SELECT string_agg(id || '=' || handed_back, ', ' ORDER BY id) FROM tasks"
                             " WHERE id LIKE 'dk-%%' AND handed_back IS NOT NULL");
    printf("rounds killed after a hand-back: %d of %d; hand-backs recorded: %s\n", killed_after_handback, ROUNDS,
           backs);
    fflush(stdout);
    free(backs);

    ts_agent b;
    ts_agent_start(&b, "runner", conf);
    long all = 3L * ROUNDS;
    CHECK(ts_wait_long(all, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'dk-%%' AND status = 'succeeded'") == all,
          "all %ld tasks succeeded", all);
    /* Tasks the agent had received and not yet handed back when it was
     * killed spend an attempt (no record of them: the documented limit);
     * the ones it had handed back must not. */
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE t.id LIKE 'dk-%%'"
                     " AND t.handed_back >= 1 AND a.status = 'lost'") == 0,
          "handed-back tasks got lost attempts: %s",
          ts_pg_text("SELECT string_agg(t.id || ' back=' || t.handed_back || ' #' || a.attempt || ':' || a.status, ', '"
                     " ORDER BY t.id, a.attempt) FROM task_attempts a JOIN tasks t ON t.id = a.task_id"
                     " WHERE t.id LIKE 'dk-%%'"));
    CHECK(ts_agent_stop(&b, SIGTERM, 20000) == 0, "runner exits 0");
    stuck_before_start();
    direct_tasks_handed_back();
    return ts_finish();
}
