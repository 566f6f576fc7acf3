/* The leader loop (DESIGN §5): the PostgreSQL connection of the leader's
 * thread, the epoch claim when the election wins a revision, the fence every
 * leader transaction starts and ends with, step-down, and the loop that runs
 * the fires and delayed tasks (fire.c) and the reconciler (reconcile.c) at
 * the next due time.
 *
 * Every write happens in a transaction that first takes
 * `SELECT epoch FROM scheduler_epoch FOR SHARE` and compares it with the
 * epoch this process fenced; a newer leader's `UPDATE scheduler_epoch`
 * waits for (or follows) that transaction, so a stale leader can never
 * commit a fire. Publishing happens after COMMIT; a failed publish is left to
 * the reconciler (the PostgreSQL row is the truth, the task id is the
 * Nats-Msg-Id). */
#include "leader.h"

#include <jetsched/log.h>
#include <jetsched/pgconn.h>
#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <time.h>

static PGconn *pg;
static int64_t next_reconcile_mono;
static int64_t pg_warned_mono = -1;

PGconn *leader_pg(void)
{
    return pg;
}

static bool exec_ok(sched *s, const char *what, const char *sql);

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
    /* A leader stopped inside a transaction (SIGSTOP, VM freeze) holds the
     * fence's share lock, which a successor's epoch claim waits for: the
     * server ends such a session after one TTL (our statements follow each
     * other within milliseconds; a starved machine may still stretch a gap
     * past a second). The plan hears of rows leaving `scheduled` on channel
     * jetsched_plan (sql/0005). */
    char set[160];
    int64_t idle = s->ttl_ms > 1000 ? s->ttl_ms : 1000;
    snprintf(set, sizeof set, "SET idle_in_transaction_session_timeout = %lld", (long long)idle);
    if (!exec_ok(s, "idle timeout", set) || !exec_ok(s, "listen", "LISTEN jetsched_plan")) {
        PQfinish(pg);
        pg = NULL;
        atomic_store(&s->pg_ok, false);
        return false;
    }
    plan_reset();
    atomic_store(&s->pg_ok, true);
    return true;
}

/* Runs sql; returns the result when its status is OK (tuples or command),
 * else logs, clears and returns NULL. */
PGresult *leader_q(sched *s, const char *what, const char *sql, int n, const char *const *params)
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
    PGresult *r = leader_q(s, what, sql, 0, NULL);
    PQclear(r);
    return r != NULL;
}

void leader_rollback(sched *s)
{
    if (PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) != PQTRANS_IDLE)
        exec_ok(s, "rollback", "ROLLBACK");
}

static void step_down(sched *s, const char *why)
{
    plan_reset();
    uint64_t e = atomic_exchange(&s->epoch, 0);
    if (e != 0)
        jet_warn("leader: %s; stepping down (epoch %llu)", why, (unsigned long long)e);
}

/* BEGIN + the fence: the epoch row FOR SHARE must hold our epoch. */
bool leader_begin_fenced(sched *s, uint64_t epoch)
{
    if (!election_holds(s, NULL)) {
        step_down(s, "lease deadline passed before a transaction");
        return false;
    }
    if (!exec_ok(s, "begin", "BEGIN"))
        return false;
    PGresult *r = leader_q(s, "fence check",
                           "SELECT epoch, coalesce(holder, '') FROM scheduler_epoch FOR SHARE", 0, NULL);
    if (!r || PQntuples(r) != 1) {
        PQclear(r);
        leader_rollback(s);
        return false;
    }
    uint64_t cur = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (cur != epoch) {
        char why[512];
        snprintf(why, sizeof why,
                 "fenced: the PostgreSQL epoch is %llu (holder \"%s\"), ours is %llu: a newer leader was elected",
                 (unsigned long long)cur, PQgetvalue(r, 0, 1), (unsigned long long)epoch);
        PQclear(r);
        leader_rollback(s);
        step_down(s, why);
        atomic_store(&s->abdicate, true);
        return false;
    }
    PQclear(r);
    return true;
}

bool leader_commit_fenced(sched *s)
{
    if (!election_holds(s, NULL)) {
        leader_rollback(s);
        step_down(s, "lease deadline passed during a transaction (rolled back)");
        return false;
    }
    if (!exec_ok(s, "commit", "COMMIT")) {
        leader_rollback(s);
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
    PGresult *r = leader_q(s, "claim epoch",
                           "UPDATE scheduler_epoch SET epoch = $1, holder = $2, updated_at = now()"
                           " WHERE epoch < $1",
                           2, p);
    if (!r)
        return false;
    bool won = atoi(PQcmdTuples(r)) == 1;
    PQclear(r);
    if (!won) {
        r = leader_q(s, "read epoch", "SELECT epoch, coalesce(holder, '') FROM scheduler_epoch", 0, NULL);
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
        if (acting && pg && PQsocket(pg) >= 0) {
            /* woken early by a notification (a task to plan, a planned
             * one withdrawn) */
            struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
            if (ppoll(&pfd, 1, &ts, NULL) > 0)
                plan_notified(s);
            return;
        }
        nanosleep(&ts, NULL);
        if (acting)
            return;
    }
}

/* Whether a round has work for the fenced transactions, in one autocommit
 * query (no row lock, nothing to flush at a commit): schedules due now or
 * within scheduler.plan_ahead (fire_due's selection), rows `scheduled` due
 * now (a superset of fire_queue_delayed's). An idle round used to run both
 * fenced transactions, each a commit with a WAL flush (the fence's FOR
 * SHARE locks a row), every tick; one stalled by the disk right before a
 * planned due instant held the publish back (a 147 ms late burst under
 * load). A PostgreSQL epoch other than ours sets both, so that the fenced
 * transaction finds it and steps down as before; an error sets both. */
static void due_work(sched *s, uint64_t epoch, bool *fires, bool *delayed)
{
    *fires = *delayed = true;
    char ahead[32], es[32];
    snprintf(ahead, sizeof ahead, "%lld", (long long)atomic_load(&s->plan_ahead_ms));
    snprintf(es, sizeof es, "%llu", (unsigned long long)epoch);
    const char *p[] = {ahead, es};
    PGresult *r = leader_q(s, "due work",
                           "SELECT EXISTS (SELECT 1 FROM schedules WHERE NOT paused"
                           " AND next_fire_at <= now() + $1::bigint * interval '1 millisecond'"
                           " AND (overlap <> 'forbid' OR next_fire_at <= now())),"
                           " EXISTS (SELECT 1 FROM tasks WHERE status = 'scheduled' AND scheduled_for <= now()),"
                           " coalesce((SELECT epoch FROM scheduler_epoch) = $2::bigint, false)",
                           2, p);
    if (r && PQntuples(r) == 1 && PQgetvalue(r, 0, 2)[0] == 't') {
        *fires = PQgetvalue(r, 0, 0)[0] == 't';
        *delayed = PQgetvalue(r, 0, 1)[0] == 't';
    }
    PQclear(r);
}

/* Microseconds from now (wall clock) until Unix ms t. */
static int64_t wall_us_until(int64_t t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return t * 1000 - ((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000);
}

/* Whether the plan's next publish is due within guard_us: a round's
 * PostgreSQL work (fire and delayed batches) stops between two batches so
 * that the thread is back for the publish. A round that started right
 * after a publish used to run on into the next due instant when PostgreSQL
 * was slow (1,000 fires planned in 985 ms at a load of 10: the next second
 * went out 788 ms late). */
static bool plan_due_within(int64_t guard_us)
{
    int64_t next = plan_next_due_ms();
    return next != INT64_MAX && wall_us_until(next) <= guard_us;
}

/* Microseconds until the next due schedule or delayed task, by PostgreSQL's
 * clock (two indexed min() lookups: schedules_due_idx, tasks_due_idx);
 * INT64_MAX when nothing is pending, -1 on error. */
static int64_t next_due_us(sched *s)
{
    PGresult *r = leader_q(s, "next due time",
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

/* Where a round's time went (debug log: a planned publish that went out
 * late names the previous round's phases). */
typedef struct round_times {
    int64_t start, publish, fires, delayed, finish, load, reconcile, end; /* jet_mono_us() at the end of each */
} round_times;

static void *leader_main(void *arg)
{
    sched *s = arg;
    uint64_t refused_rev = 0;
    int64_t sleep_us = 0;
    int idle_overdue = 0; /* rounds in a row that found nothing although something was due */
    sched_pubset ps;
    sched_pubset_init(&ps, s);
    round_times rt = {0}, prev = {0};
    int64_t last_full_us = 0; /* start of the last round that ran its PostgreSQL work */
    while (!atomic_load(&s->stop)) {
        prev = rt;
        nap_us(s, sleep_us, refused_rev);
        rt = (round_times){.start = jet_mono_us()};
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
            plan_reset();
        }
        plan_notified(s);
        /* The fire-ahead path: what is due now leaves from memory first. */
        int64_t first_due = plan_next_due_ms(), woke_ms = jet_now_ms();
        if (first_due <= woke_ms && woke_ms - first_due >= 5 && prev.start)
            jet_debug("plan: due at %lld, publishing %lld ms late; the previous round (%lld us before) took: "
                      "publish %lld, fires %lld, delayed %lld, finish %lld, load %lld, reconcile %lld, rest %lld us",
                      (long long)first_due, (long long)(woke_ms - first_due), (long long)(rt.start - prev.start),
                      (long long)(prev.publish - prev.start), (long long)(prev.fires - prev.publish),
                      (long long)(prev.delayed - prev.fires), (long long)(prev.finish - prev.delayed),
                      (long long)(prev.load - prev.finish), (long long)(prev.reconcile - prev.load),
                      (long long)(prev.end - prev.reconcile));
        int planned = plan_publish_due(s, rev, &ps, jet_now_ms());
        int64_t handed_us = jet_mono_us();
        if (planned < 0) {
            fire_publish_finish(s, &ps);
            step_down(s, "the lease is no longer ours at a planned publish (nothing published after it)");
            continue;
        }
        if (planned > 0)
            fire_publish_finish(s, &ps); /* pub-acks, then scheduled -> queued: out of the at-due path's way */
        rt.publish = jet_mono_us();
        if (planned > 0)
            jet_debug("plan: %d task(s) due at %lld published from %lld ms after it: handed over in %lld us, "
                      "pub-acks and record %lld us", planned, (long long)first_due, (long long)(woke_ms - first_due),
                      (long long)(handed_us - rt.start), (long long)(rt.publish - handed_us));
        bool log_round = planned > 0;
        /* The last stretch before a planned due instant is kept free of
         * PostgreSQL work: a round started there (a commit waiting for the
         * disk, a planning transaction) would hold the publish back. Rounds
         * still run at least every tick + guard. */
        int64_t guard_us = tick_us < 100000 ? tick_us : 100000;
        int64_t next_plan = plan_next_due_ms();
        if (next_plan != INT64_MAX && last_full_us && rt.start - last_full_us < tick_us + guard_us) {
            int64_t pu = wall_us_until(next_plan);
            if (pu > 0 && pu <= guard_us) {
                sleep_us = pu;
                rt = prev; /* not a round: the previous one stays the one to report */
                continue;
            }
        }
        last_full_us = rt.start;
        bool fires_due, delayed_due;
        due_work(s, rev, &fires_due, &delayed_due);
        /* Fires: drain the due set (bounded per round); each committed
         * batch is published asynchronously while the next one is written. */
        int64_t until = jet_mono_ms() + 2000;
        int n = 0, worked = planned;
        bool more = false;
        while (fires_due) {
            n = fire_due(s, rev, &ps, &more);
            worked += n > 0 ? n : 0;
            if (!(more && n >= 0 && jet_mono_ms() < until && !atomic_load(&s->stop)) || plan_due_within(guard_us))
                break;
        }
        bool behind = more && n >= 0;
        rt.fires = jet_mono_us();
        if (atomic_load(&s->epoch) != rev) {
            fire_publish_finish(s, &ps);
            if (atomic_load(&s->abdicate))
                refused_rev = rev;
            continue;
        }
        n = 0;
        while (delayed_due) {
            int64_t first_planned = plan_next_due_ms();
            n = fire_queue_delayed(s, rev, first_planned == INT64_MAX ? -1 : first_planned, &ps);
            worked += n > 0 ? n : 0;
            if (!(n == DELAYED_BATCH && jet_mono_ms() < until && !atomic_load(&s->stop)) || plan_due_within(guard_us))
                break;
        }
        behind = behind || n == DELAYED_BATCH;
        rt.delayed = jet_mono_us();
        fire_publish_finish(s, &ps);
        rt.finish = jet_mono_us();
        if (atomic_load(&s->epoch) != rev) {
            if (atomic_load(&s->abdicate))
                refused_rev = rev;
            continue;
        }
        /* Into memory: what was committed ahead (by us or a predecessor)
         * and the delayed tasks due within the window. */
        int64_t earliest = fire_take_earliest_planned();
        if (earliest != INT64_MAX)
            plan_rewind(earliest);
        if (plan_load(s) < 0)
            continue;
        rt.load = rt.reconcile = rt.end = jet_mono_us();
        if (jet_mono_ms() >= next_reconcile_mono) {
            reconcile(s, rev);
            if (atomic_load(&s->abdicate))
                refused_rev = rev;
            next_reconcile_mono = jet_mono_ms() + atomic_load(&s->reconcile_ms);
            rt.reconcile = rt.end = jet_mono_us();
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
        int64_t plan_due = plan_next_due_ms();
        if (plan_due != INT64_MAX) {
            int64_t pu = wall_us_until(plan_due);
            if (pu < due)
                due = pu < 0 ? 0 : pu; /* the plan's own due time: not held back by the back-off */
        }
        sleep_us = due < 0 ? 0 : due < tick_us ? due : tick_us;
        rt.end = jet_mono_us();
        if (log_round)
            jet_debug("round after a planned publish: publish %lld, fires %lld, delayed %lld, finish %lld, load %lld, "
                      "reconcile %lld, rest %lld us", (long long)(rt.publish - rt.start),
                      (long long)(rt.fires - rt.publish), (long long)(rt.delayed - rt.fires),
                      (long long)(rt.finish - rt.delayed), (long long)(rt.load - rt.finish),
                      (long long)(rt.reconcile - rt.load), (long long)(rt.end - rt.reconcile));
    }
    fire_publish_finish(s, &ps);
    sched_pubset_free(&ps);
    return NULL;
}

void leader_metrics_init(sched *s)
{
    (void)s;
    fire_metrics_init();
    reconcile_metrics_init();
}

jet_status leader_start(sched *s, jet_err *err)
{
    if (pthread_create(&s->leader_thread, NULL, leader_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the scheduler thread");
    return JET_OK;
}

void leader_stop(sched *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->leader_thread, NULL);
    if (atomic_load(&s->epoch))
        jet_info("leader: stopped acting (shutdown)");
    atomic_store(&s->epoch, 0);
    sched_publish_close();
    if (pg)
        PQfinish(pg);
    pg = NULL;
    fire_cache_clear();
}
