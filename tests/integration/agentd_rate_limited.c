/* The rate_limited outcome (issue 17, plugin ABI 1.1 / Lua ctx.rate_limited,
 * docs/LUA.md, docs/PLUGINS.md) through a real schedulerd and agentd: a
 * handler that answers rate_limited(2 s) holds its Rate-Key back (a task of
 * the same key published right after starts only when the hold ends), its
 * task is parked and runs again after the hold; the rate_limited attempt is
 * recorded and does not count against max attempts (a task with
 * Jetsched-Max-Attempts: 1 still succeeds on its second run); a task
 * without a key is retried after the delay like a retry. And slot leases
 * across SIGSTOP: an agent stopped past its lease (limits.lease = 3s) holds
 * the slot only until the lease ends in PostgreSQL, and when it resumes it
 * cancels the handler that ran on the lost lease. */
#include "agentd_lua_util.h"
#include "sched_api_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOLD_S 2

static const char rl_script[] =
    "return { handle = function(task, ctx)\n"
    "  if ctx.checkpoint() == nil then\n"
    "    ctx.checkpoint('seen')\n"
    "    ctx.rate_limited(" "2" ", 'partner answered 429')\n"
    "  end\n"
    "  return 'ok'\n"
    "end }\n";

static const char plain_script[] = "return { handle = function(task, ctx) return 'plain' end }\n";

static double epoch_of(const char *sql_where)
{
    char *t = ts_pg_text("SELECT extract(epoch FROM %s)", sql_where);
    double v = atof(t);
    free(t);
    return v;
}

static void sigstop_past_lease(void)
{
    sa_expect_ok(sa_req("limit.set", "{\"key\":\"one\",\"concurrency\":1}"), "limit one");
    ts_agent ag;
    ts_agent_start(&ag, "stop-agent",
                   "limits = { lease = \"3s\"; };\nhistory = { running_after = \"0s\"; };\n"
                   "queues = ( { name = \"st\"; concurrency = 2; } );\n"
                   "exec = { commands = ( { name = \"longnap\"; argv = [\"/bin/sh\", \"-c\", \"sleep 10\"]; } ); };\n");
    ts_sleep_ms(1200); /* the agent reads the limits every second */
    const char *h[] = {"Jetsched-Concurrency-Key: one", NULL};
    ts_publish("st", "normal", "longnap", "st-1", "x", 1, h);
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM task_attempts WHERE task_id = 'st-1' AND status = 'running'") == 1,
          "st-1 runs");
    CHECK(ts_pg_long("SELECT count(*) FROM limit_leases WHERE key = 'one' AND until > clock_timestamp()") == 1,
          "its slot is leased");
    kill(ag.pid, SIGSTOP);
    ts_sleep_ms(4500);
    CHECK(ts_pg_long("SELECT count(*) FROM limit_leases WHERE key = 'one' AND until > clock_timestamp()") == 0,
          "a stopped agent's slot frees when its lease ends (another agent may take it)");
    kill(ag.pid, SIGCONT);
    CHECK(lt_wait_log(&ag, "the handler is cancelled", 5000), "on resume the agent cancels the handler of the lost lease");
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM task_attempts WHERE task_id = 'st-1' AND attempt = 1 AND status "
                                 "<> 'running' AND finished_at < started_at + interval '8 seconds'") == 1,
          "st-1's first attempt ended early (cancelled, not after its 10 s)");
    CHECK(lt_metric(&ag, "jetsched_agent_limit_leases_lost_total") == 1, "leases lost: %g",
          lt_metric(&ag, "jetsched_agent_limit_leases_lost_total"));
    ts_agent_stop(&ag, SIGKILL, 1000);
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1);
    ss_env();
    ts_setup("rl,st");
    const char *dir = lt_lua_dir();
    lt_write(dir, "rl", rl_script);
    lt_write(dir, "plain", plain_script);
    ts_agent s, ag;
    ss_start(&s, "rl-s", NULL);
    ts_agent_start(&ag, "rl-agent", "queues = ( { name = \"rl\"; concurrency = 4; } );\n");

    /* A: rate limited once, with a budget of one attempt */
    const char *ha[] = {"Jetsched-Rate-Key: partner", "Jetsched-Max-Attempts: 1", NULL};
    ts_publish("rl", "normal", "rl", "rl-a", "x", 1, ha);
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM task_attempts WHERE task_id = 'rl-a' AND status = "
                                 "'rate_limited'") == 1,
          "the first attempt of rl-a is recorded rate_limited");
    double held_at = epoch_of("(SELECT finished_at FROM task_attempts WHERE task_id = 'rl-a' AND attempt = 1)");
    /* B: same key, published while the key is held */
    const char *hb[] = {"Jetsched-Rate-Key: partner", NULL};
    ts_publish("rl", "normal", "plain", "rl-b", "x", 1, hb);
    /* C: no key: rate_limited is a retry after the delay */
    ts_publish("rl", "normal", "rl", "rl-c", "x", 1, NULL);

    long done = ts_wait_long(3, 20000, "SELECT count(*) FROM tasks WHERE id IN ('rl-a', 'rl-b', 'rl-c') AND status = "
                                       "'succeeded'");
    CHECK(done == 3, "all three succeed (%ld)", done);
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'rl-a'") == 2 &&
              ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'rl-a' AND attempt = 2 AND status = "
                         "'succeeded'") == 1,
          "rl-a: attempt 1 rate_limited, attempt 2 succeeded, with Jetsched-Max-Attempts: 1");
    char *err = ts_pg_text("SELECT error FROM task_attempts WHERE task_id = 'rl-a' AND attempt = 1");
    CHECK(strstr(err, "rate_limited") && strstr(err, "partner answered 429"), "rate_limited attempt error: %s", err);
    free(err);
    double a2 = epoch_of("(SELECT started_at FROM task_attempts WHERE task_id = 'rl-a' AND attempt = 2)");
    double b1 = epoch_of("(SELECT started_at FROM task_attempts WHERE task_id = 'rl-b' AND attempt = 1)");
    printf("rate_limited: key held at %.3f; rl-a ran again %.3f s later, rl-b started %.3f s later\n", held_at,
           a2 - held_at, b1 - held_at);
    CHECK(a2 - held_at >= HOLD_S - 0.1, "rl-a waited for the hold (%.3f s)", a2 - held_at);
    CHECK(b1 - held_at >= HOLD_S - 0.1, "rl-b of the same key waited for the hold (%.3f s)", b1 - held_at);
    CHECK(a2 - held_at < HOLD_S + 3 && b1 - held_at < HOLD_S + 3, "both ran promptly after the hold");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'rl-b'") == 1, "rl-b: one attempt");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'rl-c' AND attempt = 1 AND status = "
                     "'retrying'") == 1 &&
              ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'rl-c'") == 2,
          "rl-c (no key): a retry that counts");
    double c_gap = epoch_of("(SELECT max(started_at) - min(started_at) FROM task_attempts WHERE task_id = 'rl-c')");
    CHECK(c_gap >= HOLD_S - 0.1, "rl-c retried after the retry-after (%.3f s)", c_gap);
    CHECK(ts_pg_long("SELECT count(*) FROM limit_holds WHERE key = 'partner'") == 1, "the hold is in limit_holds");
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agent exits 0");
    sigstop_past_lease();
    CHECK(ts_agent_stop(&s, SIGTERM, 20000) == 0, "schedulerd exits 0");
    return ts_finish();
}
