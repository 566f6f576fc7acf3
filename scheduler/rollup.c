/* The per-minute rollup of finished tasks per queue (sql/0003_task_minutes.sql),
 * kept by the acting leader on its own thread and PostgreSQL connection:
 * every rollup.interval it adds the tasks that finished in
 * [rolled_to, now - rollup.grace) to task_minutes and moves rolled_to in
 * the same transaction, with a compare-and-set on rolled_to so that two
 * schedulerd briefly both acting can never count a task twice. The range is
 * an index range scan of tasks_finished_idx (at most ROLLUP_MAX_SPAN per
 * step), never a scan of tasks. Read by the stats.minutes verb
 * (api_stats.c) for the console's overview. A task recorded more than
 * rollup.grace after it finished (an agent that buffered through a
 * PostgreSQL outage) is not counted. */
#include "schedulerd.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/pgconn.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>

#define ROLLUP_MAX_SPAN "10 minutes"
#define ROLLUP_RETENTION "8 days"

static pthread_t rollup_thread;
static bool started;
static PGconn *pg;
static jet_metric *m_errors, *m_rolled_to;

/* The statement: one step of at most ROLLUP_MAX_SPAN; returns the new rolled_to (ms) or no row. */
static const char STEP_SQL[] =
    "WITH st AS (SELECT rolled_to AS from_t, least(now() - $1::bigint * interval '1 millisecond',"
    "             rolled_to + interval '" ROLLUP_MAX_SPAN "') AS to_t FROM task_minutes_state FOR UPDATE),"
    " agg AS (SELECT date_trunc('minute', coalesce(t.finished_at, t.updated_at)) AS minute, t.queue,"
    "   count(*) FILTER (WHERE t.status = 'succeeded') AS succeeded,"
    "   count(*) FILTER (WHERE t.status = 'dead') AS dead,"
    "   count(*) FILTER (WHERE t.status = 'expired') AS expired,"
    "   count(*) FILTER (WHERE t.status = 'cancelled') AS cancelled,"
    "   count(*) FILTER (WHERE t.status IN ('duplicate', 'skipped')) AS skipped"
    "  FROM tasks t, st"
    "  WHERE t.status IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')"
    "    AND coalesce(t.finished_at, t.updated_at) >= st.from_t AND coalesce(t.finished_at, t.updated_at) < st.to_t"
    "  GROUP BY 1, 2),"
    " ins AS (INSERT INTO task_minutes AS m (minute, queue, succeeded, dead, expired, cancelled, skipped)"
    "  SELECT * FROM agg ORDER BY 1, 2"
    "  ON CONFLICT (minute, queue) DO UPDATE SET succeeded = m.succeeded + excluded.succeeded,"
    "   dead = m.dead + excluded.dead, expired = m.expired + excluded.expired,"
    "   cancelled = m.cancelled + excluded.cancelled, skipped = m.skipped + excluded.skipped)"
    " UPDATE task_minutes_state s SET rolled_to = st.to_t FROM st"
    " WHERE s.rolled_to = st.from_t AND st.to_t > st.from_t"
    " RETURNING (extract(epoch from s.rolled_to) * 1000)::bigint";

static bool step(sched *s)
{
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        pg = NULL;
        jet_err err = {0};
        if (jet_pg_connect(s->cfg, "schedulerd-rollup", &pg, &err) != JET_OK) {
            pg = NULL;
            return false;
        }
    }
    PGresult *r = PQexec(pg, "BEGIN");
    PQclear(r);
    char grace[32];
    snprintf(grace, sizeof grace, "%lld", (long long)jet_cfg_int(s->cfg, "rollup.grace"));
    const char *p[] = {grace};
    r = PQexecParams(pg, STEP_SQL, 1, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok && PQntuples(r) == 1) {
        double at = (double)strtoll(PQgetvalue(r, 0, 0), NULL, 10) / 1000.0;
        jet_metric_set(m_rolled_to, NULL, at);
    } else if (!ok) {
        jet_err err;
        jet_pg_err(&err, pg, r, "task_minutes rollup");
        jet_warn("%s", err.msg);
    }
    PQclear(r);
    r = PQexec(pg, ok ? "COMMIT" : "ROLLBACK");
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) {
        r = PQexec(pg, "DELETE FROM task_minutes WHERE minute < now() - interval '" ROLLUP_RETENTION "'");
        PQclear(r);
    }
    return ok;
}

static void *rollup_main(void *arg)
{
    sched *s = arg;
    int64_t next = 0;
    while (!atomic_load(&s->stop)) {
        if (atomic_load(&s->epoch) == 0) {
            if (pg) {
                PQfinish(pg);
                pg = NULL;
            }
            next = 0;
        } else if (jet_mono_ms() >= next) {
            next = jet_mono_ms() + jet_cfg_int(s->cfg, "rollup.interval");
            if (!step(s))
                jet_metric_add(m_errors, NULL, 1);
        }
        jet_sleep_ms(100);
    }
    return NULL;
}

jet_status rollup_start(sched *s, jet_err *err)
{
    m_errors = jet_metric_counter("jetsched_rollup_errors_total",
                                  "Failed steps of the per-minute task rollup (task_minutes); leader only.", NULL);
    m_rolled_to = jet_metric_gauge("jetsched_rollup_rolled_to_timestamp_seconds",
                                   "Unix time up to which finished tasks are in task_minutes; leader only.", NULL);
    if (pthread_create(&rollup_thread, NULL, rollup_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the rollup thread");
    started = true;
    return JET_OK;
}

void rollup_stop(sched *s)
{
    (void)s;
    if (!started)
        return;
    pthread_join(rollup_thread, NULL);
    started = false;
    PQfinish(pg);
    pg = NULL;
}
