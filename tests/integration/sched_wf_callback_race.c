/* A workflow's callback id against a concurrent task.submit of that id
 * (docs/WORKFLOWS.md, sql/0020), forced with a real schedulerd, agentd,
 * nats-server and PostgreSQL:
 *
 * The test holds, in its own open transaction, the row of the workflow's
 * node race-a, so that workflow.submit of workflow "race" (node a,
 * on_success) stops at its node insert, after it checked (or reserved) the
 * callback id race-on_success. Then a task.submit of race-on_success reads
 * `workflows` (race not committed: the id looks free). The test rolls back,
 * workflow.submit commits. Before the fix task.submit stored its own task
 * under the callback's id (created: true) and the workflow's on_success
 * never ran (its insert at the end found the id taken). Now workflow.submit
 * reserves the callback row in its transaction: task.submit waits for it and
 * finds the id taken (created: false, status waiting), and the callback runs
 * once when the workflow ends. */
#include "sched_api_support.h"
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct call {
    const char *verb, *body;
    json_t *reply;
} call;

static void *call_main(void *arg)
{
    call *c = arg;
    c->reply = sa_req(c->verb, c->body);
    return NULL;
}

static long lock_waiters(void)
{
    return ts_pg_long("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                      " AND query LIKE '%%INSERT INTO tasks%%'");
}

int main(void)
{
    ss_env();
    ts_setup("default");
    char *dir = th_tmpdir();
    char logfile[600];
    snprintf(logfile, sizeof logfile, "%s/cb-race.log", dir);
    free(dir);
    ts_agent ag, s;
    ss_agent_with_log(&ag, "agent-cb", logfile);
    ss_start(&s, "cb-s", NULL);
    free(ss_wait_holder(NULL, 15000));

    PGconn *hold = PQconnectdb(th_require_env("JETSCHED_TEST_PG_DSN"));
    CHECK(PQstatus(hold) == CONNECTION_OK, "second PostgreSQL connection");
    PQclear(PQexec(hold, "BEGIN"));
    PGresult *r = PQexec(hold, "INSERT INTO tasks (id, queue, status) VALUES ('race-a', 'default', 'queued')");
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "the node's row held: %s", PQerrorMessage(hold));
    PQclear(r);

    call wf = {"workflow.submit", "{\"id\":\"race\",\"tasks\":[{\"id\":\"a\",\"handler\":\"log\"}],"
                                  "\"on_success\":{\"handler\":\"log\"}}", NULL};
    call task = {"task.submit", "{\"id\":\"race-on_success\",\"handler\":\"log\",\"run_at\":\"2099-01-01T00:00:00Z\"}",
                 NULL};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, call_main, &wf);
    CHECK(ts_wait_long(1, 5000, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                " AND query LIKE '%%INSERT INTO tasks%%'") == 1,
          "workflow.submit waits at its node insert (%ld waiting)", lock_waiters());
    pthread_create(&t2, NULL, call_main, &task);
    /* task.submit either finishes (it took the id) or waits for the reserved row */
    for (int64_t until = ts_now_ms() + 1500; ts_now_ms() < until && lock_waiters() < 2; ts_sleep_ms(20))
        ;
    ts_sleep_ms(200);
    PQclear(PQexec(hold, "ROLLBACK"));
    PQfinish(hold);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);

    CHECK(json_is_true(json_object_get(wf.reply, "created")), "workflow race created: %s", sa_message(wf.reply));
    char *tr = json_dumps(task.reply, JSON_COMPACT);
    CHECK(!json_is_true(json_object_get(task.reply, "created")),
          "task.submit of the callback's id did not take it (reply %s)", tr);
    free(tr);
    json_decref(wf.reply);
    json_decref(task.reply);

    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM workflows WHERE id = 'race' AND status = 'succeeded'") == 1,
          "workflow race succeeded");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'race-on_success' AND status = 'succeeded'"
                                 " AND workflow_id = 'race' AND scheduled_for IS NULL") == 1,
          "its on_success callback ran (row: %s)",
          ts_pg_text("SELECT status || ' workflow=' || coalesce(workflow_id, '-') || ' run_at=' ||"
                     " coalesce(scheduled_for::text, '-') FROM tasks WHERE id = 'race-on_success'"));
    ts_sleep_ms(300);
    CHECK(ss_count_lines(logfile, "race-on_success") == 1 && ss_count_lines(logfile, "race-a") == 1,
          "the node and the callback ran once each (%d, %d)", ss_count_lines(logfile, "race-a"),
          ss_count_lines(logfile, "race-on_success"));
    ts_agent_stop(&ag, SIGTERM, 10000);
    ts_agent_stop(&s, SIGTERM, 10000);
    return ts_finish();
}
