/* tests/integration/pg_retention.c: retention deletes only terminal tasks
 * finished before the cut-off, with their attempts, in batches of the given
 * size; non-terminal and recent rows stay; a stop request is honoured. */
#include "harness.h"
#include "pg_util.h"

#include <jetsched/log.h>
#include <jetsched/retention.h>
#include <jetsched/timeutil.h>

#define DAY_MS INT64_C(86400000)

static void seed(PGconn *c)
{
    /* 3,500 succeeded and 200 dead tasks finished 40 days ago, two attempts each */
    pgt_exec(c, "INSERT INTO tasks (id, queue, handler, status, attempts, finished_at, updated_at)"
                " SELECT 'old-' || i, 'default', 'echo', CASE WHEN i <= 3500 THEN 'succeeded' ELSE 'dead' END, 2,"
                "        now() - interval '40 days', now() - interval '40 days'"
                " FROM generate_series(1, 3700) i");
    pgt_exec(c, "INSERT INTO task_attempts (task_id, attempt, status, finished_at)"
                " SELECT id, a, CASE WHEN a = 1 THEN 'retrying' ELSE status END, finished_at"
                " FROM tasks, generate_series(1, 2) a WHERE id LIKE 'old-%'");
    /* 500 finished yesterday */
    pgt_exec(c, "INSERT INTO tasks (id, queue, handler, status, attempts, finished_at)"
                " SELECT 'new-' || i, 'default', 'echo', 'succeeded', 1, now() - interval '1 day'"
                " FROM generate_series(1, 500) i");
    pgt_exec(c, "INSERT INTO task_attempts (task_id, attempt, status) SELECT id, 1, 'succeeded' FROM tasks"
                " WHERE id LIKE 'new-%'");
    /* 300 old but not finished: scheduled far ahead, queued, running, retrying */
    pgt_exec(c, "INSERT INTO tasks (id, queue, handler, status, created_at, updated_at)"
                " SELECT 'live-' || i, 'default', 'echo', (ARRAY['scheduled','queued','running','retrying'])[i % 4 + 1],"
                "        now() - interval '90 days', now() - interval '90 days'"
                " FROM generate_series(1, 300) i");
    /* old terminal rows with no finished_at fall back to updated_at */
    pgt_exec(c, "INSERT INTO tasks (id, queue, handler, status, updated_at)"
                " SELECT 'nofin-' || i, 'default', 'echo', 'cancelled', now() - interval '40 days'"
                " FROM generate_series(1, 50) i");
}

int main(void)
{
    jet_log_init("pg_retention", JET_LOG_WARN, false);
    PGconn *c = pgt_connect();
    pgt_migrate(c);
    seed(c);
    jet_retention_result res;
    jet_err err;
    volatile bool stop = true;
    CHECK(jet_retention_prune(c, 30 * DAY_MS, 1000, &stop, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    CHECK(res.tasks == 0 && res.batches == 0 && !res.complete, "a stopped prune deleted %lld", (long long)res.tasks);

    stop = false;
    CHECK(jet_retention_prune(c, 30 * DAY_MS, 1000, &stop, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    printf("pruned %lld tasks in %lld batches\n", (long long)res.tasks, (long long)res.batches);
    CHECK(res.tasks == 3750 && res.batches == 4 && res.complete, "pruned %lld in %lld batches",
          (long long)res.tasks, (long long)res.batches);
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'old-%' OR id LIKE 'nofin-%'") == 0, "old rows left");
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts WHERE task_id LIKE 'old-%'") == 0, "old attempts left");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'new-%'") == 500, "recent rows pruned");
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts WHERE task_id LIKE 'new-%'") == 500, "recent attempts pruned");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'live-%'") == 300, "unfinished rows pruned");

    CHECK(jet_retention_prune(c, 30 * DAY_MS, 0, NULL, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    CHECK(res.tasks == 0 && res.batches == 1 && res.complete, "second prune deleted %lld", (long long)res.tasks);
    CHECK(jet_retention_prune(c, 0, 100, NULL, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    CHECK(res.tasks == 500 && res.batches == 6, "age 0 pruned %lld in %lld", (long long)res.tasks,
          (long long)res.batches);
    CHECK(jet_retention_prune(c, -1, 100, NULL, 0, &res, &err) == JET_ERR_INVALID, "negative age accepted");
    PQfinish(c);
    printf("pg_retention: ok\n");
    return 0;
}
