/* Recording outcomes and acting on messages after the commit. */
#include "outcome.h"
#include "handlers.h"
#include "puller.h"
#include "recorder.h"
#include "worker.h"

#include <jansson.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/natsconn.h>
#include <jetsched/pgconn.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- metrics ---- */

static jet_metric *m_tasks, *m_run, *m_latency, *m_dead;

static void metrics_init(void)
{
    m_tasks = jet_metric_counter("jetsched_agent_tasks_total", "Task attempts finished, by outcome.",
                                 "queue,handler,status");
    m_run = jet_metric_histogram("jetsched_agent_task_run_seconds", "Handler run time.", "queue,handler");
    m_latency = jet_metric_histogram("jetsched_agent_task_start_latency_seconds",
                                     "From the message being stored in JetStream to the handler starting.", "queue");
    m_dead = jet_metric_counter("jetsched_agent_dead_letters_total", "Tasks dead-lettered, by reason.",
                                "queue,reason");
}

/* ---- live events ---- */

/* True when s can go into a JSON string as it is (printable ASCII, no quote
 * or backslash): task ids are validated to [A-Za-z0-9_-], agent ids
 * normally are host names. */
static bool json_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"' || *s == '\\')
            return false;
    return true;
}

void event_publish(agent *a, const agent_task *t, const char *status, int attempt, const char *error,
                   const char *extra)
{
    char subject[400], at[40];
    snprintf(subject, sizeof subject, "%s.event.%s.%s", a->names.prefix, t->queue, t->id);
    jet_rfc3339_format(jet_now_ms(), at, sizeof at);
    /* The two events of every task ("running", then the outcome, with no
     * error text) are formatted directly: building them with jansson cost
     * ~11 % of agentd's CPU under load. Anything that needs escaping (error
     * text, extra fields, an unusual agent id) goes through jansson. */
    if (!error && !extra && json_plain(t->id) && json_plain(a->id) && json_plain(status)) {
        char body[512];
        int n = snprintf(body, sizeof body,
                         "{\"id\":\"%s\",\"status\":\"%s\",\"attempt\":%d,\"agent\":\"%s\",\"at\":\"%s\"}", t->id,
                         status, attempt, a->id, at);
        if (n > 0 && (size_t)n < sizeof body) {
            natsConnection_Publish(a->nc, subject, body, n);
            return;
        }
    }
    json_t *ev = json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", t->id, "status", status, "attempt", attempt, "agent",
                           a->id, "at", at);
    if (error)
        json_object_set_new(ev, "error", json_string(error));
    if (extra) {
        json_t *more = json_loads(extra, 0, NULL);
        if (more)
            json_object_update(ev, more);
        json_decref(more);
    }
    char *body = json_dumps(ev, JSON_COMPACT);
    if (body)
        natsConnection_PublishString(a->nc, subject, body);
    free(body);
    json_decref(ev);
}

void outcome_started(agent *a, inflight *f)
{
    agent_task *t = f->task;
    if (t->published_ms > 0) {
        const char *l[] = {t->queue};
        jet_metric_observe(m_latency, l, (double)(jet_now_ms() - t->published_ms));
    }
    recorder_running(a, f, jet_now_ms());
    event_publish(a, t, "running", task_attempt(t), NULL, NULL);
}

/* ---- the acker: NATS actions after the commit ---- */

typedef struct ack_job {
    inflight *f;
    char status[16];
    char reason[32];
    char *error;
    int64_t delay_ms;
    bool committed;
    struct ack_job *next;
} ack_job;

static pthread_mutex_t acker_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t acker_cv = PTHREAD_COND_INITIALIZER;
static ack_job *acker_head, *acker_tail;
static bool acker_stop;
static pthread_t acker_thread;

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

static void act(agent *a, ack_job *j)
{
    agent_task *t = j->f->task;
    if (!j->committed) {
        /* Not recorded (PostgreSQL refused the record): never ack; retry later. */
        ack_nak_delay(a, t, 5000);
        return;
    }
    const char *st = j->status;
    if (!strcmp(st, "succeeded") || !strcmp(st, "duplicate")) {
        ack_send(a, t, "+ACK");
    } else if (!strcmp(st, "retrying")) {
        ack_nak_delay(a, t, j->delay_ms);
    } else if (!strcmp(st, "dead")) {
        const char *l[] = {t->queue, j->reason};
        jet_metric_add(m_dead, l, 1);
        if (dead_letter(a, t, j->reason, j->error))
            ack_send(a, t, "+TERM");
    } else { /* expired, cancelled */
        ack_send(a, t, "+TERM");
    }
    event_publish(a, t, st, task_attempt(t), j->error, NULL);
}

static void *acker_main(void *arg)
{
    agent *a = arg;
    pthread_mutex_lock(&acker_mu);
    for (;;) {
        while (!acker_head && !acker_stop)
            pthread_cond_wait(&acker_cv, &acker_mu);
        ack_job *j = acker_head;
        if (!j)
            break;
        acker_head = j->next;
        if (!acker_head)
            acker_tail = NULL;
        pthread_mutex_unlock(&acker_mu);
        act(a, j);
        atomic_fetch_sub(&a->recording, 1);
        inflight_unlink(a, j->f);
        inflight_release(j->f);
        free(j->error);
        free(j);
        pthread_mutex_lock(&acker_mu);
    }
    pthread_mutex_unlock(&acker_mu);
    return NULL;
}

/* History completion: runs on the writer's thread; only queues the job. */
static void on_recorded(void *ctx, bool committed)
{
    ack_job *j = ctx;
    j->committed = committed;
    pthread_mutex_lock(&acker_mu);
    if (acker_tail)
        acker_tail->next = j;
    else
        acker_head = j;
    acker_tail = j;
    pthread_cond_signal(&acker_cv);
    pthread_mutex_unlock(&acker_mu);
}

/* ---- recording ---- */

void outcome_record(agent *a, inflight *f, const outcome *o)
{
    agent_task *t = f->task;
    const char *l[] = {t->queue, t->handler[0] ? t->handler : "-", o->status};
    jet_metric_add(m_tasks, l, 1);
    if (f->started_mono) {
        const char *rl[] = {t->queue, t->handler[0] ? t->handler : "-"};
        jet_metric_observe(m_run, rl, (double)(jet_mono_ms() - f->started_mono));
    }
    atomic_store(&f->state, RUN_RECORDING);
    ack_job *j = calloc(1, sizeof *j);
    j->f = f;
    snprintf(j->status, sizeof j->status, "%s", o->status);
    snprintf(j->reason, sizeof j->reason, "%s", o->reason ? o->reason : "");
    j->error = o->error ? strdup(o->error) : NULL;
    j->delay_ms = o->delay_ms;
    atomic_fetch_add(&a->recording, 1);
    if (!strcmp(o->status, "dead"))
        jet_warn("task %s (queue %s, handler %s) dead-lettered: %s%s%s", t->id, t->queue,
                 t->handler[0] ? t->handler : "-", o->reason, o->error ? ": " : "", o->error ? o->error : "");
    recorder_submit(a, f, o, f->started_mono ? jet_now_ms() - (jet_mono_ms() - f->started_mono) : 0, on_recorded, j);
}

static uint64_t random64(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint64_t)jet_mono_ms() * 6364136223846793005ULL;
    return r;
}

void outcome_from_handler(agent *a, inflight *f, jet_outcome r)
{
    agent_task *t = f->task;
    char msg[600];
    pthread_mutex_lock(&f->mu);
    char *err = f->error ? strdup(f->error) : NULL;
    char *result = f->result ? strdup(f->result) : NULL;
    int64_t retry_in = f->retry_in_ms;
    pthread_mutex_unlock(&f->mu);
    outcome o = {.error = err, .result = result};
    if (atomic_load(&f->timed_out)) {
        snprintf(msg, sizeof msg, "timed out after %lld ms%s%s", (long long)t->timeout_ms, err ? ": " : "",
                 err ? err : "");
        o.error = msg;
        r = JET_RETRY;
    } else if (atomic_load(&f->cancel) && handlers_cancelled(a, t->id)) {
        o.status = "cancelled";
        o.error = "cancelled while running";
    } else if (atomic_load(&f->cancel) && atomic_load(&a->draining)) {
        /* Stopped by the drain after the grace: hand it back at once; the
         * interrupted attempt still counts (it may have had side effects). */
        o = (outcome){.status = "retrying", .error = "interrupted: the agent shut down", .delay_ms = 0};
    }
    if (!o.status) {
        if (r == JET_SUCCESS) {
            o.status = "succeeded";
        } else if (r == JET_FAIL) {
            o = (outcome){.status = "dead", .reason = "permanent_failure", .error = o.error ? o.error : "failed"};
        } else if (task_attempt(t) >= t->max_attempts) {
            o = (outcome){.status = "dead", .reason = "attempts_exhausted", .error = o.error ? o.error : "failed"};
        } else {
            o.status = "retrying";
            o.delay_ms = retry_in >= 0 ? retry_in : jet_backoff_delay(&t->backoff, task_attempt(t), random64());
            if (!o.error)
                o.error = "failed";
        }
    }
    outcome_record(a, f, &o);
    free(err);
    free(result);
}

void outcome_unavailable(agent *a, inflight *f)
{
    agent_task *t = f->task;
    pthread_mutex_lock(&f->mu);
    char *why = f->error ? strdup(f->error) : NULL;
    pthread_mutex_unlock(&f->mu);
    outcome o = {.status = "retrying", .reason = "handler_unavailable", .error = why ? why : "handler unavailable"};
    if (task_attempt(t) >= t->max_attempts)
        o.status = "dead";
    else
        o.delay_ms = jet_backoff_delay(&t->backoff, task_attempt(t), random64());
    outcome_record(a, f, &o);
    free(why);
}

bool outcome_already_succeeded(agent *a, agent_task *t)
{
    /* Tasks schedulerd published (API, delayed, cron, reconciler) carry
     * Jetsched-Idempotency-Check: always, since their row exists before the
     * message: after a nats-server crash an acknowledged message can come
     * back as a first delivery (docs/RELIABILITY.md), which the delivery
     * count alone would not catch. */
    bool always = a->idempotency_always || t->check_always;
    if (!(t->delivered > 1 || t->redispatch || always))
        return false;
    int attempts = 0;
    bool done = recorder_succeeded(a, t->id, &attempts);
    /* A redispatched (republished) task starts a new delivery count: its
     * attempts continue after the ones already recorded. */
    if (t->redispatch || always)
        t->attempt_base = attempts >= (int)t->delivered ? attempts - (int)t->delivered + 1 : 0;
    t->pub.attempt = task_attempt(t);
    return done;
}

jet_status outcome_start(agent *a, jet_err *err)
{
    metrics_init();
    acker_stop = false;
    if (pthread_create(&acker_thread, NULL, acker_main, a) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the acker thread");
    return JET_OK;
}

void outcome_stop(agent *a, int64_t wait_ms)
{
    recorder_flush(a, wait_ms);
    pthread_mutex_lock(&acker_mu);
    acker_stop = true;
    pthread_cond_broadcast(&acker_cv);
    pthread_mutex_unlock(&acker_mu);
    pthread_join(acker_thread, NULL);
}
