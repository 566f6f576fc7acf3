/* History retention (see retention.h): bounded DELETE batches over the
 * partial index tasks_finished_idx; a task's task_attempts rows are deleted
 * in the same statement (no foreign key since sql/0009). */
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
    " LIMIT $2 FOR UPDATE SKIP LOCKED),"
    " gone AS (DELETE FROM tasks t USING victims v WHERE t.id = v.id RETURNING t.id),"
    " attempts AS (DELETE FROM task_attempts a USING gone g WHERE a.task_id = g.id)"
    " SELECT count(*) FROM gone";

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

jet_status jet_retention_prune(PGconn *conn, int64_t older_than_ms, int batch_rows, volatile const bool *stop,
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
    for (;;) {
        if ((stop && *stop) || (max_ms > 0 && jet_mono_ms() - start >= max_ms))
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
