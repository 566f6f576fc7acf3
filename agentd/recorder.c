/* agentd on the history writer (common/history.c) and the idempotency lookup. */
#include "recorder.h"
#include "timeline.h"

#include <jetsched/alloc.h>
#include <jetsched/daemon_cli.h>
#include <jetsched/history.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/pgarray.h>
#include <jetsched/pgconn.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct record_ctx {
    void (*done)(void *, bool);
    void *ctx;
    inflight *f;
} record_ctx;

static void on_done(void *ctx, jet_status st, const char *reason)
{
    record_ctx *rc = ctx;
    if (st != JET_OK)
        jet_error("history record not stored: %s", reason ? reason : jet_status_text(st));
    else
        timeline_recorded(rc->f);
    rc->done(rc->ctx, st == JET_OK);
    free(rc);
}

struct recorder {
    bool enabled;                  /* history.enabled (false: benchmark mode) */
    jet_history *history;          /* the writer; NULL once flushed */
    PGconn *query_pg;              /* idempotency checks (guarded by query_mu) */
    bool rows_prepared;            /* ROWS_SQL is prepared on query_pg (a new or reset session has none) */
    pthread_mutex_t query_mu;
};

jet_status recorder_start(agent *a, jet_err *err)
{
    struct recorder *r = jet_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->query_mu, NULL);
    a->recorder = r;
    r->enabled = a->set.history_enabled;
    if (!r->enabled) {
        jet_warn("history.enabled = false: tasks are acked without being recorded (benchmark mode)");
        return JET_OK;
    }
    jet_history_options o;
    jet_history_options_default(&o);
    o.batch_size = a->set.history_batch_size;
    o.flush_interval_ms = a->set.history_flush_ms;
    /* The writer holds at most what the agent may hold un-acked, plus room for
     * the few records submitted while the pause takes effect. */
    o.max_pending = (size_t)a->set.history_max_pending + 1024;
    o.application_name = "agentd";
    jet_status st = jet_history_open(a->cfg, &o, &r->history, err);
    if (st)
        return st;
    /* READY only after PostgreSQL answered once (DESIGN §6), and only once
     * the writer holds its connection too, so the first tasks never wait
     * for it (recorder_healthy() would pause the pullers meanwhile). Up to
     * 60 s; SIGTERM/SIGINT stop the wait at once. */
    st = jet_pg_connect_wait(a->cfg, "agentd", 60000, &r->query_pg, err);
    if (st)
        return jet_stop_signal_pending() ? st : jet_err_set(err, st, "postgres: %s", err->msg);
    for (int64_t until = jet_mono_ms() + 10000; jet_mono_ms() < until;) {
        jet_history_stats hs;
        jet_history_stats_get(r->history, &hs);
        if (hs.connected)
            break;
        if (jet_stop_signal_pending())
            return jet_err_set(err, JET_ERR_UNAVAILABLE, "stopped while waiting for PostgreSQL");
        jet_sleep_ms(10);
    }
    return JET_OK;
}

/* The fields of a history record every attempt record shares. trace
 * receives the trace id (33 bytes). */
static jet_history_record record_of(agent *a, const agent_task *t, jet_task_state status, int64_t started_ms,
                                    char trace[33])
{
    jet_trace_id(t->traceparent, trace);
    return (jet_history_record){
        .task_id = t->id,
        .queue = t->queue,
        .handler = t->handler[0] ? t->handler : NULL,
        .priority = jet_priority_name(t->prio),
        .status = jet_task_state_name(status),
        .attempt = task_attempt(t),
        .max_attempts = t->max_attempts,
        .agent = a->id,
        .created_ms = t->published_ms,
        .started_ms = started_ms,
        .schedule_id = t->schedule_id[0] ? t->schedule_id : NULL,
        .trace_id = trace[0] ? trace : NULL,
    };
}

void recorder_submit(agent *a, inflight *f, const outcome *o, int64_t started_ms, void (*done)(void *, bool),
                     void *ctx)
{
    struct recorder *rec = a->recorder;
    if (!rec->enabled) {
        done(ctx, true);
        return;
    }
    agent_task *t = f->task;
    char trace[33];
    jet_history_record r = record_of(a, t, o->status, started_ms, trace);
    r.error = o->error;
    r.result = o->result;
    r.result_len = o->result ? o->result_len : 0;
    char with_reason[1200];
    if (o->reason && o->reason[0]) {
        snprintf(with_reason, sizeof with_reason, "%s: %s", o->reason, o->error ? o->error : "");
        r.error = with_reason;
    }
    record_ctx *rc = jet_xmalloc(sizeof *rc);
    rc->done = done;
    rc->ctx = ctx;
    rc->f = f;
    jet_err err;
    jet_status st = jet_history_submit(rec->history, &r, on_done, rc, -1, &err);
    if (st != JET_OK) {
        /* Malformed (cannot happen for what agentd builds) or closing: not recorded, so never acked. */
        jet_error("task %s: history submit failed: %s", t->id, err.msg);
        free(rc);
        done(ctx, false);
    }
}

static void on_running_done(void *ctx, jet_status st, const char *reason)
{
    (void)ctx;
    if (st != JET_OK)
        jet_debug("running record not stored: %s", reason ? reason : jet_status_text(st));
}

void recorder_running(agent *a, inflight *f, int64_t started_ms)
{
    struct recorder *rec = a->recorder;
    if (!rec->enabled)
        return;
    char trace[33];
    jet_history_record r = record_of(a, f->task, JET_TASK_RUNNING, started_ms, trace);
    r.handler = f->task->handler;
    /* Best effort and never waits: the final record is what acks depend on. */
    jet_history_submit(rec->history, &r, on_running_done, NULL, 0, NULL);
}

/* recorder_lost: the writer's callback wakes the waiting worker. */
typedef struct lost_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left, failed;
} lost_wait;

static void on_lost_done(void *ctx, jet_status st, const char *reason)
{
    lost_wait *w = ctx;
    if (st != JET_OK)
        jet_warn("'lost' attempt record not stored: %s", reason ? reason : jet_status_text(st));
    pthread_mutex_lock(&w->mu);
    w->left--;
    w->failed += st != JET_OK;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

bool recorder_lost(agent *a, inflight *f, int from, int to)
{
    struct recorder *rec = a->recorder;
    if (!rec->enabled || from > to)
        return true;
    lost_wait w = {.left = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    char error[300];
    snprintf(error, sizeof error, "lost: delivered again (delivery %llu) with no record of this attempt: the agent "
             "running it stopped before recording anything (crashed or killed)",
             (unsigned long long)f->task->delivered);
    for (int n = from; n <= to; n++) {
        char trace[33];
        jet_history_record r = record_of(a, f->task, JET_TASK_RETRYING, 0, trace);
        r.status = "lost"; /* an attempt status only: the task row becomes 'retrying' at this attempt */
        r.attempt = n;
        r.agent = NULL;    /* unknown: the agent that ran it is gone */
        r.error = error;
        pthread_mutex_lock(&w.mu);
        w.left++;
        pthread_mutex_unlock(&w.mu);
        jet_err err;
        if (jet_history_submit(rec->history, &r, on_lost_done, &w, -1, &err) != JET_OK) {
            jet_warn("task %s: 'lost' record of attempt %d not submitted: %s", f->task->id, n, err.msg);
            pthread_mutex_lock(&w.mu);
            w.left--;
            w.failed++;
            pthread_mutex_unlock(&w.mu);
        }
    }
    pthread_mutex_lock(&w.mu);
    while (w.left > 0)
        pthread_cond_wait(&w.cv, &w.mu);
    bool ok = w.failed == 0;
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return ok;
}

/* The lookup connection (query_mu held): connected, or false after a warning. */
static bool query_conn(agent *a, struct recorder *rec, const char *what, size_t n)
{
    if (rec->query_pg && PQstatus(rec->query_pg) == CONNECTION_OK)
        return true;
    PQfinish(rec->query_pg);
    rec->query_pg = NULL;
    rec->rows_prepared = false;
    jet_err err;
    if (jet_pg_connect(a->cfg, "agentd", &rec->query_pg, &err) == JET_OK)
        return true;
    jet_warn("%s of %zu task(s) skipped: %s", what, n, err.msg);
    return false;
}

/* The admission lookup, prepared once per session (parse and plan were most
 * of its PostgreSQL CPU when it was sent unprepared per query). Each id is
 * one primary-key probe (LATERAL ... LIMIT 1 keeps it a parameterised index
 * scan in the generic plan, whatever the table's size when it was planned),
 * and comes back with its position in $1.
 * Attempts: the writer (common/history.c) only moves a live row's attempts
 * up to its newest attempt record, so for a live row tasks.attempts already
 * counts every attempt row. Two kinds of row may have attempt rows past
 * tasks.attempts, and only they pay the task_attempts probe: a terminal row
 * (its 'duplicate' refusals are attempt rows that never touch the row) and
 * a 'queued' row with attempts > 0 (a dead-letter replay puts a dead row
 * back to 'queued' keeping its attempts, scheduler/api_dlq.c, after which
 * refused duplicates may be numbered past them). Fresh tasks (no row, or
 * 'queued' at attempt 0) and redeliveries of live rows probe nothing. */
#define ROWS_NAME "jetsched_admission_rows"
static const char ROWS_SQL[] =
    "SELECT u.i, r.status, r.attempts, r.handed_back, r.handed_back_seq"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)"
    " CROSS JOIN LATERAL (SELECT t.status,"
    "  CASE WHEN jetsched_status_terminal(t.status) OR (t.status = 'queued' AND t.attempts > 0)"
    "   THEN greatest(t.attempts, (SELECT coalesce(max(x.attempt), 0) FROM task_attempts x WHERE x.task_id = t.id))"
    "   ELSE t.attempts END AS attempts,"
    "  coalesce(t.handed_back, 0) AS handed_back, coalesce(t.handed_back_seq, 0) AS handed_back_seq"
    "  FROM tasks t WHERE t.id = u.id LIMIT 1) r";

/* One try of the lookup on the session (query_mu held): the rows, or NULL
 * after a warning (the session is reset, so the caller may try again). */
static PGresult *rows_query(struct recorder *rec, const char *arr)
{
    if (!rec->rows_prepared) {
        PGresult *p = PQprepare(rec->query_pg, ROWS_NAME, ROWS_SQL, 1, NULL);
        rec->rows_prepared = PQresultStatus(p) == PGRES_COMMAND_OK;
        if (!rec->rows_prepared)
            jet_warn("admission lookup: prepare failed (is the schema migrated?): %s", PQresultErrorMessage(p));
        PQclear(p);
    }
    PGresult *res = NULL;
    if (rec->rows_prepared) {
        const char *params[] = {arr};
        res = PQexecPrepared(rec->query_pg, ROWS_NAME, 1, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 5)
            return res;
        jet_warn("admission lookup failed: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    /* A reset session has no prepared statement (nor has one that lost it
     * some other way: the retry prepares it again). */
    PQreset(rec->query_pg);
    rec->rows_prepared = false;
    return NULL;
}

bool recorder_rows(agent *a, const char *const *ids, size_t n, recorder_row *rows)
{
    struct recorder *rec = a->recorder;
    for (size_t i = 0; i < n; i++)
        rows[i] = (recorder_row){0};
    if (!rec->enabled || n == 0)
        return false;
    /* One text[] literal: ids are validated task ids ([A-Za-z0-9_-]), quoted anyway. */
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += strlen(ids[i]) + 3;
    char *arr = jet_xmalloc(cap), *p = arr;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\"%s\"", i ? "," : "", ids[i]);
    *p++ = '}';
    *p = '\0';
    bool ok = false;
    pthread_mutex_lock(&rec->query_mu);
    for (int attempt = 0; attempt < 2 && !ok; attempt++) {
        if (!query_conn(a, rec, "admission lookup", n))
            break;
        PGresult *res = rows_query(rec, arr);
        if (!res)
            continue;
        for (int r = 0; r < PQntuples(res); r++) {
            long i = strtol(PQgetvalue(res, r, 0), NULL, 10) - 1; /* ordinality: 1-based position in ids */
            if (i < 0 || (size_t)i >= n || rows[i].found ||
                !jet_task_state_parse(PQgetvalue(res, r, 1), &rows[i].status))
                continue;
            rows[i].found = true;
            rows[i].attempts = atoi(PQgetvalue(res, r, 2));
            rows[i].handed_back = atoi(PQgetvalue(res, r, 3));
            rows[i].handed_back_seq = strtoull(PQgetvalue(res, r, 4), NULL, 10);
        }
        ok = true;
        PQclear(res);
    }
    pthread_mutex_unlock(&rec->query_mu);
    free(arr);
    return ok;
}

bool recorder_healthy(agent *a, char *why, size_t len)
{
    struct recorder *rec = a->recorder;
    if (!rec)
        return false;
    if (!rec->enabled)
        return true;
    if (!rec->history)
        return false;
    jet_history_stats s;
    jet_history_stats_get(rec->history, &s);
    /* With nothing pending the writer is healthy (it reconnects on its
     * own); with records waiting it must be connected. */
    bool ok = s.connected || s.pending == 0;
    if (!ok && why)
        snprintf(why, len, "PostgreSQL unavailable (%zu records waiting)", s.pending);
    return ok;
}

bool recorder_backlogged(agent *a)
{
    if (atomic_load(&a->recording) >= a->max_recording)
        return true;
    return !recorder_healthy(a, NULL, 0);
}

void recorder_flush(agent *a, int64_t wait_ms)
{
    struct recorder *rec = a->recorder;
    if (!rec || !rec->enabled || !rec->history)
        return;
    if (jet_history_close(rec->history, wait_ms) != JET_OK)
        jet_error("history: some records could not be written before shutdown; their tasks were not acked and "
                  "will be redelivered");
    rec->history = NULL;
    pthread_mutex_lock(&rec->query_mu);
    PQfinish(rec->query_pg);
    rec->query_pg = NULL;
    pthread_mutex_unlock(&rec->query_mu);
}

void recorder_free(agent *a)
{
    struct recorder *rec = a->recorder;
    if (!rec)
        return;
    if (rec->history) { /* not flushed (start-up failed before the writer was used) */
        jet_history_close(rec->history, 0);
        rec->history = NULL;
    }
    PQfinish(rec->query_pg);
    pthread_mutex_destroy(&rec->query_mu);
    free(rec);
    a->recorder = NULL;
}

/* The hand-back statements (query_mu held): a new stream message (a
 * republish) starts its count again. The tasks that have a row are counted
 * there; those without one (published straight to NATS) in task_handbacks
 * (sql/0021), read by the admission step for a redelivery that finds no
 * row; that statement runs only when some task had no row. */
static const char *const HANDBACK_SQL[2] = {
    "UPDATE tasks t SET handed_back = CASE WHEN t.handed_back_seq = u.seq THEN coalesce(t.handed_back, 0) + 1"
    " ELSE 1 END, handed_back_seq = u.seq FROM unnest($1::text[], $2::bigint[]) u(id, seq) WHERE t.id = u.id"
    " AND NOT jetsched_status_terminal(t.status) RETURNING t.id",
    "WITH old AS (DELETE FROM task_handbacks WHERE at < now() - interval '7 days')"
    " INSERT INTO task_handbacks AS h (task_id, seq, n)"
    " SELECT DISTINCT ON (u.id) u.id, u.seq, 1 FROM unnest($1::text[], $2::bigint[]) u(id, seq)"
    " WHERE NOT EXISTS (SELECT 1 FROM tasks x WHERE x.id = u.id)"
    " ON CONFLICT (task_id) DO UPDATE SET n = CASE WHEN h.seq = excluded.seq THEN h.n + 1 ELSE 1 END,"
    " seq = excluded.seq, at = now()"};

bool recorder_handed_back(agent *a, agent_task *const *ts, size_t n)
{
    struct recorder *rec = a->recorder;
    if (!rec || !rec->enabled || n == 0)
        return true;
    jet_pgarr ids = {0}, seqs = {0};
    for (size_t i = 0; i < n; i++) {
        char seq[24];
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)ts[i]->stream_seq);
        jet_pgarr_add(&ids, ts[i]->id);
        jet_pgarr_add(&seqs, seq);
    }
    bool ok = false;
    pthread_mutex_lock(&rec->query_mu);
    /* not after recorder_flush */
    if (rec->history && query_conn(a, rec, "hand-back record", n)) {
        const char *params[] = {jet_pgarr_lit(&ids), jet_pgarr_lit(&seqs)};
        size_t counted = 0;
        for (int k = 0; k < 2 && (k == 0 || counted < n); k++) {
            PGresult *res = PQexecParams(rec->query_pg, HANDBACK_SQL[k], 2, NULL, params, NULL, NULL, 0);
            ok = PQresultStatus(res) == (k ? PGRES_COMMAND_OK : PGRES_TUPLES_OK);
            if (!ok)
                jet_warn("hand-back record of %zu task(s) not stored: %s", n, PQresultErrorMessage(res));
            counted = ok && k == 0 ? (size_t)PQntuples(res) : counted;
            PQclear(res);
            if (!ok)
                break;
        }
    }
    pthread_mutex_unlock(&rec->query_mu);
    jet_pgarr_free(&ids);
    jet_pgarr_free(&seqs);
    return ok;
}

int recorder_handbacks(agent *a, const agent_task *t)
{
    struct recorder *rec = a->recorder;
    if (!rec || !rec->enabled)
        return 0;
    char seq[24];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)t->stream_seq);
    const char *params[] = {t->id, seq};
    int n = 0;
    pthread_mutex_lock(&rec->query_mu);
    if (rec->history && query_conn(a, rec, "hand-back lookup", 1)) {
        PGresult *res = PQexecParams(rec->query_pg, "SELECT n FROM task_handbacks WHERE task_id = $1 AND seq = $2::bigint",
                                     2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            n = atoi(PQgetvalue(res, 0, 0));
        else if (PQresultStatus(res) != PGRES_TUPLES_OK)
            jet_warn("hand-back lookup of task %s: %s", t->id, PQresultErrorMessage(res));
        PQclear(res);
    }
    pthread_mutex_unlock(&rec->query_mu);
    return n;
}
