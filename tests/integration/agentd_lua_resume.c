/* batch_report.lua across two agentd processes: both serve the queue; the
 * first attempt fails on purpose after step 3 (having saved a checkpoint in
 * KV jetsched_checkpoints after each step); the agent that ran it is then
 * stopped, so the retry runs on the OTHER agent, which resumes at step 4 from
 * the checkpoint and still computes the right total. Progress events of both
 * attempts are published. */
#include "agentd_lua_util.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int progress_events;
static void on_event(natsConnection *c, natsSubscription *s, natsMsg *m, void *closure)
{
    (void)c, (void)s, (void)closure;
    if (strstr(natsMsg_GetData(m), "\"progress\""))
        progress_events++;
    natsMsg_Destroy(m);
}

int main(void)
{
    ts_setup("default");
    const char *dir = lt_lua_dir();
    lt_copy(dir, "scripts/lua/batch_report.lua", "batch_report");
    natsSubscription *sub = NULL;
    natsConnection_Subscribe(&sub, ts_nats(), "jetsched.event.default.br-1", on_event, NULL);
    const char *conf = "queues = ( { name = \"default\"; concurrency = 2; } );\n";
    ts_agent a, b;
    ts_agent_start(&a, "lua-a", conf);
    ts_agent_start(&b, "lua-b", conf);

    /* The retry waits 5 s: time enough to stop the agent that ran attempt 1. */
    const char *hdrs[] = {"Jetsched-Backoff: fixed:5s", "Jetsched-Max-Attempts: 3", NULL};
    const char *p = "{\"items\":1000,\"step\":100,\"fail_after_step\":3}";
    ts_publish("default", "normal", "batch_report", "br-1", p, (int)strlen(p), hdrs);
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM task_attempts WHERE task_id='br-1' AND attempt=1 AND "
                                 "status='retrying' AND error LIKE 'batch_report.lua:%%: forced failure after step 3'") == 1,
          "attempt 1 did not fail after step 3: %s",
          ts_pg_text("SELECT status||' '||coalesce(error,'') FROM task_attempts WHERE task_id='br-1'"));
    char *first = ts_pg_text("SELECT agent FROM task_attempts WHERE task_id='br-1' AND attempt=1");
    bool a_first = strcmp(first, "lua-a") == 0;
    CHECK(a_first || strcmp(first, "lua-b") == 0, "attempt 1 ran on \"%s\"", first);
    ts_agent *ran = a_first ? &a : &b, *other = a_first ? &b : &a;
    const char *other_id = a_first ? "lua-b" : "lua-a";
    CHECK(ts_agent_stop(ran, SIGTERM, 30000) == 0, "agent %s did not exit 0", first);

    CHECK(ts_wait_long(1, 40000, "SELECT count(*) FROM tasks WHERE id='br-1' AND status='succeeded'") == 1,
          "the retry did not succeed: %s", ts_pg_text("SELECT status||' '||coalesce(error,'') FROM tasks WHERE id='br-1'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='br-1' AND attempt=2 AND status='succeeded' "
                     "AND agent='%s'", other_id) == 1,
          "attempt 2 did not run on the other agent (%s): %s", other_id,
          ts_pg_text("SELECT string_agg(attempt||':'||coalesce(agent,'?'), ' ') FROM task_attempts WHERE task_id='br-1'"));
    /* 1^2 + ... + 1000^2 = 333833500: the sum of steps 1-3 came from the checkpoint */
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id='br-1' AND (result::jsonb)->>'resumed_from'='4' AND "
                     "(result::jsonb)->>'attempt'='2' AND (result::jsonb)->>'steps'='10' AND "
                     "(result::jsonb)->>'sum_squares'='333833500'") == 1,
          "the retry did not resume from the checkpoint: %s", ts_pg_text("SELECT result FROM tasks WHERE id='br-1'"));
    CHECK(lt_wait_log(other, "resuming at step 4 of 10", 5000), "the other agent did not log the resumption");
    for (int i = 0; i < 50 && progress_events < 10; i++)
        ts_sleep_ms(100);
    CHECK(progress_events >= 10, "%d progress events (3 + 7 expected)", (int)progress_events);

    CHECK(ts_agent_stop(other, SIGTERM, 30000) == 0, "agent %s did not exit 0", other_id);
    free(first);
    natsSubscription_Destroy(sub);
    return ts_finish();
}
