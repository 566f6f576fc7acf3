/* History retention (see retention.h): bounded DELETE batches over the
 * partial index tasks_finished_idx; a task's task_attempts rows are deleted
 * in the same statement (no foreign key since sql/0009). Workflows
 * (docs/WORKFLOWS.md) go as a unit: a workflow that ended longer ago than
 * the age, and whose callbacks have ended too, is deleted with all its
 * tasks, their attempts and its edges in one statement; a task of a
 * workflow is never pruned alone. */
#include <jetsched/retention.h>
#include <jetsched/log.h>
#include <jetsched/pgconn.h>
#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char PRUNE_SQL[] =
    "WITH victims AS ("
    " SELECT id FROM tasks"
    " WHERE status IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')"
    "  AND coalesce(finished_at, updated_at) < now() - $1::bigint * interval '1 millisecond'"
    "  AND workflow_id IS NULL"
    " LIMIT $2 FOR UPDATE SKIP LOCKED),"
    " gone AS (DELETE FROM tasks t USING victims v WHERE t.id = v.id RETURNING t.id),"
    " attempts AS (DELETE FROM task_attempts a USING gone g WHERE a.task_id = g.id)"
    " SELECT count(*) FROM gone";

/* Ended workflows, a few per statement (each may hold many tasks). */
static const char PRUNE_WF_SQL[] =
    "WITH w AS ("
    " SELECT id FROM workflows x WHERE finished_at < now() - $1::bigint * interval '1 millisecond'"
    "  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = x.id AND NOT jetsched_status_terminal(t.status))"
    " ORDER BY finished_at LIMIT 20 FOR UPDATE SKIP LOCKED),"
    " e AS (DELETE FROM workflow_edges e USING tasks t, w WHERE t.workflow_id = w.id AND e.child_id = t.id),"
    " t AS (DELETE FROM tasks t USING w WHERE t.workflow_id = w.id RETURNING t.id),"
    " a AS (DELETE FROM task_attempts a USING t WHERE a.task_id = t.id),"
    " x AS (DELETE FROM workflows x USING w WHERE x.id = w.id RETURNING 1)"
    " SELECT (SELECT count(*) FROM x), (SELECT count(*) FROM t)";

static jet_status prune_workflows(PGconn *conn, const char *age, int64_t *workflows, int64_t *tasks, jet_err *err)
{
    const char *params[] = {age};
    PGresult *r = PQexecParams(conn, PRUNE_WF_SQL, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        jet_status st = jet_pg_err(err, conn, r, "history retention: delete ended workflows");
        PQclear(r);
        return st;
    }
    *workflows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *tasks = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return JET_OK;
}

/* One batch; *deleted receives its row count. */
static jet_status prune_batch(PGconn *conn, const char *age, const char *limit, int64_t *deleted, jet_err *err)
{
    const char *params[] = {age, limit};
    PGresult *r = PQexecParams(conn, PRUNE_SQL, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        jet_status st = jet_pg_err(err, conn, r, "history retention: delete old tasks");
        PQclear(r);
        return st;
    }
    *deleted = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return JET_OK;
}

jet_status jet_retention_prune(PGconn *conn, int64_t older_than_ms, int batch_rows, const _Atomic bool *stop,
                               int64_t max_ms, jet_retention_result *out, jet_err *err)
{
    jet_retention_result res = {0, 0, false};
    if (older_than_ms < 0)
        return jet_err_set(err, JET_ERR_INVALID, "history retention: the age must be >= 0");
    if (batch_rows <= 0)
        batch_rows = JET_RETENTION_BATCH_DEFAULT;
    char age[32], limit[16];
    snprintf(age, sizeof age, "%" PRId64, older_than_ms);
    snprintf(limit, sizeof limit, "%d", batch_rows);
    int64_t start = jet_mono_ms();
    jet_status st = JET_OK;
    int64_t workflows = 0;
    for (;;) {
        if ((stop && atomic_load(stop)) || (max_ms > 0 && jet_mono_ms() - start >= max_ms))
            break;
        int64_t nw = 0, nt = 0;
        st = prune_workflows(conn, age, &nw, &nt, err);
        if (st != JET_OK) {
            if (out)
                *out = res;
            return st;
        }
        res.tasks += nt; /* batches counts the task statements only */
        workflows += nw;
        if (nw < 20)
            break;
    }
    if (workflows)
        jet_info("history retention: pruned %" PRId64 " ended workflows", workflows);
    for (;;) {
        if ((stop && atomic_load(stop)) || (max_ms > 0 && jet_mono_ms() - start >= max_ms))
            break;
        int64_t n = 0;
        st = prune_batch(conn, age, limit, &n, err);
        if (st != JET_OK)
            break;
        res.batches++;
        res.tasks += n;
        if (n < batch_rows) {
            res.complete = true;
            break;
        }
    }
    if (res.tasks)
        jet_info("history retention: pruned %" PRId64 " finished tasks in %" PRId64 " batches", res.tasks,
                 res.batches);
    if (out)
        *out = res;
    return st;
}
