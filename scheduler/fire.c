/* Fire planning and publishing (DESIGN §5): the due schedules of a batch,
 * their fire times under the misfire and overlap policies (computed in C
 * with cron.h, parsed schedules cached), the fenced transaction that inserts
 * the fire rows and advances the schedules, the due delayed tasks queued the
 * same way, and the asynchronous publish of what was committed (publish.h)
 * with its outcome recorded (dispatched_at, the fire-lag histogram). The
 * loop that calls them is leader.c. */
#include "cron.h"
#include "leader.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/strmap.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRE_BATCH 500      /* due schedules per transaction */
#define FIRE_ALL_CAP 1000   /* fire_all fires of one schedule per transaction */

static jet_metric *m_fires, *m_lag, *m_delayed, *m_misfires;
static int64_t earliest_planned = INT64_MAX;
jet_metric *leader_m_publish_fail;

/* ---------------- schedule cache ---------------- */

typedef struct cached_sched {
    struct cached_sched *next;
    char *id, *kind, *spec, *tz;
    jet_sched *s;
} cached_sched;

#define CACHE_BUCKETS 4096
static cached_sched *cache[CACHE_BUCKETS];


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
    unsigned b = jet_str_hash(id) % CACHE_BUCKETS;
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

void fire_cache_clear(void)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        while (cache[i]) {
            cached_sched *c = cache[i];
            cache[i] = c->next;
            cache_free_entry(c);
        }
    }
}

/* The outcome of a set of asynchronous publishes: the fire-lag histogram,
 * dispatched_at of the stored ones (one statement), the failures counted
 * (their rows stay dispatched_at NULL: the reconciler republishes them).
 * A message the stream dropped as a duplicate is in the stream already (an
 * earlier publish whose pub-ack timed out, or a predecessor's publish before
 * its scheduled -> queued update): its row is recorded like a stored one, so
 * that the at-due path and the reconciler do not publish it yet again.
 * jetsched_scheduler_delayed_queued_total counts the delayed tasks this
 * statement records as dispatched for the first time (fire_epoch still NULL:
 * published from the plan; the at-due path counts its own rows when it
 * moves them to queued and sets fire_epoch), once per task however often it
 * was published; agentd may already have moved the row on to running. */
void fire_publish_finish(sched *s, sched_pubset *ps)
{
    if (!ps->n)
        return;
    sched_pubset_finish(ps);
    jet_pgarr ok = {0};
    int dups = 0, failed = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const sched_pub_item *it = &ps->items[i];
        if (it->result == 1) {
            jet_pgarr_add(&ok, it->id);
            if (it->fire_ms > 0 && !it->redispatch) {
                int64_t lag = it->acked_ms - it->fire_ms;
                jet_metric_observe(m_lag, NULL, (double)(lag > 0 ? lag : 0));
            }
        } else if (it->result < 0) {
            jet_pgarr_add(&ok, it->id);
            dups++;
        } else {
            failed++;
        }
    }
    if (jet_log_enabled(JET_LOG_DEBUG)) {
        int64_t first = INT64_MAX, last = 0, due = INT64_MAX;
        for (size_t i = 0; i < ps->n; i++)
            if (ps->items[i].result == 1) {
                if (ps->items[i].acked_ms < first)
                    first = ps->items[i].acked_ms;
                if (ps->items[i].acked_ms > last)
                    last = ps->items[i].acked_ms;
                if (ps->items[i].fire_ms > 0 && ps->items[i].fire_ms < due)
                    due = ps->items[i].fire_ms;
            }
        if (last && due != INT64_MAX)
            jet_debug("publish: %zu pub-acks from %lld to %lld ms after the earliest fire time", ps->n,
                      (long long)(first - due), (long long)(last - due));
    }
    if (failed)
        jet_metric_add(leader_m_publish_fail, NULL, failed);
    if (dups)
        jet_info("%d task(s) were already in the stream (duplicate window): recorded as dispatched", dups);
    if (ok.n) {
        /* A planned row (fire ahead, delayed task) moves to queued now that
         * its message is stored; a row that moved on meanwhile (running,
         * finished, skipped, cancelled) is left alone. */
        char es[32];
        uint64_t epoch = atomic_load(&s->epoch);
        snprintf(es, sizeof es, "%llu", (unsigned long long)epoch);
        const char *p[] = {jet_pgarr_lit(&ok), epoch ? es : NULL, s->id};
        PGresult *r = leader_q(s, "record dispatched_at",
                         "WITH o AS (SELECT id, fire_epoch IS NULL AS first FROM tasks WHERE id = ANY($1::text[]) FOR UPDATE),"
                         " u AS (UPDATE tasks SET status = CASE WHEN status = 'scheduled' THEN 'queued' ELSE status END,"
                         " dispatched_at = CASE WHEN status IN ('scheduled', 'queued') THEN now()"
                         " ELSE coalesce(dispatched_at, now()) END,"
                         " updated_at = CASE WHEN status = 'scheduled' THEN now() ELSE updated_at END,"
                         " fire_epoch = coalesce(fire_epoch, $2::bigint), fired_by = coalesce(fired_by, $3)"
                         " FROM o WHERE tasks.id = o.id"
                         " AND (status IN ('scheduled', 'queued') OR fire_epoch IS NULL OR dispatched_at IS NULL)"
                         " RETURNING tasks.schedule_id, tasks.scheduled_for, tasks.created_at, o.first),"
                         /* last_fire_at of the schedules whose planned fires left now */
                         " sc AS (UPDATE schedules sc SET last_fire_at = m.t FROM (SELECT schedule_id, max(scheduled_for) AS t"
                         " FROM u WHERE schedule_id IS NOT NULL AND created_at < scheduled_for GROUP BY 1) m"
                         " WHERE sc.id = m.schedule_id AND (sc.last_fire_at IS NULL OR sc.last_fire_at < m.t))"
                         " SELECT count(*) FROM u WHERE u.first AND u.schedule_id IS NULL",
                         3, p);
        if (r && PQntuples(r) == 1)
            fire_count_delayed((int)strtol(PQgetvalue(r, 0, 0), NULL, 10));
        PQclear(r);
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
    int64_t horizon_ms; /* fires up to this are planned: now, or now + plan_ahead (not overlap=forbid) */
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
    for (long iter = 0; t >= 0 && t <= d->horizon_ms; iter++) {
        if (fire_all && fired_n >= FIRE_ALL_CAP)
            break; /* the rest next tick */
        if (iter > 10000000)
            break;
        bool is_missed = now - t > threshold;
        if (!is_missed || fire_all) {
            plan_add(pl, idx, t);
            if (t <= now)
                last_fired = t; /* a fire planned ahead sets last_fire_at when it is published */
            fired_n++;
        } else {
            missed++;
            latest_missed = t;
        }
        if (is_missed)
            jet_metric_add(m_misfires, (const char *[]){d->misfire}, 1);
        int64_t nx = jet_sched_next(js, t);
        if (fire_once && latest_missed >= 0 && (nx < 0 || now - nx <= threshold || nx > d->horizon_ms)) {
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
    jet_pgarr sids = {0}, fids = {0};
    char tid[JET_TASK_ID_MAX + 32];
    for (int i = 0; i < nrows; i++)
        if (rows[i].forbid && !rows[i].disabled)
            jet_pgarr_add(&sids, rows[i].id);
    for (size_t k = 0; k < pl->n; k++)
        if (rows[pl->ev[k].sched].forbid) {
            fire_id(tid, sizeof tid, rows[pl->ev[k].sched].id, pl->ev[k].t);
            jet_pgarr_add(&fids, tid);
        }
    if (!fids.n) {
        free(sids.buf);
        return true;
    }
    const char *p[] = {jet_pgarr_lit(&sids), jet_pgarr_lit(&fids)};
    PGresult *r = leader_q(s, "overlap check",
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
int fire_due(sched *s, uint64_t epoch, sched_pubset *ps, bool *more)
{
    *more = false;
    if (!leader_begin_fenced(s, epoch))
        return -1;
    char def_window[32], lim[16], es[32];
    snprintf(def_window, sizeof def_window, "%lld", (long long)atomic_load(&s->catchup_ms));
    snprintf(lim, sizeof lim, "%d", FIRE_BATCH);
    snprintf(es, sizeof es, "%llu", (unsigned long long)epoch);
    char ahead[32];
    snprintf(ahead, sizeof ahead, "%lld", (long long)atomic_load(&s->plan_ahead_ms));
    const char *p[] = {def_window, lim, ahead};
    /* Due now, or (not overlap=forbid: its check stays at the due time)
     * due within scheduler.plan_ahead: planned ahead. */
    PGresult *r = leader_q(s, "select due schedules",
                           "SELECT id, kind, spec, tz, misfire, overlap,"
                           " (extract(epoch from next_fire_at) * 1000)::bigint,"
                           " (extract(epoch from now()) * 1000)::bigint,"
                           " coalesce((extract(epoch from catchup_window) * 1000)::bigint, $1::bigint)"
                           " FROM schedules WHERE NOT paused"
                           " AND next_fire_at <= now() + $3::bigint * interval '1 millisecond'"
                           " AND (overlap <> 'forbid' OR next_fire_at <= now())"
                           " ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                           3, p);
    if (!r) {
        leader_rollback(s);
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
        d->horizon_ms = d->now_ms + (d->forbid ? 0 : atomic_load(&s->plan_ahead_ms));
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
        jet_pgarr ids = {0}, sids = {0}, ts = {0}, sts = {0}, errs = {0};
        char tid[JET_TASK_ID_MAX + 32];
        for (size_t k = 0; k < pl.n; k++) {
            const due_row *d = &rows[pl.ev[k].sched];
            fire_id(tid, sizeof tid, d->id, pl.ev[k].t);
            jet_pgarr_add(&ids, tid);
            jet_pgarr_add(&sids, d->id);
            jet_pgarr_add_ms(&ts, pl.ev[k].t);
            bool skipped = status[k] && !strcmp(status[k], "skipped");
            bool ahead = pl.ev[k].t > d->now_ms; /* committed before it is due: published from the plan */
            jet_pgarr_add(&sts, skipped ? "skipped" : ahead ? "scheduled" : "queued");
            jet_pgarr_add(&errs, skipped ? why[k] : NULL);
        }
        const char *ip[] = {jet_pgarr_lit(&ids), jet_pgarr_lit(&sids), jet_pgarr_lit(&ts), jet_pgarr_lit(&sts), jet_pgarr_lit(&errs),
                            es, s->id};
        ins = leader_q(s, "insert fires",
                       "INSERT INTO tasks AS t (id, queue, handler, priority, status, max_attempts, payload, headers,"
                       " scheduled_for, schedule_id, fire_epoch, fired_by, finished_at, error)"
                       " SELECT f.id, sc.queue, sc.handler, sc.priority, f.status, sc.max_attempts, sc.payload,"
                       " sc.headers,"
                       " to_timestamp(f.t::double precision / 1000), sc.id, $6::bigint, $7,"
                       " CASE WHEN f.status = 'skipped' THEN now() END, f.error"
                       " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY"
                       " AS f(id, sid, t, status, error, ord) JOIN schedules sc ON sc.id = f.sid ORDER BY f.ord"
                       /* a planned fire withdrawn by a schedule update (or pause,
                        * delete) and planned again comes back with the new content */
                       " ON CONFLICT (id) DO UPDATE SET status = excluded.status, queue = excluded.queue,"
                       " handler = excluded.handler, priority = excluded.priority,"
                       " max_attempts = excluded.max_attempts, payload = excluded.payload,"
                       " headers = excluded.headers, fire_epoch = excluded.fire_epoch,"
                       " fired_by = excluded.fired_by, finished_at = excluded.finished_at,"
                       " error = excluded.error, updated_at = now()"
                       " WHERE t.status = 'skipped' AND t.error LIKE 'withdrawn before it was due%'"
                       " RETURNING " PUB_COLS ", t.status",
                       7, ip);
        ok = ins != NULL;
        free(ids.buf);
        free(sids.buf);
        free(ts.buf);
        free(sts.buf);
        free(errs.buf);
    }
    if (ok && taken) {
        jet_pgarr ids = {0}, nx = {0}, lf = {0};
        for (int i = 0; i < taken; i++) {
            jet_pgarr_add(&ids, rows[i].id);
            jet_pgarr_add_ms(&nx, rows[i].new_next);
            jet_pgarr_add_ms(&lf, rows[i].last_fired);
        }
        const char *up[] = {jet_pgarr_lit(&ids), jet_pgarr_lit(&nx), jet_pgarr_lit(&lf)};
        PGresult *ur = leader_q(s, "advance schedules",
                                "UPDATE schedules sc SET next_fire_at = to_timestamp(u.nx::double precision / 1000),"
                                " last_fire_at = coalesce(to_timestamp(u.lf::double precision / 1000),"
                                " sc.last_fire_at),"
                                " updated_at = now() FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(id,"
                                " nx, lf)"
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
    if (!ok || !leader_commit_fenced(s)) {
        leader_rollback(s);
        PQclear(ins);
        return -1;
    }
    for (int i = 0; ins && i < PQntuples(ins); i++) {
        const char *st = PQgetvalue(ins, i, 9);
        jet_metric_add(m_fires, (const char *[]){st}, 1);
        if (!strcmp(st, "queued")) {
            sched_pubset_add(ps, ins, i, false);
        } else if (!strcmp(st, "scheduled")) {
            int64_t t = strtoll(PQgetvalue(ins, i, 8), NULL, 10);
            if (t < earliest_planned)
                earliest_planned = t;
        }
    }
    PQclear(ins);
    return n;
}

int64_t fire_take_earliest_planned(void)
{
    int64_t t = earliest_planned;
    earliest_planned = INT64_MAX;
    return t;
}

/* ---------------- delayed tasks ---------------- */

int fire_queue_delayed(sched *s, uint64_t epoch, int64_t before_ms, sched_pubset *ps)
{
    if (!leader_begin_fenced(s, epoch))
        return -1;
    char es[32], lim[16], before[32];
    snprintf(es, sizeof es, "%llu", (unsigned long long)epoch);
    snprintf(lim, sizeof lim, "%d", DELAYED_BATCH);
    snprintf(before, sizeof before, "%lld", (long long)before_ms);
    const char *p[] = {es, s->id, lim, before_ms >= 0 ? before : NULL};
    /* A cron fire planned ahead keeps the epoch of the leader that
     * committed it. */
    PGresult *r = leader_q(s, "queue due delayed tasks",
                           "WITH due AS (SELECT id FROM tasks WHERE status = 'scheduled' AND scheduled_for <= now()"
                           /* the plan's due ms is this same rounding: a row due
                            * in the ms the plan publishes is the plan's, even
                            * in the fraction of a ms before it (scheduled_for
                            * X.6 ms rounds to X+1 and is < X+1 ms: it was taken
                            * here, then published again by the plan) */
                           " AND ($4::bigint IS NULL OR (extract(epoch from scheduled_for) * 1000)::bigint < $4::bigint)"
                           " ORDER BY scheduled_for LIMIT $3 FOR UPDATE SKIP LOCKED)"
                           " UPDATE tasks t SET status = 'queued', updated_at = now(),"
                           " fire_epoch = coalesce(t.fire_epoch, $1::bigint), fired_by = coalesce(t.fired_by, $2)"
                           " FROM due WHERE t.id = due.id RETURNING " PUB_COLS,
                           4, p);
    if (!r) {
        leader_rollback(s);
        return -1;
    }
    if (!leader_commit_fenced(s)) {
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r), delayed = 0;
    for (int i = 0; i < n; i++) {
        delayed += PQgetisnull(r, i, 7); /* a cron fire planned ahead is not a delayed task */
        sched_pubset_add(ps, r, i, false);
    }
    fire_count_delayed(delayed); /* moved from scheduled to queued by this transaction */
    PQclear(r);
    return n;
}

void fire_count_delayed(int n)
{
    if (n > 0)
        jet_metric_add(m_delayed, NULL, n);
}

void fire_metrics_init(void)
{
    m_fires = jet_metric_counter("jetsched_scheduler_fires_total",
                                 "Schedule fires recorded by this leader (status queued, scheduled: planned ahead, or skipped).", "status");
    m_lag = jet_metric_histogram("jetsched_scheduler_fire_lag_seconds",
                                 "Publish time minus scheduled fire time of fired and delayed tasks.", NULL);
    m_delayed = jet_metric_counter("jetsched_scheduler_delayed_queued_total",
                                   "Delayed tasks moved from scheduled to queued.", NULL);
    m_misfires = jet_metric_counter("jetsched_scheduler_misfires_total",
                                    "Fire times found later than scheduler.misfire_threshold, by policy.", "policy");
    leader_m_publish_fail = jet_metric_counter("jetsched_scheduler_publish_failures_total",
                                               "Publishes that failed after retries (left to the reconciler).", NULL);
}
