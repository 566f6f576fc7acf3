/* PostgreSQL outage: finished tasks stay un-acked (kept alive with +WPI),
 * fetching pauses and /readyz turns false; when PostgreSQL returns every
 * attempt is recorded and acked, nothing lost or doubled. */
#include "agent_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 60

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1); /* outage longer than AckWait: +WPI must keep them */
    ts_setup("default");
    ts_agent ag;
    ts_agent_start(&ag, "outage", "queues = ( { name = \"default\"; concurrency = 4; } );\n"
                                  "history = { max_pending = 20; };\n");
    PQfinish(ts_pg());
    CHECK(th_ctl("pg stop") == 0, "could not stop PostgreSQL");
    for (int i = 0; i < N; i++) {
        char id[32], payload[32];
        snprintf(id, sizeof id, "out-%d", i);
        int n = snprintf(payload, sizeof payload, "p%d", i);
        ts_publish("default", "normal", "echo", id, payload, n, NULL);
    }
    char body[1024];
    int code = 0;
    for (int i = 0; i < 100 && code != 503; i++, ts_sleep_ms(100))
        code = ts_agent_http(&ag, "/readyz", body, sizeof body);
    CHECK(code == 503, "/readyz answered %d during the outage", code);
    ts_sleep_ms(6000); /* two AckWaits: without +WPI the tasks would be redelivered */
    uint64_t left = ts_stream_msgs("JETSCHED_TASKS");
    CHECK(left == N, "%llu of %d tasks left in the stream during the outage (acked before recorded?)",
          (unsigned long long)left, N);
    CHECK(th_ctl("pg start") == 0, "could not start PostgreSQL");
    ts_reconnect_pg();
    CHECK(ts_wait_long(N, 60000, "SELECT count(*) FROM tasks WHERE id LIKE 'out-%%' AND status='succeeded'") == N,
          "not every task recorded after the outage");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'out-%%' AND status='succeeded'") == N,
          "a task was recorded as succeeded twice");
    for (int i = 0; i < 100 && ts_stream_msgs("JETSCHED_TASKS") != 0; i++)
        ts_sleep_ms(100);
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == 0, "tasks left un-acked after the outage");
    CHECK(ts_agent_http(&ag, "/readyz", body, sizeof body) == 200, "/readyz not ready again");
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agentd did not exit 0");
    return ts_finish();
}
