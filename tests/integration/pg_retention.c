/* tests/integration/pg_retention.c: retention deletes only terminal tasks
 * finished before the cut-off, with their attempts, in batches of the given
 * size; non-terminal and recent rows stay; a stop request is honoured.
 * Workflows go as a unit (docs/WORKFLOWS.md): an old ended one with all its
 * nodes, callbacks and edges; never a node of a running workflow, nor one
 * whose callback has not ended. */
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

/* Workflow wf-<name>: 3 succeeded nodes finished 40 days ago (a -> b -> c),
 * a callback in state cb_status, the workflow row as given. */
static void seed_workflow(PGconn *c, const char *name, const char *status, const char *finished, const char *cb_status)
{
    char sql[1600];
    snprintf(sql, sizeof sql,
             "INSERT INTO workflows (id, status, nodes, finished_at, created_at) VALUES ('wf-%s', '%s', 3, %s,"
             " now() - interval '41 days')", name, status, finished);
    pgt_exec(c, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO tasks (id, queue, handler, status, attempts, finished_at, updated_at, workflow_id, deps_pending)"
             " SELECT 'wf-%s-' || n, 'default', 'echo', 'succeeded', 1, now() - interval '40 days',"
             " now() - interval '40 days', 'wf-%s', 0 FROM unnest(ARRAY['a','b','c']) n", name, name);
    pgt_exec(c, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO tasks (id, queue, handler, status, finished_at, updated_at, workflow_id) VALUES"
             " ('wf-%s-on_complete', 'default', 'echo', '%s', now() - interval '40 days', now() - interval '40 days',"
             " 'wf-%s')", name, cb_status, name);
    pgt_exec(c, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO workflow_edges (parent_id, child_id, state) VALUES ('wf-%s-a', 'wf-%s-b', 'satisfied'),"
             " ('wf-%s-b', 'wf-%s-c', 'satisfied')", name, name, name, name);
    pgt_exec(c, sql);
}

int main(void)
{
    jet_log_init("pg_retention", JET_LOG_WARN, false);
    PGconn *c = pgt_connect();
    pgt_migrate(c);
    seed(c);
    seed_workflow(c, "old", "succeeded", "now() - interval '40 days'", "succeeded");
    seed_workflow(c, "running", "running", "NULL", "succeeded");
    seed_workflow(c, "recent", "succeeded", "now() - interval '1 day'", "succeeded");
    seed_workflow(c, "cbqueued", "failed", "now() - interval '40 days'", "queued");
    jet_retention_result res;
    jet_err err;
    _Atomic bool stop = true;
    CHECK(jet_retention_prune(c, 30 * DAY_MS, 1000, &stop, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    CHECK(res.tasks == 0 && res.batches == 0 && !res.complete, "a stopped prune deleted %lld", (long long)res.tasks);

    stop = false;
    CHECK(jet_retention_prune(c, 30 * DAY_MS, 1000, &stop, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    printf("pruned %lld tasks in %lld batches\n", (long long)res.tasks, (long long)res.batches);
    CHECK(res.tasks == 3754 && res.batches == 4 && res.complete, "pruned %lld in %lld batches",
          (long long)res.tasks, (long long)res.batches);
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'old-%' OR id LIKE 'nofin-%'") == 0, "old rows left");
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts WHERE task_id LIKE 'old-%'") == 0, "old attempts left");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'new-%'") == 500, "recent rows pruned");
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts WHERE task_id LIKE 'new-%'") == 500, "recent attempts pruned");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'live-%'") == 300, "unfinished rows pruned");
    CHECK(pgt_int(c, "SELECT count(*) FROM workflows WHERE id = 'wf-old'") == 0 &&
              pgt_int(c, "SELECT count(*) FROM tasks WHERE workflow_id = 'wf-old'") == 0 &&
              pgt_int(c, "SELECT count(*) FROM workflow_edges WHERE child_id LIKE 'wf-old-%'") == 0,
          "an old ended workflow is pruned as a unit");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE workflow_id IN ('wf-running', 'wf-recent', 'wf-cbqueued')") ==
              12 && pgt_int(c, "SELECT count(*) FROM workflow_edges") == 6 &&
              pgt_int(c, "SELECT count(*) FROM workflows") == 3,
          "a running or recent workflow, or one with a callback not ended, lost rows");

    CHECK(jet_retention_prune(c, 30 * DAY_MS, 0, NULL, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    CHECK(res.tasks == 0 && res.batches == 1 && res.complete, "second prune deleted %lld", (long long)res.tasks);
    CHECK(jet_retention_prune(c, 0, 100, NULL, 0, &res, &err) == JET_OK, "prune: %s", err.msg);
    CHECK(res.tasks == 504 && res.batches == 6, "age 0 pruned %lld in %lld", (long long)res.tasks,
          (long long)res.batches);
    CHECK(jet_retention_prune(c, -1, 100, NULL, 0, &res, &err) == JET_ERR_INVALID, "negative age accepted");
    PQfinish(c);
    printf("pg_retention: ok\n");
    return 0;
}
