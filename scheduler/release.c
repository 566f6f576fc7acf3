/* The leader's releaser of throttled tasks (issue 17, docs/ARCHITECTURE.md
 * "Flow control"). Agents park a task held by a concurrency or rate limit
 * in PostgreSQL (limit_waiting, tasks.status 'throttled') and ack it. While
 * this instance acts as leader, the releaser asks jetsched_limit_release()
 * (sql/0008_limits.sql) which parked tasks may go now (free slots, tokens,
 * no hold; oldest first per key), and publishes each again on its subject
 * with Nats-Msg-Id `<id>.p<parks>` and Jetsched-Task-Id `<id>`: the row is
 * 'queued' before the publish, so the admission step runs it. It wakes on
 * channel jetsched_limits (agents notify when they return slots, the API when
 * a limit changes) and at least every RELEASE_TICK_MS (tokens refill, holds
 * end). A parked task older than limits.max_hold ends 'expired'. */
#include "schedulerd.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/pgconn.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELEASE_TICK_MS 100
#define RELEASE_BATCH 256
#define EXPIRE_EVERY_MS 1000

static pthread_t release_thread;
static bool started;
static jet_metric *m_released, *m_expired;

/* Publishes one released task; false when JetStream did not store it. */
static bool publish_one(sched *s, PGresult *r, int i)
{
    const char *id = PQgetvalue(r, i, 0);
    char msgid[JET_TASK_ID_MAX + 32];
    snprintf(msgid, sizeof msgid, "%s.p%s", id, PQgetvalue(r, i, 1));
    size_t plen = 0;
    unsigned char *payload = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 4), &plen);
    natsMsg *m = NULL;
    bool ok = natsMsg_Create(&m, PQgetvalue(r, i, 2), NULL, (const char *)payload, (int)plen) == NATS_OK;
    PQfreemem(payload);
    json_t *hs = ok ? json_loads(PQgetvalue(r, i, 3), 0, NULL) : NULL;
    size_t k;
    json_t *h;
    json_array_foreach(hs, k, h)
    {
        const char *n = json_string_value(json_array_get(h, 0)), *v = json_string_value(json_array_get(h, 1));
        if (n && v)
            natsMsgHeader_Add(m, n, v);
    }
    json_decref(hs);
    if (ok) {
        natsMsgHeader_Set(m, JET_HDR_MSG_ID, msgid);
        natsMsgHeader_Set(m, JET_HDR_TASK_ID, id);
        jsErrCode jerr = 0;
        jsPubAck *pa = NULL;
        natsStatus st = js_PublishMsg(&pa, s->js, m, NULL, &jerr);
        jsPubAck_Destroy(pa);
        ok = st == NATS_OK;
        if (!ok)
            jet_warn("release: publishing throttled task %s failed: %s (%d); it stays parked", id,
                     natsStatus_GetText(st), (int)jerr);
    }
    natsMsg_Destroy(m);
    return ok;
}

/* Parks again what could not be published (the next round retries it). */
static void unrelease(PGconn *pg, const char *id)
{
    const char *v[] = {id};
    PQclear(PQexecParams(pg,
                         "WITH w AS (UPDATE limit_waiting SET released_at = NULL WHERE task_id = $1 RETURNING task_id) "
                         "UPDATE tasks t SET status = 'throttled' FROM w WHERE t.id = w.task_id AND t.status = 'queued'",
                         1, NULL, v, NULL, NULL, 0));
}

/* One round: publishes what may go; returns how many (-1: PostgreSQL failed). */
static int release_round(sched *s, PGconn *pg)
{
    char batch[16];
    snprintf(batch, sizeof batch, "%d", RELEASE_BATCH);
    const char *v[] = {batch};
    PGresult *r = PQexecParams(pg, "SELECT task_id, parks, subject, headers::text, payload FROM "
                                   "jetsched_limit_release($1::int)",
                               1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        jet_warn("release: %s", PQerrorMessage(pg));
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n && !atomic_load(&s->stop); i++) {
        if (publish_one(s, r, i))
            jet_metric_add(m_released, NULL, 1);
        else
            unrelease(pg, PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return n;
}

static void expire_round(sched *s, PGconn *pg)
{
    char hold[32];
    snprintf(hold, sizeof hold, "%lld", (long long)jet_cfg_int(s->cfg, "limits.max_hold"));
    const char *v[] = {hold};
    PGresult *r = PQexecParams(
        pg,
        "WITH x AS (DELETE FROM limit_waiting w WHERE w.released_at IS NULL AND "
        "w.since < clock_timestamp() - $1::bigint * interval '1 millisecond' RETURNING w.task_id) "
        "UPDATE tasks t SET status = 'expired', finished_at = now(), updated_at = now(), "
        "error = 'throttled longer than limits.max_hold: held back by a concurrency/rate limit' "
        "FROM x WHERE t.id = x.task_id AND NOT jetsched_status_terminal(t.status)",
        1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK && atoi(PQcmdTuples(r)) > 0) {
        jet_warn("release: %s throttled task(s) expired (held longer than limits.max_hold)", PQcmdTuples(r));
        jet_metric_add(m_expired, NULL, atof(PQcmdTuples(r)));
    }
    PQclear(r);
}

/* Waits for a NOTIFY on jetsched_limits or ms; drains the notifications. */
static void wait_notify(PGconn *pg, int ms)
{
    struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
    if (p.fd >= 0)
        poll(&p, 1, ms);
    else
        jet_sleep_ms(ms);
    PQconsumeInput(pg);
    PGnotify *n;
    while ((n = PQnotifies(pg)) != NULL)
        PQfreemem(n);
}

static void *release_main(void *arg)
{
    sched *s = arg;
    PGconn *pg = NULL;
    int64_t next_expire = 0;
    while (!atomic_load(&s->stop)) {
        if (atomic_load(&s->epoch) == 0) {
            PQfinish(pg);
            pg = NULL;
            jet_sleep_ms(RELEASE_TICK_MS);
            continue;
        }
        if (!pg || PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = NULL;
            jet_err err;
            if (jet_pg_connect(s->cfg, "schedulerd-release", &pg, &err) != JET_OK) {
                jet_sleep_ms(1000);
                continue;
            }
            PQclear(PQexec(pg, "LISTEN jetsched_limits"));
        }
        if (jet_mono_ms() >= next_expire) {
            expire_round(s, pg);
            next_expire = jet_mono_ms() + EXPIRE_EVERY_MS;
        }
        int n = release_round(s, pg);
        if (n < 0) {
            jet_sleep_ms(500);
            continue;
        }
        if (n < RELEASE_BATCH)
            wait_notify(pg, RELEASE_TICK_MS);
    }
    PQfinish(pg);
    return NULL;
}

jet_status release_start(sched *s, jet_err *err)
{
    m_released = jet_metric_counter("jetsched_throttled_released_total",
                                    "Throttled tasks published again by the leader (a slot or token freed).", NULL);
    m_expired = jet_metric_counter("jetsched_throttled_expired_total",
                                   "Throttled tasks that ended expired (held longer than limits.max_hold).", NULL);
    if (pthread_create(&release_thread, NULL, release_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the releaser thread");
    started = true;
    return JET_OK;
}

void release_stop(sched *s)
{
    (void)s;
    if (started)
        pthread_join(release_thread, NULL);
    started = false;
}
