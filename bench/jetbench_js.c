/* jetbench: raw JetStream with libnats — async publishing with a bounded
 * window, and a consumer that issues pull requests itself
 * ($JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer> with {"batch":N,"expires":ns}
 * to its own inbox) and acks each message by publishing "+ACK" to its reply
 * subject. natsSubscription_Fetch is not used (libnats 3.4.1 overflow
 * defect with batch > 1, DESIGN §10). */
#include "jetbench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- publishing ---- */

static _Atomic long pub_nacks;

static void on_pub_err(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js, (void)closure;
    long n = atomic_fetch_add(&pub_nacks, 1);
    if (n < 5)
        jb_log("publish refused: %s (%s, jetstream error %d)", pae->ErrText ? pae->ErrText : "?",
               natsStatus_GetText(pae->Err), (int)pae->ErrCode);
}

jsCtx *jb_js_context(natsConnection *nc, int window)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 10000;
    o.PublishAsync.MaxPending = window;
    o.PublishAsync.ErrHandler = on_pub_err;
    o.PublishAsync.StallWait = 10000;
    jsCtx *js = NULL;
    if (natsConnection_JetStream(&js, nc, &o) != NATS_OK)
        jb_die("cannot create a JetStream context");
    return js;
}

void jb_js_context_destroy(jsCtx *js) { jsCtx_Destroy(js); }

static void sleep_until(int64_t due_ns)
{
    struct timespec ts = {(time_t)(due_ns / 1000000000), (long)(due_ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

/* JETBENCH_TASK_HEADER="Name: value": one more header on every task (e.g. a
 * Jetsched-Concurrency-Key, to measure the limits' cost: bench/README). */
static void extra_header(natsMsg *m)
{
    static char name[128], value[256];
    static int parsed; /* 0 not yet, 1 none, 2 set */
    if (!parsed) {
        const char *h = getenv("JETBENCH_TASK_HEADER"), *c = h ? strchr(h, ':') : NULL;
        parsed = 1;
        if (c && c - h < (long)sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(c - h), h);
            for (c++; *c == ' '; c++)
                ;
            snprintf(value, sizeof value, "%s", c);
            parsed = 2;
        }
    }
    if (parsed == 2)
        natsMsgHeader_Set(m, name, value);
}

long jb_publish(jsCtx *js, const jb_pub_spec *ps, jb_pub_result *r)
{
    long nacks0 = atomic_load(&pub_nacks), failed = 0;
    char id[160];
    memset(r, 0, sizeof *r);
    r->start_ns = jb_now_ns();
    for (long i = 0; i < ps->n; i++) {
        if (ps->rate > 0) {
            /* Sleep only when ahead: a sleep costs tens of microseconds on a
             * VM, more than the interval at high rates. */
            int64_t due = r->start_ns + (int64_t)((double)i * 1e9 / ps->rate);
            if (due > jb_now_ns())
                sleep_until(due);
        }
        natsMsg *m = NULL;
        if (natsMsg_Create(&m, ps->subject, NULL, ps->payload, ps->payload_len) != NATS_OK)
            jb_die("natsMsg_Create failed");
        snprintf(id, sizeof id, "%s%ld", ps->id_prefix, i);
        natsMsgHeader_Set(m, "Jetsched-Handler", ps->handler);
        natsMsgHeader_Set(m, "Nats-Msg-Id", id);
        extra_header(m);
        if (ps->sent_ns)
            ps->sent_ns[i] = jb_now_ns();
        natsStatus s;
        int tries = 0;
        while ((s = js_PublishMsgAsync(js, &m, NULL)) == NATS_TIMEOUT && ++tries < 10) {
            /* the window stayed full for StallWait: the server is slow; keep going */
        }
        if (s != NATS_OK) {
            if (failed++ < 5)
                jb_log("publish %s failed: %s", id, natsStatus_GetText(s));
        }
        natsMsg_Destroy(m);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    natsStatus s = js_PublishAsyncComplete(js, &po);
    if (s != NATS_OK)
        jb_log("waiting for publish acks: %s", natsStatus_GetText(s));
    r->end_ns = jb_now_ns();
    r->errors = failed + (atomic_load(&pub_nacks) - nacks0);
    return ps->n - r->errors;
}

int64_t jb_stream_msgs(jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, js, stream, NULL, &jerr) != NATS_OK)
        return -1;
    int64_t n = (int64_t)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

int64_t jb_wait_stream(jsCtx *js, const char *stream, int64_t want, int poll_ms, int timeout_ms)
{
    int64_t until = jb_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int64_t n = jb_stream_msgs(js, stream);
        int64_t now = jb_now_ns();
        if (n == want)
            return now;
        if (now > until)
            return 0;
        jb_sleep_ms(poll_ms);
    }
}

/* ---- the raw consumer ---- */

struct pull_req {
    uint64_t id;
    int remaining;
    int64_t give_up_ns;
};

struct jb_consumer {
    jb_cons_spec s;
    pthread_t th;
    char inbox[128], pull_subject[256];
    struct pull_req *reqs;
    size_t nreqs, cap;
    uint64_t next_id;
    long received, requests;
    int64_t first_ns, last_ns;
    _Atomic bool stop, done;
};

static long outstanding(const jb_consumer *c)
{
    long n = 0;
    for (size_t i = 0; i < c->nreqs; i++)
        n += c->reqs[i].remaining;
    return n;
}

static void drop_req(jb_consumer *c, size_t i)
{
    memmove(c->reqs + i, c->reqs + i + 1, (c->nreqs - i - 1) * sizeof *c->reqs);
    c->nreqs--;
}

static void top_up(jb_consumer *c)
{
    for (;;) {
        long out = outstanding(c);
        long k = c->s.batch;
        if (k > c->s.window - out)
            k = c->s.window - out;
        if (k > c->s.target - c->received - out) /* never pull past the target: the rest belongs to the next phase */
            k = c->s.target - c->received - out;
        if (k <= 0)
            return;
        /* A partial batch only when it completes the target or the window is empty. */
        if (k < c->s.batch && out > 0 && k < c->s.target - c->received - out)
            return;
        char reply[200], body[96];
        uint64_t id = ++c->next_id;
        snprintf(reply, sizeof reply, "%s.%llu", c->inbox, (unsigned long long)id);
        snprintf(body, sizeof body, "{\"batch\":%ld,\"expires\":%lld}", k, (long long)c->s.expires_ms * 1000000LL);
        if (natsConnection_PublishRequestString(c->s.nc, c->pull_subject, reply, body) != NATS_OK) {
            jb_sleep_ms(10);
            return;
        }
        if (c->first_ns == 0)
            c->first_ns = jb_now_ns();
        if (c->nreqs == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 16;
            c->reqs = realloc(c->reqs, c->cap * sizeof *c->reqs);
        }
        c->reqs[c->nreqs++] = (struct pull_req){id, (int)k, jb_now_ns() + (c->s.expires_ms + 5000) * 1000000LL};
        c->requests++;
    }
}

static void on_message(jb_consumer *c, natsMsg *m)
{
    const char *reply = natsMsg_GetReply(m);
    if (reply && strncmp(reply, "$JS.ACK.", 8) == 0) {
        natsConnection_PublishString(c->s.nc, reply, "+ACK");
        int64_t now = jb_now_ns();
        c->last_ns = now;
        c->received++;
        /* The server fills a consumer's waiting requests in order. */
        if (c->nreqs > 0 && --c->reqs[0].remaining <= 0)
            drop_req(c, 0);
        if (c->s.recv_ns) {
            const char *id = NULL;
            size_t pl = strlen(c->s.id_prefix);
            if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id && strncmp(id, c->s.id_prefix, pl) == 0) {
                long i = strtol(id + pl, NULL, 10);
                if (i >= 0 && i < c->s.recv_cap && c->s.recv_ns[i] == 0)
                    c->s.recv_ns[i] = now;
            }
        }
        return;
    }
    /* A status (404 no messages, 408 request expired, 409 ...) on <inbox>.<id>. */
    const char *subj = natsMsg_GetSubject(m), *status = NULL;
    size_t il = strlen(c->inbox);
    natsMsgHeader_Get(m, "Status", &status);
    if (strncmp(subj, c->inbox, il) == 0 && subj[il] == '.') {
        uint64_t id = strtoull(subj + il + 1, NULL, 10);
        for (size_t i = 0; i < c->nreqs; i++)
            if (c->reqs[i].id == id) {
                drop_req(c, i);
                break;
            }
    }
    if (status && strcmp(status, "408") != 0 && strcmp(status, "404") != 0) {
        const char *desc = NULL;
        natsMsgHeader_Get(m, "Description", &desc);
        jb_log("pull request answered %s %s", status, desc ? desc : "");
    }
}

static void *consumer_main(void *arg)
{
    jb_consumer *c = arg;
    natsSubscription *sub = NULL;
    char wildcard[160];
    snprintf(wildcard, sizeof wildcard, "%s.*", c->inbox);
    if (natsConnection_SubscribeSync(&sub, c->s.nc, wildcard) != NATS_OK)
        jb_die("cannot subscribe to the pull inbox");
    natsSubscription_SetPendingLimits(sub, -1, -1);
    while (c->received < c->s.target && !atomic_load(&c->stop)) {
        top_up(c);
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, 50);
        if (s == NATS_OK) {
            on_message(c, m);
            natsMsg_Destroy(m);
        } else if (s != NATS_TIMEOUT) {
            jb_log("raw consumer: %s", natsStatus_GetText(s));
            jb_sleep_ms(10);
        }
        int64_t now = jb_now_ns();
        for (size_t i = 0; i < c->nreqs;)
            if (c->reqs[i].give_up_ns < now)
                drop_req(c, i);
            else
                i++;
    }
    natsConnection_Flush(c->s.nc); /* the last acks leave now */
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    atomic_store(&c->done, true);
    return NULL;
}

jb_consumer *jb_consumer_start(const jb_cons_spec *spec)
{
    jb_consumer *c = calloc(1, sizeof *c);
    c->s = *spec;
    natsInbox *inbox = NULL;
    natsInbox_Create(&inbox);
    snprintf(c->inbox, sizeof c->inbox, "%s", (const char *)inbox);
    natsInbox_Destroy(inbox);
    snprintf(c->pull_subject, sizeof c->pull_subject, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", spec->stream,
             spec->consumer);
    if (pthread_create(&c->th, NULL, consumer_main, c) != 0)
        jb_die("cannot start the consumer thread");
    return c;
}

long jb_consumer_join(jb_consumer *c, int timeout_ms, int64_t *first_ns, int64_t *last_ns, long *requests)
{
    int64_t until = jb_now_ns() + (int64_t)timeout_ms * 1000000;
    while (!atomic_load(&c->done) && jb_now_ns() < until)
        jb_sleep_ms(5);
    atomic_store(&c->stop, true);
    pthread_join(c->th, NULL);
    long n = c->received;
    if (first_ns)
        *first_ns = c->first_ns;
    if (last_ns)
        *last_ns = c->last_ns;
    if (requests)
        *requests = c->requests;
    free(c->reqs);
    free(c);
    return n;
}
