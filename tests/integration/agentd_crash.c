/* kill -9 of an agentd in the middle of tasks: a second agentd completes
 * them after AckWait and the history shows both attempts (the first left
 * "running" by the dead agent, the second succeeded). */
#include "agent_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *conf =
    "queues = ( { name = \"crash\"; concurrency = 4; } );\n"
    "exec = { commands = ( { name = \"slow\"; argv = [\"/bin/sh\", \"-c\", \"sleep 2; echo done\"]; } ); };\n";

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1); /* consumers and agents agree on it */
    ts_setup("crash");
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "crash-%d", i);
        ts_publish("crash", "normal", "slow", id, "", 0, NULL);
    }
    ts_agent a1, a2;
    ts_agent_start(&a1, "victim", conf);
    CHECK(ts_wait_long(4, 20000, "SELECT count(*) FROM task_attempts WHERE task_id LIKE 'crash-%%' AND attempt=1 "
                                 "AND status='running' AND agent='victim'") == 4, "tasks never started on victim");
    CHECK(ts_agent_stop(&a1, SIGKILL, 5000) == 128 + SIGKILL, "victim not killed");
    ts_agent_start(&a2, "rescuer", conf);
    CHECK(ts_wait_long(4, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'crash-%%' AND status='succeeded' "
                                 "AND agent='rescuer'") == 4, "the rescuer did not complete the tasks");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'crash-%%' AND attempt=1 AND "
                     "agent='victim'") == 4, "first attempts lost from history");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'crash-%%' AND attempt=2 AND "
                     "agent='rescuer' AND status='succeeded'") == 4, "second attempts not recorded");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'crash-%%' AND status='succeeded'") == 4,
          "a task succeeded twice");
    CHECK(ts_agent_stop(&a2, SIGTERM, 20000) == 0, "rescuer did not exit 0");
    return ts_finish();
}
