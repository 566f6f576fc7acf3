/* tests/integration/pg_history_rules.c: how the history writer merges state
 * changes into existing rows. A task row only moves forward in (attempt,
 * state rank) and a terminal row never changes; a 'running' attempt row is
 * completed once; columns the record does not know (payload, max_attempts,
 * schedule_id, created_at of a row the scheduler created) are kept; records
 * of one task in one batch resolve to the furthest state; tasks without a
 * row take the plain-INSERT path, and a batch it cannot write goes again as
 * an upsert. */
#include "harness.h"
#include "pg_util.h"

#include <jetsched/history.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <stdatomic.h>
#include <string.h>

static _Atomic int outstanding;

static void done(void *ctx, jet_status st, const char *reason)
{
    (void)ctx;
    CHECK(st == JET_OK, "record failed: %s", reason ? reason : "");
    outstanding--;
}

static void submit(jet_history *h, const char *id, const char *status, int attempt)
{
    jet_history_record r = {.task_id = id, .queue = "default", .handler = "echo", .status = status,
                            .attempt = attempt, .agent = "agent-r", .started_ms = jet_now_ms()};
    if (strcmp(status, "retrying") == 0 || strcmp(status, "dead") == 0)
        r.error = "failed";
    jet_err err;
    outstanding++;
    CHECK(jet_history_submit(h, &r, done, NULL, 5000, &err) == JET_OK, "submit: %s", err.msg);
}

/* Waits until every submitted record is committed (so the next one goes in a new batch). */
static void settle(void)
{
    int64_t deadline = jet_mono_ms() + 20000;
    while (outstanding > 0) {
        CHECK(jet_mono_ms() < deadline, "records not committed");
        jet_sleep_ms(5);
    }
}

static void expect(PGconn *c, const char *sql, const char *want)
{
    PGresult *r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql, PQresultErrorMessage(r));
    CHECK(strcmp(PQgetvalue(r, 0, 0), want) == 0, "%s: got \"%s\", want \"%s\"", sql, PQgetvalue(r, 0, 0), want);
    PQclear(r);
}

int main(void)
{
    jet_log_init("pg_history_rules", JET_LOG_WARN, false);
    jet_config *cfg = pgt_config();
    PGconn *c = pgt_connect();
    pgt_migrate(c);
    pgt_exec(c, "INSERT INTO tasks (id, queue, handler, priority, status, max_attempts, payload, headers,"
                " created_at, scheduled_for, dispatched_at, schedule_id)"
                " VALUES ('r-2', 'default', 'echo', 'high', 'queued', 7, '\\x0102', '{\"a\":\"b\"}',"
                " '2020-01-01T00:00:00Z', '2020-01-01T00:00:05Z', '2020-01-01T00:00:06Z', 'nightly')");
    jet_history_options opt;
    jet_history_options_default(&opt);
    opt.flush_interval_ms = 5;
    jet_history *h;
    jet_err err;
    CHECK(jet_history_open(cfg, &opt, &h, &err) == JET_OK, "open: %s", err.msg);

    /* r-1: running -> succeeded completes the attempt row; stale records change nothing */
    submit(h, "r-1", "running", 1);
    settle();
    expect(c, "SELECT status || ' ' || (finished_at IS NULL) FROM task_attempts WHERE task_id = 'r-1'", "running true");
    submit(h, "r-1", "succeeded", 1);
    settle();
    submit(h, "r-1", "retrying", 1);
    settle();
    submit(h, "r-1", "running", 1);
    settle();
    expect(c, "SELECT status || ' ' || attempts FROM tasks WHERE id = 'r-1'", "succeeded 1");
    expect(c, "SELECT status || ' ' || (finished_at IS NULL) FROM task_attempts WHERE task_id = 'r-1'",
           "succeeded false");

    /* r-2: a row created by the scheduler keeps what the record does not know */
    submit(h, "r-2", "succeeded", 1);
    settle();
    expect(c, "SELECT concat_ws(' ', status, attempts, max_attempts, priority, encode(payload, 'hex'), headers->>'a',"
              " schedule_id, extract(year FROM created_at), dispatched_at IS NOT NULL) FROM tasks WHERE id = 'r-2'",
           "succeeded 1 7 high 0102 b nightly 2020 t");

    /* r-3: a cancellation without attempt information after two attempts */
    submit(h, "r-3", "retrying", 1);
    settle();
    submit(h, "r-3", "retrying", 2);
    settle();
    submit(h, "r-3", "cancelled", 0);
    settle();
    expect(c, "SELECT status || ' ' || attempts FROM tasks WHERE id = 'r-3'", "cancelled 2");
    expect(c, "SELECT count(*) FROM task_attempts WHERE task_id = 'r-3'", "2");

    /* r-4: out of order within one batch: the furthest state wins */
    submit(h, "r-4", "succeeded", 2);
    submit(h, "r-4", "running", 2);
    submit(h, "r-4", "retrying", 1);
    submit(h, "r-4", "running", 1);
    settle();
    expect(c, "SELECT status || ' ' || attempts FROM tasks WHERE id = 'r-4'", "succeeded 2");
    expect(c, "SELECT string_agg(attempt || ':' || status, ',' ORDER BY attempt) FROM task_attempts"
              " WHERE task_id = 'r-4'", "1:retrying,2:succeeded");

    /* r-5: terminal is final, even against a later attempt number */
    submit(h, "r-5", "dead", 3);
    settle();
    submit(h, "r-5", "retrying", 4);
    settle();
    expect(c, "SELECT status || ' ' || attempts || ' ' || error FROM tasks WHERE id = 'r-5'", "dead 3 failed");

    /* r-6: a task dead-lettered for a missing handler */
    jet_history_record r = {.task_id = "r-6", .queue = "default", .status = "dead", .attempt = 1,
                            .error = "missing_handler", .payload = "\0\1", .payload_len = 2};
    outstanding++;
    CHECK(jet_history_submit(h, &r, done, NULL, 5000, &err) == JET_OK, "submit: %s", err.msg);
    settle();
    expect(c, "SELECT concat_ws(' ', status, handler IS NULL, encode(payload, 'hex'), finished_at IS NOT NULL)"
              " FROM tasks WHERE id = 'r-6'", "dead t 0001 t");

    /* r-7..r-11: tasks without a row are plain INSERTs, the others upserts, in one batch (r-8 has a row);
     * an attempt row without its task row (r-7: nothing writes one, but should one exist) makes the plain
     * INSERT fail and the batch is written again as an upsert, once; a batch of fresh tasks is written once */
    pgt_exec(c, "INSERT INTO tasks (id, queue, status) VALUES ('r-8', 'default', 'queued')");
    pgt_exec(c, "INSERT INTO task_attempts (task_id, attempt, status) VALUES ('r-7', 1, 'running')");
    jet_history_stats st0, st1;
    jet_history_stats_get(h, &st0);
    submit(h, "r-7", "succeeded", 1);
    submit(h, "r-8", "succeeded", 1);
    submit(h, "r-9", "dead", 1);
    settle();
    jet_history_stats_get(h, &st1);
    CHECK(st1.upserts_again == st0.upserts_again + 1, "upserts again: %llu -> %llu",
          (unsigned long long)st0.upserts_again, (unsigned long long)st1.upserts_again);
    expect(c, "SELECT string_agg(id || ':' || status || ':' || attempts, ',' ORDER BY id) FROM tasks"
              " WHERE id IN ('r-7', 'r-8', 'r-9')", "r-7:succeeded:1,r-8:succeeded:1,r-9:dead:1");
    expect(c, "SELECT string_agg(task_id || ':' || status || ':' || (finished_at IS NOT NULL), ',' ORDER BY task_id)"
              " FROM task_attempts WHERE task_id IN ('r-7', 'r-8', 'r-9')",
           "r-7:succeeded:true,r-8:succeeded:true,r-9:dead:true");
    submit(h, "r-10", "succeeded", 1);
    submit(h, "r-11", "running", 1);
    settle();
    jet_history_stats_get(h, &st0);
    CHECK(st0.upserts_again == st1.upserts_again, "a batch of fresh tasks was written twice");
    expect(c, "SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM tasks WHERE id IN ('r-10', 'r-11')",
           "r-10:succeeded,r-11:running");

    CHECK(jet_history_close(h, 10000) == JET_OK, "close");
    PQfinish(c);
    jet_config_free(cfg);
    printf("pg_history_rules: ok\n");
    return 0;
}
