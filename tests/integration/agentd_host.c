/* The host API and time limits through a real agentd: checkpoints survive a
 * retry (KV jetsched_checkpoints), a follow-up task submitted by a handler
 * runs, a task longer than AckWait is kept alive with +WPI and runs once,
 * a native handler ignoring its timeout has its thread abandoned (counted)
 * and the attempt fails, progress events are published. */
#include "agent_support.h"
#include "harness.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int progress_events; /* written by libnats' delivery thread */
static void on_event(natsConnection *c, natsSubscription *s, natsMsg *m, void *closure)
{
    (void)c, (void)s, (void)closure;
    if (strstr(natsMsg_GetData(m), "\"progress\""))
        progress_events++;
    natsMsg_Destroy(m);
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1);
    ts_setup("default");
    char conf[1024];
    snprintf(conf, sizeof conf,
             "plugins = { load = [\"%s/tests/plugins/testkit.so\"]; };\n"
             "queues = ( { name = \"default\"; concurrency = 4; timeout = \"1s\"; backoff = \"fixed:100ms\"; } );\n",
             th_require_env("JETSCHED_BUILD_DIR"));
    natsSubscription *sub = NULL;
    natsConnection_Subscribe(&sub, ts_nats(), "jetsched.event.default.long-1", on_event, NULL);
    ts_agent ag;
    ts_agent_start(&ag, "host", conf);

    ts_publish("default", "normal", "checkpoint", "cp-1", "", 0, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='cp-1' AND status='succeeded' AND "
                                 "result='step-1-of-cp-1' AND attempts=2") == 1, "checkpoint did not survive the retry");

    ts_publish("default", "normal", "submitter", "parent-1", "", 0, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='parent-1-child' AND status='succeeded' AND "
                                 "result='from parent' AND priority='high'") == 1, "follow-up task did not run");

    const char *long_timeout[] = {"Jetsched-Timeout: 30s", NULL};
    ts_publish("default", "normal", "long", "long-1", "7", 1, long_timeout);
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id='long-1' AND status='succeeded'") == 1,
          "long task did not finish");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='long-1'") == 1,
          "a task running past AckWait was redelivered (no +WPI?)");
    CHECK(progress_events >= 3, "only %d progress events", progress_events);

    const char *one_try[] = {"Jetsched-Max-Attempts: 1", NULL};
    ts_publish("default", "normal", "stubborn", "stubborn-1", "8", 1, one_try);
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id='stubborn-1' AND status='dead' AND "
                                 "error LIKE '%%timed out after 1000 ms%%'") == 1, "timeout not enforced");
    static char body[1 << 17]; /* /metrics grows with every histogram */
    ts_agent_http(&ag, "/metrics", body, sizeof body);
    CHECK(strstr(body, "jetsched_agent_abandoned_threads 1") != NULL, "abandoned thread not counted");
    /* the replacement worker keeps the queue at full strength */
    ts_publish("default", "normal", "echo", "after-stubborn", "ok", 2, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='after-stubborn' AND status='succeeded'") == 1,
          "queue stalled after abandoning a thread");
    /* the abandoned handler returns later: its result is dropped and its thread exits */
    for (int i = 0; i < 100 && !ts_log_contains(&ag, "an abandoned handler finally returned"); i++)
        ts_sleep_ms(100);
    CHECK(ts_log_contains(&ag, "an abandoned handler finally returned"), "abandoned thread never came back");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id='stubborn-1' AND status='dead'") == 1,
          "the late return of an abandoned handler changed the recorded outcome");
    CHECK(ts_agent_stop(&ag, SIGTERM, 30000) == 0, "agentd did not exit 0");
    natsSubscription_Destroy(sub);
    return ts_finish();
}
