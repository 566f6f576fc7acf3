/* Pins down what the real nats-server (2.9.10 in CI) answers to raw pull
 * requests ($JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>, JSON body, reply
 * to our own inbox), the protocol agentd/puller.c is built on: a partly
 * filled batch, no_wait on an empty consumer (404), expiry (408 with the
 * unfilled count), a full batch (no status at all), 409 for MaxRequestBatch,
 * MaxWaiting, MaxRequestExpires and a deleted consumer, silence without a
 * consumer, and how two waiting requests share arriving messages (round
 * robin: a delivery cannot be told apart by request, only by lane). */
#include "harness.h"

#include <nats/nats.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passes, failures;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            failures++;                                                         \
        } else {                                                                \
            passes++;                                                           \
        }                                                                       \
    } while (0)

#define STREAM "PIN"
static natsConnection *nc;
static jsCtx *js;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void must(natsStatus s, const char *what)
{
    if (s != NATS_OK) {
        fprintf(stderr, "FAIL: %s: %s\n", what, natsStatus_GetText(s));
        exit(1);
    }
}

/* A fresh durable pull consumer on subject pin.<name>. */
static void consumer(const char *name, int64_t max_batch, int64_t max_waiting, int64_t max_expires_ms)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    char subj[64];
    snprintf(subj, sizeof subj, "pin.%s", name);
    cc.Durable = name;
    cc.AckPolicy = js_AckExplicit;
    cc.FilterSubject = subj;
    cc.MaxRequestBatch = max_batch;
    if (max_waiting)
        cc.MaxWaiting = max_waiting;
    cc.MaxRequestExpires = max_expires_ms * 1000000LL;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    must(js_AddConsumer(&ci, js, STREAM, &cc, NULL, &jerr), name);
    jsConsumerInfo_Destroy(ci);
}

static void publish(const char *name, int n)
{
    char subj[64];
    snprintf(subj, sizeof subj, "pin.%s", name);
    for (int i = 0; i < n; i++) {
        jsPubAck *pa = NULL;
        must(js_Publish(&pa, js, subj, "x", 1, NULL, NULL), "publish");
        jsPubAck_Destroy(pa);
    }
}

/* What came back for one request, in arrival order. */
typedef struct answer {
    int msgs;              /* deliveries (messages with a $JS.ACK reply) */
    int status;            /* the status reply's code, 0 when none came */
    char desc[128];        /* its Description */
    int pending;           /* its Nats-Pending-Messages, -1 when absent */
    bool status_last;      /* nothing came after the status */
    int64_t status_ms;     /* when the status came, after the request */
} answer;

static void request(natsSubscription *sub, const char *inbox, const char *name, const char *body)
{
    char subj[128];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", STREAM, name);
    (void)sub;
    must(natsConnection_PublishRequestString(nc, subj, inbox, body), "pull request");
    must(natsConnection_Flush(nc), "flush");
}

/* Collects what arrives on sub for wait_ms (acking deliveries). */
static answer collect(natsSubscription *sub, int wait_ms, int64_t t0)
{
    answer a = {.pending = -1};
    int64_t until = mono_ms() + wait_ms;
    for (;;) {
        int64_t left = until - mono_ms();
        if (left <= 0)
            break;
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, left) != NATS_OK)
            break;
        const char *st = NULL;
        if (natsMsg_GetReply(m) && strncmp(natsMsg_GetReply(m), "$JS.ACK.", 8) == 0) {
            a.msgs++;
            a.status_last = false;
            natsConnection_PublishString(nc, natsMsg_GetReply(m), "+ACK");
        } else if (natsMsgHeader_Get(m, "Status", &st) == NATS_OK && st) {
            a.status = atoi(st);
            a.status_last = true;
            a.status_ms = mono_ms() - t0;
            const char *d = NULL, *p = NULL;
            if (natsMsgHeader_Get(m, "Description", &d) == NATS_OK && d)
                snprintf(a.desc, sizeof a.desc, "%s", d);
            if (natsMsgHeader_Get(m, "Nats-Pending-Messages", &p) == NATS_OK && p)
                a.pending = atoi(p);
        }
        natsMsg_Destroy(m);
    }
    printf("  -> %d message(s), status %d \"%s\" pending %d after %lld ms%s\n", a.msgs, a.status, a.desc, a.pending,
           (long long)a.status_ms, a.status && !a.status_last ? " (NOT last)" : "");
    return a;
}

static answer pull(const char *name, const char *body, int wait_ms)
{
    char inbox[64];
    natsInbox *ib = NULL;
    natsInbox_Create(&ib);
    snprintf(inbox, sizeof inbox, "%s", ib);
    natsInbox_Destroy(ib);
    natsSubscription *sub = NULL;
    must(natsConnection_SubscribeSync(&sub, nc, inbox), "subscribe");
    printf("%s %s\n", name, body);
    int64_t t0 = mono_ms();
    request(sub, inbox, name, body);
    answer a = collect(sub, wait_ms, t0);
    natsSubscription_Destroy(sub);
    return a;
}

int main(void)
{
    const char *url = th_require_env("JETSCHED_TEST_NATS_URL");
    must(natsConnection_ConnectTo(&nc, url), "connect");
    must(natsConnection_JetStream(&js, nc, NULL), "jetstream");
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"pin.>"};
    sc.Name = STREAM;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    must(js_AddStream(&si, js, &sc, NULL, NULL), "stream");
    jsStreamInfo_Destroy(si);

    /* 1. no_wait on an empty consumer: 404 at once, nothing else. */
    consumer("empty", 0, 0, 0);
    answer a = pull("empty", "{\"batch\":5,\"no_wait\":true}", 500);
    CHECK(a.msgs == 0 && a.status == 404 && a.status_last && a.status_ms < 200, "no_wait on empty: %d %d", a.msgs,
          a.status);

    /* 2. no_wait, partly filled: the 3 messages, then one status for the rest. */
    consumer("partial", 0, 0, 0);
    publish("partial", 3);
    a = pull("partial", "{\"batch\":10,\"no_wait\":true}", 500);
    CHECK(a.msgs == 3, "no_wait partial: %d messages", a.msgs);
    CHECK(a.status == 408 && a.status_last && a.status_ms < 200, "no_wait partial: status %d", a.status);

    /* 3. expires with nothing: 408 after the expiry, nothing before. */
    consumer("expiry", 0, 0, 0);
    a = pull("expiry", "{\"batch\":4,\"expires\":300000000}", 1200);
    CHECK(a.msgs == 0 && a.status == 408 && a.status_ms >= 250 && a.status_ms < 1000,
          "expiry: %d msgs status %d after %lld ms", a.msgs, a.status, (long long)a.status_ms);
    CHECK(a.pending == 4, "expiry: Nats-Pending-Messages %d", a.pending);

    /* 4. expires, partly filled: 2 messages at once, 408 at the expiry with
     * the unfilled count. */
    consumer("partexp", 0, 0, 0);
    publish("partexp", 2);
    a = pull("partexp", "{\"batch\":5,\"expires\":300000000}", 1200);
    CHECK(a.msgs == 2 && a.status == 408 && a.status_last && a.status_ms >= 250,
          "expires partial: %d msgs status %d after %lld ms", a.msgs, a.status, (long long)a.status_ms);
    CHECK(a.pending == 3, "expires partial: Nats-Pending-Messages %d", a.pending);

    /* 5. a full batch ends the request without any status. */
    consumer("full", 0, 0, 0);
    publish("full", 5);
    a = pull("full", "{\"batch\":3,\"expires\":300000000}", 800);
    CHECK(a.msgs == 3 && a.status == 0, "full batch: %d msgs status %d", a.msgs, a.status);
    a = pull("full", "{\"batch\":3,\"no_wait\":true}", 500);
    CHECK(a.msgs == 2, "full batch rest: %d msgs", a.msgs);

    /* 6. 409: a batch above the consumer's MaxRequestBatch. */
    consumer("maxbatch", 4, 0, 0);
    publish("maxbatch", 6);
    a = pull("maxbatch", "{\"batch\":10,\"expires\":300000000}", 500);
    CHECK(a.msgs == 0 && a.status == 409 && strstr(a.desc, "MaxRequestBatch") && strstr(a.desc, "4"),
          "MaxRequestBatch: %d msgs status %d %s", a.msgs, a.status, a.desc);

    /* 7. 409: expires above the consumer's MaxRequestExpires. */
    consumer("maxexp", 0, 0, 500);
    a = pull("maxexp", "{\"batch\":1,\"expires\":2000000000}", 500);
    CHECK(a.status == 409 && strstr(a.desc, "MaxRequestExpires"), "MaxRequestExpires: %d %s", a.status, a.desc);

    /* 8. 409: more waiting requests than MaxWaiting (the new one is refused). */
    consumer("maxwait", 0, 1, 0);
    {
        natsSubscription *s1 = NULL, *s2 = NULL;
        must(natsConnection_SubscribeSync(&s1, nc, "pin_in.w1"), "sub");
        must(natsConnection_SubscribeSync(&s2, nc, "pin_in.w2"), "sub");
        printf("maxwait: two waiting requests, MaxWaiting 1\n");
        int64_t t0 = mono_ms();
        request(s1, "pin_in.w1", "maxwait", "{\"batch\":1,\"expires\":400000000}");
        request(s2, "pin_in.w2", "maxwait", "{\"batch\":1,\"expires\":400000000}");
        answer a2 = collect(s2, 300, t0);
        answer a1 = collect(s1, 500, t0);
        CHECK(a2.status == 409 && strstr(a2.desc, "MaxWaiting"), "MaxWaiting: second got %d %s", a2.status, a2.desc);
        CHECK(a1.status == 408, "MaxWaiting: first got %d %s", a1.status, a1.desc);
        natsSubscription_Destroy(s1);
        natsSubscription_Destroy(s2);
    }

    /* 9. 409 Consumer Deleted to a waiting request. */
    consumer("deleted", 0, 0, 0);
    {
        natsSubscription *s = NULL;
        must(natsConnection_SubscribeSync(&s, nc, "pin_in.del"), "sub");
        printf("deleted: consumer deleted under a waiting request\n");
        int64_t t0 = mono_ms();
        request(s, "pin_in.del", "deleted", "{\"batch\":2,\"expires\":900000000}");
        must(js_DeleteConsumer(js, STREAM, "deleted", NULL, NULL), "delete consumer");
        answer ad = collect(s, 700, t0);
        CHECK(ad.status == 409 && strstr(ad.desc, "Consumer Deleted") && ad.status_ms < 500, "deleted: %d %s",
              ad.status, ad.desc);
        natsSubscription_Destroy(s);
    }

    /* 10. No consumer at all: no answer whatsoever (no 503 either), so the
     * puller must give a request up on its own after a grace. */
    a = pull("nosuch", "{\"batch\":1,\"no_wait\":true}", 500);
    CHECK(a.status == 0 && a.msgs == 0, "no consumer: %d", a.status);

    /* 11. Two waiting requests of one consumer: how arriving messages are shared. */
    consumer("share", 0, 0, 0);
    {
        natsSubscription *s1 = NULL, *s2 = NULL;
        must(natsConnection_SubscribeSync(&s1, nc, "pin_in.s1"), "sub");
        must(natsConnection_SubscribeSync(&s2, nc, "pin_in.s2"), "sub");
        printf("share: two waiting requests of batch 3, 4 messages\n");
        int64_t t0 = mono_ms();
        request(s1, "pin_in.s1", "share", "{\"batch\":3,\"expires\":500000000}");
        request(s2, "pin_in.s2", "share", "{\"batch\":3,\"expires\":500000000}");
        publish("share", 4);
        answer a1 = collect(s1, 800, t0);
        answer a2 = collect(s2, 100, t0);
        CHECK(a1.msgs + a2.msgs == 4, "share: %d + %d", a1.msgs, a2.msgs);
        CHECK(a1.msgs == 2 && a2.msgs == 2, "share: round robin expected, got %d + %d", a1.msgs, a2.msgs);
        CHECK(a1.status == 408 && a1.pending == 1 && a2.status == 408 && a2.pending == 1,
              "share: statuses %d/%d pending %d/%d", a1.status, a2.status, a1.pending, a2.pending);
        natsSubscription_Destroy(s1);
        natsSubscription_Destroy(s2);
    }

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
