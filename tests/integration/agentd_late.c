/* Late deliveries (the case that overflows libnats 3.4.1's Fetch): the agent
 * is frozen with SIGSTOP while its pull requests are outstanding and tasks
 * are published, so deliveries and request-expiry statuses pile up for
 * requests the agent will consider expired when it resumes. Under
 * AddressSanitizer: no memory error, every task runs exactly once. */
#include "agent_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 40

int main(void)
{
    ts_setup("late");
    ts_agent ag;
    ts_agent_start(&ag, "late", "queues = ( { name = \"late\"; concurrency = 3; } );\n");
    for (int round = 0; round < 2; round++) {
        ts_sleep_ms(300); /* idle: the agent now waits on long-poll pull requests */
        kill(ag.pid, SIGSTOP);
        for (int i = 0; i < N / 2; i++) {
            char id[32];
            snprintf(id, sizeof id, "late-%d-%d", round, i);
            ts_publish("late", i % 3 == 0 ? "high" : i % 3 == 1 ? "normal" : "low", "noop", id, "", 0, NULL);
        }
        ts_sleep_ms(7000); /* past the server-side expiry and the client's grace */
        kill(ag.pid, SIGCONT);
    }
    CHECK(ts_wait_long(N, 60000, "SELECT count(*) FROM tasks WHERE id LIKE 'late-%%' AND status='succeeded'") == N,
          "not every task succeeded");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'late-%%' AND status='succeeded'") == N,
          "a task succeeded twice");
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agentd did not exit 0 (sanitizer error?)");
    CHECK(!ts_log_contains(&ag, "AddressSanitizer"), "AddressSanitizer report in %s", ag.log);
    return ts_finish();
}
