/* The leader's sweeper of messages no consumer will ever read (issue 20
 * item 4). The task stream takes every subject under <prefix>.task.>, but
 * agents only read lanes <prefix>.task.<queue>.<high|normal|low> with a
 * valid queue name; a message published anywhere else (".urgent",
 * ".Default.normal", ".default.normal.extra", ".default") would stay in the
 * stream forever, never run, never dead-lettered. Every
 * `SWEEP_INTERVAL_MS` the acting leader asks JetStream for the stream's
 * subjects (STREAM.INFO with subjects_filter), and moves each message of a
 * subject that is not a lane to the dead-letter stream with reason
 * `invalid_subject` (original headers and body kept, plus
 * Jetsched-Original-Subject), then deletes it from the task stream. Valid
 * lanes without consumers are left alone (their tasks wait for an agent).
 * A dead letter is published with Nats-Msg-Id "sweep-<stream seq>", so two
 * instances that both believe they lead store it once. */
#include "schedulerd.h"

#include <jetsched/base64.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/natshdr.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_INTERVAL_MS 5000
#define SWEEP_MAX_PER_ROUND 1000 /* messages moved per round (the next round goes on) */
#define JS_TIMEOUT_MS 5000

static pthread_t sweep_thread;
static bool started;
static jet_metric *m_swept;

bool sweep_subject_is_lane(const char *prefix, const char *subject, char *queue, size_t qlen)
{
    char head[128];
    snprintf(head, sizeof head, "%s.task.", prefix);
    size_t hl = strlen(head);
    snprintf(queue, qlen, "_invalid");
    if (strncmp(subject, head, hl) != 0)
        return false;
    const char *q = subject + hl, *dot = strchr(q, '.');
    char qbuf[JET_NAME_MAX + 2];
    size_t n = dot ? (size_t)(dot - q) : strlen(q);
    if (n > JET_NAME_MAX)
        return false;
    memcpy(qbuf, q, n);
    qbuf[n] = '\0';
    if (jet_name_valid(qbuf))
        snprintf(queue, qlen, "%s", qbuf); /* dead letters go to that queue's DLQ subject */
    jet_priority p;
    return dot && jet_name_valid(qbuf) && jet_priority_parse(dot + 1, &p);
}

/* A JetStream API request with a JSON body; the parsed reply or NULL (logged). */
static json_t *js_api(sched *s, const char *subject, const char *body)
{
    natsMsg *reply = NULL;
    natsStatus st = natsConnection_Request(&reply, s->nc, subject, body, (int)strlen(body), JS_TIMEOUT_MS);
    if (st != NATS_OK) {
        jet_warn("sweep: %s: %s", subject, natsStatus_GetText(st));
        return NULL;
    }
    json_t *v = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
    natsMsg_Destroy(reply);
    return v;
}

static void add_header(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    char n[256], v[4096];
    if (nlen >= sizeof n)
        return;
    snprintf(n, sizeof n, "%.*s", (int)nlen, name);
    snprintf(v, sizeof v, "%.*s", (int)(vlen < sizeof v ? vlen : sizeof v - 1), value);
    natsMsgHeader_Add(arg, n, v);
}

/* Moves the first message of subject (at or after *seq) to the DLQ; false
 * when there is none left or something failed (logged). */
static bool move_one(sched *s, const char *subject, const char *queue, int64_t created_s, uint64_t *seq)
{
    char api[200], body[700];
    snprintf(api, sizeof api, "$JS.API.STREAM.MSG.GET.%s", s->names.task_stream);
    json_t *sj = json_string(subject);
    char *sq = json_dumps(sj, JSON_ENCODE_ANY);
    json_decref(sj);
    snprintf(body, sizeof body, "{\"seq\":%llu,\"next_by_subj\":%s}", (unsigned long long)*seq, sq ? sq : "\"\"");
    free(sq);
    json_t *r = js_api(s, api, body);
    json_t *m = json_object_get(r, "message");
    if (!json_is_object(m)) {
        json_decref(r);
        return false; /* no message left (404) or an error */
    }
    uint64_t n = (uint64_t)json_integer_value(json_object_get(m, "seq"));
    const char *hdrs = json_string_value(json_object_get(m, "hdrs")), *data = json_string_value(json_object_get(m, "data"));
    unsigned char *hb = NULL, *db = NULL;
    size_t hl = 0, dl = 0;
    if (hdrs)
        jet_base64_decode(hdrs, strlen(hdrs), &hb, &hl);
    if (data)
        jet_base64_decode(data, strlen(data), &db, &dl);
    json_decref(r);

    char dlq_subject[200], msg_id[64], err_text[400];
    snprintf(dlq_subject, sizeof dlq_subject, "%s.dlq.%s", s->names.prefix, queue);
    natsMsg *dm = NULL;
    bool ok = natsMsg_Create(&dm, dlq_subject, NULL, (const char *)(db ? db : (unsigned char *)""), (int)dl) == NATS_OK;
    if (ok) {
        if (hb)
            jet_hdr_block_parse((const char *)hb, hl, add_header, dm);
        /* The task id the message had (what agentd would have called it),
         * for dlq.list/replay; Nats-Msg-Id becomes the sweep's own. */
        char tid[JET_TASK_ID_MAX + 1] = "";
        const char *v = NULL;
        if ((natsMsgHeader_Get(dm, JET_HDR_TASK_ID, &v) == NATS_OK || natsMsgHeader_Get(dm, JET_HDR_MSG_ID, &v) == NATS_OK) &&
            v && jet_task_id_valid(v))
            snprintf(tid, sizeof tid, "%s", v);
        else /* agentd's name for a task without an id (docs/NATS-OBJECTS.md) */
            snprintf(tid, sizeof tid, "seq-%lld-%llu", (long long)created_s, (unsigned long long)n);
        natsMsgHeader_Set(dm, JET_HDR_TASK_ID, tid);
        snprintf(msg_id, sizeof msg_id, "sweep-%llu", (unsigned long long)n);
        snprintf(err_text, sizeof err_text,
                 "%.200s is not a task lane (%s.task.<queue>.<high|normal|low>, queue 1-64 of [a-z0-9_-]): no agent "
                 "would ever read it",
                 subject, s->names.prefix);
        natsMsgHeader_Set(dm, "Nats-Msg-Id", msg_id);
        natsMsgHeader_Set(dm, JET_HDR_DEAD_REASON, JET_REASON_INVALID_SUBJECT);
        natsMsgHeader_Set(dm, JET_HDR_ATTEMPTS, "0");
        natsMsgHeader_Set(dm, JET_HDR_LAST_ERROR, err_text);
        natsMsgHeader_Set(dm, JET_HDR_ORIGINAL_SUBJECT, subject);
        jsErrCode jerr = 0;
        jsPubAck *ack = NULL;
        natsStatus st = js_PublishMsg(&ack, s->js, dm, NULL, &jerr);
        jsPubAck_Destroy(ack);
        if (st != NATS_OK) {
            jet_warn("sweep: cannot dead-letter message %llu of %s to %s: %s", (unsigned long long)n, subject,
                     dlq_subject, natsStatus_GetText(st));
            ok = false;
        }
    }
    natsMsg_Destroy(dm);
    free(hb);
    free(db);
    if (ok) {
        snprintf(api, sizeof api, "$JS.API.STREAM.MSG.DELETE.%s", s->names.task_stream);
        snprintf(body, sizeof body, "{\"seq\":%llu}", (unsigned long long)n);
        json_decref(js_api(s, api, body));
        jet_metric_add(m_swept, NULL, 1);
    }
    *seq = n + 1;
    return ok;
}

static void sweep_once(sched *s)
{
    char api[200], body[200];
    snprintf(api, sizeof api, "$JS.API.STREAM.INFO.%s", s->names.task_stream);
    snprintf(body, sizeof body, "{\"subjects_filter\":\"%s\"}", s->names.task_subjects);
    json_t *r = js_api(s, api, body);
    json_t *subjects = json_object_get(json_object_get(r, "state"), "subjects");
    int64_t created_ms = 0;
    jet_rfc3339_parse(json_string_value(json_object_get(r, "created")), &created_ms, NULL);
    const char *subject;
    json_t *count;
    int moved = 0;
    json_object_foreach(subjects, subject, count) {
        char queue[JET_NAME_MAX + 16];
        if (sweep_subject_is_lane(s->names.prefix, subject, queue, sizeof queue))
            continue;
        jet_warn("sweep: %lld message(s) on %s, which no agent reads: dead-lettering them to %s.dlq.%s (reason %s)",
                 (long long)json_integer_value(count), subject, s->names.prefix, queue, JET_REASON_INVALID_SUBJECT);
        uint64_t seq = 1;
        while (moved < SWEEP_MAX_PER_ROUND && !atomic_load(&s->stop) && atomic_load(&s->epoch) != 0 &&
               move_one(s, subject, queue, created_ms / 1000, &seq))
            moved++;
    }
    json_decref(r);
}

static void *sweep_main(void *arg)
{
    sched *s = arg;
    int64_t next = jet_mono_ms() + SWEEP_INTERVAL_MS;
    while (!atomic_load(&s->stop)) {
        if (atomic_load(&s->epoch) != 0 && jet_mono_ms() >= next) {
            sweep_once(s);
            next = jet_mono_ms() + SWEEP_INTERVAL_MS;
        }
        jet_sleep_ms(100);
    }
    return NULL;
}

jet_status sweep_start(sched *s, jet_err *err)
{
    m_swept = jet_metric_counter("jetsched_invalid_subject_messages_total",
                                 "Messages on task subjects no agent reads, moved to the DLQ (reason invalid_subject) "
                                 "by the leader.",
                                 NULL);
    if (pthread_create(&sweep_thread, NULL, sweep_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the sweeper thread");
    started = true;
    return JET_OK;
}

void sweep_stop(sched *s)
{
    (void)s;
    if (started)
        pthread_join(sweep_thread, NULL);
    started = false;
}
