/* Per-key concurrency and rate limits in agentd: slot leases, rate tokens, parking (keylimits.h). */
#include "keylimits.h"
#include "recorder.h"
#include "events.h"
#include "inflight.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/pgconn.h>
#include <jetsched/strmap.h>
#include <jetsched/timeutil.h>

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 50        /* the lease thread's period */
#define REFRESH_MS 1000   /* limits, holds and contended keys read again */
#define LINGER_MS 250     /* an idle lease kept for the next task of its key */
#define PARK_RETRY_MS 1000 /* parking failed (PostgreSQL down): redelivered after this */

/* Rule flags in the cache (never 0: a strmap value of NULL means absent). */
enum { RULE_SET = 1, RULE_CONC = 2, RULE_RATE = 4 };

typedef struct lease {
    long long id;
    char key[JET_LIMIT_KEY_MAX + 1];
    int64_t until_mono;  /* a conservative local copy of the database's `until` */
    int64_t idle_since;  /* mono ms the slot became idle */
    inflight *user;      /* the task running on it; NULL: idle */
    struct lease *next;
} lease;

typedef struct pgc {
    pthread_mutex_t mu;
    PGconn *pg;
} pgc;

struct limits {
    agent *a;
    int64_t lease_ms, margin_ms;
    pgc work;                 /* workers: acquire, park */
    pgc bg;                   /* the lease thread: refresh, renew, return */
    pthread_mutex_t mu;       /* everything below */
    pthread_cond_t cv;
    lease *leases;
    jet_strmap *rules;        /* "k:<key>" / "q:<queue>" -> RULE_* flags */
    jet_strmap *holds;        /* key -> int64_t* until (mono ms) */
    jet_strmap *contended;    /* keys with parked tasks: their idle slots go back at once */
    bool loaded;
    bool stop;
    pthread_t thread;
    jet_metric *m_parked, *m_slots, *m_lost;
};

/* ---- PostgreSQL ---- */

/* A failure is logged at most every 10 s (PostgreSQL down: the refresh
 * alone would log every second). */
static void warn_limited(const char *what, const char *msg)
{
    static _Atomic int64_t last;
    int64_t now = jet_mono_ms(), prev = atomic_load(&last);
    if (now - prev >= 10000 && atomic_compare_exchange_strong(&last, &prev, now))
        jet_warn("limits: %s: %s", what, msg);
}

/* Runs one statement (reconnecting once); NULL on failure (logged). */
static PGresult *run(struct limits *L, pgc *c, const char *sql, int n, const char *const *vals, const int *lens,
                     const int *fmts)
{
    PGresult *r = NULL;
    pthread_mutex_lock(&c->mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
            PQfinish(c->pg);
            c->pg = NULL;
            jet_err err;
            if (jet_pg_connect(L->a->cfg, "agentd-limits", &c->pg, &err) != JET_OK) {
                warn_limited("PostgreSQL", err.msg);
                break;
            }
        }
        r = PQexecParams(c->pg, sql, n, NULL, vals, lens, fmts, 0);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            break;
        warn_limited("statement failed", PQerrorMessage(c->pg));
        PQclear(r);
        r = NULL;
        if (PQstatus(c->pg) == CONNECTION_OK)
            break; /* a statement error, not a broken connection: no retry */
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- the cache of limits, holds and contended keys ---- */

static void free_value(void *v) { free(v); }

static void refresh(struct limits *L)
{
    PGresult *r = run(L, &L->bg,
                      "SELECT 'l', scope, name, (concurrency IS NOT NULL)::int, (rate IS NOT NULL)::int FROM limits "
                      "UNION ALL SELECT 'h', '', key, (extract(epoch FROM until - clock_timestamp()) * 1000)::bigint, 0 "
                      "FROM limit_holds WHERE until > clock_timestamp() "
                      "UNION ALL SELECT DISTINCT 'w', '', key, 0, 0 FROM limit_waiting WHERE released_at IS NULL",
                      0, NULL, NULL, NULL);
    if (!r)
        return;
    jet_strmap *rules = jet_strmap_new(), *holds = jet_strmap_new(), *contended = jet_strmap_new();
    int64_t now = jet_mono_ms();
    char k[JET_LIMIT_KEY_MAX + 8];
    for (int i = 0; i < PQntuples(r); i++) {
        const char *kind = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 2);
        if (*kind == 'l') {
            snprintf(k, sizeof k, "%c:%s", PQgetvalue(r, i, 1)[0], name);
            intptr_t fl = RULE_SET | (atoi(PQgetvalue(r, i, 3)) ? RULE_CONC : 0) | (atoi(PQgetvalue(r, i, 4)) ? RULE_RATE : 0);
            jet_strmap_put(rules, k, (void *)fl);
        } else if (*kind == 'h') {
            int64_t *until = jet_xmalloc(sizeof *until);
            *until = now + strtoll(PQgetvalue(r, i, 3), NULL, 10);
            free(jet_strmap_put(holds, name, until));
        } else {
            jet_strmap_put(contended, name, (void *)1);
        }
    }
    PQclear(r);
    pthread_mutex_lock(&L->mu);
    jet_strmap_free(L->rules, NULL);
    jet_strmap_free(L->holds, free_value);
    jet_strmap_free(L->contended, NULL);
    L->rules = rules;
    L->holds = holds;
    L->contended = contended;
    L->loaded = true;
    pthread_mutex_unlock(&L->mu);
}

/* Whether key has a limit of this kind (RULE_CONC or RULE_RATE) for a task
 * of queue; true until the cache is loaded (PostgreSQL decides). */
static bool limited(struct limits *L, int kind, const char *key, const char *queue)
{
    char k[JET_LIMIT_KEY_MAX + 8];
    pthread_mutex_lock(&L->mu);
    bool out = !L->loaded;
    if (L->loaded) {
        snprintf(k, sizeof k, "k:%s", key);
        intptr_t fl = (intptr_t)jet_strmap_get(L->rules, k);
        if (!fl) {
            snprintf(k, sizeof k, "q:%s", queue);
            fl = (intptr_t)jet_strmap_get(L->rules, k);
        }
        int64_t *until = jet_strmap_get(L->holds, key);
        out = (fl & kind) || (until && *until > jet_mono_ms());
    }
    pthread_mutex_unlock(&L->mu);
    return out;
}

/* ---- slots and tokens ---- */

/* jetsched_limit_acquire for one key: rows granted (lease ids or NULL), or NULL on failure. */
static PGresult *acquire(struct limits *L, const char *kind, const char *key, const char *queue, int want)
{
    char ms[24], kinds[8], keys[JET_LIMIT_KEY_MAX + 8], queues[JET_NAME_MAX + 8], wants[24];
    snprintf(ms, sizeof ms, "%lld", (long long)L->lease_ms);
    snprintf(kinds, sizeof kinds, "{%s}", kind);
    snprintf(keys, sizeof keys, "{\"%s\"}", key); /* keys and queues need no escaping inside quotes */
    snprintf(queues, sizeof queues, "{\"%s\"}", queue);
    snprintf(wants, sizeof wants, "{%d}", want);
    const char *v[] = {L->a->id, ms, kinds, keys, queues, wants};
    return run(L, &L->work,
               "SELECT req, lease_id FROM jetsched_limit_acquire($1, $2::int, $3::text[], $4::text[], $5::text[], "
               "$6::int[])",
               6, v, NULL, NULL);
}

/* 1: f holds a slot of key (reused or new); 0: none free; -1: PostgreSQL failed. */
static int take_slot(struct limits *L, inflight *f, const char *key, const char *queue)
{
    int64_t now = jet_mono_ms();
    pthread_mutex_lock(&L->mu);
    int64_t *held = jet_strmap_get(L->holds, key);
    for (lease *l = (held && *held > now) ? NULL : L->leases; l; l = l->next)
        if (!l->user && !strcmp(l->key, key) && l->until_mono - L->margin_ms > now) {
            l->user = f;
            pthread_mutex_unlock(&L->mu);
            const char *lb[] = {"reused"};
            jet_metric_add(L->m_slots, lb, 1);
            return 1;
        }
    pthread_mutex_unlock(&L->mu);
    PGresult *r = acquire(L, "c", key, queue, 1);
    if (!r)
        return -1;
    int got = PQntuples(r);
    if (got > 0 && !PQgetisnull(r, 0, 1)) {
        lease *l = jet_xcalloc(1, sizeof *l);
        l->id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        snprintf(l->key, sizeof l->key, "%s", key);
        l->until_mono = now + L->lease_ms; /* taken before the request: never later than the database's */
        l->user = f;
        pthread_mutex_lock(&L->mu);
        l->next = L->leases;
        L->leases = l;
        pthread_mutex_unlock(&L->mu);
        const char *lb[] = {"acquired"};
        jet_metric_add(L->m_slots, lb, 1);
    }
    PQclear(r);
    return got > 0;
}

static int take_token(struct limits *L, const char *key, const char *queue)
{
    PGresult *r = acquire(L, "r", key, queue, 1);
    if (!r)
        return -1;
    int got = PQntuples(r);
    PQclear(r);
    return got > 0;
}

/* f's slot becomes idle; back at once when its key has parked tasks. */
static void slot_idle(struct limits *L, inflight *f)
{
    pthread_mutex_lock(&L->mu);
    for (lease *l = L->leases; l; l = l->next)
        if (l->user == f) {
            l->user = NULL;
            l->idle_since = jet_mono_ms();
            if (jet_strmap_get(L->contended, l->key))
                pthread_cond_signal(&L->cv);
        }
    pthread_mutex_unlock(&L->mu);
}

void limits_done(agent *a, inflight *f)
{
    if (a->limits && f->task->ckey[0])
        slot_idle(a->limits, f);
}

/* ---- settling without running ---- */

static void reply(agent *a, const agent_task *t, const char *body)
{
    if (t->reply[0])
        natsConnection_PublishString(a->nc, t->reply, body);
}

static void settle(agent *a, inflight *f)
{
    inflight_unlink(a, f);
    inflight_release(f);
}

void limits_drop_stale(agent *a, inflight *f)
{
    jet_debug("task %s: a copy of a parked (throttled) task: acked without running", f->task->id);
    reply(a, f->task, "+ACK");
    settle(a, f);
}

/* The message as limit_waiting keeps it: [[name, value], ...] without the
 * ids; max_attempts > 0 replaces Jetsched-Max-Attempts. */
static char *headers_json(const agent_task *t, int max_attempts)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < t->n_headers; i++) {
        const char *n = t->headers[i].name;
        if (!strcmp(n, JET_HDR_MSG_ID) || !strcmp(n, JET_HDR_TASK_ID) ||
            (max_attempts > 0 && !strcmp(n, JET_HDR_MAX_ATTEMPTS)))
            continue;
        json_array_append_new(arr, json_pack("[ss]", n, t->headers[i].value));
    }
    if (max_attempts > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", max_attempts);
        json_array_append_new(arr, json_pack("[ss]", JET_HDR_MAX_ATTEMPTS, n));
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

/* Writes the parked task in one statement: limit_waiting (the message),
 * its row 'throttled'; with rl_error also its attempt as 'rate_limited' and
 * a budget one higher (the message's Jetsched-Max-Attempts too). */
static bool park_rows(agent *a, inflight *f, const char *key, const char *kind, const char *rl_error)
{
    struct limits *L = a->limits;
    agent_task *t = f->task;
    int budget = rl_error ? t->max_attempts + 1 : t->max_attempts;
    char *hj = headers_json(t, rl_error ? budget : 0), ma[16], created[24], att[16], started[24];
    snprintf(ma, sizeof ma, "%d", budget);
    snprintf(created, sizeof created, "%lld", (long long)(t->published_ms > 0 ? t->published_ms : jet_now_ms()));
    snprintf(att, sizeof att, "%d", rl_error ? task_attempt(t) : 0);
    snprintf(started, sizeof started, "%lld",
             (long long)(f->started_mono ? jet_now_ms() - (jet_mono_ms() - f->started_mono) : jet_now_ms()));
    const char *payload = natsMsg_GetData(t->msg);
    const char *v[] = {t->id, key, kind, t->queue, natsMsg_GetSubject(t->msg), hj, payload ? payload : "",
                       t->handler[0] ? t->handler : NULL, jet_priority_name(t->prio), ma, created, att, a->id,
                       rl_error, started};
    int lens[15] = {[6] = natsMsg_GetDataLength(t->msg)};
    int fmts[15] = {[6] = 1};
    PGresult *r = run(L, &L->work,
                      "WITH w AS (INSERT INTO limit_waiting (task_id, key, kind, queue, subject, headers, payload) "
                      "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (task_id) DO UPDATE SET key = "
                      "EXCLUDED.key, kind = EXCLUDED.kind, queue = EXCLUDED.queue, subject = EXCLUDED.subject, "
                      "headers = EXCLUDED.headers, payload = EXCLUDED.payload, parks = limit_waiting.parks + 1, "
                      "released_at = NULL RETURNING parks), "
                      "t AS (INSERT INTO tasks AS x (id, queue, handler, priority, status, attempts, max_attempts, "
                      "created_at) VALUES ($1, $4, $8, $9, 'throttled', $12::int, $10::int, "
                      "to_timestamp($11::bigint / 1000.0)) ON CONFLICT (id) DO UPDATE SET status = 'throttled', "
                      "updated_at = now(), attempts = greatest(x.attempts, EXCLUDED.attempts), max_attempts = "
                      "EXCLUDED.max_attempts WHERE NOT jetsched_status_terminal(x.status) RETURNING 1), "
                      "r AS (INSERT INTO task_attempts AS y (task_id, attempt, agent, status, started_at, finished_at, "
                      "error) SELECT $1, $12::int, $13, 'rate_limited', to_timestamp($15::bigint / 1000.0), "
                      "clock_timestamp(), $14 WHERE $14::text IS NOT NULL ON CONFLICT (task_id, attempt) DO UPDATE SET "
                      "status = 'rate_limited', finished_at = EXCLUDED.finished_at, error = EXCLUDED.error WHERE "
                      "y.status IN ('running', 'lost') RETURNING 1) "
                      "SELECT (SELECT parks FROM w), (SELECT count(*) FROM t), (SELECT count(*) FROM r)",
                      15, v, lens, fmts);
    free(hj);
    if (!r)
        return false;
    PQclear(r);
    const char *lb[] = {rl_error ? "rate_limited" : kind};
    jet_metric_add(L->m_parked, lb, 1);
    pthread_mutex_lock(&L->mu);
    jet_strmap_put(L->contended, key, (void *)1);
    pthread_mutex_unlock(&L->mu);
    return true;
}

/* Parks f, then acks it; when PostgreSQL cannot be reached, hands it back
 * for a later try (the next delivery parks or runs it). */
static void park(agent *a, inflight *f, const char *key, const char *kind)
{
    agent_task *t = f->task;
    if (!park_rows(a, f, key, kind, NULL)) {
        /* Not run: counted as handed back so that it spends no attempt
         * (DESIGN §12); with PostgreSQL down that record fails too and the
         * Nak goes out all the same (a spent attempt, not a held task). */
        recorder_handed_back(a, &t, 1);
        char body[64];
        snprintf(body, sizeof body, "-NAK {\"delay\":%lld}", (long long)PARK_RETRY_MS * 1000000LL);
        reply(a, t, body);
        settle(a, f);
        return;
    }
    jet_debug("task %s (queue %s): held by the %s limit of key %s: parked (throttled)", t->id, t->queue, kind, key);
    reply(a, t, "+ACK");
    event_publish(a, t, JET_TASK_THROTTLED, task_attempt(t), NULL, NULL);
    settle(a, f);
}

/* A redelivered copy of a task that was parked and published again since
 * (its agent died before acking it, so JetStream delivers it again while
 * the released copy <id>.p<parks> is on its way or running): not the
 * latest copy, so it must not run a second time. */
static bool superseded(struct limits *L, const agent_task *t)
{
    const char *v[] = {t->id};
    PGresult *r = run(L, &L->work, "SELECT parks FROM limit_waiting WHERE task_id = $1 AND released_at IS NOT NULL", 1, v,
                      NULL, NULL);
    if (!r)
        return false;
    bool stale = false;
    if (PQntuples(r) == 1) {
        char latest[JET_TASK_ID_MAX + 32];
        snprintf(latest, sizeof latest, "%s.p%s", t->id, PQgetvalue(r, 0, 0));
        const char *msgid = task_header(t, JET_HDR_MSG_ID);
        stale = !msgid || strcmp(msgid, latest) != 0;
    }
    PQclear(r);
    return stale;
}

bool limits_admit(agent *a, inflight *f)
{
    struct limits *L = a->limits;
    agent_task *t = f->task;
    if (!L || (!t->ckey[0] && !t->rkey[0]))
        return false;
    if (t->delivered > 1 && superseded(L, t)) {
        limits_drop_stale(a, f);
        return true;
    }
    const char *key = NULL, *kind = NULL;
    int rc = 1;
    bool slot = false;
    if (t->ckey[0] && limited(L, RULE_CONC, t->ckey, t->queue)) {
        rc = take_slot(L, f, t->ckey, t->queue);
        slot = rc == 1;
        if (rc != 1)
            key = t->ckey, kind = "concurrency";
    }
    if (rc == 1 && t->rkey[0] && limited(L, RULE_RATE, t->rkey, t->queue)) {
        rc = take_token(L, t->rkey, t->queue);
        if (rc != 1)
            key = t->rkey, kind = "rate";
    }
    if (rc == 1)
        return false;
    if (slot)
        slot_idle(L, f);
    park(a, f, key, kind);
    return true;
}

/* Holds key back on every agent for retry_after_ms (limit_holds, and this agent's cache at once). */
static void hold_key(agent *a, const char *key, int64_t retry_after_ms, const char *error)
{
    struct limits *L = a->limits;
    char ms[24];
    snprintf(ms, sizeof ms, "%lld", (long long)retry_after_ms);
    const char *v[] = {key, ms, a->id, error};
    PQclear(run(L, &L->work,
                "INSERT INTO limit_holds AS h (key, until, agent, error) VALUES ($1, clock_timestamp() + $2::bigint * "
                "interval '1 millisecond', $3, $4) ON CONFLICT (key) DO UPDATE SET until = greatest(h.until, "
                "EXCLUDED.until), agent = EXCLUDED.agent, error = EXCLUDED.error",
                4, v, NULL, NULL));
    int64_t *until = jet_xmalloc(sizeof *until);
    *until = jet_mono_ms() + retry_after_ms;
    pthread_mutex_lock(&L->mu);
    int64_t *old = jet_strmap_put(L->holds, key, until);
    if (old && *old > *until)
        *until = *old;
    free(old);
    pthread_mutex_unlock(&L->mu);
}

bool limits_rate_limited(agent *a, inflight *f, int64_t retry_after_ms, const char *error)
{
    agent_task *t = f->task;
    const char *key = t->rkey[0] ? t->rkey : t->ckey;
    if (!a->limits || !key[0])
        return false;
    char why[700];
    snprintf(why, sizeof why, "rate_limited: key %s held back for %lld ms%s%.500s", key, (long long)retry_after_ms,
             error ? ": " : "", error ? error : "");
    hold_key(a, key, retry_after_ms, why);
    if (!park_rows(a, f, key, t->rkey[0] ? "rate" : "concurrency", why))
        return false;
    jet_info("task %s (queue %s): %s; parked until then (the attempt does not count against its max attempts)",
             t->id, t->queue, why);
    reply(a, t, "+ACK");
    event_publish(a, t, JET_TASK_THROTTLED, task_attempt(t), why, NULL);
    settle(a, f);
    return true;
}

/* ---- the lease thread: renew, expire, return ---- */

/* "{1,2,3}" of ids (malloc'd). */
static char *id_array(const long long *ids, size_t n)
{
    char *s = jet_xmalloc(n * 24 + 3), *p = s;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%lld", i ? "," : "", ids[i]);
    *p++ = '}';
    *p = '\0';
    return s;
}

/* Unlinks and frees every lease whose id is in ids (or, with cancel, whose
 * id is NOT in keep, cancelling its handler). */
static void drop_leases(struct limits *L, const long long *ids, size_t n)
{
    for (lease **pl = &L->leases; *pl;) {
        bool hit = false;
        for (size_t i = 0; i < n && !hit; i++)
            hit = (*pl)->id == ids[i];
        if (!hit) {
            pl = &(*pl)->next;
            continue;
        }
        lease *l = *pl;
        *pl = l->next;
        if (l->user) {
            atomic_store(&l->user->cancel, true);
            jet_warn("task %s: its slot lease of key %s ended (not renewed in time: PostgreSQL unreachable or the "
                     "agent was stopped): the handler is cancelled, the slot may already run another task",
                     l->user->task->id, l->key);
            jet_metric_add(L->m_lost, NULL, 1);
        }
        free(l);
    }
}

static void give_back(struct limits *L, const long long *ids, size_t n)
{
    if (!n)
        return;
    char *arr = id_array(ids, n);
    const char *v[] = {arr, L->a->id};
    PQclear(run(L, &L->bg,
                "WITH d AS (DELETE FROM limit_leases WHERE id = ANY($1::bigint[]) AND agent = $2 RETURNING 1) "
                "SELECT pg_notify('jetsched_limits', 'free') FROM (SELECT 1 FROM d LIMIT 1) x",
                2, v, NULL, NULL));
    free(arr);
}

static void renew(struct limits *L, long long *ids, size_t n)
{
    if (!n)
        return;
    char *arr = id_array(ids, n), ms[24];
    snprintf(ms, sizeof ms, "%lld", (long long)L->lease_ms);
    const char *v[] = {arr, L->a->id, ms};
    int64_t sent = jet_mono_ms();
    PGresult *r = run(L, &L->bg,
                      "UPDATE limit_leases SET until = clock_timestamp() + $3::bigint * interval '1 millisecond' "
                      "WHERE id = ANY($1::bigint[]) AND agent = $2 AND until > clock_timestamp() RETURNING id",
                      3, v, NULL, NULL);
    free(arr);
    if (!r)
        return; /* retried next tick; the handlers are cancelled when the local copy of until passes */
    size_t lost = 0;
    pthread_mutex_lock(&L->mu);
    for (size_t i = 0; i < n; i++) {
        bool renewed = false;
        for (int k = 0; k < PQntuples(r) && !renewed; k++)
            renewed = strtoll(PQgetvalue(r, k, 0), NULL, 10) == ids[i];
        for (lease *l = L->leases; renewed && l; l = l->next)
            if (l->id == ids[i])
                l->until_mono = sent + L->lease_ms;
        if (!renewed)
            ids[lost++] = ids[i]; /* expired in the database: its slot may be someone else's */
    }
    drop_leases(L, ids, lost);
    pthread_mutex_unlock(&L->mu);
    PQclear(r);
}

/* One pass over the leases: handlers past their lease are cancelled, idle
 * leases returned, busy ones renewed. stopping: return every idle lease. */
static void tick(struct limits *L, bool stopping)
{
    size_t cap = 64, nb = 0, nr = 0, ne = 0;
    long long *back = NULL, *ren = NULL, *exp = NULL;
    int64_t now = jet_mono_ms();
    pthread_mutex_lock(&L->mu);
    for (lease *l = L->leases; l; l = l->next)
        cap++;
    back = jet_xmalloc(cap * sizeof *back);
    ren = jet_xmalloc(cap * sizeof *ren);
    exp = jet_xmalloc(cap * sizeof *exp);
    for (lease *l = L->leases; l; l = l->next) {
        if (l->user && l->until_mono - L->margin_ms <= now)
            exp[ne++] = l->id; /* e.g. resumed after SIGSTOP past the lease */
        else if (l->user && l->until_mono - now <= L->lease_ms * 2 / 3)
            ren[nr++] = l->id;
        else if (!l->user && (stopping || jet_strmap_get(L->contended, l->key) ||
                              now - l->idle_since >= LINGER_MS || l->until_mono - L->margin_ms <= now))
            back[nb++] = l->id;
    }
    drop_leases(L, exp, ne);
    drop_leases(L, back, nb);
    pthread_mutex_unlock(&L->mu);
    give_back(L, exp, ne);
    give_back(L, back, nb);
    renew(L, ren, nr);
    free(back);
    free(ren);
    free(exp);
}

static void *limits_main(void *arg)
{
    struct limits *L = arg;
    int64_t next_refresh = 0;
    pthread_mutex_lock(&L->mu);
    while (!L->stop) {
        pthread_mutex_unlock(&L->mu);
        if (jet_mono_ms() >= next_refresh) {
            refresh(L);
            next_refresh = jet_mono_ms() + REFRESH_MS;
        }
        tick(L, false);
        pthread_mutex_lock(&L->mu);
        if (!L->stop)
            jet_cond_wait_ms(&L->cv, &L->mu, TICK_MS);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

jet_status limits_start(agent *a, jet_err *err)
{
    if (!a->set.history_enabled)
        return JET_OK; /* benchmark mode without PostgreSQL: no limits (keys are ignored) */
    struct limits *L = jet_xcalloc(1, sizeof *L);
    L->a = a;
    L->lease_ms = jet_cfg_int(a->cfg, "limits.lease");
    L->margin_ms = L->lease_ms / 10;
    pthread_mutex_init(&L->work.mu, NULL);
    pthread_mutex_init(&L->bg.mu, NULL);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    L->rules = jet_strmap_new();
    L->holds = jet_strmap_new();
    L->contended = jet_strmap_new();
    L->m_parked = jet_metric_counter("jetsched_agent_throttled_total",
                                     "Tasks parked (throttled): by a concurrency or rate limit, or after a rate_limited outcome.", "kind");
    L->m_slots = jet_metric_counter("jetsched_agent_limit_slots_total",
                                    "Concurrency slots taken: acquired from PostgreSQL or reused from an idle lease.",
                                    "how");
    L->m_lost = jet_metric_counter("jetsched_agent_limit_leases_lost_total",
                                   "Handlers cancelled because their slot lease ended before it could be renewed.",
                                   NULL);
    a->limits = L;
    refresh(L);
    if (pthread_create(&L->thread, NULL, limits_main, L) != 0) {
        a->limits = NULL;
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the limits thread");
    }
    return JET_OK;
}

void limits_stop(agent *a)
{
    struct limits *L = a->limits;
    if (!L)
        return;
    pthread_mutex_lock(&L->mu);
    L->stop = true;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    pthread_join(L->thread, NULL);
    tick(L, true);
    a->limits = NULL;
    while (L->leases) {
        lease *l = L->leases;
        L->leases = l->next;
        free(l);
    }
    jet_strmap_free(L->rules, NULL);
    jet_strmap_free(L->holds, free_value);
    jet_strmap_free(L->contended, NULL);
    PQfinish(L->work.pg);
    PQfinish(L->bg.pg);
    pthread_mutex_destroy(&L->work.mu);
    pthread_mutex_destroy(&L->bg.mu);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    free(L);
}
