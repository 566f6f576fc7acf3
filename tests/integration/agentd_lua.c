/* Lua handlers through a real agentd: the shipped examples hello.lua,
 * webhook.lua (json + ctx.submit to the native echo plugin) and fanout.lua
 * (follow-up tasks) run and their results are in PostgreSQL; a native plugin
 * wins a name clash with a script (warning logged); globals of one task are
 * invisible to the next on the same Lua state; states are recycled after
 * lua.recycle_after_tasks; the registry heartbeat lists the Lua handlers. */
#include "agentd_lua_util.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT(n, ...) ts_wait_long(n, 30000, __VA_ARGS__)

int main(void)
{
    ts_setup("default,solo");
    const char *dir = lt_lua_dir();
    lt_copy(dir, "scripts/lua/hello.lua", "hello");
    lt_copy(dir, "scripts/lua/webhook.lua", "webhook");
    lt_copy(dir, "scripts/lua/fanout.lua", "fanout");
    lt_copy(dir, "scripts/lua/noop.lua", "lua_noop");
    lt_copy(dir, "tests/lua/globals.lua", "globals");
    lt_write(dir, "echo", "return { handle = function() return 'echo from Lua' end }\n");
    ts_agent ag;
    ts_agent_start(&ag, "lua1",
                   "queues = ( { name = \"default\"; concurrency = 4; backoff = \"fixed:200ms\"; },\n"
                   "           { name = \"solo\"; concurrency = 1; } );\n"
                   "lua = { recycle_after_tasks = 5; };\n");

    CHECK(ts_log_contains(&ag, "handler hello: Lua script"), "start-up log does not list hello.lua");
    CHECK(ts_log_contains(&ag, "handler echo: both the native plugin") &&
              ts_log_contains(&ag, "the native plugin wins"),
          "no warning for echo.lua clashing with the native echo");

    /* hello.lua */
    ts_publish("default", "normal", "hello", "hello-1", "Ada", 3, NULL);
    ts_publish("default", "normal", "hello", "hello-2", "", 0, NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='hello-1' AND status='succeeded' AND result='hello, Ada' "
                  "AND agent='lua1' AND attempts=1") == 1,
          "hello.lua: %s", ts_pg_text("SELECT status||' '||coalesce(result,error,'') FROM tasks WHERE id='hello-1'"));
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='hello-2' AND result='hello, world'") == 1,
          "hello.lua with an empty payload");
    CHECK(ts_log_contains(&ag, "greeting Ada (attempt 1)"), "ctx.log line not in the agent log");

    /* webhook.lua: json in and out, a follow-up to the native echo handler */
    const char *ev = "{\"event\":\"order.paid\",\"data\":{\"amount\":12,\"items\":[1,2]},\"endpoint\":\"echo\"}";
    ts_publish("default", "normal", "webhook", "wh-1", ev, (int)strlen(ev), NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='wh-1' AND status='succeeded' AND "
                  "(result::jsonb)->>'event'='order.paid' AND (result::jsonb)->'data'->>'amount'='12' AND "
                  "(result::jsonb)->>'id'='wh-1' AND (result::jsonb)->>'attempt'='1'") == 1,
          "webhook.lua result: %s", ts_pg_text("SELECT coalesce(result,error) FROM tasks WHERE id='wh-1'"));
    CHECK(WAIT(1, "SELECT count(*) FROM tasks a JOIN tasks b ON b.id='wh-1-webhook' WHERE a.id='wh-1' AND "
                  "b.status='succeeded' AND b.handler='echo' AND b.result=a.result") == 1,
          "webhook.lua's follow-up to echo did not run with the body");
    ts_publish("default", "normal", "webhook", "wh-bad", "not json", 8, NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='wh-bad' AND status='dead' AND attempts=1 AND "
                  "error LIKE 'permanent_failure: webhook.lua:%%payload must be a JSON object%%'") == 1,
          "webhook.lua with a bad payload: %s",
          ts_pg_text("SELECT status||' '||coalesce(error,'') FROM tasks WHERE id='wh-bad'"));

    /* fanout.lua: five follow-ups to hello.lua */
    const char *fan = "{\"handler\":\"hello\",\"count\":5,\"priority\":\"high\"}";
    ts_publish("default", "normal", "fanout", "fan-1", fan, (int)strlen(fan), NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='fan-1' AND status='succeeded' AND "
                  "result='{\"submitted\":5}'") == 1, "fanout.lua did not succeed");
    CHECK(WAIT(5, "SELECT count(*) FROM tasks WHERE id ~ '^fan-1-[1-5]$' AND status='succeeded' AND "
                  "priority='high' AND result = 'hello, item ' || substr(id, 7)") == 5,
          "fanout.lua's follow-ups did not all run");

    /* name clash: the native echo wins */
    ts_publish("default", "normal", "echo", "clash-1", "ping", 4, NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='clash-1' AND status='succeeded' AND result='ping'") == 1,
          "echo was not served by the native plugin");

    /* isolation: one worker thread (queue solo), so one Lua state runs these in turn */
    for (int i = 1; i <= 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "glob-%d", i);
        ts_publish("solo", "normal", "globals", id, "", 0, NULL);
        CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='%s' AND status='succeeded' AND "
                      "result='1 1 1 1 1 1 1 nil nil'", id) == 1,
              "task %s saw state of an earlier task: %s", id,
              ts_pg_text("SELECT coalesce(result,error) FROM tasks WHERE id='%s'", id));
    }

    /* recycling after lua.recycle_after_tasks = 5 */
    for (int i = 0; i < 30; i++) {
        char id[16];
        snprintf(id, sizeof id, "noop-%d", i);
        ts_publish("default", "normal", "lua_noop", id, "", 0, NULL);
    }
    CHECK(WAIT(30, "SELECT count(*) FROM tasks WHERE id LIKE 'noop-%%' AND status='succeeded'") == 30,
          "Lua noop tasks did not all succeed");
    double recycled = lt_metric(&ag, "jetsched_agent_lua_states_recycled");
    double live = lt_metric(&ag, "jetsched_agent_lua_states");
    double tasks = lt_metric(&ag, "jetsched_agent_lua_tasks");
    CHECK(recycled >= 4, "states recycled: %g (>= 4 expected after %g tasks on 5 threads)", recycled, tasks);
    CHECK(live >= 1 && live <= 5, "%g Lua states open for 5 worker threads", live);
    CHECK(tasks == 43, "jetsched_agent_lua_tasks = %g (43 Lua tasks ran)", tasks);

    /* registry */
    char *reg = lt_registry("lua1");
    CHECK(reg && strstr(reg, "\"hello\"") && strstr(reg, "\"webhook\"") && strstr(reg, "\"fanout\"") &&
              strstr(reg, "\"lua_noop\"") && strstr(reg, "\"noop\"") && strstr(reg, "\"handlers_unavailable\":[]"),
          "registry entry lacks the Lua handlers: %s", reg ? reg : "(none)");
    const char *e1 = reg ? strstr(reg, "\"echo\"") : NULL;
    CHECK(e1 && !strstr(e1 + 1, "\"echo\""), "echo listed twice in the registry: %s", reg ? reg : "");
    free(reg);

    CHECK(ts_agent_stop(&ag, SIGTERM, 30000) == 0, "agentd did not exit 0");
    return ts_finish();
}
