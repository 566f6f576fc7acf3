/* Parking a task (per-key limits, issue 17) against agentd's own history
 * records, with a real schedulerd (the releaser) and agentd:
 *  1. a rate_limited attempt is parked by its own statement (keylimits.c:
 *     row `throttled`, attempts = N) while that attempt's `running` record
 *     (history.running_after = 0s) still waits in the history writer
 *     (history.flush_interval = 2s): when the record lands, the row stays
 *     `throttled` (it showed `running` before: the record arrived later but
 *     is the earlier state of the same attempt); after the hold the task
 *     runs once more and succeeds (attempt 1 rate_limited, 2 succeeded);
 *  2. a park that PostgreSQL refuses (a test trigger on limit_waiting) hands
 *     the delivery back (keylimits.c park(), which had no test): counted in
 *     tasks.handed_back before the Nak, so the
 *     redeliveries spend no attempt; once parks work again the task is parked,
 *     released and runs: one attempt row, attempt 1 succeeded, no `lost`. */
#include "agentd_lua_util.h"
#include "sched_api_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char rl_script[] = "return { handle = function(task, ctx)\n"
                                "  if ctx.checkpoint() == nil then\n"
                                "    ctx.checkpoint('seen')\n"
                                "    ctx.rate_limited(4, 'partner answered 429')\n"
                                "  end\n"
                                "  return 'ok'\n"
                                "end }\n";

static void rate_limited_vs_running_record(void)
{
    ts_agent ag;
    ts_agent_start(&ag, "park-rl",
                   "history = { running_after = \"0s\"; flush_interval = \"2s\"; };\n"
                   "queues = ( { name = \"pk\"; concurrency = 2; } );\n");
    const char *h[] = {"Jetsched-Rate-Key: partner", NULL};
    ts_publish("pk", "normal", "rl", "pk-rl", "x", 1, h);
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM task_attempts WHERE task_id = 'pk-rl' AND attempt = 1 AND "
                                 "status = 'rate_limited'") == 1,
          "attempt 1 of pk-rl is parked rate_limited");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'pk-rl' AND status = 'throttled' AND attempts = 1") == 1,
          "the park wrote the row throttled with its attempt");
    /* The running record of attempt 1 waits up to flush_interval (2 s) in
     * the writer; 3 s later it has landed. The hold is 4 s. */
    ts_sleep_ms(3000);
    char *st = ts_pg_text("SELECT status || '/' || attempts FROM tasks WHERE id = 'pk-rl'");
    CHECK(!strcmp(st, "throttled/1"), "after attempt 1's running record landed the row is still throttled/1 (%s)",
          st);
    free(st);
    CHECK(ts_wait_long(1, 15000, "SELECT count(*) FROM tasks WHERE id = 'pk-rl' AND status = 'succeeded'") == 1,
          "pk-rl runs again after the hold and succeeds");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'pk-rl'") == 2 &&
              ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'pk-rl' AND attempt = 2 AND status = "
                         "'succeeded'") == 1,
          "pk-rl: attempt 1 rate_limited, attempt 2 succeeded");
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "park-rl exits 0");
}

static void park_refused(void)
{
    sa_expect_ok(sa_req("limit.set", "{\"key\":\"pf\",\"concurrency\":1}"), "limit pf");
    ts_agent ag;
    ts_agent_start(&ag, "park-pf",
                   "queues = ( { name = \"pf\"; concurrency = 2; } );\n"
                   "exec = { commands = ( { name = \"nap\"; argv = [\"/bin/sh\", \"-c\", \"sleep 4\"]; },\n"
                   "                      { name = \"quick\"; argv = [\"/bin/sh\", \"-c\", \"echo ok\"]; } ); };\n");
    ts_sleep_ms(1200); /* the agent reads the limits every second */
    ts_pg_long("CREATE FUNCTION pf_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
               " RAISE EXCEPTION 'park refused by the test'; END $$");
    ts_pg_long("CREATE TRIGGER pf_refuse BEFORE INSERT ON limit_waiting FOR EACH ROW"
               " WHEN (NEW.task_id = 'pf-2') EXECUTE FUNCTION pf_refuse()");
    const char *h[] = {"Jetsched-Concurrency-Key: pf", NULL};
    ts_publish("pf", "normal", "nap", "pf-1", "x", 1, h);
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM limit_leases WHERE key = 'pf' AND until > clock_timestamp()") ==
              1,
          "pf-1 holds the key's one slot");
    /* pf-2 as schedulerd submits it: its row first (a task published
     * straight to NATS has no row to count hand-backs on: the limit of
     * docs/RELIABILITY.md) */
    CHECK(ts_pg_long("INSERT INTO tasks (id, queue, handler, status, dispatched_at) VALUES ('pf-2', 'pf', 'quick',"
                     " 'queued', now()) RETURNING 1") == 1,
          "pf-2's row");
    ts_publish("pf", "normal", "quick", "pf-2", "x", 1, h);
    /* Each refused park: handed back (Nak, redelivered after 1 s). */
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'pf-2' AND handed_back >= 2") == 1,
          "pf-2's refused parks were counted as handed back (%ld)",
          ts_pg_long("SELECT handed_back FROM tasks WHERE id = 'pf-2'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'pf-2'") == 0, "pf-2 did not run meanwhile");
    ts_pg_long("DROP TRIGGER pf_refuse ON limit_waiting");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'pf-2' AND status = 'succeeded'") == 1,
          "pf-2 is parked once parks work again, released when pf-1 ends, and succeeds");
    char *rows = ts_pg_text("SELECT string_agg(attempt || ':' || status, ',' ORDER BY attempt) FROM task_attempts"
                            " WHERE task_id = 'pf-2'");
    CHECK(!strcmp(rows, "1:succeeded"),
          "pf-2: one attempt, attempt 1 succeeded; the handed-back deliveries spent none (%s)", rows);
    free(rows);
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "park-pf exits 0");
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1);
    ss_env();
    ts_setup("pk,pf");
    const char *dir = lt_lua_dir();
    lt_write(dir, "rl", rl_script);
    ts_agent s;
    ss_start(&s, "park-s", NULL);
    rate_limited_vs_running_record();
    park_refused();
    CHECK(ts_agent_stop(&s, SIGTERM, 20000) == 0, "schedulerd exits 0");
    return ts_finish();
}
