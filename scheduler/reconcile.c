/* The reconciler (leader only, DESIGN §5): republishes tasks that are
 * `queued` but were never published or not started after
 * reconcile.redispatch_after (claimed in a fenced transaction so that two
 * leaders never republish the same rows), ends the API publish sessions
 * whose connection is gone (their recent rows are republished at once), and
 * prunes finished history older than history.retention in bounded
 * batches. */
#include "leader.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/retention.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>

#define REDISPATCH_BATCH 200
#define PRUNE_EVERY_MS (60 * 60 * 1000)

static jet_metric *m_reconciled;
static int64_t last_prune_mono = -1;

/* Publishes one row (PUB_COLS) synchronously (the reconciler). Returns 1
 * stored, 0 failed, -1 dropped as a duplicate by the stream's duplicate
 * window. */
static int publish_row(sched *s, PGresult *r, int i)
{
    int64_t fire_ms = -1;
    int result = sched_publish_row(s, r, i, true, &fire_ms);
    if (result == 0)
        jet_metric_add(leader_m_publish_fail, NULL, 1);
    return result;
}


/* API publish sessions (sql/0016, scheduler/api.c): task.submit commits a
 * queued row with dispatched_at = now() and api_session = the key of its
 * pool connection, which holds pg_advisory_lock(key) while it lives, and
 * writes the row again only if the publish fails. A session whose lock is
 * gone ended (schedulerd killed, connection lost): a row it committed may
 * never have been published. Its queued rows from a minute before the
 * leader last saw it alive get dispatched_at NULL, which the republish loop
 * below takes at once (one already in the stream is dropped as a duplicate:
 * Nats-Msg-Id = id, inside the duplicate window); the session row goes. The
 * live ones get seen_at = now(). Two statements: the second one's snapshot
 * is taken after the lock was seen gone, so it sees every commit of the
 * session (a backend commits before its session locks are released). */
static void sweep_api_sessions(sched *s, uint64_t epoch)
{
    if (!leader_begin_fenced(s, epoch))
        return;
    PGresult *r = leader_q(s, "find ended API sessions",
                           "WITH a AS (SELECT key, NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
                           " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                           " AND l.classid = (s.key >> 32)::oid AND l.objid = (s.key & 4294967295)::oid"
                           " AND l.objsubid = 1 AND l.granted) AS ended FROM api_sessions s),"
                           " live AS (UPDATE api_sessions x SET seen_at = now() FROM a"
                           " WHERE x.key = a.key AND NOT a.ended)"
                           " SELECT key FROM a WHERE ended",
                           0, NULL);
    bool ok = r != NULL;
    for (int i = 0; ok && i < PQntuples(r); i++) {
        const char *p[] = {PQgetvalue(r, i, 0)};
        PGresult *u = leader_q(s, "reset the rows of an ended API session",
                               "WITH gone AS (DELETE FROM api_sessions WHERE key = $1::int8 RETURNING seen_at)"
                               " UPDATE tasks t SET dispatched_at = NULL FROM gone WHERE t.status = 'queued'"
                               " AND t.dispatched_at >= gone.seen_at - interval '1 minute'"
                               " AND t.api_session = $1::int8",
                               1, p);
        if (u && atoi(PQcmdTuples(u)) > 0)
            jet_info("reconciler: API session %s ended (schedulerd stopped or lost PostgreSQL): %s of its recent "
                     "queued task(s) to republish", p[0], PQcmdTuples(u));
        ok = u != NULL;
        PQclear(u);
    }
    PQclear(r);
    if (!ok) {
        leader_rollback(s);
        return;
    }
    leader_commit_fenced(s);
}

void reconcile(sched *s, uint64_t epoch)
{
    sweep_api_sessions(s, epoch);
    char after[32], lim[16];
    snprintf(after, sizeof after, "%lld", (long long)atomic_load(&s->redispatch_ms));
    snprintf(lim, sizeof lim, "%d", REDISPATCH_BATCH);
    size_t total = 0;
    for (int round = 0; round < 50 && !atomic_load(&s->stop); round++) {
        if (!leader_begin_fenced(s, epoch))
            return;
        const char *p[] = {after, lim};
        /* Claiming the rows (dispatched_at = now()) inside the fenced
         * transaction keeps two leaders from republishing the same rows and
         * moves them out of the next round. */
        PGresult *r = leader_q(s, "select stale queued tasks",
                               "WITH stale AS (SELECT id FROM tasks WHERE status = 'queued'"
                               " AND (coalesce(dispatched_at, created_at) < now() - $1::bigint * interval '1"
                               " millisecond'"
                               " OR (dispatched_at IS NULL AND updated_at < now() - interval '2 seconds'))"
                               " ORDER BY coalesce(dispatched_at, created_at) LIMIT $2 FOR UPDATE SKIP LOCKED)"
                               " UPDATE tasks t SET dispatched_at = now() FROM stale WHERE t.id = stale.id"
                               " RETURNING " PUB_COLS,
                               2, p);
        if (!r) {
            leader_rollback(s);
            return;
        }
        if (!leader_commit_fenced(s)) {
            PQclear(r);
            return;
        }
        int n = PQntuples(r);
        if (n == 0) {
            PQclear(r);
            break;
        }
        size_t stored = 0;
        int dups = 0;
        jet_pgarr failed = {0};
        for (int i = 0; i < n; i++) {
            int rc = publish_row(s, r, i);
            if (rc < 0) {
                /* Inside the stream's duplicate window: the stream still
                 * has (or had) it. Retried after redispatch_after. */
                dups++;
            } else if (rc == 1) {
                stored++;
                jet_info("reconciler: republished task %s (queued and not started, or never published)",
                         PQgetvalue(r, i, 0));
            } else {
                jet_pgarr_add(&failed, PQgetvalue(r, i, 0));
            }
        }
        if (dups)
            jet_info("reconciler: %d republished task(s) were dropped as duplicates (inside "
                     "jetstream.duplicate_window); retried after reconcile.redispatch_after", dups);
        if (failed.n) {
            /* Not published (NATS down): try again at the next reconcile
             * run rather than after redispatch_after. */
            const char *fp[] = {jet_pgarr_lit(&failed)};
            PQclear(leader_q(s, "unclaim", "UPDATE tasks SET dispatched_at = NULL WHERE id = ANY($1::text[])"
                             " AND status = 'queued'", 1, fp));
        }
        free(failed.buf);
        PQclear(r);
        jet_metric_add(m_reconciled, NULL, (double)stored);
        total += stored;
        if (n < REDISPATCH_BATCH || failed.n)
            break;
    }
    if (total)
        jet_info("reconciler: %zu task(s) republished", total);

    if (last_prune_mono < 0 || jet_mono_ms() - last_prune_mono >= PRUNE_EVERY_MS) {
        last_prune_mono = jet_mono_ms();
        jet_retention_result res = {0};
        jet_err err = {0};
        if (jet_retention_prune(leader_pg(), atomic_load(&s->retention_ms), 1000, &s->stop, 5000,
                                &res, &err) != JET_OK)
            jet_warn("history retention: %s", err.msg);
        else if (res.tasks)
            jet_info("history retention: pruned %lld finished task(s) in %lld batch(es)%s", (long long)res.tasks,
                     (long long)res.batches, res.complete ? "" : "; more next time");
        if (!res.complete)
            last_prune_mono = jet_mono_ms() - PRUNE_EVERY_MS + atomic_load(&s->reconcile_ms) * 6;
    }
}


void reconcile_metrics_init(void)
{
    m_reconciled = jet_metric_counter("jetsched_scheduler_reconciled_total",
                                      "Queued tasks republished by the reconciler.", NULL);
}
