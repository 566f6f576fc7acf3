/* The per-queue puller thread. See puller.h for the design. */
#include "puller.h"
#include "acker.h"
#include "admission.h"
#include "dispatch.h"
#include "recorder.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY_BACKOFF_MS 100     /* a lane found empty is skipped this long */
#define LONGPOLL_MS 1000         /* server-side expiry of an idle wait; also bounds how long a
                                  * paused lane (control.c) can still deliver: keep it <= 1 s */
#define GIVEUP_BACKOFF_MS 1000  /* a lane whose request was given up is not asked again this long */
#define ACTIVE_MS 2000           /* a lane that delivered this recently waits for more than one task */
#define SHARE_WAIT_MS 250        /* ... with a shorter expiry: the slots it holds come back sooner */
#define SHARE_MAX_RATE 10000LL   /* ... unless its last share filled faster than this many tasks/s */
#define ANSWER_GRACE_MS 2000     /* a request unanswered this long after its expiry is given up (a
                                  * missing consumer never answers: agentd_pull_protocol) */

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;
static jet_metric *m_requests, *m_late;

static void metrics_init(void)
{
    m_requests = jet_metric_counter("jetsched_agent_pull_requests_total",
                                    "Pull requests sent (each asks for a batch of up to the free slots).",
                                    "queue,priority");
    m_late = jet_metric_counter("jetsched_agent_late_deliveries_total",
                                "Tasks delivered for a pull request the agent had given up or forgotten "
                                "(queued like any other, no attempt spent).",
                                "queue");
}

/* The agent must not take new work: draining, or the history backlog is full. */
static bool paused(agent *a)
{
    if (atomic_load(&a->draining) || atomic_load(&a->stopped))
        return true;
    return recorder_backlogged(a);
}

/* The connection's epoch: any disconnect or reconnect changes it. */
static uint64_t nats_epoch(void) { return jet_nats_disconnects() + jet_nats_reconnects(); }

void puller_wake(queue_rt *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void handle_arrival(queue_rt *q, natsMsg *m);
static void issue_requests(queue_rt *q, int64_t now);
static void expire_requests(queue_rt *q, int64_t now);

#define ADMIT_BATCH_MAX 256 /* deliveries looked up together at most (admission.c: one query) */

/* The deliveries collected so far go to their admission lookup (one
 * PostgreSQL query, admission.h), then to the workers (the first woken
 * wakes the next: dispatch_wake_next). Called with q->mu held; returns with
 * it RELEASED (the worker is woken without it, so that it does not block
 * on it). */
static void admit_arrivals(queue_rt *q)
{
    size_t n;
    inflight **fs = dispatch_take_arriving(q, &n);
    bool wake = false;
    if (fs) {
        pthread_mutex_unlock(&q->mu);
        admission_lookup(q->a, fs, n);
        pthread_mutex_lock(&q->mu);
        dispatch_admitted(q, fs, n);
        wake = dispatch_wake_next(q);
        free(fs);
        if (atomic_load(&q->a->draining))
            pthread_cond_broadcast(&q->cv); /* puller_join waits for admitting == 0 */
    }
    pthread_mutex_unlock(&q->mu);
    if (wake)
        dispatch_wake(q);
}

/* During the drain: the deliveries collected so far are queued for the
 * workers without their lookup (workers_drain hands them back; one a worker
 * took first is looked up by it). q->mu held. */
static void arrivals_unlooked(queue_rt *q)
{
    size_t n;
    inflight **fs = dispatch_take_arriving(q, &n);
    if (fs)
        dispatch_admitted(q, fs, n);
    free(fs);
}

/* The subscription callback (libnats' delivery thread of the inbox). While
 * the agent runs, deliveries are collected here while more of them wait in
 * the subscription (the rest of a pull batch), then the batch is looked up
 * at once (admit_arrivals) and handed to the workers from this thread, and
 * the freed request slots are refilled at once: no hop through the puller
 * thread, one admission query per batch. During a drain (or before the
 * puller exits) messages are only parked in q->arrived, for puller_join()
 * to hand back. */
static void on_inbox(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    queue_rt *q = closure;
    agent *a = q->a;
    pthread_mutex_lock(&q->mu);
    if (atomic_load(&a->draining) || atomic_load(&a->stopped)) {
        q->arrived = jet_xgrow(q->arrived, &q->arrived_cap, q->arrived_len + 1, sizeof *q->arrived, 16);
        q->arrived[q->arrived_len++] = msg;
        arrivals_unlooked(q);
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        return;
    }
    handle_arrival(q, msg);
    if (!paused(a))
        issue_requests(q, jet_mono_ms());
    /* Collected even with history off (no lookup): handing each task over
     * at once cost more CPU and throughput in A/B runs (docs/PERFORMANCE.md). */
    int more = 0;
    if (q->arriving_len > 0 && q->arriving_len < ADMIT_BATCH_MAX &&
        natsSubscription_GetPending(sub, &more, NULL) == NATS_OK && more > 0) {
        pthread_mutex_unlock(&q->mu); /* the next callback comes at once and collects it too */
        return;
    }
    admit_arrivals(q); /* unlocks */
}

jet_status puller_init(queue_rt *q, jet_err *err)
{
    agent *a = q->a;
    pthread_once(&metrics_once, metrics_init);
    jet_nats_new_inbox(q->inbox, sizeof q->inbox); /* under nats.inbox_prefix */
    for (int p = 0; p < JET_PRIO_COUNT; p++) {
        char consumer[96];
        jet_js_consumer_name(q->name, (jet_priority)p, consumer, sizeof consumer);
        snprintf(q->pull_subject[p], sizeof q->pull_subject[p], "$JS.API.CONSUMER.MSG.NEXT.%s.%s",
                 a->names.task_stream, consumer);
    }
    char wildcard[160];
    snprintf(wildcard, sizeof wildcard, "%s.>", q->inbox);
    natsStatus s = natsConnection_Subscribe(&q->sub, a->nc, wildcard, on_inbox, q);
    if (s != NATS_OK)
        return jet_nats_err(err, s, "subscribe to the pull inbox");
    natsSubscription_SetPendingLimits(q->sub, -1, -1);
    q->reconnects_seen = nats_epoch();
    return JET_OK;
}

/* Smooth weighted round robin over eligible lanes; strict: first eligible. */
static int pick_lane(queue_rt *q, const bool eligible[JET_PRIO_COUNT])
{
    if (q->strict) {
        for (int p = 0; p < JET_PRIO_COUNT; p++)
            if (eligible[p])
                return p;
        return -1;
    }
    int best = -1;
    int64_t total = 0;
    for (int p = 0; p < JET_PRIO_COUNT; p++) {
        if (!eligible[p])
            continue;
        q->lanes[p].current += q->lanes[p].weight;
        total += q->lanes[p].weight;
        if (best < 0 || q->lanes[p].current > q->lanes[best].current)
            best = p;
    }
    if (best >= 0)
        q->lanes[best].current -= total;
    return best;
}

/* The lane's request will deliver nothing more (ended with a status, or
 * forgotten): its unfilled slots are free again. */
static void end_request(queue_rt *q, int lane)
{
    struct lane *l = &q->lanes[lane];
    if (l->req_id == 0)
        return;
    dispatch_request_done(q, l->req_left);
    l->req_id = 0;
    l->req_left = 0;
}

static bool nowait_in_flight(const queue_rt *q)
{
    for (int p = 0; p < JET_PRIO_COUNT; p++)
        if (q->lanes[p].req_id && !q->lanes[p].req_longpoll)
            return true;
    return false;
}

/* After a disconnect the server may or may not still hold our requests:
 * forget them all (what they still deliver is late, see handle_arrival) and
 * count from zero. Called with q->mu held. */
static void reset_on_reconnect(queue_rt *q)
{
    uint64_t e = nats_epoch();
    if (e == q->reconnects_seen)
        return;
    q->reconnects_seen = e;
    int forgotten = 0;
    for (int p = 0; p < JET_PRIO_COUNT; p++) {
        forgotten += q->lanes[p].req_id != 0;
        end_request(q, p);
    }
    if (forgotten)
        jet_info("queue %s: NATS connection changed; %d pull request(s) forgotten", q->name, forgotten);
}

/* Publishes the lane's pull request for n messages; called with q->mu held. */
static void send_pull(queue_rt *q, int lane, int n, int64_t expires_ms)
{
    bool longpoll = expires_ms > 0;
    struct lane *l = &q->lanes[lane];
    if (l->max_batch > 0 && n > l->max_batch)
        n = l->max_batch;
    char reply[192], body[96];
    uint64_t id = ++q->next_req;
    snprintf(reply, sizeof reply, "%s.%d.%llu", q->inbox, lane, (unsigned long long)id);
    if (longpoll)
        snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%lld}", n, (long long)expires_ms * 1000000LL);
    else
        snprintf(body, sizeof body, "{\"batch\":%d,\"no_wait\":true}", n);
    natsStatus s = natsConnection_PublishRequestString(q->a->nc, q->pull_subject[lane], reply, body);
    if (s != NATS_OK) {
        l->empty_until_mono = jet_mono_ms() + EMPTY_BACKOFF_MS * 10;
        return;
    }
    const char *labels[] = {q->name, jet_priority_name((jet_priority)lane)};
    jet_metric_add(m_requests, labels, 1);
    l->req_id = id;
    l->req_left = n;
    l->req_longpoll = longpoll;
    l->req_sent_mono = jet_mono_ms();
    l->req_batch = n;
    l->req_giveup_mono = l->req_sent_mono + expires_ms + ANSWER_GRACE_MS;
    dispatch_request_sent(q, n);
}

static void expire_requests(queue_rt *q, int64_t now)
{
    for (int p = 0; p < JET_PRIO_COUNT; p++)
        if (q->lanes[p].req_id && q->lanes[p].req_giveup_mono <= now) {
            jet_debug("queue %s lane %s: pull request %llu got no answer; giving it up", q->name,
                      jet_priority_name((jet_priority)p), (unsigned long long)q->lanes[p].req_id);
            end_request(q, p);
            /* kept out of the next rounds a while: a round waits for every
             * answer, and a lane whose consumer is gone never answers */
            q->lanes[p].empty_until_mono = now + GIVEUP_BACKOFF_MS;
        }
}

/* The lane of a delivered task from its subject <prefix>.task.<queue>.<priority>. */
static int lane_of_subject(const char *subj)
{
    const char *dot = strrchr(subj, '.');
    jet_priority p;
    return dot && jet_priority_parse(dot + 1, &p) ? (int)p : -1;
}

/* A status reply to the lane's request `id` (agentd_pull_protocol pins them
 * for nats-server 2.9.10): 404 no_wait found nothing; 408 the request ended
 * (expired, or a no_wait batch was partly filled) with its unfilled count
 * in Nats-Pending-Messages; 409 a consumer limit (MaxRequestBatch n,
 * MaxRequestExpires, MaxWaiting) or the consumer is gone. A full batch ends
 * with no status at all. Called with q->mu held. */
static void handle_status(queue_rt *q, int lane, uint64_t id, natsMsg *m, const char *status)
{
    struct lane *l = &q->lanes[lane];
    if (id != l->req_id) {
        jet_debug("queue %s lane %s: status %s for a forgotten pull request %llu", q->name,
                  jet_priority_name((jet_priority)lane), status, (unsigned long long)id);
        return;
    }
    bool longpoll = l->req_longpoll;
    end_request(q, lane);
    int code = atoi(status);
    const char *desc = NULL;
    natsMsgHeader_Get(m, "Description", &desc);
    int n = 0;
    if (code == 404 || (code == 408 && !longpoll)) {
        l->empty_until_mono = jet_mono_ms() + EMPTY_BACKOFF_MS; /* drained: no_wait again later */
    } else if (code == 408) {
        /* an idle wait expired: waited on again at once */
    } else if (code == 409 && desc && sscanf(desc, "Exceeded MaxRequestBatch of %d", &n) == 1 && n > 0) {
        l->max_batch = n; /* asked again at once, within the limit */
    } else if (code != 100) {
        jet_warn("queue %s lane %s: pull request answered %s %s", q->name, jet_priority_name((jet_priority)lane),
                 status, desc ? desc : "");
        l->empty_until_mono = jet_mono_ms() + 1000;
    }
}

/* A status reply (no reply subject, no data, a Status header) on the
 * subject <inbox>.<lane>.<request id>: true with *status set; *lane is -1
 * when the subject is not one of ours. Only a status reply is asked for its
 * headers: a task's header block is parsed by task_from_msg before libnats
 * touches it. */
static bool status_reply(queue_rt *q, natsMsg *m, int *lane, uint64_t *id, const char **status)
{
    *status = NULL;
    if (natsMsg_GetReply(m) != NULL || natsMsg_GetDataLength(m) != 0 ||
        natsMsgHeader_Get(m, "Status", status) != NATS_OK || !*status)
        return false;
    const char *subj = natsMsg_GetSubject(m);
    size_t il = strlen(q->inbox);
    unsigned long long n = 0;
    if (strncmp(subj, q->inbox, il) != 0 || sscanf(subj + il, ".%d.%llu", lane, &n) != 2 || *lane < 0 ||
        *lane >= JET_PRIO_COUNT)
        *lane = -1;
    *id = n;
    return true;
}

/* True when m was a status reply: it is handled (handle_status, when it is
 * one of ours) and destroyed. */
static bool consume_status_reply(queue_rt *q, natsMsg *m)
{
    int lane = -1;
    uint64_t id = 0;
    const char *status;
    if (!status_reply(q, m, &lane, &id, &status))
        return false;
    if (lane >= 0)
        handle_status(q, lane, id, m, status);
    natsMsg_Destroy(m);
    return true;
}

/* The lane of a task delivery (a lane subject with a $JS.ACK reply), or -1
 * for anything else; *reply set either way. */
static int delivery_lane(natsMsg *m, const char **reply)
{
    int lane = lane_of_subject(natsMsg_GetSubject(m));
    *reply = natsMsg_GetReply(m);
    return lane >= 0 && *reply && strncmp(*reply, "$JS.ACK.", 8) == 0 ? lane : -1;
}

/* A task delivered on `lane`: counted against the lane's request; false
 * when no request of ours was waiting for it (a late delivery: from a
 * request we gave up or forgot on reconnect). */
static bool count_delivery(queue_rt *q, int lane)
{
    struct lane *l = &q->lanes[lane];
    l->empty_until_mono = 0;
    l->active_mono = jet_mono_ms();
    l->pulled++;
    if (l->req_id == 0 || l->req_left <= 0) {
        const char *labels[] = {q->name};
        jet_metric_add(m_late, labels, 1);
        l->late++;
        return false;
    }
    l->req_left--;
    dispatch_request_done(q, 1);
    if (l->req_left == 0) {
        l->req_id = 0; /* a full batch: the server sends no status */
        /* A share wait filled faster than SHARE_MAX_RATE tasks/s: the rate
         * is high enough for no_wait rounds to bring batches (pushing each
         * task as it is stored costs nats-server more per task); back to
         * them for ACTIVE_MS. */
        if (l->req_longpoll && l->req_batch > 1 &&
            (int64_t)l->req_batch * 1000 > SHARE_MAX_RATE * (l->active_mono - l->req_sent_mono))
            l->busy_until_mono = l->active_mono + ACTIVE_MS;
    }
    return true;
}

/* Handles one message from the inbox; called with q->mu held. Tasks arrive
 * with their original subject and are told apart by lane only (the server
 * shares a consumer's waiting requests round robin, so a delivery names no
 * request: one request per lane keeps the count exact). A task joins the
 * batch arriving (dispatch_arrived; admit_arrivals hands it on). */
static void handle_arrival(queue_rt *q, natsMsg *m)
{
    reset_on_reconnect(q);
    if (consume_status_reply(q, m))
        return;
    const char *reply;
    int lane = delivery_lane(m, &reply);
    if (lane < 0) {
        jet_warn("queue %s: unexpected message on %s; ignored", q->name, natsMsg_GetSubject(m));
        natsMsg_Destroy(m);
        return;
    }
    /* A late delivery waits in the ready queue like any other: no Nak (a Nak
     * counts as a JetStream delivery), and no handler beyond concurrency
     * (dispatch.h); no pull is sent until the slots are back. */
    if (!count_delivery(q, lane))
        jet_debug("queue %s: late delivery on lane %s", q->name, jet_priority_name((jet_priority)lane));
    dispatch_arrived(q, m, (jet_priority)lane);
}

/* The idle waits when every lane can have one (free >= the lanes): a lane
 * that delivered within ACTIVE_MS (and whose last share did not fill at
 * more than SHARE_MAX_RATE tasks/s) waits for its weighted share of the free
 * slots left after one for each other lane (the server then pushes each
 * task as it is stored, without a pull round trip per task: start latency
 * at low load), for SHARE_WAIT_MS (slots a quiet lane holds come back
 * soon to a busy one); the others for 1, LONGPOLL_MS. q->mu held. */
static void longpoll_shares(queue_rt *q, int64_t now, int free)
{
    bool wait[JET_PRIO_COUNT], active[JET_PRIO_COUNT];
    int share[JET_PRIO_COUNT] = {0}, nactive = 0, nwait = 0;
    for (int p = 0; p < JET_PRIO_COUNT; p++) {
        wait[p] = !q->lanes[p].req_id && !atomic_load(&q->lanes[p].paused);
        active[p] = wait[p] && q->lanes[p].pulled > 0 && now - q->lanes[p].active_mono <= ACTIVE_MS &&
                    q->lanes[p].busy_until_mono <= now;
        nwait += wait[p];
        nactive += active[p];
        share[p] = wait[p];
    }
    int spare = free - nwait;
    if (q->strict) { /* strictly by priority: the first active lane takes the spare slots */
        for (int p = 0; p < JET_PRIO_COUNT && spare > 0; p++)
            if (active[p]) {
                share[p] += spare;
                spare = 0;
            }
    }
    for (int i = 0; i < spare && nactive > 0; i++) {
        int p = pick_lane(q, active);
        share[p]++;
    }
    for (int p = 0; p < JET_PRIO_COUNT; p++)
        if (share[p] > 0)
            send_pull(q, p, share[p], share[p] > 1 ? SHARE_WAIT_MS : LONGPOLL_MS);
}

/* Asks for what can start: the free slots (dispatch.h) are split across the
 * lanes that may have work by their weights (one request per lane, batch =
 * its share), so the lanes together never ask for more than can start. A
 * new round is sent only when the last one has been answered (a no_wait
 * request is answered within a round trip), so slots freed meanwhile go out
 * together. When every lane is empty, each waits on the server with a
 * batch-1 request that expires after LONGPOLL_MS. */
static void issue_requests(queue_rt *q, int64_t now)
{
    reset_on_reconnect(q);
    if (jet_nats_disconnects() > jet_nats_reconnects())
        return; /* disconnected: requests would only be buffered, then forgotten */
    int free = dispatch_free_slots(q);
    if (free <= 0 || nowait_in_flight(q))
        return;
    bool eligible[JET_PRIO_COUNT];
    int share[JET_PRIO_COUNT] = {0};
    bool any = false;
    for (int p = 0; p < JET_PRIO_COUNT; p++) {
        eligible[p] = q->lanes[p].req_id == 0 && q->lanes[p].empty_until_mono <= now &&
                      !atomic_load(&q->lanes[p].paused);
        any |= eligible[p];
    }
    if (any) {
        for (int i = 0; i < free; i++) {
            int lane = pick_lane(q, eligible);
            share[lane]++;
            if (q->lanes[lane].max_batch > 0 && share[lane] >= q->lanes[lane].max_batch)
                eligible[lane] = false;
            bool more = false;
            for (int p = 0; p < JET_PRIO_COUNT; p++)
                more |= eligible[p];
            if (!more)
                break;
        }
        for (int p = 0; p < JET_PRIO_COUNT; p++)
            if (share[p] > 0)
                send_pull(q, p, share[p], 0);
        return;
    }
    /* Every lane is empty (or being waited on): wait on the server instead of
     * polling, in priority order, never more requests than free slots. */
    if (free >= JET_PRIO_COUNT) {
        longpoll_shares(q, now, free);
        return;
    }
    for (int i = 0; i < JET_PRIO_COUNT && free > 0; i++) {
        int p = (q->longpoll_rotate + i) % JET_PRIO_COUNT;
        if (q->lanes[p].req_id || atomic_load(&q->lanes[p].paused))
            continue;
        send_pull(q, p, 1, LONGPOLL_MS);
        free--;
    }
    q->longpoll_rotate++;
}

void puller_refill_locked(queue_rt *q)
{
    if (!paused(q->a))
        issue_requests(q, jet_mono_ms());
}

/* The puller thread: what is not driven by deliveries and freed slots
 * (those refill from on_inbox and the workers): expiring unanswered
 * requests, resuming after a pause, idle long-polls, and the drain. */
static void *puller_main(void *arg)
{
    queue_rt *q = arg;
    agent *a = q->a;
    pthread_mutex_lock(&q->mu);
    while (!atomic_load(&a->draining) && !atomic_load(&a->stopped)) {
        while (q->arrived_len > 0) {
            natsMsg *m = q->arrived[0];
            memmove(q->arrived, q->arrived + 1, --q->arrived_len * sizeof *q->arrived);
            handle_arrival(q, m);
        }
        if (q->arriving_len > 0) {
            admit_arrivals(q); /* unlocks */
            pthread_mutex_lock(&q->mu);
        }
        int64_t now = jet_mono_ms();
        expire_requests(q, now);
        if (!paused(a))
            issue_requests(q, now);
        if (q->arrived_len == 0)
            jet_cond_wait_ms(&q->cv, &q->mu, 50);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

jet_status puller_start(queue_rt *q, jet_err *err)
{
    if (pthread_create(&q->puller, NULL, puller_main, q) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "queue %s: cannot start the puller thread", q->name);
    return JET_OK;
}

/* During the drain (q->mu held; released while PostgreSQL and NATS are
 * written): a status ends its request, a task is handed back at once (no
 * delay) so another agent can take it, recorded first as handed back (one
 * statement for the lot) so that its next delivery spends no attempt
 * (DESIGN §12). When that record fails (PostgreSQL down) the Nak goes out
 * all the same: a spent attempt is better than a task held back. */
static void drain_arrivals(queue_rt *q)
{
    size_t n = q->arrived_len;
    if (n == 0)
        return;
    natsMsg **ms = jet_xmalloc(n * sizeof *ms);
    memcpy(ms, q->arrived, n * sizeof *ms);
    q->arrived_len = 0;
    agent_task **back = jet_xcalloc(n, sizeof *back);
    size_t nback = 0;
    for (size_t i = 0; i < n; i++) {
        natsMsg *m = ms[i];
        if (consume_status_reply(q, m))
            continue;
        const char *reply;
        int lane = delivery_lane(m, &reply);
        if (lane < 0) {
            acker_nak_reply(q->a, reply);
            natsMsg_Destroy(m);
            continue;
        }
        count_delivery(q, lane);
        back[nback++] = task_from_msg(m, q->name, (jet_priority)lane, &q->defaults); /* takes m */
    }
    free(ms);
    pthread_mutex_unlock(&q->mu);
    recorder_handed_back(q->a, back, nback);
    for (size_t i = 0; i < nback; i++) {
        acker_nak_now(q->a, back[i]);
        task_free(back[i]);
    }
    free(back);
    pthread_mutex_lock(&q->mu);
}

static bool requests_out(const queue_rt *q)
{
    for (int p = 0; p < JET_PRIO_COUNT; p++)
        if (q->lanes[p].req_id)
            return true;
    return false;
}

void puller_join(queue_rt *q)
{
    puller_wake(q);
    pthread_join(q->puller, NULL);
    /* Outstanding requests may still deliver until they expire. */
    int64_t until = jet_mono_ms() + LONGPOLL_MS + 500;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        drain_arrivals(q);
        int64_t now = jet_mono_ms();
        expire_requests(q, now);
        /* a batch whose lookup is running (admit_arrivals) is queued for
         * the workers when it ends: workers_drain hands it back */
        if ((!requests_out(q) && q->admitting == 0) || now >= until || atomic_load(&q->a->stopped))
            break;
        jet_cond_wait_ms(&q->cv, &q->mu, 20);
    }
    arrivals_unlooked(q);
    pthread_mutex_unlock(&q->mu);
    natsSubscription_Unsubscribe(q->sub);
    natsSubscription_Destroy(q->sub);
    q->sub = NULL;
    pthread_mutex_lock(&q->mu);
    drain_arrivals(q);
    free(q->arrived);
    q->arrived = NULL;
    pthread_mutex_unlock(&q->mu);
}
