/* Task messages from PostgreSQL rows and their publish (see publish.h). */
#include "publish.h"

#include <jansson.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_stored_headers(natsMsg *m, const char *json)
{
    if (!json || !*json)
        return;
    json_t *o = json_loads(json, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (json_is_string(v)) {
            natsMsgHeader_Set(m, k, json_string_value(v));
        } else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (t)
                natsMsgHeader_Set(m, k, t);
            free(t);
        }
    }
    json_decref(o);
}

natsMsg *sched_task_msg(sched *s, PGresult *r, int i, bool redispatch, int64_t *fire_ms)
{
    const char *id = PQgetvalue(r, i, 0), *queue = PQgetvalue(r, i, 1), *prio = PQgetvalue(r, i, 2);
    jet_priority p;
    if (!jet_priority_parse(prio, &p))
        p = JET_PRIO_NORMAL;
    char subject[256];
    jet_js_task_subject(&s->names, queue, p, subject, sizeof subject);
    size_t plen = 0;
    unsigned char *payload = NULL;
    if (!PQgetisnull(r, i, 4))
        payload = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 4), &plen);
    natsMsg *m = NULL;
    natsStatus st = natsMsg_Create(&m, subject, NULL, (const char *)payload, (int)plen);
    PQfreemem(payload);
    if (st != NATS_OK)
        return NULL;
    if (!PQgetisnull(r, i, 5))
        add_stored_headers(m, PQgetvalue(r, i, 5));
    if (!PQgetisnull(r, i, 3))
        natsMsgHeader_Set(m, JET_HDR_HANDLER, PQgetvalue(r, i, 3));
    natsMsgHeader_Set(m, JET_HDR_MSG_ID, id);
    /* The row exists before the message: agentd looks it up on every delivery. */
    natsMsgHeader_Set(m, JET_HDR_IDEMPOTENCY, JET_IDEMPOTENCY_ALWAYS);
    if (!PQgetisnull(r, i, 6))
        natsMsgHeader_Set(m, JET_HDR_MAX_ATTEMPTS, PQgetvalue(r, i, 6));
    if (!PQgetisnull(r, i, 7))
        natsMsgHeader_Set(m, JET_HDR_SCHEDULE_ID, PQgetvalue(r, i, 7));
    *fire_ms = -1;
    if (!PQgetisnull(r, i, 8)) {
        char at[64];
        *fire_ms = strtoll(PQgetvalue(r, i, 8), NULL, 10);
        natsMsgHeader_Set(m, JET_HDR_FIRE_TIME, jet_rfc3339_format(*fire_ms, at, sizeof at));
    }
    if (redispatch)
        natsMsgHeader_Set(m, JET_HDR_REDISPATCH, "1");
    return m;
}

int sched_publish_msg(sched *s, natsMsg *m, const char *id)
{
    int result = 0;
    /* Not connected: do not wait for pub-acks that cannot come (a caller
     * would stall for attempts x nats.publish_timeout); the reconciler
     * publishes rows never dispatched at its next run. */
    for (int attempt = 0; attempt < 3 && !atomic_load(&s->stop) &&
                          natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED;
         attempt++) {
        if (attempt)
            jet_sleep_ms(100 * attempt * attempt);
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus st = js_PublishMsg(&pa, s->js, m, NULL, &jerr);
        if (st == NATS_OK) {
            result = pa && pa->Duplicate ? -1 : 1;
            jsPubAck_Destroy(pa);
            break;
        }
        jet_warn("publish of task %s to %s failed (attempt %d): %s (%d)", id, natsMsg_GetSubject(m), attempt + 1,
                 natsStatus_GetText(st), (int)jerr);
        jsPubAck_Destroy(pa);
    }
    return result;
}

int sched_publish_row(sched *s, PGresult *r, int i, bool redispatch, int64_t *fire_ms)
{
    natsMsg *m = sched_task_msg(s, r, i, redispatch, fire_ms);
    if (!m)
        return 0;
    int rc = sched_publish_msg(s, m, PQgetvalue(r, i, 0));
    natsMsg_Destroy(m);
    return rc;
}

void sched_nats_push(sched *s)
{
    if (natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(s->nc, SCHED_PUSH_WAIT_MS); /* a timeout: written all the same */
}

/* ---------------- asynchronous batches ---------------- */

/* An asynchronous JetStream context with its open set: the leader's (the
 * default, created on first use) and one per API worker (api_pool.c). */
struct sched_publisher {
    jsCtx *js;            /* AckHandler on_ack, closure: this publisher */
    pthread_mutex_t mu;   /* guards active and its items */
    sched_pubset *active;
    bool tried;           /* creation attempted */
};

static sched_publisher leader_pub = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t publish_timeout_ms(sched *s)
{
    int64_t t = jet_cfg_int(s->cfg, "nats.publish_timeout");
    return t > 0 ? t : 5000;
}

/* The in-flight item sent as m (mu held). Pub-acks mostly come in publish
 * order, so the scan starts after the last one found. */
static sched_pub_item *find_inflight(sched_pubset *ps, const void *m)
{
    for (size_t k = 0; k < ps->n; k++) {
        size_t i = (ps->hint + k) % ps->n;
        if (ps->items[i].inflight && ps->items[i].sent == m) {
            ps->hint = i + 1;
            return &ps->items[i];
        }
    }
    return NULL;
}

static void note_err(sched_pubset *ps, const sched_pub_item *it, const char *what, natsStatus st, int code,
                     const char *text)
{
    if (!ps->first_err[0])
        snprintf(ps->first_err, sizeof ps->first_err, "task %s: %s: %s (%d)%s%s", it->id, what,
                 natsStatus_GetText(st), code, text && *text ? ": " : "", text && *text ? text : "");
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    sched_publisher *pub = closure;
    pthread_mutex_lock(&pub->mu);
    sched_pub_item *it = pub->active ? find_inflight(pub->active, msg) : NULL;
    if (it) {
        it->inflight = false;
        if (pa) {
            it->result = pa->Duplicate ? -1 : 1;
            it->acked_ms = jet_now_ms();
        } else {
            it->result = 0;
            it->timed_out = pae && pae->Err == NATS_TIMEOUT;
            it->msg = msg; /* kept for the retry */
            msg = NULL;
            note_err(pub->active, it, "pub-ack", pae ? pae->Err : NATS_ERR, pae ? (int)pae->ErrCode : 0,
                     pae ? pae->ErrText : NULL);
        }
    }
    pthread_mutex_unlock(&pub->mu);
    natsMsg_Destroy(msg);
}

static void publisher_open(sched_publisher *pub, sched *s)
{
    if (pub->tried)
        return;
    pub->tried = true;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = publish_timeout_ms(s);
    jo.PublishAsync.MaxPending = SCHED_PUB_WINDOW;
    jo.PublishAsync.StallWait = publish_timeout_ms(s);
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = pub;
    natsStatus st = natsConnection_JetStream(&pub->js, s->nc, &jo);
    if (st != NATS_OK) {
        jet_warn("asynchronous publish context: %s; publishing one message at a time", natsStatus_GetText(st));
        pub->js = NULL;
    }
}

sched_publisher *sched_publisher_new(sched *s)
{
    sched_publisher *pub = calloc(1, sizeof *pub);
    pthread_mutex_init(&pub->mu, NULL);
    publisher_open(pub, s);
    return pub;
}

void sched_publisher_free(sched_publisher *pub)
{
    if (!pub)
        return;
    if (pub->js)
        jsCtx_Destroy(pub->js);
    pthread_mutex_destroy(&pub->mu);
    free(pub);
}

void sched_pubset_init_on(sched_pubset *ps, sched *s, sched_publisher *pub)
{
    memset(ps, 0, sizeof *ps);
    ps->s = s;
    ps->pub = pub;
    ps->timeout_ms = publish_timeout_ms(s);
    pthread_mutex_lock(&pub->mu);
    pub->active = ps;
    pthread_mutex_unlock(&pub->mu);
}

void sched_pubset_init(sched_pubset *ps, sched *s)
{
    publisher_open(&leader_pub, s);
    sched_pubset_init_on(ps, s, &leader_pub);
}

void sched_pubset_add(sched_pubset *ps, PGresult *r, int i, bool redispatch)
{
    int64_t fire_ms = -1;
    natsMsg *m = sched_task_msg(ps->s, r, i, redispatch, &fire_ms);
    sched_pubset_add_msg(ps, m, PQgetvalue(r, i, 0), fire_ms, redispatch);
}

void sched_pubset_add_msg(sched_pubset *ps, natsMsg *m, const char *id, int64_t fire_ms, bool redispatch)
{
    sched_pubset_add_msg_own(ps, m, strdup(id), fire_ms, redispatch);
}

void sched_pubset_add_msg_own(sched_pubset *ps, natsMsg *m, char *id, int64_t fire_ms, bool redispatch)
{
    sched_publisher *pub = ps->pub;
    pthread_mutex_lock(&pub->mu);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 256;
        ps->items = realloc(ps->items, ps->cap * sizeof *ps->items);
    }
    sched_pub_item *it = &ps->items[ps->n++];
    *it = (sched_pub_item){.id = id, .fire_ms = fire_ms, .redispatch = redispatch};
    size_t idx = ps->n - 1;
    bool send = m && pub->js && natsConnection_Status(ps->s->nc) == NATS_CONN_STATUS_CONNECTED;
    if (send) {
        it->inflight = true;
        it->sent = m;
    } else {
        it->msg = m; /* not sent: the retry (or the reconciler) takes it */
    }
    pthread_mutex_unlock(&pub->mu);
    if (!send)
        return;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = ps->timeout_ms;
    natsStatus st = js_PublishMsgAsync(pub->js, &m, &po);
    if (st != NATS_OK) { /* m is still ours */
        pthread_mutex_lock(&pub->mu);
        it = &ps->items[idx];
        it->inflight = false;
        it->msg = m;
        note_err(ps, it, "publish", st, 0, nats_GetLastError(NULL));
        pthread_mutex_unlock(&pub->mu);
    }
}

void sched_pubset_finish(sched_pubset *ps)
{
    sched_publisher *pub = ps->pub;
    if (pub->js && ps->n)
        sched_nats_push(ps->s);
    if (pub->js && ps->n) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = ps->timeout_ms + 1000;
        if (js_PublishAsyncComplete(pub->js, &po) == NATS_TIMEOUT) {
            /* no pub-ack and no timeout callback: give them up */
            natsMsgList l = {0};
            if (js_PublishAsyncGetPendingList(&l, pub->js) == NATS_OK) {
                pthread_mutex_lock(&pub->mu);
                for (int k = 0; k < l.Count; k++) {
                    sched_pub_item *it = find_inflight(ps, l.Msgs[k]);
                    if (it) {
                        it->inflight = false;
                        it->timed_out = true;
                        note_err(ps, it, "pub-ack", NATS_TIMEOUT, 0, NULL);
                    }
                }
                pthread_mutex_unlock(&pub->mu);
                natsMsgList_Destroy(&l);
            }
        }
    }
    /* Every callback has run (js_PublishAsyncComplete returns after the
     * last one): the items are ours. One synchronous retry pass for
     * failures other than a pub-ack timeout, stopped by the first that fails
     * again (NATS is in trouble: the reconciler takes the rest). */
    size_t failed = 0;
    bool give_up = false;
    for (size_t i = 0; i < ps->n; i++) {
        sched_pub_item *it = &ps->items[i];
        if (it->result == 0 && it->msg && !it->timed_out && !give_up && !atomic_load(&ps->s->stop)) {
            it->result = sched_publish_msg(ps->s, it->msg, it->id);
            if (it->result == 1)
                it->acked_ms = jet_now_ms();
            give_up = it->result == 0;
        }
        natsMsg_Destroy(it->msg);
        it->msg = NULL;
        if (it->result == 0)
            failed++;
    }
    if (failed)
        jet_warn("publish of %zu of %zu task(s) failed (%s); left to the reconciler", failed, ps->n,
                 ps->first_err[0] ? ps->first_err : "NATS not connected");
}

void sched_pubset_free(sched_pubset *ps)
{
    sched_publisher *pub = ps->pub;
    if (pub) {
        pthread_mutex_lock(&pub->mu);
        if (pub->active == ps)
            pub->active = NULL;
        pthread_mutex_unlock(&pub->mu);
    }
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->items[i].id);
        natsMsg_Destroy(ps->items[i].msg);
    }
    free(ps->items);
    memset(ps, 0, sizeof *ps);
}

void sched_publish_close(void)
{
    if (leader_pub.js)
        jsCtx_Destroy(leader_pub.js);
    leader_pub.js = NULL;
    leader_pub.tried = false;
}
