/* The leader's work (DESIGN §5): fencing the epoch in PostgreSQL, firing due
 * schedules (misfire and overlap policies), queueing due delayed tasks,
 * publishing, and the reconciler (redispatch + history retention).
 *
 * Every write happens in a transaction that first takes
 * `SELECT epoch FROM scheduler_epoch FOR SHARE` and compares it with the
 * epoch this process fenced; a newer leader's `UPDATE scheduler_epoch`
 * waits for (or follows) that transaction, so a stale leader can never
 * commit a fire. Publishing happens after COMMIT; a failed publish is left to
 * the reconciler (the PostgreSQL row is the truth, the task id is the
 * Nats-Msg-Id). */
#include "cron.h"
#include "publish.h"
#include "schedulerd.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/natsconn.h>
#include <jetsched/pgconn.h>
#include <jetsched/retention.h>
#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRE_BATCH 500      /* due schedules per transaction */
#define DELAYED_BATCH 200   /* delayed tasks per transaction */
#define REDISPATCH_BATCH 200
#define FIRE_ALL_CAP 1000   /* fire_all fires of one schedule per transaction */
#define PRUNE_EVERY_MS (60 * 60 * 1000)

static PGconn *pg;
static jet_metric *m_fires, *m_lag, *m_reconciled, *m_delayed, *m_misfires, *m_publish_fail;
static int64_t last_prune_mono = -1, next_reconcile_mono;
static int64_t pg_warned_mono = -1;

/* ---------------- schedule cache ---------------- */

typedef struct cached_sched {
    struct cached_sched *next;
    char *id, *kind, *spec, *tz;
    jet_sched *s;
} cached_sched;

#define CACHE_BUCKETS 4096
static cached_sched *cache[CACHE_BUCKETS];

static unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void cache_free_entry(cached_sched *c)
{
    jet_sched_free(c->s);
    free(c->id);
    free(c->kind);
    free(c->spec);
    free(c->tz);
    free(c);
}

/* The parsed schedule for (id, kind, spec, tz), parsed once and reused. */
static const jet_sched *sched_get(const char *id, const char *kind, const char *spec, const char *tz, jet_err *err)
{
    unsigned b = hash_str(id) % CACHE_BUCKETS;
    cached_sched **pp = &cache[b];
    for (cached_sched *c = *pp; c; pp = &c->next, c = c->next) {
        if (strcmp(c->id, id) != 0)
            continue;
        if (!strcmp(c->kind, kind) && !strcmp(c->spec, spec) && !strcmp(c->tz, tz))
            return c->s;
        *pp = c->next; /* changed: drop and re-parse */
        cache_free_entry(c);
        break;
    }
    jet_sched *js = NULL;
    if (jet_sched_parse(kind, spec, tz, id, &js, err) != JET_OK)
        return NULL;
    cached_sched *c = calloc(1, sizeof *c);
    c->id = strdup(id);
    c->kind = strdup(kind);
    c->spec = strdup(spec);
    c->tz = strdup(tz);
    c->s = js;
    c->next = cache[b];
    cache[b] = c;
    return js;
}

static void cache_clear(void)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        while (cache[i]) {
            cached_sched *c = cache[i];
            cache[i] = c->next;
            cache_free_entry(c);
        }
    }
}

/* ---------------- PostgreSQL helpers ---------------- */

static bool pg_ready(sched *s)
{
    if (pg && PQstatus(pg) == CONNECTION_OK) {
        atomic_store(&s->pg_ok, true);
        return true;
    }
    if (pg) {
        PQfinish(pg);
        pg = NULL;
    }
    jet_err err = {0};
    if (jet_pg_connect(s->cfg, "schedulerd", &pg, &err) != JET_OK) {
        if (pg_warned_mono < 0 || jet_mono_ms() - pg_warned_mono > 10000) {
            jet_warn("PostgreSQL unavailable: %s", err.msg);
            pg_warned_mono = jet_mono_ms();
        }
        pg = NULL;
        atomic_store(&s->pg_ok, false);
        return false;
    }
    jet_info("PostgreSQL connected");
    atomic_store(&s->pg_ok, true);
    return true;
}

/* Runs sql; returns the result when its status is OK (tuples or command),
 * else logs, clears and returns NULL. */
static PGresult *q(sched *s, const char *what, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    jet_err err;
    jet_pg_err(&err, pg, r, what);
    jet_warn("%s", err.msg);
    PQclear(r);
    if (PQstatus(pg) != CONNECTION_OK)
        atomic_store(&s->pg_ok, false);
    return NULL;
}

static bool exec_ok(sched *s, const char *what, const char *sql)
{
    PGresult *r = q(s, what, sql, 0, NULL);
    PQclear(r);
    return r != NULL;
}

static void rollback(sched *s)
{
    if (PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) != PQTRANS_IDLE)
        exec_ok(s, "rollback", "ROLLBACK");
}

static void step_down(sched *s, const char *why)
{
    uint64_t e = atomic_exchange(&s->epoch, 0);
    if (e != 0)
        jet_warn("leader: %s; stepping down (epoch %llu)", why, (unsigned long long)e);
}

/* BEGIN + the fence: the epoch row FOR SHARE must hold our epoch. */
static bool begin_fenced(sched *s, uint64_t epoch)
{
    if (!election_holds(s, NULL)) {
        step_down(s, "lease deadline passed before a transaction");
        return false;
    }
    if (!exec_ok(s, "begin", "BEGIN"))
        return false;
    PGresult *r = q(s, "fence check", "SELECT epoch, coalesce(holder, '') FROM scheduler_epoch FOR SHARE", 0, NULL);
    if (!r || PQntuples(r) != 1) {
        PQclear(r);
        rollback(s);
        return false;
    }
    uint64_t cur = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (cur != epoch) {
        char why[512];
        snprintf(why, sizeof why,
                 "fenced: the PostgreSQL epoch is %llu (holder \"%s\"), ours is %llu: a newer leader was elected",
                 (unsigned long long)cur, PQgetvalue(r, 0, 1), (unsigned long long)epoch);
        PQclear(r);
        rollback(s);
        step_down(s, why);
        atomic_store(&s->abdicate, true);
        return false;
    }
    PQclear(r);
    return true;
}

static bool commit_fenced(sched *s)
{
    if (!election_holds(s, NULL)) {
        rollback(s);
        step_down(s, "lease deadline passed during a transaction (rolled back)");
        return false;
    }
    if (!exec_ok(s, "commit", "COMMIT")) {
        rollback(s);
        return false;
    }
    return true;
}

/* Writes our KV revision as the epoch: UPDATE ... WHERE epoch < $rev. */
static bool claim_epoch(sched *s, uint64_t rev)
{
    char rs[32];
    snprintf(rs, sizeof rs, "%llu", (unsigned long long)rev);
    const char *p[] = {rs, s->id};
    PGresult *r = q(s, "claim epoch",
                    "UPDATE scheduler_epoch SET epoch = $1, holder = $2, updated_at = now() WHERE epoch < $1", 2, p);
    if (!r)
        return false;
    bool won = atoi(PQcmdTuples(r)) == 1;
    PQclear(r);
    if (!won) {
        r = q(s, "read epoch", "SELECT epoch, coalesce(holder, '') FROM scheduler_epoch", 0, NULL);
        if (!r)
            return false;
        bool ours = PQntuples(r) == 1 && strtoull(PQgetvalue(r, 0, 0), NULL, 10) == rev &&
                    strcmp(PQgetvalue(r, 0, 1), s->id) == 0;
        if (!ours) {
            jet_warn("leader: won KV revision %llu but PostgreSQL already has epoch %s (holder \"%s\"): a newer "
                     "leader exists (or the KV bucket was recreated); not acting, stepping down",
                     (unsigned long long)rev, PQntuples(r) ? PQgetvalue(r, 0, 0) : "?",
                     PQntuples(r) ? PQgetvalue(r, 0, 1) : "?");
            PQclear(r);
            atomic_store(&s->abdicate, true);
            return false;
        }
        PQclear(r);
    }
    atomic_store(&s->epoch, rev);
    jet_info("leader: acting with epoch %llu (fenced in PostgreSQL)", (unsigned long long)rev);
    return true;
}

/* ---------------- publishing ---------------- */

/* Publishes one row (PUB_COLS) and observes the fire lag. Returns 1 stored,
 * 0 failed, -1 dropped as a duplicate by the stream's duplicate window. */
static int publish_row(sched *s, PGresult *r, int i, bool redispatch)
{
    int64_t fire_ms = -1;
    int result = sched_publish_row(s, r, i, redispatch, &fire_ms);
    if (result == 1 && fire_ms > 0 && !redispatch) {
        int64_t lag = jet_now_ms() - fire_ms;
        jet_metric_observe(m_lag, NULL, (double)(lag > 0 ? lag : 0));
    }
    if (result == 0)
        jet_metric_add(m_publish_fail, NULL, 1);
    return result;
}

/* Growing text[] literal of task ids ({a,b,c}); ids need no quoting. */
typedef struct idlist {
    char *buf;
    size_t len, cap, n;
} idlist;

static void idlist_add(idlist *l, const char *id)
{
    size_t need = l->len + strlen(id) + 3;
    if (need > l->cap) {
        l->cap = need * 2 + 256;
        l->buf = realloc(l->buf, l->cap);
    }
    l->len += (size_t)sprintf(l->buf + l->len, "%s%s", l->n ? "," : "{", id);
    l->n++;
}

static const char *idlist_lit(idlist *l)
{
    if (!l->n)
        return "{}";
    l->buf[l->len] = '}';
    l->buf[l->len + 1] = '\0';
    return l->buf;
}

/* Publishes every row and records dispatched_at for those stored. Returns
 * how many were stored. */
static size_t publish_result(sched *s, PGresult *r, bool redispatch)
{
    idlist ok = {0};
    int dups = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int rc = publish_row(s, r, i, redispatch);
        if (rc == 1)
            idlist_add(&ok, PQgetvalue(r, i, 0));
        else if (rc < 0)
            dups++;
    }
    if (dups && redispatch)
        jet_info("reconciler: %d republished task(s) were dropped by the stream's duplicate window "
                 "(jetstream.duplicate_window); they are retried after it", dups);
    else if (dups)
        jet_info("%d task(s) were already in the stream (duplicate window)", dups);
    size_t n = ok.n;
    if (n) {
        const char *p[] = {idlist_lit(&ok)};
        PQclear(q(s, "record dispatched_at",
                  "UPDATE tasks SET dispatched_at = now() WHERE id = ANY($1::text[]) AND status = 'queued'", 1, p));
    }
    free(ok.buf);
    return n;
}

/* ---------------- fires ---------------- */

typedef struct due_row {
    const char *id, *kind, *spec, *tz, *misfire, *overlap;
    int64_t next_ms, now_ms, window_ms;
} due_row;

/* Inserts one fire (status queued or skipped). Returns 1 inserted, 0 already
 * there, -1 error. */
static int insert_fire(sched *s, const due_row *d, int64_t t, const char *status, const char *error,
                       const char *epoch, idlist *fired)
{
    char tid[JET_TASK_ID_MAX + 8], ts[32];
    snprintf(tid, sizeof tid, "%s-%" PRId64, d->id, t);
    snprintf(ts, sizeof ts, "%" PRId64, t);
    const char *p[] = {tid, status, ts, epoch, s->id, error, d->id};
    PGresult *r = q(s, "insert fire",
                    "INSERT INTO tasks (id, queue, handler, priority, status, max_attempts, payload, headers,"
                    " scheduled_for, schedule_id, fire_epoch, fired_by, finished_at, error)"
                    " SELECT $1, sc.queue, sc.handler, sc.priority, $2, sc.max_attempts, sc.payload, sc.headers,"
                    " to_timestamp($3::double precision / 1000), sc.id, $4::bigint, $5,"
                    " CASE WHEN $2 = 'skipped' THEN now() END, $6"
                    " FROM schedules sc WHERE sc.id = $7"
                    " ON CONFLICT (id) DO NOTHING RETURNING id",
                    7, p);
    if (!r)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    if (n == 1 && strcmp(status, "queued") == 0)
        idlist_add(fired, tid);
    if (n == 1)
        jet_metric_add(m_fires, (const char *[]){status}, 1);
    return n;
}

/* The previous run of the schedule that is not finished, for overlap=forbid. */
static bool unfinished_run(sched *s, const char *schedule_id, char *out, size_t len)
{
    const char *p[] = {schedule_id};
    PGresult *r = q(s, "overlap check",
                    "SELECT id FROM tasks WHERE schedule_id = $1 AND status IN ('scheduled', 'queued', 'running',"
                    " 'retrying') LIMIT 1",
                    1, p);
    bool busy = r && PQntuples(r) > 0;
    if (busy)
        snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return busy;
}

static int emit(sched *s, const due_row *d, int64_t t, const char *epoch, idlist *fired)
{
    if (strcmp(d->overlap, "forbid") == 0) {
        char prev[JET_TASK_ID_MAX + 1] = "", why[300];
        if (unfinished_run(s, d->id, prev, sizeof prev)) {
            snprintf(why, sizeof why, "overlap forbidden: the previous run %s is not finished", prev);
            return insert_fire(s, d, t, "skipped", why, epoch, fired);
        }
    }
    return insert_fire(s, d, t, "queued", NULL, epoch, fired);
}

/* Processes one due schedule inside the fenced transaction. Returns false on
 * a database error (the caller rolls back). */
static bool fire_schedule(sched *s, const due_row *d, const char *epoch, idlist *fired)
{
    jet_err err = {0};
    const jet_sched *js = sched_get(d->id, d->kind, d->spec, d->tz, &err);
    if (!js) {
        jet_error("schedule %s: %s; it will not fire again until it is fixed (next_fire_at cleared)", d->id,
                  err.msg);
        const char *p[] = {d->id};
        PGresult *r = q(s, "disable schedule",
                        "UPDATE schedules SET next_fire_at = NULL, updated_at = now() WHERE id = $1", 1, p);
        PQclear(r);
        return r != NULL;
    }
    int64_t now = d->now_ms, threshold = atomic_load(&s->misfire_ms);
    int64_t window = d->window_ms > threshold ? d->window_ms : threshold;
    bool fire_all = !strcmp(d->misfire, "fire_all"), fire_once = !strcmp(d->misfire, "fire_once");
    int64_t t = d->next_ms, last_fired = -1, dropped_before = -1;
    /* Fires older than the window are dropped for every policy: jump. */
    if (t >= 0 && now - t > window) {
        dropped_before = t;
        t = jet_sched_next(js, now - window - 1);
    }
    int64_t latest_missed = -1;
    long missed = 0, fired_n = 0;
    for (long iter = 0; t >= 0 && t <= now; iter++) {
        if (fire_all && fired_n >= FIRE_ALL_CAP)
            break; /* the rest next tick */
        if (iter > 10000000)
            break;
        bool is_missed = now - t > threshold;
        if (!is_missed || fire_all) {
            int rc = emit(s, d, t, epoch, fired);
            if (rc < 0)
                return false;
            last_fired = t;
            fired_n++;
        } else {
            missed++;
            latest_missed = t;
        }
        if (is_missed)
            jet_metric_add(m_misfires, (const char *[]){d->misfire}, 1);
        int64_t nx = jet_sched_next(js, t);
        if (fire_once && latest_missed >= 0 && (nx < 0 || now - nx <= threshold || nx > now)) {
            /* the last missed fire: one catch-up run for all of them */
            int rc = emit(s, d, latest_missed, epoch, fired);
            if (rc < 0)
                return false;
            if (latest_missed > last_fired)
                last_fired = latest_missed;
            latest_missed = -1;
        }
        t = nx;
    }
    if (dropped_before >= 0)
        jet_info("schedule %s: fires from %lld ms before now are older than the catch-up window and were dropped",
                 d->id, (long long)(now - dropped_before));
    if (missed && !fire_all)
        jet_info("schedule %s: %ld missed fire(s) inside the catch-up window, policy %s", d->id, missed,
                 d->misfire);
    char next[32], last[32];
    snprintf(next, sizeof next, "%" PRId64, t);
    snprintf(last, sizeof last, "%" PRId64, last_fired);
    const char *p[] = {d->id, t >= 0 ? next : NULL, last_fired >= 0 ? last : NULL};
    PGresult *r = q(s, "advance schedule",
                    "UPDATE schedules SET next_fire_at = to_timestamp($2::double precision / 1000),"
                    " last_fire_at = coalesce(to_timestamp($3::double precision / 1000), last_fire_at),"
                    " updated_at = now() WHERE id = $1",
                    3, p);
    PQclear(r);
    return r != NULL;
}

/* One transaction over up to FIRE_BATCH due schedules. Returns the number
 * of due schedules seen (FIRE_BATCH: there may be more), -1 on error. */
static int fire_due(sched *s, uint64_t epoch)
{
    if (!begin_fenced(s, epoch))
        return -1;
    char def_window[32], lim[16], es[32];
    snprintf(def_window, sizeof def_window, "%lld", (long long)atomic_load(&s->catchup_ms));
    snprintf(lim, sizeof lim, "%d", FIRE_BATCH);
    snprintf(es, sizeof es, "%llu", (unsigned long long)epoch);
    const char *p[] = {def_window, lim};
    PGresult *r = q(s, "select due schedules",
                    "SELECT id, kind, spec, tz, misfire, overlap,"
                    " (extract(epoch from next_fire_at) * 1000)::bigint,"
                    " (extract(epoch from now()) * 1000)::bigint,"
                    " coalesce((extract(epoch from catchup_window) * 1000)::bigint, $1::bigint)"
                    " FROM schedules WHERE NOT paused AND next_fire_at <= now()"
                    " ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                    2, p);
    if (!r) {
        rollback(s);
        return -1;
    }
    int n = PQntuples(r);
    idlist fired = {0};
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        due_row d = {
            .id = PQgetvalue(r, i, 0), .kind = PQgetvalue(r, i, 1), .spec = PQgetvalue(r, i, 2),
            .tz = PQgetvalue(r, i, 3), .misfire = PQgetvalue(r, i, 4), .overlap = PQgetvalue(r, i, 5),
            .next_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10), .now_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10),
            .window_ms = strtoll(PQgetvalue(r, i, 8), NULL, 10),
        };
        ok = fire_schedule(s, &d, es, &fired);
    }
    PQclear(r);
    if (!ok || !commit_fenced(s)) {
        rollback(s);
        free(fired.buf);
        return -1;
    }
    if (fired.n) {
        const char *pp[] = {idlist_lit(&fired)};
        PGresult *tr = q(s, "load fired tasks",
                         "SELECT " PUB_COLS " FROM tasks t WHERE t.id = ANY($1::text[]) AND t.status = 'queued'"
                         " ORDER BY t.scheduled_for",
                         1, pp);
        if (tr)
            publish_result(s, tr, false);
        PQclear(tr);
    }
    free(fired.buf);
    return n;
}

/* ---------------- delayed tasks ---------------- */

static int queue_delayed(sched *s, uint64_t epoch)
{
    if (!begin_fenced(s, epoch))
        return -1;
    char es[32], lim[16];
    snprintf(es, sizeof es, "%llu", (unsigned long long)epoch);
    snprintf(lim, sizeof lim, "%d", DELAYED_BATCH);
    const char *p[] = {es, s->id, lim};
    PGresult *r = q(s, "queue due delayed tasks",
                    "WITH due AS (SELECT id FROM tasks WHERE status = 'scheduled' AND scheduled_for <= now()"
                    " ORDER BY scheduled_for LIMIT $3 FOR UPDATE SKIP LOCKED)"
                    " UPDATE tasks t SET status = 'queued', updated_at = now(), fire_epoch = $1::bigint,"
                    " fired_by = $2 FROM due WHERE t.id = due.id RETURNING " PUB_COLS,
                    3, p);
    if (!r) {
        rollback(s);
        return -1;
    }
    if (!commit_fenced(s)) {
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    if (n) {
        jet_metric_add(m_delayed, NULL, n);
        publish_result(s, r, false);
    }
    PQclear(r);
    return n;
}

/* ---------------- reconciler ---------------- */

static void reconcile(sched *s, uint64_t epoch)
{
    char after[32], lim[16];
    snprintf(after, sizeof after, "%lld", (long long)atomic_load(&s->redispatch_ms));
    snprintf(lim, sizeof lim, "%d", REDISPATCH_BATCH);
    size_t total = 0;
    for (int round = 0; round < 50 && !atomic_load(&s->stop); round++) {
        if (!begin_fenced(s, epoch))
            return;
        const char *p[] = {after, lim};
        /* Claiming the rows (dispatched_at = now()) inside the fenced
         * transaction keeps two leaders from republishing the same rows and
         * moves them out of the next round. */
        PGresult *r = q(s, "select stale queued tasks",
                        "WITH stale AS (SELECT id FROM tasks WHERE status = 'queued'"
                        " AND (coalesce(dispatched_at, created_at) < now() - $1::bigint * interval '1 millisecond'"
                        " OR (dispatched_at IS NULL AND updated_at < now() - interval '2 seconds'))"
                        " ORDER BY coalesce(dispatched_at, created_at) LIMIT $2 FOR UPDATE SKIP LOCKED)"
                        " UPDATE tasks t SET dispatched_at = now() FROM stale WHERE t.id = stale.id"
                        " RETURNING " PUB_COLS,
                        2, p);
        if (!r) {
            rollback(s);
            return;
        }
        if (!commit_fenced(s)) {
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
        idlist failed = {0};
        for (int i = 0; i < n; i++) {
            int rc = publish_row(s, r, i, true);
            if (rc < 0) {
                /* Inside the stream's duplicate window: the stream still
                 * has (or had) it. Retried after redispatch_after. */
                dups++;
            } else if (rc == 1) {
                stored++;
                jet_info("reconciler: republished task %s (queued and not started, or never published)",
                         PQgetvalue(r, i, 0));
            } else {
                idlist_add(&failed, PQgetvalue(r, i, 0));
            }
        }
        if (dups)
            jet_info("reconciler: %d republished task(s) were dropped as duplicates (inside "
                     "jetstream.duplicate_window); retried after reconcile.redispatch_after", dups);
        if (failed.n) {
            /* Not published (NATS down): try again at the next reconcile
             * run rather than after redispatch_after. */
            const char *fp[] = {idlist_lit(&failed)};
            PQclear(q(s, "unclaim", "UPDATE tasks SET dispatched_at = NULL WHERE id = ANY($1::text[])"
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
        if (jet_retention_prune(pg, atomic_load(&s->retention_ms), 1000, (volatile const bool *)&s->stop, 5000,
                                &res, &err) != JET_OK)
            jet_warn("history retention: %s", err.msg);
        else if (res.tasks)
            jet_info("history retention: pruned %lld finished task(s) in %lld batch(es)%s", (long long)res.tasks,
                     (long long)res.batches, res.complete ? "" : "; more next time");
        if (!res.complete)
            last_prune_mono = jet_mono_ms() - PRUNE_EVERY_MS + atomic_load(&s->reconcile_ms) * 6;
    }
}

/* ---------------- the worker loop ---------------- */

static void *worker_main(void *arg)
{
    sched *s = arg;
    uint64_t refused_rev = 0;
    while (!atomic_load(&s->stop)) {
        jet_sleep_ms(atomic_load(&s->tick_ms));
        uint64_t rev = 0;
        if (!election_holds(s, &rev)) {
            if (rev != 0)
                step_down(s, "lease deadline passed without a successful renewal");
            else
                step_down(s, "leadership lost in the election");
            continue;
        }
        if (!pg_ready(s))
            continue;
        if (rev == refused_rev)
            continue; /* fenced out with this revision; the election thread lets it go */
        if (atomic_load(&s->epoch) != rev) {
            atomic_store(&s->epoch, 0);
            if (!claim_epoch(s, rev)) {
                if (atomic_load(&s->abdicate))
                    refused_rev = rev;
                continue;
            }
            next_reconcile_mono = jet_mono_ms() + atomic_load(&s->reconcile_ms);
        }
        /* Fires: drain the due set (bounded per tick). */
        int64_t until = jet_mono_ms() + 2000;
        int n;
        do
            n = fire_due(s, rev);
        while (n == FIRE_BATCH && jet_mono_ms() < until && !atomic_load(&s->stop));
        if (atomic_load(&s->epoch) != rev) {
            if (atomic_load(&s->abdicate))
                refused_rev = rev;
            continue;
        }
        do
            n = queue_delayed(s, rev);
        while (n == DELAYED_BATCH && jet_mono_ms() < until && !atomic_load(&s->stop));
        if (atomic_load(&s->epoch) != rev) {
            if (atomic_load(&s->abdicate))
                refused_rev = rev;
            continue;
        }
        if (jet_mono_ms() >= next_reconcile_mono) {
            reconcile(s, rev);
            if (atomic_load(&s->abdicate))
                refused_rev = rev;
            next_reconcile_mono = jet_mono_ms() + atomic_load(&s->reconcile_ms);
        }
    }
    return NULL;
}

void firer_metrics_init(sched *s)
{
    (void)s;
    m_fires = jet_metric_counter("jetsched_scheduler_fires_total",
                                 "Schedule fires recorded by this leader (status queued or skipped).", "status");
    m_lag = jet_metric_histogram("jetsched_scheduler_fire_lag_seconds",
                                 "Publish time minus scheduled fire time of fired and delayed tasks.", NULL);
    m_reconciled = jet_metric_counter("jetsched_scheduler_reconciled_total",
                                      "Queued tasks republished by the reconciler.", NULL);
    m_delayed = jet_metric_counter("jetsched_scheduler_delayed_queued_total",
                                   "Delayed tasks moved from scheduled to queued.", NULL);
    m_misfires = jet_metric_counter("jetsched_scheduler_misfires_total",
                                    "Fire times found later than scheduler.misfire_threshold, by policy.", "policy");
    m_publish_fail = jet_metric_counter("jetsched_scheduler_publish_failures_total",
                                        "Publishes that failed after retries (left to the reconciler).", NULL);
}

jet_status worker_start(sched *s, jet_err *err)
{
    if (pthread_create(&s->worker_thread, NULL, worker_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the scheduler thread");
    return JET_OK;
}

void worker_stop(sched *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->worker_thread, NULL);
    if (atomic_load(&s->epoch))
        jet_info("leader: stopped acting (shutdown)");
    atomic_store(&s->epoch, 0);
    if (pg)
        PQfinish(pg);
    pg = NULL;
    cache_clear();
}
