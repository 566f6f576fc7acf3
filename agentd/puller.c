/* The per-queue puller thread. See puller.h for the design. */
#include "puller.h"
#include "acker.h"
#include "dispatch.h"
#include "recorder.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY_BACKOFF_MS 100     /* a lane found empty is skipped this long */
#define LONGPOLL_MS 1000         /* server-side expiry of an idle wait; also bounds how long a
                                  * paused lane (control.c) can still deliver: keep it <= 1 s */
#define NOWAIT_GRACE_MS 5000     /* a no_wait request with no answer is given up after this */

/* The agent must not take new work: draining, or the history backlog is full. */
static bool paused(agent *a)
{
    if (atomic_load(&a->draining) || atomic_load(&a->stopped))
        return true;
    return recorder_backlogged(a);
}

void puller_wake(queue_rt *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static bool handle_arrival(queue_rt *q, natsMsg *m);
static void issue_requests(queue_rt *q, int64_t now);

/* The subscription callback (libnats' delivery thread). While the agent
 * runs, a delivery is handed straight to the workers from here and the
 * freed request slots are refilled at once: no hop through the puller
 * thread. During a drain (or before the puller exits) messages are only
 * parked in q->arrived, for puller_join() to hand back. */
static void on_inbox(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    queue_rt *q = closure;
    agent *a = q->a;
    bool wake = false;
    pthread_mutex_lock(&q->mu);
    if (atomic_load(&a->draining) || atomic_load(&a->stopped)) {
        q->arrived = jet_xgrow(q->arrived, &q->arrived_cap, q->arrived_len + 1, sizeof *q->arrived, 16);
        q->arrived[q->arrived_len++] = msg;
        pthread_cond_broadcast(&q->cv);
    } else {
        wake = handle_arrival(q, msg);
        if (!paused(a))
            issue_requests(q, jet_mono_ms());
    }
    pthread_mutex_unlock(&q->mu);
    if (wake)
        dispatch_wake(q);
}

jet_status puller_init(queue_rt *q, jet_err *err)
{
    agent *a = q->a;
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

static bool lane_has_longpoll(const queue_rt *q, int lane)
{
    for (size_t i = 0; i < q->nreqs; i++)
        if (q->reqs[i].lane == lane && q->reqs[i].longpoll)
            return true;
    return false;
}

static bool nowait_in_flight(const queue_rt *q)
{
    for (size_t i = 0; i < q->nreqs; i++)
        if (!q->reqs[i].longpoll)
            return true;
    return false;
}

/* Publishes one pull request; called with q->mu held. */
static void send_pull(queue_rt *q, int lane, bool longpoll)
{
    char reply[192], body[96];
    uint64_t id = ++q->next_req;
    snprintf(reply, sizeof reply, "%s.%d.%llu", q->inbox, lane, (unsigned long long)id);
    if (longpoll)
        snprintf(body, sizeof body, "{\"batch\":1,\"expires\":%lld}", (long long)LONGPOLL_MS * 1000000LL);
    else
        snprintf(body, sizeof body, "{\"batch\":1,\"no_wait\":true}");
    natsStatus s = natsConnection_PublishRequestString(q->a->nc, q->pull_subject[lane], reply, body);
    if (s != NATS_OK) {
        q->lanes[lane].empty_until_mono = jet_mono_ms() + EMPTY_BACKOFF_MS * 10;
        return;
    }
    q->reqs = jet_xgrow(q->reqs, &q->reqs_cap, q->nreqs + 1, sizeof *q->reqs, 8);
    q->reqs[q->nreqs++] = (struct pending_req){
        id, lane, longpoll, jet_mono_ms() + (longpoll ? LONGPOLL_MS + NOWAIT_GRACE_MS : NOWAIT_GRACE_MS)};
    dispatch_request_sent(q);
}

/* Removes request `id`; returns false when it is unknown (a late delivery). */
static bool finish_request(queue_rt *q, uint64_t id)
{
    for (size_t i = 0; i < q->nreqs; i++)
        if (q->reqs[i].id == id) {
            q->reqs[i] = q->reqs[--q->nreqs];
            dispatch_request_done(q);
            return true;
        }
    return false;
}

static void expire_requests(queue_rt *q, int64_t now)
{
    for (size_t i = 0; i < q->nreqs;) {
        if (q->reqs[i].expires_mono <= now) {
            jet_debug("queue %s: pull request %llu got no answer; giving it up", q->name,
                      (unsigned long long)q->reqs[i].id);
            q->reqs[i] = q->reqs[--q->nreqs];
            dispatch_request_done(q);
        } else {
            i++;
        }
    }
}

/* The oldest outstanding request of a lane (the server answers a consumer's
 * waiting requests in order), or 0 when there is none. */
static uint64_t oldest_request(const queue_rt *q, int lane)
{
    uint64_t best = 0;
    for (size_t i = 0; i < q->nreqs; i++)
        if (q->reqs[i].lane == lane && (best == 0 || q->reqs[i].id < best))
            best = q->reqs[i].id;
    return best;
}

/* The lane of a delivered task from its subject <prefix>.task.<queue>.<priority>. */
static int lane_of_subject(const char *subj)
{
    const char *dot = strrchr(subj, '.');
    jet_priority p;
    return dot && jet_priority_parse(dot + 1, &p) ? (int)p : -1;
}

/* Handles one message from the inbox; called with q->mu held. Status
 * replies (404/408/409) arrive on the request's own reply subject
 * <inbox>.<lane>.<request id>; tasks arrive with their original subject.
 * Returns true when a task was queued and a worker is idle (to be woken
 * after unlocking). */
static bool handle_arrival(queue_rt *q, natsMsg *m)
{
    const char *subj = natsMsg_GetSubject(m);
    const char *status = NULL;
    size_t il = strlen(q->inbox);
    /* Only a status reply (no reply subject) is asked for its headers here: a
     * task's header block is parsed by task_from_msg before libnats touches it. */
    if (natsMsg_GetReply(m) == NULL && natsMsg_GetDataLength(m) == 0 &&
        natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status) {
        int lane = -1;
        unsigned long long id = 0;
        if (strncmp(subj, q->inbox, il) != 0 || sscanf(subj + il, ".%d.%llu", &lane, &id) != 2 || lane < 0 ||
            lane >= JET_PRIO_COUNT) {
            natsMsg_Destroy(m);
            return false;
        }
        finish_request(q, id);
        int code = atoi(status);
        if (code == 404 || code == 408) {
            q->lanes[lane].empty_until_mono = jet_mono_ms() + EMPTY_BACKOFF_MS;
        } else if (code != 100) {
            const char *desc = NULL;
            natsMsgHeader_Get(m, "Description", &desc);
            jet_warn("queue %s lane %s: pull request answered %s %s", q->name, jet_priority_name((jet_priority)lane),
                     status, desc ? desc : "");
            q->lanes[lane].empty_until_mono = jet_mono_ms() + 1000;
        }
        natsMsg_Destroy(m);
        return false;
    }
    int lane = lane_of_subject(subj);
    const char *reply = natsMsg_GetReply(m);
    if (lane < 0 || !reply || strncmp(reply, "$JS.ACK.", 8) != 0) {
        jet_warn("queue %s: unexpected message on %s; ignored", q->name, subj);
        natsMsg_Destroy(m);
        return false;
    }
    uint64_t id = oldest_request(q, lane);
    if (id == 0 || !finish_request(q, id))
        jet_debug("queue %s: late delivery on lane %s", q->name, jet_priority_name((jet_priority)lane));
    q->lanes[lane].empty_until_mono = 0;
    q->lanes[lane].pulled++;
    return dispatch_enqueue(q, m, (jet_priority)lane);
}

static void issue_requests(queue_rt *q, int64_t now)
{
    int free = dispatch_free_slots(q);
    bool eligible[JET_PRIO_COUNT];
    for (int p = 0; p < JET_PRIO_COUNT; p++)
        eligible[p] = !lane_has_longpoll(q, p) && q->lanes[p].empty_until_mono <= now &&
                      !atomic_load(&q->lanes[p].paused);
    bool sent = false;
    while (free > 0) {
        int lane = pick_lane(q, eligible);
        if (lane < 0)
            break;
        send_pull(q, lane, false);
        sent = true;
        free--;
    }
    /* Every lane is empty (or being waited on): wait on the server instead of
     * polling, in priority order, never more requests than free slots. */
    if (!sent && free > 0 && !nowait_in_flight(q)) {
        for (int i = 0; i < JET_PRIO_COUNT && free > 0; i++) {
            int p = free >= JET_PRIO_COUNT ? i : (q->longpoll_rotate + i) % JET_PRIO_COUNT;
            if (lane_has_longpoll(q, p) || atomic_load(&q->lanes[p].paused))
                continue;
            send_pull(q, p, true);
            free--;
        }
        q->longpoll_rotate++;
    }
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
        bool wake = false;
        while (q->arrived_len > 0) {
            natsMsg *m = q->arrived[0];
            memmove(q->arrived, q->arrived + 1, --q->arrived_len * sizeof *q->arrived);
            wake |= handle_arrival(q, m);
        }
        if (wake)
            dispatch_wake_all(q);
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

void puller_join(queue_rt *q)
{
    puller_wake(q);
    pthread_join(q->puller, NULL);
    /* Outstanding requests may still deliver until they expire: hand those
     * messages back at once (no delay) so another agent can take them. */
    int64_t until = jet_mono_ms() + LONGPOLL_MS + 500;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->arrived_len > 0) {
            natsMsg *m = q->arrived[--q->arrived_len];
            acker_nak_reply(q->a, natsMsg_GetReply(m));
            natsMsg_Destroy(m);
        }
        int64_t now = jet_mono_ms();
        expire_requests(q, now);
        if (q->nreqs == 0 || now >= until || atomic_load(&q->a->stopped))
            break;
        jet_cond_wait_ms(&q->cv, &q->mu, 20);
    }
    pthread_mutex_unlock(&q->mu);
    natsSubscription_Unsubscribe(q->sub);
    natsSubscription_Destroy(q->sub);
    q->sub = NULL;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->arrived_len; i++) {
        acker_nak_reply(q->a, natsMsg_GetReply(q->arrived[i]));
        natsMsg_Destroy(q->arrived[i]);
    }
    q->arrived_len = 0;
    free(q->arrived);
    q->arrived = NULL;
    free(q->reqs);
    q->reqs = NULL;
    pthread_mutex_unlock(&q->mu);
}
