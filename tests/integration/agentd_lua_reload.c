/* SIGHUP reload of the Lua scripts through a real agentd: a task running
 * when its script is replaced finishes with the old code (and is neither
 * dropped nor retried) while the next task of that handler runs the new
 * code; a new script is served after the reload and listed in the registry;
 * a reload that brings a syntax error makes the handler unavailable
 * (handler_unavailable with script:line) until a fixed file is reloaded. */
#include "agentd_lua_util.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT(n, ...) ts_wait_long(n, 30000, __VA_ARGS__)

/* With payload "wait" it runs until the test stores "go" as its checkpoint
 * (checking every 20 ms). */
static const char slow_fmt[] =
    "local version = '%s'\n"
    "return { handle = function(task, ctx)\n"
    "  if task.payload == 'wait' then\n"
    "    while ctx.checkpoint() ~= 'go' do\n"
    "      local t = time.monotonic() + 0.02\n"
    "      while time.monotonic() < t do end\n"
    "    end\n"
    "  end\n"
    "  return version\n"
    "end }\n";

static void write_slow(const char *dir, const char *version)
{
    char text[sizeof slow_fmt + 32];
    snprintf(text, sizeof text, slow_fmt, version);
    lt_write(dir, "slow", text);
}

/* SIGHUP, then wait for the n-th reload summary line. */
static void reload(ts_agent *ag, int n)
{
    kill(ag->pid, SIGHUP);
    for (int i = 0; i < 100 && lt_metric(ag, "jetsched_agent_lua_reloads") < n; i++)
        ts_sleep_ms(100);
    CHECK(lt_metric(ag, "jetsched_agent_lua_reloads") == n, "reload %d not done", n);
}

int main(void)
{
    ts_setup("default");
    const char *dir = lt_lua_dir();
    write_slow(dir, "v1");
    ts_agent ag;
    ts_agent_start(&ag, "reload", "queues = ( { name = \"default\"; concurrency = 2; timeout = \"60s\"; } );\n");

    ts_publish("default", "normal", "slow", "r-1", "wait", 4, NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='r-1' AND status='running'") == 1, "r-1 not running");

    write_slow(dir, "v2");
    lt_write(dir, "fresh", "return { handle = function() return 'fresh' end }\n");
    reload(&ag, 1);
    CHECK(ts_log_contains(&ag, "2 script(s): 1 new, 1 changed, 0 removed, 0 unavailable"),
          "no reload summary in the log");

    ts_publish("default", "normal", "slow", "r-2", "now", 3, NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='r-2' AND status='succeeded' AND result='v2'") == 1,
          "the task after the reload did not run the new code: %s",
          ts_pg_text("SELECT status||' '||coalesce(result,error,'') FROM tasks WHERE id='r-2'"));
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id='r-1' AND status='running'") == 1,
          "r-1 did not keep running across the reload");
    ts_publish("default", "normal", "fresh", "r-3", "", 0, NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='r-3' AND status='succeeded' AND result='fresh'") == 1,
          "the new script is not served after the reload");
    ts_sleep_ms(1500); /* a heartbeat (1 s) after the reload */
    char *reg = lt_registry("reload");
    CHECK(reg && strstr(reg, "\"fresh\"") && strstr(reg, "\"slow\""), "registry after the reload: %s",
          reg ? reg : "(none)");
    free(reg);

    lt_kv_put("jetsched_checkpoints", "r-1", "go");
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='r-1' AND status='succeeded' AND result='v1' AND "
                  "attempts=1") == 1,
          "the task running during the reload did not finish with the old code: %s",
          ts_pg_text("SELECT status||' '||attempts||' '||coalesce(result,error,'') FROM tasks WHERE id='r-1'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='r-1'") == 1, "r-1 ran more than once");

    /* a broken version makes the handler unavailable; the fix brings it back */
    lt_write(dir, "slow", "return {\n  handle = function() return 'v3' end\n  oops\n}\n");
    reload(&ag, 2);
    CHECK(ts_log_contains(&ag, "Lua handler slow is unavailable: slow.lua:3:"), "syntax error not logged");
    const char *once[] = {"Jetsched-Max-Attempts: 1", NULL};
    ts_publish("default", "normal", "slow", "r-4", "now", 3, once);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='r-4' AND status='dead' AND "
                  "error LIKE 'handler_unavailable: slow.lua:3:%%'") == 1,
          "task of the broken script: %s", ts_pg_text("SELECT status||' '||coalesce(error,'') FROM tasks WHERE id='r-4'"));
    write_slow(dir, "v3");
    reload(&ag, 3);
    ts_publish("default", "normal", "slow", "r-5", "now", 3, NULL);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='r-5' AND status='succeeded' AND result='v3'") == 1,
          "the fixed script is not served");

    CHECK(ts_agent_stop(&ag, SIGTERM, 30000) == 0, "agentd did not exit 0");
    return ts_finish();
}
