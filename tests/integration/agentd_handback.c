/* Deliveries handed back without running spend no attempt (DESIGN §12): an
 * idle agent is stopped with SIGTERM while its long-poll pull requests are
 * out; the tasks they deliver during the drain are naked unstarted (JetStream
 * counts those deliveries). A second agent runs them: each has exactly one
 * attempt row, attempt 1 succeeded, and no 'lost' row. */
#include "agent_support.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ts_setup("handback");
    const char *conf = "queues = ( { name = \"handback\"; concurrency = 4; } );\n"
                       "exec = { commands = ( { name = \"quick\"; argv = [\"/bin/sh\", \"-c\", \"echo ok\"]; } ); };\n";
    /* The long-polls expire after 1 s, so a task published during the drain
     * is handed back only when its lane's request is still out: a few rounds
     * until at least one was (the counter is the fix's own evidence). */
    int rounds = 0;
    for (; rounds < 6 && ts_pg_long("SELECT count(*) FROM tasks WHERE handed_back >= 1") == 0; rounds++) {
        ts_agent a;
        ts_drain_round(&a, "drainer", conf, "handback", "quick", "hb", rounds, true, NULL);
        CHECK(ts_agent_stop(&a, SIGTERM, 20000) == 0, "drainer did not exit 0");
        CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'hb-%d-%%'", rounds) == 0,
              "the draining agent ran a task published after the drain began");
    }
    long handed = ts_pg_long("SELECT count(*) FROM tasks WHERE handed_back >= 1");
    printf("rounds: %d, tasks handed back: %ld\n", rounds, handed);

    ts_agent b;
    ts_agent_start(&b, "runner", conf);
    long all = 3L * rounds;
    CHECK(ts_wait_long(all, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'hb-%%' AND status = 'succeeded'") == all,
          "not all %ld tasks succeeded", all);
    /* Discriminating either way: a handed-back delivery shows as the counter
     * (with the fix) or as a 'lost' row (without it). */
    CHECK(handed + ts_pg_long("SELECT count(DISTINCT task_id) FROM task_attempts WHERE status = 'lost'") >= 1,
          "no delivery was handed back in %d rounds: the test proved nothing", rounds);
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'hb-%%' AND status = 'lost'") == 0,
          "handed-back deliveries were recorded as lost attempts: %s",
          ts_pg_text("SELECT string_agg(task_id || '#' || attempt || ':' || status, ', ' ORDER BY task_id, attempt) "
                     "FROM task_attempts WHERE task_id LIKE 'hb-%%'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'hb-%%'") == all &&
              ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'hb-%%' AND attempt = 1 AND "
                         "status = 'succeeded'") == all,
          "want exactly one attempt row each, attempt 1 succeeded: %s",
          ts_pg_text("SELECT string_agg(task_id || '#' || attempt || ':' || status, ', ' ORDER BY task_id, attempt) "
                     "FROM task_attempts WHERE task_id LIKE 'hb-%%'"));
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'hb-%%' AND attempts = 1") == all,
          "task rows do not say 1 attempt");
    CHECK(ts_agent_stop(&b, SIGTERM, 20000) == 0, "runner did not exit 0");
    return ts_finish();
}
