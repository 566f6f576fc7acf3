/* Hostile Lua scripts through a real agentd (copied from tests/lua/): infinite
 * loops inside pcall/xpcall stopped at the task's time limit (by the hook,
 * without abandoning the thread); memory bombs stopped by lua.memory_limit
 * while a neighbour task on the same agent runs on and succeeds; sandbox
 * escapes (io, os.execute, require, debug, bytecode) fail with clear errors;
 * a script with a syntax error is unavailable with script:line, listed as
 * such in the registry, and its task is retried then dead-lettered with
 * reason handler_unavailable; a running loop is stopped by a cancellation
 * request; 5,000 nested coroutine.close (a Lua 5.4.4 bug that overflowed the
 * 1 MiB worker stack and killed agentd) fails both attempts with "C stack
 * overflow" and is dead-lettered. The agent stays up and ready throughout. */
#include "agentd_lua_util.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT(n, ...) ts_wait_long(n, 30000, __VA_ARGS__)

/* Busy Lua work until the test writes its checkpoint "stop" (after the
 * bombs are dead), for at most `payload` seconds. It used to run a fixed
 * 4 s, which the bombs outlasted on a loaded 2-core machine (they then went
 * off after the neighbour, and the overlap check failed): now the bombs
 * always go off while it runs, however slow they are, and it still fails
 * when the neighbour ends early (crash, recycled state) or never hears "stop". */
static const char neighbour_lua[] =
    "return { handle = function(task, ctx)\n"
    "  local stop, n, poll = time.monotonic() + tonumber(task.payload), 0, 0\n"
    "  local t = {}\n"
    "  while time.monotonic() < stop do\n"
    "    n = n + 1\n"
    "    t[n % 1000 + 1] = string.rep('n', 100)\n"
    "    if time.monotonic() >= poll then\n"
    "      if ctx.checkpoint() == 'stop' then return 'neighbour ok' end\n"
    "      poll = time.monotonic() + 0.05\n"
    "    end\n"
    "  end\n"
    "  return 'neighbour never told to stop'\n"
    "end }\n";

static void dead_with(const char *id, const char *error_like)
{
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='%s' AND status='dead' AND error LIKE '%s'", id,
               error_like) == 1,
          "%s: expected dead with error like %s, got: %s", id, error_like,
          ts_pg_text("SELECT status||' '||coalesce(error,'')||' '||coalesce(result,'') FROM tasks WHERE id='%s'", id));
}

int main(void)
{
    ts_setup("default");
    const char *dir = lt_lua_dir();
    lt_copy(dir, "tests/lua/spin.lua", "spin");
    lt_copy(dir, "tests/lua/membomb.lua", "membomb");
    lt_copy(dir, "tests/lua/sandbox.lua", "sandbox");
    lt_copy(dir, "tests/lua/syntax_error.lua", "broken");
    lt_copy(dir, "tests/lua/cstack.lua", "cstack");
    lt_write(dir, "neighbour", neighbour_lua);
    ts_agent ag;
    ts_agent_start(&ag, "hostile",
                   "queues = ( { name = \"default\"; concurrency = 4; backoff = \"fixed:300ms\"; } );\n"
                   "lua = { memory_limit = \"16MiB\"; };\n");
    const char *once[] = {"Jetsched-Max-Attempts: 1", NULL};
    const char *once_1s[] = {"Jetsched-Max-Attempts: 1", "Jetsched-Timeout: 1s", NULL};

    /* syntax error: unavailable with script:line, retried, then dead-lettered with that reason */
    CHECK(ts_log_contains(&ag, "Lua handler broken is unavailable: broken.lua:3:"), "no script:line in the log");
    char *reg = lt_registry("hostile");
    CHECK(reg && strstr(reg, "\"handlers_unavailable\":[\"broken\"]"), "registry: %s", reg ? reg : "(none)");
    free(reg);
    uint64_t dlq0 = ts_stream_msgs("JETSCHED_DLQ");
    const char *twice[] = {"Jetsched-Max-Attempts: 2", NULL};
    ts_publish("default", "normal", "broken", "syn-1", "", 0, twice);
    dead_with("syn-1", "handler_unavailable: broken.lua:3: %");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='syn-1' AND error LIKE "
                     "'handler_unavailable: broken.lua:3:%%'") == 2, "the unavailable task was not retried once");
    for (int i = 0; i < 50 && ts_stream_msgs("JETSCHED_DLQ") < dlq0 + 1; i++)
        ts_sleep_ms(100);
    CHECK(ts_stream_msgs("JETSCHED_DLQ") == dlq0 + 1, "not dead-lettered");

    /* infinite loops in pcall/xpcall/coroutines: stopped at the 1 s limit by the hook */
    const char *spins[] = {"pcall", "pcall_loop", "xpcall_handler", "coroutine_loop", "close"};
    int64_t t0 = ts_now_ms();
    for (size_t i = 0; i < sizeof spins / sizeof *spins; i++) {
        char id[32];
        snprintf(id, sizeof id, "spin-%s", spins[i]);
        ts_publish("default", "normal", "spin", id, spins[i], (int)strlen(spins[i]), once_1s);
    }
    for (size_t i = 0; i < sizeof spins / sizeof *spins; i++) {
        char id[32];
        snprintf(id, sizeof id, "spin-%s", spins[i]);
        dead_with(id, "%spin.lua:%: time limit exceeded (1000 ms)%");
    }
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'spin-%%' AND result IS NULL AND "
                     "finished_at - started_at < interval '4 s'") == 5,
          "a loop was not stopped soon after its limit");
    CHECK(ts_now_ms() - t0 < 25000, "the loops took %lld ms", (long long)(ts_now_ms() - t0));
    CHECK(lt_metric(&ag, "jetsched_agent_abandoned_threads") == 0, "a Lua thread was abandoned");
    CHECK(lt_metric(&ag, "jetsched_agent_lua_timeouts") == 5, "lua timeouts: %g",
          lt_metric(&ag, "jetsched_agent_lua_timeouts"));

    /* cancellation of a running loop: the hook stops it too */
    const char *long_run[] = {"Jetsched-Timeout: 60s", NULL};
    ts_publish("default", "normal", "spin", "spin-cancel", "plain", 5, long_run);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='spin-cancel' AND status='running'") == 1, "not running");
    lt_kv_put("jetsched_cancel", "spin-cancel", "{}");
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='spin-cancel' AND status='cancelled' AND "
                  "finished_at - started_at < interval '30 s'") == 1,
          "a running Lua loop was not cancelled: %s",
          ts_pg_text("SELECT status||' '||coalesce(error,'') FROM tasks WHERE id='spin-cancel'"));

    /* memory bombs next to a neighbour task on the same agent */
    const char *neighbour_hdrs[] = {"Jetsched-Max-Attempts: 1", "Jetsched-Timeout: 120s", NULL};
    ts_publish("default", "normal", "neighbour", "nb-1", "90", 2, neighbour_hdrs);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='nb-1' AND status='running'") == 1, "neighbour not running");
    const char *bombs[] = {"rep_pcall", "table_pcall", "concat", "json"};
    for (size_t i = 0; i < sizeof bombs / sizeof *bombs; i++) {
        char id[32];
        snprintf(id, sizeof id, "bomb-%s", bombs[i]);
        ts_publish("default", "normal", "membomb", id, bombs[i], (int)strlen(bombs[i]), once);
    }
    for (size_t i = 0; i < sizeof bombs / sizeof *bombs; i++) {
        char id[32];
        snprintf(id, sizeof id, "bomb-%s", bombs[i]);
        dead_with(id, "%membomb.lua%memory limit exceeded (16777216 bytes per Lua state)%");
    }
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id='nb-1' AND status='running'") == 1,
          "the neighbour did not run on while the bombs went off: %s",
          ts_pg_text("SELECT status||' '||coalesce(error,'')||' '||coalesce(result,'') FROM tasks WHERE id='nb-1'"));
    lt_kv_put("jetsched_checkpoints", "nb-1", "stop");
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='nb-1' AND status='succeeded' AND result='neighbour ok'") == 1,
          "the neighbour task did not succeed: %s",
          ts_pg_text("SELECT status||' '||coalesce(error,'') FROM tasks WHERE id='nb-1'"));
    CHECK(ts_pg_long("SELECT count(*) FROM tasks b, tasks n WHERE n.id='nb-1' AND b.id LIKE 'bomb-%%' AND "
                     "b.finished_at BETWEEN n.started_at AND n.finished_at") == 4,
          "the bombs did not go off while the neighbour ran");
    CHECK(lt_metric(&ag, "jetsched_agent_lua_memory_errors") == 4, "lua memory errors: %g",
          lt_metric(&ag, "jetsched_agent_lua_memory_errors"));
    ts_publish("default", "normal", "membomb", "bomb-ok", "ok", 2, once);
    CHECK(WAIT(1, "SELECT count(*) FROM tasks WHERE id='bomb-ok' AND status='succeeded' AND result='4194304'") == 1,
          "4 MiB within the 16 MiB cap failed");

    /* sandbox escapes */
    static const struct { const char *probe, *error; } esc[] = {
        {"io_open", "%sandbox.lua:5: io.open is not available in the Lua sandbox (no io library%"},
        {"os_execute", "%sandbox.lua:7: os.execute is not available in the Lua sandbox%"},
        {"require", "%sandbox.lua:12: require is not available in the Lua sandbox%"},
        {"debug_getinfo", "%sandbox.lua:14: debug.getinfo is not available in the Lua sandbox (no debug library)%"},
        {"string_dump", "%sandbox.lua:18: string.dump is not available in the Lua sandbox (no bytecode)%"},
        {"load_binary", "%load: binary chunks (bytecode) are not allowed in the Lua sandbox%"},
        {"package", "%package%not available in the Lua sandbox%"},
    };
    for (size_t i = 0; i < sizeof esc / sizeof *esc; i++) {
        char id[32];
        snprintf(id, sizeof id, "esc-%s", esc[i].probe);
        ts_publish("default", "normal", "sandbox", id, esc[i].probe, (int)strlen(esc[i].probe), once);
    }
    for (size_t i = 0; i < sizeof esc / sizeof *esc; i++) {
        char id[32], like[200];
        snprintf(id, sizeof id, "esc-%s", esc[i].probe);
        snprintf(like, sizeof like, "attempts_exhausted: %s", esc[i].error);
        dead_with(id, like);
    }
    CHECK(access("/tmp/jetsched-lua-escaped", F_OK) != 0, "os.execute escaped the sandbox");

    /* nested coroutine.close: each attempt stopped by the C stack guard, the agent alive after both */
    ts_publish("default", "normal", "cstack", "cstack-close", "close_nest 5000", 15, twice);
    dead_with("cstack-close", "attempts_exhausted: cstack.lua:%: coroutine.close: C stack overflow (coroutines "
                              "resumed or closed inside __close handlers nest too deeply)%");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='cstack-close' AND error LIKE "
                     "'%%C stack overflow%%'") == 2, "the C stack overflow was not retried once");

    char body[256];
    CHECK(ts_agent_http(&ag, "/readyz", body, sizeof body) == 200, "agent not ready after the hostile scripts");
    CHECK(ts_agent_stop(&ag, SIGTERM, 30000) == 0, "agentd did not exit 0");
    return ts_finish();
}
