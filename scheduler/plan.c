/* The leader's in-memory plan (the fire-ahead path, docs/SCHEDULER.md):
 * task rows committed in state `scheduled` whose due time falls inside the
 * next scheduler.plan_ahead (cron fires planned by fire.c, delayed tasks,
 * fires planned by a previous leader) are loaded with their message already
 * built, kept in a heap by due time, and published at the due instant after
 * a lease check. Rows leave the plan when a notification on channel
 * `jetsched_plan` (sql/0005_fire_ahead.sql) says they left `scheduled`
 * (cancelled, or withdrawn by a schedule pause, update or delete). Dropping
 * an item is always safe: its row stays `scheduled` and the at-due path
 * (fire_queue_delayed) publishes it when due. Bounded by
 * scheduler.plan_max_tasks and scheduler.plan_max_bytes. */
#include "leader.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/strmap.h>
#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct plan_item {
    char *id;
    int64_t due_ms;
    natsMsg *msg;
    size_t bytes;
    bool dropped;
} plan_item;

static jet_strmap *by_id; /* id -> planned item (not dropped) */
static plan_item **heap;
static size_t heap_n, heap_cap, live_n, live_bytes;
static int64_t loaded_until = -1; /* rows due up to this (Unix ms) are in memory or were left to the at-due path */
/* After a full page: rows due at tie_ms with an id up to tie_id are loaded
 * too (tie_ms = loaded_until + 1; -1: none). Many rows due in the same
 * millisecond (100,000 delayed tasks due at one instant) are paged by id. */
static int64_t tie_ms = -1;
static char tie_id[JET_TASK_ID_MAX + 1];

static plan_item *find(const char *id)
{
    return by_id ? jet_strmap_get(by_id, id) : NULL;
}

static void item_free(plan_item *it)
{
    natsMsg_Destroy(it->msg);
    free(it->id);
    free(it);
}

static void heap_push(plan_item *it)
{
    heap = jet_xgrow(heap, &heap_cap, heap_n + 1, sizeof *heap, 1024);
    size_t i = heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (heap[p]->due_ms <= it->due_ms)
            break;
        heap[i] = heap[p];
        i = p;
    }
    heap[i] = it;
}

static plan_item *heap_pop(void)
{
    plan_item *top = heap[0], *last = heap[--heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= heap_n)
            break;
        if (c + 1 < heap_n && heap[c + 1]->due_ms < heap[c]->due_ms)
            c++;
        if (last->due_ms <= heap[c]->due_ms)
            break;
        heap[i] = heap[c];
        i = c;
    }
    if (heap_n)
        heap[i] = last;
    return top;
}

/* Removes it from the id table (it stays in the heap until popped). */
static void unlink_item(plan_item *it)
{
    if (find(it->id) == it)
        jet_strmap_remove(by_id, it->id);
    if (!it->dropped) {
        live_n--;
        live_bytes -= it->bytes;
    }
}

void plan_reset(void)
{
    for (size_t i = 0; i < heap_n; i++)
        item_free(heap[i]);
    heap_n = live_n = live_bytes = 0;
    jet_strmap_free(by_id, NULL);
    by_id = NULL;
    loaded_until = -1;
    tie_ms = -1;
}

size_t plan_size(void)
{
    return live_n;
}

void plan_drop(const char *id)
{
    plan_item *it = find(id);
    if (!it)
        return;
    unlink_item(it);
    it->dropped = true;
    natsMsg_Destroy(it->msg);
    it->msg = NULL;
}

void plan_rewind(int64_t ms)
{
    if (loaded_until >= 0 && ms <= loaded_until + 1) {
        loaded_until = ms - 1;
        tie_ms = -1;
    }
}

int64_t plan_next_due_ms(void)
{
    while (heap_n && heap[0]->dropped)
        item_free(heap_pop());
    return heap_n ? heap[0]->due_ms : INT64_MAX;
}

int plan_load(sched *s)
{
    int64_t max_n = atomic_load(&s->plan_max_tasks), max_bytes = atomic_load(&s->plan_max_bytes);
    int64_t ahead = atomic_load(&s->plan_ahead_ms);
    if (ahead <= 0 || (int64_t)live_n >= max_n || (int64_t)live_bytes >= max_bytes)
        return 0;
    int64_t room = max_n - (int64_t)live_n;
    /* per query, the rest next round; after a page that ended inside one
     * millisecond, the rest of it at once (each page of a millisecond sorts
     * all of its rows by id: 100,000 due at one instant took five such
     * queries, longer than scheduler.plan_ahead at load) */
    if (room > 20000 && tie_ms < 0)
        room = 20000;
    char lo[32], ah[32], lim[32], tie[32];
    snprintf(lo, sizeof lo, "%" PRId64, loaded_until);
    snprintf(ah, sizeof ah, "%" PRId64, ahead);
    snprintf(lim, sizeof lim, "%" PRId64, room);
    snprintf(tie, sizeof tie, "%" PRId64, tie_ms);
    const char *p[] = {lo, ah, lim, tie_ms >= 0 ? tie : NULL, tie_id};
    /* One row with a NULL id when nothing is due in the window: the horizon
     * comes back either way. Ordered by (due, id), so that a page boundary
     * inside one millisecond goes on from the last id. */
    PGresult *r = leader_q(s, "load the plan",
                           "WITH h AS (SELECT greatest(now(), to_timestamp($1::double precision / 1000)) AS lo,"
                           " now() + $2::bigint * interval '1 millisecond' AS hi)"
                           " SELECT " PUB_COLS ", (extract(epoch from h.hi) * 1000)::bigint FROM h"
                           " LEFT JOIN LATERAL (SELECT * FROM tasks WHERE status = 'scheduled'"
                           " AND scheduled_for > h.lo AND scheduled_for <= h.hi"
                           " AND ($4::bigint IS NULL OR (extract(epoch from scheduled_for) * 1000)::bigint <> $4"
                           " OR id > $5) ORDER BY scheduled_for, id"
                           " LIMIT $3) t ON true",
                           5, p);
    if (!r)
        return -1;
    int n = PQntuples(r), added = 0;
    int64_t horizon = n ? strtoll(PQgetvalue(r, 0, 9), NULL, 10) : loaded_until;
    int64_t reached = horizon;
    bool full = n == (int)room && n > 0 && !PQgetisnull(r, n - 1, 0);
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(r, i, 0))
            break;
        const char *id = PQgetvalue(r, i, 0);
        int64_t due = strtoll(PQgetvalue(r, i, 8), NULL, 10);
        if ((int64_t)live_bytes >= max_bytes) {
            reached = due - 1; /* the rest at their due time (at-due path) or once there is room */
            full = false;
            break;
        }
        if (find(id))
            continue; /* already planned */
        int64_t fire_ms = -1;
        natsMsg *m = sched_task_msg(s, r, i, false, &fire_ms);
        if (!m)
            continue; /* out of memory: left to the at-due path */
        plan_item *it = jet_xcalloc(1, sizeof *it);
        it->id = jet_xstrdup(id);
        it->due_ms = due;
        it->msg = m;
        it->bytes = sizeof *it + strlen(id) + (size_t)PQgetlength(r, i, 4) / 2 + (size_t)PQgetlength(r, i, 5) + 256;
        if (!by_id)
            by_id = jet_strmap_new();
        jet_strmap_put(by_id, it->id, it);
        heap_push(it);
        live_n++;
        live_bytes += it->bytes;
        added++;
    }
    if (full) {
        /* the rest of that millisecond: from the last id on */
        int64_t last = strtoll(PQgetvalue(r, n - 1, 8), NULL, 10);
        reached = last - 1;
        if (tie_ms != last)
            tie_ms = last;
        snprintf(tie_id, sizeof tie_id, "%s", PQgetvalue(r, n - 1, 0));
    } else if (reached >= tie_ms) {
        tie_ms = -1;
    }
    PQclear(r);
    if (added)
        jet_debug("plan: %d task(s) loaded (%zu planned, up to %lld)", added, live_n, (long long)reached);
    if (reached > loaded_until)
        loaded_until = reached;
    return added;
}

int plan_publish_due(sched *s, uint64_t epoch, sched_pubset *ps, int64_t now_ms)
{
    int n = 0;
    while (plan_next_due_ms() <= now_ms) {
        /* The lease is checked right before publishing: nothing leaves
         * this process after it lost the lease (SIGSTOP across the due
         * time, a failed renewal). */
        uint64_t rev = 0;
        if (!election_holds(s, &rev) || rev != epoch || atomic_load(&s->epoch) != epoch)
            return -1;
        plan_item *it = heap_pop();
        unlink_item(it);
        sched_pubset_add_msg_own(ps, it->msg, it->id, it->due_ms, false);
        free(it); /* its message and id now belong to ps */
        n++;
    }
    return n;
}

bool plan_notified(sched *s)
{
    PGconn *pg = leader_pg();
    if (!pg)
        return false;
    PQconsumeInput(pg);
    bool any = false;
    PGnotify *nf;
    while ((nf = PQnotifies(pg)) != NULL) {
        any = true;
        if (!strncmp(nf->extra, "drop ", 5))
            plan_drop(nf->extra + 5);
        else if (!strncmp(nf->extra, "load ", 5))
            plan_rewind(strtoll(nf->extra + 5, NULL, 10));
        PQfreemem(nf);
    }
    (void)s;
    return any;
}
