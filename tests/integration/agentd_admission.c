/* Issue 20 item 2, DESIGN §12 "One admission step per pull batch" and
 * "Internal headers", against real nats-server, PostgreSQL, schedulerd and
 * agentd: a task id whose PostgreSQL row is terminal never runs again,
 * whichever way it comes back (the same Nats-Msg-Id after the duplicate
 * window, a direct republish of an API-submitted task, a forged
 * Jetsched-Task-Id); the refusal is acked, counted
 * (jetsched_agent_admission_refused_total) and recorded as a `duplicate`
 * attempt, the task's row and result stay. ctx.submit refuses internal
 * headers, and the id it returns is the one that runs. A fresh task still
 * runs once. A pull batch costs one lookup query, not one per delivery.
 * Side effects are counted in the exec handler's log file. */
#include "agentd_lua_util.h"
#include "harness.h"
#include "sched_api_support.h"
#include "sched_support.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ts_agent ag;

static double refused(const char *reason)
{
    char name[128];
    snprintf(name, sizeof name, "jetsched_agent_admission_refused_total{reason=\"%s\"}", reason);
    double v = ss_metric(&ag, name);
    return v < 0 ? 0 : v;
}

static void wait_refused(const char *reason, double want)
{
    for (int i = 0; i < 200 && refused(reason) < want; i++)
        ts_sleep_ms(100);
    CHECK(refused(reason) == want, "refused{reason=%s} = %g, want %g", reason, refused(reason), want);
}

/* The task ran exactly once: one side effect, one attempt that ran, its row
 * still succeeded with attempt 1's result. */
static void ran_once(const char *file, const char *id)
{
    CHECK(ss_count_lines(file, id) == 1, "%s: %d side effects, want 1", id, ss_count_lines(file, id));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = '%s' AND status <> 'duplicate'", id) == 1,
          "%s: attempts that ran: %ld, want 1", id,
          ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = '%s' AND status <> 'duplicate'", id));
    char *st = ts_pg_text("SELECT status FROM tasks WHERE id = '%s'", id);
    CHECK(!strcmp(st, "succeeded"), "%s: row is %s", id, st);
    free(st);
}

/* Task id (one attempt allowed) dies under handler; then a message under
 * another id (<id>-2) forging Jetsched-Task-Id: id is refused, the
 * refusals of dead rows reaching want. */
static void dead_then_forged(const char *handler, const char *id, double want)
{
    const char *one[] = {"Jetsched-Max-Attempts: 1", NULL};
    ts_publish("default", "normal", handler, id, "", 0, one);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = '%s' AND status = 'dead'", id) == 1,
          "%s not dead", id);
    char forged[200], forger[160];
    snprintf(forged, sizeof forged, "Jetsched-Task-Id: %s", id);
    snprintf(forger, sizeof forger, "%s-2", id);
    const char *as_dead[] = {forged, NULL};
    ts_publish("default", "normal", "log", forger, "", 0, as_dead);
    wait_refused("dead", want);
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_DUPLICATE_WINDOW", "1s", 1); /* republishing the same Nats-Msg-Id */
    ss_env();
    const char *dir = lt_lua_dir();
    lt_write(dir, "spawner",
             "return { handle = function(task, ctx)\n"
             "  local ok, err = pcall(ctx.submit, { handler = 'log', headers = { ['Jetsched-Task-Id'] = 'adm-1' } })\n"
             "  local ok2 = pcall(ctx.submit, { handler = 'log', headers = { ['jetsched-redispatch'] = '1' } })\n"
             "  local id = ctx.submit { handler = 'log', headers = { ['X-Ok'] = 'yes' } }\n"
             "  return (ok and 'accepted' or 'refused') .. ' ' .. (ok2 and 'accepted' or 'refused') .. ' ' .. id\n"
             "end }\n");
    lt_write(dir, "firstfails",
             "return { handle = function(task, ctx)\n"
             "  if task.attempt == 1 then error('attempt 1 fails') end\n"
             "  return 'ok ' .. task.attempt\n"
             "end }\n");
    ts_setup("default");
    char file[600];
    char *tmp = th_tmpdir();
    snprintf(file, sizeof file, "%s/side-effects", tmp);
    free(tmp);
    ss_agent_with_log(&ag, "admission", file);
    ts_agent s1;
    ss_start(&s1, "adm-1", NULL);

    /* 1. a direct task succeeds; the same Nats-Msg-Id after the duplicate window is refused */
    ts_publish("default", "normal", "log", "adm-1", "", 0, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'adm-1' AND status = 'succeeded'") == 1,
          "adm-1 did not succeed");
    ts_sleep_ms(1500); /* past the 1 s duplicate window */
    ts_publish("default", "normal", "log", "adm-1", "", 0, NULL);
    wait_refused("succeeded", 1);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM task_attempts WHERE task_id = 'adm-1' AND status = 'duplicate'") ==
              1, "the refusal of adm-1 is not recorded as a duplicate attempt");
    ran_once(file, "adm-1");

    /* 2. a forged Jetsched-Task-Id of a succeeded task, under a new Nats-Msg-Id */
    const char *forged[] = {"Jetsched-Task-Id: adm-1", NULL};
    ts_publish("default", "normal", "log", "adm-forger", "", 0, forged);
    wait_refused("succeeded", 2);
    ran_once(file, "adm-1");
    CHECK(ss_count_lines(file, "adm-forger") == 0, "the forged message ran under its own id");

    /* 3. an API-submitted task republished directly after the window */
    json_t *r = sa_req("task.submit", "{\"handler\":\"log\",\"id\":\"adm-api\"}");
    sa_expect_ok(r, "task.submit adm-api");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'adm-api' AND status = 'succeeded'") == 1,
          "adm-api did not succeed");
    ts_sleep_ms(1500);
    ts_publish("default", "normal", "log", "adm-api", "", 0, NULL);
    wait_refused("succeeded", 3);
    ran_once(file, "adm-api");

    /* 4. a dead task's id is refused too (not run, row stays dead) */
    dead_then_forged("nosuch", "adm-dead", 1);
    CHECK(ss_count_lines(file, "adm-dead") == 0, "a dead id ran");

    /* 5. ctx.submit: internal headers refused; the id returned is the one that runs */
    ts_publish("default", "normal", "spawner", "adm-spawner", "", 0, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'adm-spawner' AND status = 'succeeded'") == 1,
          "adm-spawner did not succeed");
    char *res = ts_pg_text("SELECT result FROM tasks WHERE id = 'adm-spawner'");
    char child[64] = "";
    CHECK(sscanf(res, "refused refused %63s", child) == 1, "ctx.submit with internal headers: %s", res);
    free(res);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = '%s' AND status = 'succeeded'", child) == 1,
          "the id ctx.submit returned (%s) is not in PostgreSQL", child);
    CHECK(ss_count_lines(file, child) == 1, "child %s: %d side effects", child, ss_count_lines(file, child));
    ran_once(file, "adm-1");

    /* 6. fresh tasks, several at once, still run once each */
    for (int i = 0; i < 12; i++) {
        char id[32];
        snprintf(id, sizeof id, "adm-fresh-%d", i);
        ts_publish("default", "normal", "log", id, "", 0, NULL);
    }
    CHECK(ts_wait_long(12, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'adm-fresh-%%' AND status = 'succeeded'") ==
              12, "fresh tasks did not all succeed");
    for (int i = 0; i < 12; i++) {
        char id[32];
        snprintf(id, sizeof id, "adm-fresh-%d", i);
        ran_once(file, id);
    }
    double q = ss_metric(&ag, "jetsched_agent_admission_queries_total"),
           n = ss_metric(&ag, "jetsched_agent_admission_tasks_total");
    printf("admission: %g deliveries looked up in %g queries\n", n, q);
    CHECK(q >= 1 && n >= 18 && q <= n, "admission metrics: %g queries for %g deliveries", q, n);
    wait_refused("succeeded", 3); /* nothing else refused */

    /* 7. a dead-letter replay after a refused duplicate: the replay puts
     * the dead row back to 'queued' keeping attempts = 1, while
     * task_attempts holds the refusal at attempt 2; the run after the replay
     * is attempt 3, so its record is kept (as attempt 2 it would meet the
     * duplicate row and be dropped). The admission lookup reads
     * task_attempts for a queued row with attempts > 0 (agentd/recorder.c). */
    dead_then_forged("firstfails", "adm-replay", 2);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM task_attempts WHERE task_id = 'adm-replay' AND attempt = 2 AND "
                                 "status = 'duplicate'") == 1, "adm-replay: the refusal is not attempt 2");
    json_t *dl = sa_req("dlq.list", "{\"limit\":1000}");
    json_t *msgs = json_object_get(dl, "messages");
    long long seq = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++)
        if (!strcmp(sa_str(json_array_get(msgs, i), "task_id"), "adm-replay"))
            seq = sa_int(json_array_get(msgs, i), "seq");
    json_decref(dl);
    CHECK(seq > 0, "adm-replay is not in the DLQ");
    r = sa_reqf("dlq.replay", "{\"seq\":%lld}", seq);
    CHECK(sa_int(r, "replayed") == 1, "dlq.replay of adm-replay: %s", sa_message(r));
    json_decref(r);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'adm-replay' AND status = 'succeeded' AND "
                                 "attempts = 3") == 1, "adm-replay did not succeed at attempt 3 after the replay");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'adm-replay' AND attempt = 3 AND status = "
                     "'succeeded'") == 1, "adm-replay: the run after the replay has no attempt row (%ld rows)",
          ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'adm-replay'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'adm-replay' AND attempt = 2 AND status = "
                     "'duplicate'") == 1, "adm-replay: the duplicate attempt row changed");

    /* 8. the lookup's session is cut: agentd reconnects and prepares its
     * statement again, and the refusal still happens */
    CHECK(ts_pg_long("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
                     "'agentd' AND query LIKE '%%WITH ORDINALITY AS u(id, i)%%'") == 1,
          "the admission lookup's session not found");
    ts_publish("default", "normal", "log", "adm-1", "", 0, NULL);
    wait_refused("succeeded", 4);
    ran_once(file, "adm-1");

    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agentd did not exit 0");
    CHECK(!ts_log_contains(&ag, "AddressSanitizer") && !ts_log_contains(&ag, "runtime error"),
          "sanitizer report in %s", ag.log);

    /* 9. a pull batch is looked up in one query by the thread that receives
     * it (admission_lookup), not one per delivery: 40 tasks queued while no
     * agent runs, then an agent with room for all of them gets them in a
     * few pull batches (a first round shared by the lanes, then the normal
     * lane alone; a batch whose first message is handled before the rest
     * has arrived splits in two) */
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof id, "adm-batch-%d", i);
        ts_publish("default", "normal", "noop", id, "", 0, NULL);
    }
    ts_agent ab;
    ts_agent_start(&ab, "admission-batch", "queues = ( { name = \"default\"; concurrency = 64; } );\n");
    CHECK(ts_wait_long(40, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'adm-batch-%%' AND status = 'succeeded'") ==
              40, "the batch did not all succeed");
    q = ss_metric(&ab, "jetsched_agent_admission_queries_total");
    n = ss_metric(&ab, "jetsched_agent_admission_tasks_total");
    double pulls = ss_metric(&ab, "jetsched_agent_pull_requests_total{queue=\"default\",priority=\"normal\"}");
    printf("admission: a batch of 40 deliveries looked up in %g queries (%g pull requests on the lane)\n", q, pulls);
    CHECK(n == 40 && q >= 1 && q <= 6, "admission of 40 queued tasks: %g queries for %g deliveries, want at most 6", q,
          n);
    CHECK(ts_agent_stop(&ab, SIGTERM, 20000) == 0, "agentd (batch) did not exit 0");
    CHECK(!ts_log_contains(&ab, "AddressSanitizer") && !ts_log_contains(&ab, "runtime error"),
          "sanitizer report in %s", ab.log);
    CHECK(ts_agent_stop(&s1, SIGTERM, 20000) == 0, "schedulerd did not exit 0");
    return ts_finish();
}
