/* The leader's workflow releaser (docs/WORKFLOWS.md "How a release works"):
 * a thread with its own PostgreSQL connection that LISTENs on
 * jetsched_workflow. On a notification, when this schedulerd starts acting as
 * leader, and every WF_SWEEP_MS as a safety net, it runs rounds until there
 * is nothing left: one transaction drains workflow_outbox
 * (jetsched_wf_step, sql/0013: edges, counters, dependency_failed cancels,
 * workflow ends and callbacks) and moves the rows it made releasable to
 * `queued` (at leader start and every WF_FULL_SWEEP_MS also any other
 * `waiting` row with no pending dependency);
 * after the commit they are published (Nats-Msg-Id = task id) and their
 * dispatched_at recorded. A leader that dies after the commit and before
 * the publish leaves `queued` rows never dispatched: the reconciler
 * publishes those (as for task.submit). Every step is a compare-and-set, so
 * two schedulerd that both believe they lead double nothing. */
#include "publish.h"
#include "wf.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/pgarray.h>
#include <jetsched/pgconn.h>
#include <jetsched/strmap.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WF_SWEEP_MS 5000
#define WF_FULL_SWEEP_MS 30000
#define WF_ROUND_ROWS "5000"

static pthread_t thread;
static bool started;
static PGconn *pg;
static jet_metric *m_released, *m_drained, *m_errors;

/* ---------------- publish ---------------- */

typedef struct pub_track {
    pthread_mutex_t mu;
    jet_strmap *idx; /* task id -> row + 1 */
    bool *done;
    size_t n_done;
} pub_track;

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js, (void)pae;
    pub_track *t = closure;
    const char *id = NULL;
    if (pa && natsMsgHeader_Get(msg, JET_HDR_MSG_ID, &id) == NATS_OK && id) {
        pthread_mutex_lock(&t->mu);
        uintptr_t k = (uintptr_t)jet_strmap_get(t->idx, id);
        if (k && !t->done[k - 1]) {
            t->done[k - 1] = true;
            t->n_done++;
        }
        pthread_mutex_unlock(&t->mu);
    }
    natsMsg_Destroy(msg);
}

size_t wf_publish_rows(sched *s, PGresult *r, const bool *want, bool *done)
{
    int n = PQntuples(r);
    pub_track t = {.idx = jet_strmap_new(), .done = done};
    pthread_mutex_init(&t.mu, NULL);
    for (int i = 0; i < n; i++)
        if (want[i])
            jet_strmap_put(t.idx, PQgetvalue(r, i, 0), (void *)(uintptr_t)(i + 1));
    int64_t wait = jet_cfg_int(s->cfg, "nats.publish_timeout");
    if (wait <= 0)
        wait = 5000;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = wait;
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.StallWait = wait;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = &t;
    jsCtx *js = NULL;
    if (natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED &&
        natsConnection_JetStream(&js, s->nc, &jo) == NATS_OK) {
        for (int i = 0; i < n; i++) {
            if (!want[i])
                continue;
            int64_t fire = -1;
            natsMsg *m = sched_task_msg(s, r, i, false, &fire);
            if (m && js_PublishMsgAsync(js, &m, NULL) != NATS_OK)
                natsMsg_Destroy(m); /* still ours: left to the next round or the reconciler */
        }
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = wait + 1000;
        if (js_PublishAsyncComplete(js, &po) == NATS_TIMEOUT) {
            /* Take back what got no pub-ack (no callback can come for them
             * after this); those rows are left to the next round or the
             * reconciler. */
            natsMsgList l = {0};
            if (js_PublishAsyncGetPendingList(&l, js) == NATS_OK)
                natsMsgList_Destroy(&l);
        }
        jsCtx_Destroy(js);
    }
    pthread_mutex_lock(&t.mu);
    size_t nd = t.n_done;
    pthread_mutex_unlock(&t.mu);
    pthread_mutex_destroy(&t.mu);
    jet_strmap_free(t.idx, NULL);
    return nd;
}

/* ---------------- the rounds ---------------- */

static bool exec_ok(const char *what, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        jet_warn("workflow releaser: %s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

static bool ensure_pg(sched *s)
{
    if (pg && PQstatus(pg) == CONNECTION_OK)
        return true;
    PQfinish(pg);
    pg = NULL;
    jet_err err = {0};
    if (jet_pg_connect(s->cfg, "schedulerd-workflows", &pg, &err) != JET_OK) {
        pg = NULL;
        return false;
    }
    /* Keyed statements only: never a scan of tasks on stale statistics. */
    if (!exec_ok("listen", "LISTEN jetsched_workflow") || !exec_ok("settings", "SET enable_seqscan = off")) {
        PQfinish(pg);
        pg = NULL;
        return false;
    }
    return true;
}

/* After the commit: publishes the rows of r (PUB_COLS) and records their
 * dispatched_at; returns how many there were. */
static int publish_result(sched *s, PGresult *r)
{
    int n = PQntuples(r);
    if (!n)
        return 0;
    bool *want = calloc((size_t)n, sizeof *want), *done = calloc((size_t)n, sizeof *done);
    memset(want, true, (size_t)n * sizeof *want);
    size_t ok = wf_publish_rows(s, r, want, done);
    jet_pgarr ids = {0};
    for (int i = 0; i < n; i++)
        if (done[i])
            jet_pgarr_add(&ids, PQgetvalue(r, i, 0));
    if (ids.n) {
        const char *p[] = {jet_pgarr_lit(&ids)};
        PQclear(PQexecParams(pg, "UPDATE tasks SET dispatched_at = now() WHERE id = ANY($1::text[]) AND status = 'queued'",
                             1, NULL, p, NULL, NULL, 0));
    }
    if (ok < (size_t)n)
        jet_warn("workflow releaser: %zu of %d released task(s) not published; the reconciler publishes them",
                 (size_t)n - ok, n);
    jet_metric_add(m_released, NULL, (double)n);
    jet_pgarr_free(&ids);
    free(want);
    free(done);
    return n;
}

static PGresult *failed(PGresult *r, const char *what)
{
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return NULL;
    jet_warn("workflow releaser: %s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    exec_ok("rollback", "ROLLBACK");
    return r;
}

/* One round; returns rows drained + released (0: nothing left), -1 on error.
 * jetsched_wf_step (sql/0013) drains the outbox and moves the rows it made
 * releasable to `queued` in this transaction; a sweep round also takes any
 * `waiting` row with no pending dependency (left by a schedulerd of the
 * 0011 release, or by hand): a scan of the waiting rows, so only at leader
 * start and every WF_FULL_SWEEP_MS. */
static long round_once(sched *s, bool sweep)
{
    int64_t t0 = jet_mono_us(), wall0 = jet_now_ms();
    if (!exec_ok("begin", "BEGIN"))
        return -1;
    /* Serialised with workflow.cancel (api_workflow.c): both lock many
     * node rows and a workflow row in orders that can cross. */
    PGresult *lk = PQexec(pg, "SELECT pg_advisory_xact_lock(" WF_CANCEL_LOCK ")");
    if (failed(lk, "serialise with cancel"))
        return -1;
    PQclear(lk); /* failed() clears only a failed result */
    PGresult *d = PQexec(pg, "SELECT drained, released::text FROM jetsched_wf_step(" WF_ROUND_ROWS ")");
    if (failed(d, "drain"))
        return -1;
    long drained = strtol(PQgetvalue(d, 0, 0), NULL, 10);
    int64_t t_step = jet_mono_us();
    const char *p[] = {PQgetvalue(d, 0, 1)};
    PGresult *r = PQexecParams(pg, "SELECT " PUB_COLS " FROM tasks t WHERE t.id = ANY($1::text[]) AND t.status = 'queued'",
                               1, NULL, p, NULL, NULL, 0);
    PQclear(d);
    if (failed(r, "release"))
        return -1;
    PGresult *r2 = NULL;
    if (sweep) {
        r2 = PQexec(pg, "UPDATE tasks t SET status = 'queued', updated_at = now()"
                        " FROM (SELECT id FROM tasks WHERE status = 'waiting' AND coalesce(deps_pending, 0) = 0"
                        "       AND deps_pending IS NOT NULL" /* a reserved callback waits for its workflow's end */
                        "       ORDER BY id LIMIT " WF_ROUND_ROWS " FOR UPDATE SKIP LOCKED) w"
                        " WHERE t.id = w.id AND t.status = 'waiting' RETURNING " PUB_COLS);
        if (failed(r2, "sweep")) {
            PQclear(r);
            return -1;
        }
    }
    if (!exec_ok("commit", "COMMIT")) {
        PQclear(r);
        PQclear(r2);
        return -1;
    }
    if (drained)
        jet_metric_add(m_drained, NULL, (double)drained);
    int64_t t_commit = jet_mono_us();
    long n = publish_result(s, r) + (r2 ? publish_result(s, r2) : 0);
    if (drained || n)
        jet_debug("workflow releaser: round at %lld: %ld drained, %ld released; step %lld us, commit %lld us, "
                  "publish %lld us",
                  (long long)wall0, drained, n, (long long)(t_step - t0), (long long)(t_commit - t_step),
                  (long long)(jet_mono_us() - t_commit));
    PQclear(r);
    PQclear(r2);
    return drained + n;
}

/* Rounds until nothing is left (or this schedulerd stops leading). */
static void run_rounds(sched *s, bool sweep)
{
    for (int i = 0; i < 1000 && !atomic_load(&s->stop) && atomic_load(&s->epoch) != 0; i++) {
        long got = round_once(s, sweep);
        if (got < 0) {
            jet_metric_add(m_errors, NULL, 1);
            if (PQstatus(pg) != CONNECTION_OK) {
                PQfinish(pg);
                pg = NULL;
            }
            return;
        }
        if (got == 0)
            return;
    }
}

/* Waits up to ms for a notification; true when one (or more) came. */
static bool wait_notify(int ms)
{
    int fd = PQsocket(pg);
    if (fd < 0)
        return false;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) > 0 && !PQconsumeInput(pg))
        return false;
    bool got = false;
    PGnotify *nf;
    while ((nf = PQnotifies(pg)) != NULL) {
        got = true;
        PQfreemem(nf);
    }
    return got;
}

static void *releaser_main(void *arg)
{
    sched *s = arg;
    bool leading = false;
    int64_t next_sweep = 0, next_full = 0;
    while (!atomic_load(&s->stop)) {
        if (atomic_load(&s->epoch) == 0) {
            leading = false;
            jet_sleep_ms(100);
            continue;
        }
        if (!ensure_pg(s)) {
            jet_metric_add(m_errors, NULL, 1);
            jet_sleep_ms(1000);
            continue;
        }
        bool sweep = !leading || jet_mono_ms() >= next_sweep, full = !leading || jet_mono_ms() >= next_full;
        leading = true;
        if (sweep || wait_notify(100)) {
            if (sweep)
                next_sweep = jet_mono_ms() + WF_SWEEP_MS;
            if (full)
                next_full = jet_mono_ms() + WF_FULL_SWEEP_MS;
            /* Notifications that came meanwhile are covered by this run. */
            run_rounds(s, full);
            if (pg)
                wait_notify(0);
        }
    }
    PQfinish(pg);
    pg = NULL;
    return NULL;
}

jet_status wf_release_start(sched *s, jet_err *err)
{
    m_released = jet_metric_counter("jetsched_workflow_released_total",
                                    "Workflow tasks (nodes and callbacks) moved from waiting to queued and published by "
                                    "the leader's releaser.",
                                    NULL);
    m_drained = jet_metric_counter("jetsched_workflow_outbox_drained_total",
                                   "Ended workflow nodes drained from workflow_outbox by the releaser.", NULL);
    m_errors = jet_metric_counter("jetsched_workflow_release_errors_total",
                                  "Releaser rounds that failed (PostgreSQL); the next notification or sweep retries.",
                                  NULL);
    if (pthread_create(&thread, NULL, releaser_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the workflow releaser thread");
    started = true;
    return JET_OK;
}

void wf_release_stop(sched *s)
{
    (void)s;
    if (started)
        pthread_join(thread, NULL);
    started = false;
}
