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
#include "agent_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1); /* what the killed agent held comes back soon */
    ts_setup("dk");
    const char *conf = "queues = ( { name = \"dk\"; concurrency = 4; } );\n"
                       "exec = { commands = ( { name = \"quick\"; argv = [\"/bin/sh\", \"-c\", \"echo ok\"]; } ); };\n";
    enum { ROUNDS = 4 };
    int killed_after_handback = 0;
    for (int round = 0; round < ROUNDS; round++) {
        ts_agent a;
        ts_drain_round(&a, "drainer", conf, "dk", "quick", "dk", round);
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
    return ts_finish();
}
