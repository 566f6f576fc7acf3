/* The acker: acknowledgements, dead letters, and the post-commit thread. */
#include "acker.h"
#include "events.h"
#include "inflight.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNRECORDED_RETRY_MS 5000 /* a record PostgreSQL refused: redelivered after this */

struct ack_job {
    inflight *f;
    jet_task_state status;
    char reason[32];
    char *error;
    int64_t delay_ms;
    bool committed;
    struct ack_job *next;
};

struct acker {
    agent *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ack_job *head, *tail;
    bool stop;
    pthread_t thread;
    jet_metric *m_dead;
};

/* ---- acknowledgements ---- */

static void send_reply(agent *a, const char *reply, const char *id, const char *body)
{
    natsStatus s = natsConnection_PublishString(a->nc, reply, body);
    if (s != NATS_OK)
        jet_warn("task %s: sending %s failed: %s", id, body, natsStatus_GetText(s));
}

static void ack_send(agent *a, const agent_task *t, const char *body)
{
    if (t->reply[0])
        send_reply(a, t->reply, t->id, body);
}

void acker_progress(agent *a, const agent_task *t) { ack_send(a, t, "+WPI"); }
void acker_ack_now(agent *a, const agent_task *t) { ack_send(a, t, "+ACK"); }
void acker_nak_now(agent *a, const agent_task *t) { ack_send(a, t, "-NAK"); }

void acker_nak_reply(agent *a, const char *reply)
{
    if (reply && strncmp(reply, "$JS.ACK.", 8) == 0)
        natsConnection_PublishString(a->nc, reply, "-NAK");
}

static void nak_delay(agent *a, const agent_task *t, int64_t delay_ms)
{
    char body[64];
    snprintf(body, sizeof body, "-NAK {\"delay\":%lld}", (long long)(delay_ms < 0 ? 0 : delay_ms) * 1000000LL);
    ack_send(a, t, body);
}

/* ---- dead letters ---- */

/* Header values must stay on one line. */
static void header_safe(char *dst, size_t len, const char *src)
{
    size_t j = 0;
    for (; src && *src && j + 1 < len; src++)
        dst[j++] = ((unsigned char)*src < 0x20 || *src == 0x7f) ? ' ' : *src;
    dst[j] = '\0';
}

/* Publishes the task to the DLQ stream with the reason headers; true when JetStream stored it. */
static bool dead_letter(agent *a, const agent_task *t, const char *reason, const char *error)
{
    char subject[200], msgid[200], buf[1024];
    snprintf(subject, sizeof subject, "%s.dlq.%s", a->names.prefix, t->queue);
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subject, NULL, natsMsg_GetData(t->msg), natsMsg_GetDataLength(t->msg)) != NATS_OK)
        return false;
    for (size_t i = 0; i < t->n_headers; i++) {
        if (!strcmp(t->headers[i].name, JET_HDR_MSG_ID))
            continue;
        natsMsgHeader_Add(m, t->headers[i].name, t->headers[i].value);
    }
    snprintf(msgid, sizeof msgid, "dlq-%s-%llu", t->id, (unsigned long long)t->stream_seq);
    natsMsgHeader_Set(m, JET_HDR_MSG_ID, msgid);
    natsMsgHeader_Set(m, JET_HDR_TASK_ID, t->id);
    natsMsgHeader_Set(m, JET_HDR_QUEUE, t->queue);
    natsMsgHeader_Set(m, JET_HDR_PRIORITY, jet_priority_name(t->prio));
    natsMsgHeader_Set(m, JET_HDR_DEAD_REASON, reason);
    snprintf(buf, sizeof buf, "%d", task_attempt(t));
    natsMsgHeader_Set(m, JET_HDR_ATTEMPTS, buf);
    header_safe(buf, sizeof buf, error ? error : "");
    natsMsgHeader_Set(m, JET_HDR_LAST_ERROR, buf);
    jsErrCode jerr = 0;
    jsPubAck *pa = NULL;
    natsStatus s = NATS_ERR;
    for (int attempt = 0; attempt < 3 && s != NATS_OK; attempt++) {
        s = js_PublishMsg(&pa, a->js, m, NULL, &jerr);
        if (s != NATS_OK)
            jet_sleep_ms(200 * (attempt + 1));
    }
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    if (s != NATS_OK)
        jet_error("task %s: dead-lettering to %s failed: %s (jetstream error %d); it stays in the queue and will "
                  "be dead-lettered again on redelivery", t->id, subject, natsStatus_GetText(s), (int)jerr);
    return s == NATS_OK;
}

/* ---- after the commit ---- */

static void act(struct acker *k, ack_job *j)
{
    agent *a = k->a;
    agent_task *t = j->f->task;
    if (!j->committed) {
        /* Not recorded (PostgreSQL refused the record): never ack; retry later. */
        nak_delay(a, t, UNRECORDED_RETRY_MS);
        return;
    }
    switch (j->status) {
    case JET_TASK_SUCCEEDED:
    case JET_TASK_DUPLICATE:
        ack_send(a, t, "+ACK");
        break;
    case JET_TASK_RETRYING:
        nak_delay(a, t, j->delay_ms);
        break;
    case JET_TASK_DEAD: {
        const char *l[] = {t->queue, j->reason};
        jet_metric_add(k->m_dead, l, 1);
        if (dead_letter(a, t, j->reason, j->error))
            ack_send(a, t, "+TERM");
        break;
    }
    default: /* expired, cancelled */
        ack_send(a, t, "+TERM");
        break;
    }
    event_publish(a, t, j->status, task_attempt(t), j->error, NULL);
}

static void *acker_main(void *arg)
{
    struct acker *k = arg;
    agent *a = k->a;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->head && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        /* Everything queued so far (a committed history batch) is taken at
         * once: one lock round trip per batch, not per task. The acks are
         * buffered by libnats and written by its flusher thread, which
         * waits 1 ms after the first one so that the batch's acks go out in
         * one write (docs/PERFORMANCE.md, issue 14). */
        ack_job *j = k->head;
        if (!j)
            break;
        k->head = k->tail = NULL;
        pthread_mutex_unlock(&k->mu);
        while (j) {
            ack_job *next = j->next;
            act(k, j);
            atomic_fetch_sub(&a->recording, 1);
            inflight_unlink(a, j->f);
            inflight_release(j->f);
            free(j->error);
            free(j);
            j = next;
        }
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

ack_job *acker_job_new(inflight *f, const outcome *o)
{
    ack_job *j = jet_xcalloc(1, sizeof *j);
    j->f = f;
    j->status = o->status;
    snprintf(j->reason, sizeof j->reason, "%s", o->reason ? o->reason : "");
    j->error = o->error ? jet_xstrdup(o->error) : NULL;
    j->delay_ms = o->delay_ms;
    return j;
}

void acker_committed(void *job, bool committed)
{
    ack_job *j = job;
    struct acker *k = j->f->queue->a->acker;
    j->committed = committed;
    pthread_mutex_lock(&k->mu);
    if (k->tail) {
        k->tail->next = j; /* the acker was woken for the first job and takes this one with it */
    } else {
        k->head = j;
        pthread_cond_signal(&k->cv);
    }
    k->tail = j;
    pthread_mutex_unlock(&k->mu);
}

jet_status acker_start(agent *a, jet_err *err)
{
    struct acker *k = jet_xcalloc(1, sizeof *k);
    k->a = a;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    k->m_dead = jet_metric_counter("jetsched_agent_dead_letters_total", "Tasks dead-lettered, by reason.",
                                   "queue,reason");
    if (pthread_create(&k->thread, NULL, acker_main, k) != 0) {
        free(k);
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the acker thread");
    }
    a->acker = k;
    return JET_OK;
}

void acker_stop(agent *a)
{
    struct acker *k = a->acker;
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
    a->acker = NULL;
}
