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
#include <time.h>

#define FIRE_BATCH 500      /* due schedules per transaction */
#define DELAYED_BATCH 500   /* delayed tasks per transaction */
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

/* Publishes one row (PUB_COLS) synchronously (the reconciler). Returns 1
 * stored, 0 failed, -1 dropped as a duplicate by the stream's duplicate
 * window. */
static int publish_row(sched *s, PGresult *r, int i)
{
    int64_t fire_ms = -1;
    int result = sched_publish_row(s, r, i, true, &fire_ms);
    if (result == 0)
        jet_metric_add(m_publish_fail, NULL, 1);
    return result;
}

/* Growing PostgreSQL array literal ({"a","b",NULL}); every element quoted. */
typedef struct pgarr {
    char *buf;
    size_t len, cap, n;
} pgarr;

static void pgarr_add(pgarr *a, const char *v)
{
    size_t need = a->len + (v ? 2 * strlen(v) + 3 : 5) + 3;
    if (need > a->cap) {
        a->cap = need * 2 + 256;
        a->buf = realloc(a->buf, a->cap);
    }
    a->buf[a->len++] = a->n++ ? ',' : '{';
    if (!v) {
        memcpy(a->buf + a->len, "NULL", 4);
        a->len += 4;
        return;
    }
    a->buf[a->len++] = '"';
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = *v;
    }
    a->buf[a->len++] = '"';
}

/* v < 0 is NULL (no time). */
static void pgarr_add_ms(pgarr *a, int64_t v)
{
    char t[32];
    snprintf(t, sizeof t, "%" PRId64, v);
    pgarr_add(a, v >= 0 ? t : NULL);
}

static const char *pgarr_lit(pgarr *a)
{
    if (!a->n)
        return "{}";
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    return a->buf;
}

/* The outcome of a set of asynchronous publishes: the fire-lag histogram,
 * dispatched_at of the stored ones (one statement), the failures counted
 * (their rows stay dispatched_at NULL: the reconciler republishes them). */
static void publish_finish(sched *s, sched_pubset *ps)
{
    if (!ps->n)
        return;
    sched_pubset_finish(ps);
    pgarr ok = {0};
    int dups = 0, failed = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const sched_pub_item *it = &ps->items[i];
        if (it->result == 1) {
            pgarr_add(&ok, it->id);
            if (it->fire_ms > 0 && !it->redispatch) {
                int64_t lag = it->acked_ms - it->fire_ms;
                jet_metric_observe(m_lag, NULL, (double)(lag > 0 ? lag : 0));
            }
        } else if (it->result < 0) {
            dups++;
        } else {
            failed++;
        }
    }
    if (failed)
        jet_metric_add(m_publish_fail, NULL, failed);
    if (dups)
        jet_info("%d task(s) were already in the stream (duplicate window)", dups);
    if (ok.n) {
        const char *p[] = {pgarr_lit(&ok)};
        PQclear(q(s, "record dispatched_at",
                  "UPDATE tasks SET dispatched_at = now() WHERE id = ANY($1::text[]) AND status = 'queued'", 1, p));
    }
    free(ok.buf);
    sched_pubset_free(ps);
    sched_pubset_init(ps, s);
}

/* ---------------- fires ---------------- */

/* One fire transaction: the fires of up to FIRE_BATCH due schedules (and at
 * most about FIRE_TX_FIRES fire rows) are computed in C, then written with
 * one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING and one
 * UPDATE ... FROM unnest(...) of the schedules. */
#define FIRE_TX_FIRES 5000

typedef struct fire_ev {
    int64_t t;
    int sched; /* index of its due row */
} fire_ev;

typedef struct due_row {
    const char *id, *kind, *spec, *tz, *misfire, *overlap;
    int64_t next_ms, now_ms, window_ms;
    int64_t new_next, last_fired;
    bool forbid, disabled;
    char busy[JET_TASK_ID_MAX + 32]; /* overlap=forbid: an unfinished run ("": none) */
} due_row;

typedef struct fire_plan {
    fire_ev *ev;
    size_t n, cap;
} fire_plan;

static void plan_add(fire_plan *pl, int sched_idx, int64_t t)
{
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? pl->cap * 2 : 1024;
        pl->ev = realloc(pl->ev, pl->cap * sizeof *pl->ev);
    }
    pl->ev[pl->n++] = (fire_ev){.t = t, .sched = sched_idx};
}

/* The fire times of one due schedule, in the order they are recorded
 * (misfire policies and the catch-up window), its next fire time and its
 * last fire time: the computation of DESIGN §5 in C (cron.h). */
static void plan_schedule(sched *s, due_row *d, int idx, fire_plan *pl)
{
    jet_err err = {0};
    const jet_sched *js = sched_get(d->id, d->kind, d->spec, d->tz, &err);
    d->last_fired = -1;
    if (!js) {
        jet_error("schedule %s: %s; it will not fire again until it is fixed (next_fire_at cleared)", d->id,
                  err.msg);
        d->disabled = true;
        d->new_next = -1;
        return;
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
            plan_add(pl, idx, t);
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
            plan_add(pl, idx, latest_missed);
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
    d->new_next = t;
    d->last_fired = last_fired;
}

static void fire_id(char *out, size_t len, const char *schedule_id, int64_t t)
{
    snprintf(out, len, "%s-%" PRId64, schedule_id, t);
}

/* overlap=forbid: one query for all forbid schedules of the batch: an
 * unfinished run of each, and which of their planned fire ids already exist
 * (an existing id is not inserted again, so it does not make the schedule
 * busy). Then, fire by fire in order, a fire of a busy schedule is recorded
 * as skipped and a queued fire makes it busy: what one overlap check per
 * fire in the transaction gave. status[k] gets "queued"/"skipped" (NULL:
 * not forbid, queued), why[k] the skip reason. Returns false on a database
 * error. */
static bool plan_overlap(sched *s, due_row *rows, int nrows, const fire_plan *pl, const char **status,
                         char **why)
{
    pgarr sids = {0}, fids = {0};
    char tid[JET_TASK_ID_MAX + 32];
    for (int i = 0; i < nrows; i++)
        if (rows[i].forbid && !rows[i].disabled)
            pgarr_add(&sids, rows[i].id);
    for (size_t k = 0; k < pl->n; k++)
        if (rows[pl->ev[k].sched].forbid) {
            fire_id(tid, sizeof tid, rows[pl->ev[k].sched].id, pl->ev[k].t);
            pgarr_add(&fids, tid);
        }
    if (!fids.n) {
        free(sids.buf);
        return true;
    }
    const char *p[] = {pgarr_lit(&sids), pgarr_lit(&fids)};
    PGresult *r = q(s, "overlap check",
                    "SELECT schedule_id, id, status IN ('scheduled', 'queued', 'running', 'retrying') FROM tasks"
                    " WHERE (schedule_id = ANY($1::text[]) AND status IN ('scheduled', 'queued', 'running',"
                    " 'retrying')) OR id = ANY($2::text[])",
                    2, p);
    free(sids.buf);
    free(fids.buf);
    if (!r)
        return false;
    int nr = PQntuples(r);
    /* the schedules' current unfinished runs */
    for (int j = 0; j < nr; j++) {
        if (PQgetvalue(r, j, 2)[0] != 't')
            continue;
        for (int i = 0; i < nrows; i++)
            if (rows[i].forbid && !rows[i].busy[0] && !strcmp(rows[i].id, PQgetvalue(r, j, 0)))
                snprintf(rows[i].busy, sizeof rows[i].busy, "%s", PQgetvalue(r, j, 1));
    }
    for (size_t k = 0; k < pl->n; k++) {
        due_row *d = &rows[pl->ev[k].sched];
        if (!d->forbid)
            continue;
        fire_id(tid, sizeof tid, d->id, pl->ev[k].t);
        if (d->busy[0]) {
            status[k] = "skipped";
            why[k] = malloc(strlen(d->busy) + 64);
            sprintf(why[k], "overlap forbidden: the previous run %s is not finished", d->busy);
            continue;
        }
        status[k] = "queued";
        bool exists = false;
        for (int j = 0; j < nr && !exists; j++)
            exists = !strcmp(PQgetvalue(r, j, 1), tid);
        if (!exists) /* inserted queued now: unfinished for the next fires of d */
            snprintf(d->busy, sizeof d->busy, "%s", tid);
    }
    PQclear(r);
    return true;
}

/* One transaction over up to FIRE_BATCH due schedules. Returns the number
 * of due schedules seen, -1 on error; *more when there may be more due now.
 * The committed fires are handed to ps (published asynchronously). */
static int fire_due(sched *s, uint64_t epoch, sched_pubset *ps, bool *more)
{
    *more = false;
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
    int n = PQntuples(r), taken = 0;
    due_row *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
    fire_plan pl = {0};
    for (int i = 0; i < n; i++) {
        if (pl.n >= FIRE_TX_FIRES) {
            *more = true; /* the rest (still due, unchanged) in the next transaction */
            break;
        }
        due_row *d = &rows[i];
        *d = (due_row){
            .id = PQgetvalue(r, i, 0), .kind = PQgetvalue(r, i, 1), .spec = PQgetvalue(r, i, 2),
            .tz = PQgetvalue(r, i, 3), .misfire = PQgetvalue(r, i, 4), .overlap = PQgetvalue(r, i, 5),
            .next_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10), .now_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10),
            .window_ms = strtoll(PQgetvalue(r, i, 8), NULL, 10),
        };
        d->forbid = !strcmp(d->overlap, "forbid");
        plan_schedule(s, d, i, &pl);
        taken++;
    }
    if (n == FIRE_BATCH)
        *more = true;
    const char **status = calloc(pl.n ? pl.n : 1, sizeof *status);
    char **why = calloc(pl.n ? pl.n : 1, sizeof *why);
    bool ok = plan_overlap(s, rows, taken, &pl, status, why);
    PGresult *ins = NULL;
    if (ok && pl.n) {
        pgarr ids = {0}, sids = {0}, ts = {0}, sts = {0}, errs = {0};
        char tid[JET_TASK_ID_MAX + 32];
        for (size_t k = 0; k < pl.n; k++) {
            const due_row *d = &rows[pl.ev[k].sched];
            fire_id(tid, sizeof tid, d->id, pl.ev[k].t);
            pgarr_add(&ids, tid);
            pgarr_add(&sids, d->id);
            pgarr_add_ms(&ts, pl.ev[k].t);
            bool skipped = status[k] && !strcmp(status[k], "skipped");
            pgarr_add(&sts, skipped ? "skipped" : "queued");
            pgarr_add(&errs, skipped ? why[k] : NULL);
        }
        const char *ip[] = {pgarr_lit(&ids), pgarr_lit(&sids), pgarr_lit(&ts), pgarr_lit(&sts), pgarr_lit(&errs),
                            es, s->id};
        ins = q(s, "insert fires",
                "INSERT INTO tasks AS t (id, queue, handler, priority, status, max_attempts, payload, headers,"
                " scheduled_for, schedule_id, fire_epoch, fired_by, finished_at, error)"
                " SELECT f.id, sc.queue, sc.handler, sc.priority, f.status, sc.max_attempts, sc.payload, sc.headers,"
                " to_timestamp(f.t::double precision / 1000), sc.id, $6::bigint, $7,"
                " CASE WHEN f.status = 'skipped' THEN now() END, f.error"
                " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY"
                " AS f(id, sid, t, status, error, ord) JOIN schedules sc ON sc.id = f.sid ORDER BY f.ord"
                " ON CONFLICT (id) DO NOTHING RETURNING " PUB_COLS ", t.status",
                7, ip);
        ok = ins != NULL;
        free(ids.buf);
        free(sids.buf);
        free(ts.buf);
        free(sts.buf);
        free(errs.buf);
    }
    if (ok && taken) {
        pgarr ids = {0}, nx = {0}, lf = {0};
        for (int i = 0; i < taken; i++) {
            pgarr_add(&ids, rows[i].id);
            pgarr_add_ms(&nx, rows[i].new_next);
            pgarr_add_ms(&lf, rows[i].last_fired);
        }
        const char *up[] = {pgarr_lit(&ids), pgarr_lit(&nx), pgarr_lit(&lf)};
        PGresult *ur = q(s, "advance schedules",
                         "UPDATE schedules sc SET next_fire_at = to_timestamp(u.nx::double precision / 1000),"
                         " last_fire_at = coalesce(to_timestamp(u.lf::double precision / 1000), sc.last_fire_at),"
                         " updated_at = now() FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(id, nx, lf)"
                         " WHERE sc.id = u.id",
                         3, up);
        ok = ur != NULL;
        PQclear(ur);
        free(ids.buf);
        free(nx.buf);
        free(lf.buf);
    }
    for (size_t k = 0; k < pl.n; k++)
        free(why[k]);
    free(why);
    free(status);
    free(pl.ev);
    free(rows);
    PQclear(r);
    if (!ok || !commit_fenced(s)) {
        rollback(s);
        PQclear(ins);
        return -1;
    }
    for (int i = 0; ins && i < PQntuples(ins); i++) {
        const char *st = PQgetvalue(ins, i, 9);
        jet_metric_add(m_fires, (const char *[]){st}, 1);
        if (!strcmp(st, "queued"))
            sched_pubset_add(ps, ins, i, false);
    }
    PQclear(ins);
    return n;
}

/* ---------------- delayed tasks ---------------- */

static int queue_delayed(sched *s, uint64_t epoch, sched_pubset *ps)
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
    if (n)
        jet_metric_add(m_delayed, NULL, n);
    for (int i = 0; i < n; i++)
        sched_pubset_add(ps, r, i, false);
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
        pgarr failed = {0};
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
                pgarr_add(&failed, PQgetvalue(r, i, 0));
            }
        }
        if (dups)
            jet_info("reconciler: %d republished task(s) were dropped as duplicates (inside "
                     "jetstream.duplicate_window); retried after reconcile.redispatch_after", dups);
        if (failed.n) {
            /* Not published (NATS down): try again at the next reconcile
             * run rather than after redispatch_after. */
            const char *fp[] = {pgarr_lit(&failed)};
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

/* Sleeps up to us microseconds; a standby returns early (within 5 ms) when
 * the election thread wins a revision other than refused, so the first
 * batch runs at once. */
static void nap_us(sched *s, int64_t us, uint64_t refused)
{
    int64_t end = jet_mono_ms() * 1000 + us;
    for (;;) {
        if (atomic_load(&s->stop))
            return;
        uint64_t won = 0;
        if (election_holds(s, &won) && won != atomic_load(&s->epoch) && won != refused)
            return; /* a new leadership to claim */
        int64_t left = end - jet_mono_ms() * 1000;
        if (left <= 0)
            return;
        bool acting = atomic_load(&s->epoch) != 0;
        int64_t slice = acting ? left : (left < 5000 ? left : 5000);
        struct timespec ts = {.tv_sec = slice / 1000000, .tv_nsec = (slice % 1000000) * 1000};
        nanosleep(&ts, NULL);
        if (acting)
            return;
    }
}

/* Microseconds until the next due schedule or delayed task, by PostgreSQL's
 * clock (two indexed min() lookups: schedules_due_idx, tasks_due_idx);
 * INT64_MAX when nothing is pending, -1 on error. */
static int64_t next_due_us(sched *s)
{
    PGresult *r = q(s, "next due time",
                    "SELECT (extract(epoch from (SELECT min(next_fire_at) FROM schedules WHERE NOT paused AND"
                    " next_fire_at IS NOT NULL) - clock_timestamp()) * 1000000)::bigint,"
                    " (extract(epoch from (SELECT min(scheduled_for) FROM tasks WHERE status = 'scheduled')"
                    " - clock_timestamp()) * 1000000)::bigint",
                    0, NULL);
    if (!r)
        return -1;
    int64_t best = INT64_MAX;
    for (int c = 0; c < 2 && PQntuples(r) == 1; c++)
        if (!PQgetisnull(r, 0, c)) {
            int64_t v = strtoll(PQgetvalue(r, 0, c), NULL, 10);
            if (v < best)
                best = v;
        }
    PQclear(r);
    return best;
}

static void *worker_main(void *arg)
{
    sched *s = arg;
    uint64_t refused_rev = 0;
    int64_t sleep_us = 0;
    int idle_overdue = 0; /* rounds in a row that found nothing although something was due */
    sched_pubset ps;
    sched_pubset_init(&ps, s);
    while (!atomic_load(&s->stop)) {
        nap_us(s, sleep_us, refused_rev);
        int64_t tick_us = atomic_load(&s->tick_ms) * 1000;
        sleep_us = tick_us;
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
        /* Fires: drain the due set (bounded per round); each committed
         * batch is published asynchronously while the next one is written. */
        int64_t until = jet_mono_ms() + 2000;
        int n, worked = 0;
        bool more = false;
        do {
            n = fire_due(s, rev, &ps, &more);
            worked += n > 0 ? n : 0;
        } while (more && n >= 0 && jet_mono_ms() < until && !atomic_load(&s->stop));
        bool behind = more && n >= 0;
        if (atomic_load(&s->epoch) != rev) {
            publish_finish(s, &ps);
            if (atomic_load(&s->abdicate))
                refused_rev = rev;
            continue;
        }
        do {
            n = queue_delayed(s, rev, &ps);
            worked += n > 0 ? n : 0;
        } while (n == DELAYED_BATCH && jet_mono_ms() < until && !atomic_load(&s->stop));
        behind = behind || n == DELAYED_BATCH;
        publish_finish(s, &ps);
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
        /* Wake at the next due time, at most one tick from now. */
        if (behind) {
            sleep_us = 0;
            continue;
        }
        int64_t due = next_due_us(s);
        if (due < 0 && due != -1)
            due = 0;
        if (due == -1)
            due = tick_us;
        if (due <= 0 && !worked)
            idle_overdue++; /* due but not taken (locked by another transaction?): back off */
        else
            idle_overdue = 0;
        if (idle_overdue)
            due = (int64_t)1000 << (idle_overdue < 10 ? idle_overdue - 1 : 9);
        sleep_us = due < 0 ? 0 : due < tick_us ? due : tick_us;
    }
    publish_finish(s, &ps);
    sched_pubset_free(&ps);
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
    sched_publish_close();
    if (pg)
        PQfinish(pg);
    pg = NULL;
    cache_clear();
}
