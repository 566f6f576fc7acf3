/* The NATS objects of DESIGN §3: their names, the configuration jetsched
 * wants for each (task stream, DLQ stream, KV buckets, per-(queue, priority)
 * pull consumers), and creating or checking them idempotently.
 *
 * Every ensure call works on a plan in two passes: first it looks every
 * object up and compares the settings that matter; if any existing object
 * differs it refuses with one message per object (naming the setting, the
 * existing and the wanted value) and changes nothing at all. Then it creates
 * what is missing. An existing object is never updated (nats-server 2.9
 * updates can drop delayed NAKs in clusters, reference §3.5). When a create
 * fails because another process created the object meanwhile, the object is
 * looked up and compared again instead of failing. */
#include <jetsched/jsobjects.h>
#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS INT64_C(1000000)
#define DLQ_DUPLICATE_WINDOW_MS (2 * JET_MS_PER_MIN)
#define PREFIX_MAX 48
#define LABEL_MAX 224 /* "consumer " + stream + "/" + consumer */

/* ------------------------------------------------------------------ names */

void jet_js_names_init(jet_js_names *n, const char *prefix)
{
    char up[64];
    size_t i = 0;
    for (; prefix[i] && i + 1 < sizeof up; i++)
        up[i] = (char)toupper((unsigned char)(prefix[i] == '-' || prefix[i] == '.' ? '_' : prefix[i]));
    up[i] = '\0';
    snprintf(n->prefix, sizeof n->prefix, "%s", prefix);
    snprintf(n->task_stream, sizeof n->task_stream, "%s_TASKS", up);
    snprintf(n->task_subjects, sizeof n->task_subjects, "%s.task.>", prefix);
    snprintf(n->dlq_stream, sizeof n->dlq_stream, "%s_DLQ", up);
    snprintf(n->dlq_subjects, sizeof n->dlq_subjects, "%s.dlq.>", prefix);
    snprintf(n->kv_leader, sizeof n->kv_leader, "%s_leader", prefix);
    snprintf(n->kv_agents, sizeof n->kv_agents, "%s_agents", prefix);
    snprintf(n->kv_cancel, sizeof n->kv_cancel, "%s_cancel", prefix);
    snprintf(n->kv_checkpoints, sizeof n->kv_checkpoints, "%s_checkpoints", prefix);
    snprintf(n->kv_control, sizeof n->kv_control, "%s_control", prefix);
}

void jet_js_task_subject(const jet_js_names *n, const char *queue, jet_priority p, char *buf, size_t len)
{
    snprintf(buf, len, "%s.task.%s.%s", n->prefix, queue, jet_priority_name(p));
}

void jet_js_consumer_name(const char *queue, jet_priority p, char *buf, size_t len)
{
    snprintf(buf, len, "q_%s_%s", queue, jet_priority_name(p));
}

bool jet_js_consumer_parse(const char *name, char queue[JET_NAME_MAX + 1], jet_priority *p)
{
    const char *last = strrchr(name, '_');
    if (strncmp(name, "q_", 2) != 0 || !last || last <= name + 2 || last - name - 2 > JET_NAME_MAX ||
        !jet_priority_parse(last + 1, p))
        return false;
    snprintf(queue, JET_NAME_MAX + 1, "%.*s", (int)(last - name - 2), name + 2);
    return true;
}

bool jet_js_prefix_valid(const char *prefix)
{
    size_t n = 0;
    if (!prefix)
        return false;
    for (; prefix[n]; n++) {
        unsigned char c = (unsigned char)prefix[n];
        if (!(isalnum(c) || c == '_' || c == '-') || n >= PREFIX_MAX)
            return false;
    }
    return n > 0;
}

/* ------------------------------------------------------------------ plan */

typedef enum obj_kind { OBJ_STREAM, OBJ_KV, OBJ_CONSUMER } obj_kind;

/* What jetsched wants of one object. */
typedef struct js_want {
    obj_kind kind;
    char name[96];     /* stream, bucket or consumer name */
    char stream[96];   /* the stream itself, KV_<bucket>, or the consumer's stream */
    char subject[160]; /* the stream's only subject, or the consumer's filter */
    const char *desc;
    /* streams and buckets */
    jsRetentionPolicy retention;
    jsDiscardPolicy discard;
    int64_t replicas, max_msgs, max_bytes, max_age_ns, dup_ns, history;
    int64_t max_msg_size;
    const char *age_key, *dup_key; /* config keys behind max_age / duplicates (for messages) */
    /* consumers */
    int64_t ack_wait_ns, max_ack_pending;
    bool exists; /* found by the check pass */
} js_want;

typedef struct js_plan {
    js_want *v;
    size_t n, cap;
} js_plan;

static js_want *plan_add(js_plan *p, obj_kind kind)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        js_want *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return NULL;
        p->v = v;
        p->cap = cap;
    }
    js_want *w = &p->v[p->n++];
    memset(w, 0, sizeof *w);
    w->kind = kind;
    return w;
}

static int64_t ms_cfg_ns(const jet_config *cfg, const char *key) { return jet_cfg_int(cfg, key) * NS_PER_MS; }

static jet_status plan_streams(js_plan *p, const jet_js_names *n, const jet_config *cfg, jet_err *err)
{
    js_want *t = plan_add(p, OBJ_STREAM);
    if (!t)
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    snprintf(t->name, sizeof t->name, "%s", n->task_stream);
    snprintf(t->stream, sizeof t->stream, "%s", n->task_stream);
    snprintf(t->subject, sizeof t->subject, "%s", n->task_subjects);
    t->desc = "jetsched tasks (work queue)";
    t->retention = js_WorkQueuePolicy;
    t->discard = js_DiscardNew;
    t->replicas = jet_cfg_int(cfg, "jetstream.replicas");
    t->max_msgs = jet_cfg_int(cfg, "jetstream.max_msgs");
    t->max_bytes = jet_cfg_int(cfg, "jetstream.max_bytes");
    t->max_msg_size = jet_cfg_int(cfg, "jetstream.max_msg_size");
    t->max_age_ns = 0;
    t->dup_ns = ms_cfg_ns(cfg, "jetstream.duplicate_window");
    t->dup_key = "jetstream.duplicate_window";

    js_want *d = plan_add(p, OBJ_STREAM);
    if (!d)
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    int64_t dlq_age_ms = jet_cfg_int(cfg, "jetstream.dlq_max_age");
    snprintf(d->name, sizeof d->name, "%s", n->dlq_stream);
    snprintf(d->stream, sizeof d->stream, "%s", n->dlq_stream);
    snprintf(d->subject, sizeof d->subject, "%s", n->dlq_subjects);
    d->desc = "jetsched dead letters";
    d->retention = js_LimitsPolicy;
    d->discard = js_DiscardOld;
    d->replicas = t->replicas;
    d->max_msgs = d->max_bytes = d->max_msg_size = -1;
    d->max_age_ns = dlq_age_ms * NS_PER_MS;
    d->age_key = "jetstream.dlq_max_age";
    d->dup_ns = (dlq_age_ms < DLQ_DUPLICATE_WINDOW_MS ? dlq_age_ms : DLQ_DUPLICATE_WINDOW_MS) * NS_PER_MS;
    return JET_OK;
}

static jet_status plan_bucket(js_plan *p, const jet_config *cfg, const char *bucket, const char *ttl_key,
                              const char *desc, jet_err *err)
{
    js_want *w = plan_add(p, OBJ_KV);
    if (!w)
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    snprintf(w->name, sizeof w->name, "%s", bucket);
    snprintf(w->stream, sizeof w->stream, "KV_%s", bucket);
    snprintf(w->subject, sizeof w->subject, "$KV.%s.>", bucket);
    w->desc = desc;
    w->history = 1;
    w->replicas = jet_cfg_int(cfg, "jetstream.replicas");
    w->max_age_ns = ttl_key ? ms_cfg_ns(cfg, ttl_key) : 0; /* NULL: entries never expire */
    w->age_key = ttl_key;
    return JET_OK;
}

static jet_status plan_base(js_plan *p, const jet_js_names *n, const jet_config *cfg, jet_err *err)
{
    jet_status st = plan_streams(p, n, cfg, err);
    if (st == JET_OK)
        st = plan_bucket(p, cfg, n->kv_leader, "jetstream.leader_ttl", "jetsched schedulerd leader", err);
    if (st == JET_OK)
        st = plan_bucket(p, cfg, n->kv_agents, "jetstream.agent_ttl", "jetsched agent registry", err);
    if (st == JET_OK)
        st = plan_bucket(p, cfg, n->kv_cancel, "jetstream.cancel_ttl", "jetsched cancellations", err);
    if (st == JET_OK)
        st = plan_bucket(p, cfg, n->kv_checkpoints, "jetstream.checkpoint_ttl", "jetsched task checkpoints", err);
    /* Added in the second wave: an existing deployment gets it from
     * `jetsched init` or the next start of schedulerd/agentd (missing objects
     * are created, existing ones left alone). */
    if (st == JET_OK)
        st = plan_bucket(p, cfg, n->kv_control, NULL, "jetsched flow control (queue pauses)", err);
    return st;
}

static jet_status plan_queue(js_plan *p, const jet_js_names *n, const jet_config *cfg, const char *queue,
                             jet_err *err)
{
    for (int i = 0; i < JET_PRIO_COUNT; i++) {
        js_want *w = plan_add(p, OBJ_CONSUMER);
        if (!w)
            return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
        jet_js_consumer_name(queue, (jet_priority)i, w->name, sizeof w->name);
        snprintf(w->stream, sizeof w->stream, "%s", n->task_stream);
        jet_js_task_subject(n, queue, (jet_priority)i, w->subject, sizeof w->subject);
        w->desc = "jetsched queue consumer";
        w->ack_wait_ns = ms_cfg_ns(cfg, "jetstream.ack_wait");
        w->max_ack_pending = jet_cfg_int(cfg, "jetstream.max_ack_pending");
    }
    return JET_OK;
}

/* True when the plan already holds the consumers of `queue`. */
static bool plan_has_queue(const js_plan *p, const char *queue)
{
    char name[96];
    jet_js_consumer_name(queue, JET_PRIO_HIGH, name, sizeof name);
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].kind == OBJ_CONSUMER && strcmp(p->v[i].name, name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ labels and values */

static const char *kind_word(obj_kind k)
{
    return k == OBJ_STREAM ? "stream" : k == OBJ_KV ? "kv" : "consumer";
}

static const char *kind_noun(obj_kind k)
{
    return k == OBJ_STREAM ? "stream" : k == OBJ_KV ? "bucket" : "consumer";
}

/* "stream JETSCHED_TASKS", "kv bucket jetsched_leader", "consumer JETSCHED_TASKS/q_default_high" */
static const char *label(const js_want *w, char *buf, size_t len)
{
    if (w->kind == OBJ_CONSUMER)
        snprintf(buf, len, "consumer %s/%s", w->stream, w->name);
    else
        snprintf(buf, len, "%s %s", w->kind == OBJ_KV ? "kv bucket" : "stream", w->name);
    return buf;
}

static const char *retention_name(jsRetentionPolicy r)
{
    return r == js_LimitsPolicy ? "limits" : r == js_InterestPolicy ? "interest" : r == js_WorkQueuePolicy ? "workqueue" : "?";
}

static const char *discard_name(jsDiscardPolicy d) { return d == js_DiscardNew ? "new" : "old"; }
static const char *storage_name(jsStorageType s) { return s == js_MemoryStorage ? "memory" : "file"; }

static const char *ack_name(jsAckPolicy a)
{
    return a == js_AckExplicit ? "explicit" : a == js_AckNone ? "none" : a == js_AckAll ? "all" : "?";
}

static const char *deliver_name(jsDeliverPolicy d)
{
    switch (d) {
    case js_DeliverAll: return "all";
    case js_DeliverLast: return "last";
    case js_DeliverNew: return "new";
    case js_DeliverByStartSequence: return "by_start_sequence";
    case js_DeliverByStartTime: return "by_start_time";
    case js_DeliverLastPerSubject: return "last_per_subject";
    default: return "?";
    }
}

typedef void (*fmt_fn)(int64_t v, char *buf, size_t len);

static void fmt_plain(int64_t v, char *buf, size_t len) { snprintf(buf, len, "%" PRId64, v); }
static void fmt_limit(int64_t v, char *buf, size_t len)
{
    if (v < 0)
        snprintf(buf, len, "unlimited");
    else
        fmt_plain(v, buf, len);
}

static void fmt_dur(int64_t ns, char *buf, size_t len)
{
    if (ns > 0 && ns % NS_PER_MS == 0)
        jet_duration_format(ns / NS_PER_MS, buf, len);
    else if (ns == 0)
        snprintf(buf, len, "0s");
    else
        snprintf(buf, len, "%" PRId64 "ns", ns);
}

static void fmt_age(int64_t ns, char *buf, size_t len)
{
    if (ns <= 0)
        snprintf(buf, len, "none");
    else
        fmt_dur(ns, buf, len);
}

static int64_t norm_limit(int64_t v) { return v <= 0 ? -1 : v; }

/* ------------------------------------------------------------------ comparing */

/* The settings of one object that differ, as "x is A, jetsched needs B; ...". */
typedef struct diffs {
    char buf[900];
    size_t len;
    int n;
} diffs;

static void diff_add(diffs *d, const char *setting, const char *have, const char *want, const char *key)
{
    if (d->len >= sizeof d->buf - 1)
        return;
    int k = snprintf(d->buf + d->len, sizeof d->buf - d->len, "%s%s is %s, jetsched needs %s%s%s%s",
                     d->n ? "; " : "", setting, have, want, key ? " (" : "", key ? key : "", key ? ")" : "");
    d->len += k > 0 ? (size_t)k : 0;
    if (d->len >= sizeof d->buf)
        d->len = sizeof d->buf - 1;
    d->n++;
}

static void cmp_enum(diffs *d, const char *setting, const char *have, const char *want)
{
    if (strcmp(have, want) != 0) {
        char h[96], w[96];
        snprintf(h, sizeof h, "\"%.90s\"", have);
        snprintf(w, sizeof w, "\"%.90s\"", want);
        diff_add(d, setting, h, w, NULL);
    }
}

static void cmp_int(diffs *d, const char *setting, int64_t have, int64_t want, const char *key, fmt_fn fmt)
{
    if (have != want) {
        char h[64], w[64];
        fmt(have, h, sizeof h);
        fmt(want, w, sizeof w);
        diff_add(d, setting, h, w, key);
    }
}

static void cmp_subjects(diffs *d, const jsStreamConfig *c, const char *want)
{
    if (c->SubjectsLen == 1 && c->Subjects[0] && strcmp(c->Subjects[0], want) == 0)
        return;
    char have[256] = "[";
    size_t len = 1;
    for (int i = 0; i < c->SubjectsLen && len < sizeof have; i++) {
        int k = snprintf(have + len, sizeof have - len, "%s\"%s\"", i ? ", " : "", c->Subjects[i] ? c->Subjects[i] : "");
        len += k > 0 ? (size_t)k : 0;
    }
    if (len < sizeof have - 1)
        snprintf(have + len, sizeof have - len, "]");
    char w[192];
    snprintf(w, sizeof w, "[\"%s\"]", want);
    diff_add(d, "subjects", have, w, NULL);
}

static void compare_stream(const js_want *w, const jsStreamConfig *c, diffs *d)
{
    cmp_enum(d, "retention", retention_name(c->Retention), retention_name(w->retention));
    cmp_enum(d, "storage", storage_name(c->Storage), "file");
    cmp_subjects(d, c, w->subject);
    cmp_int(d, "replicas", c->Replicas < 1 ? 1 : c->Replicas, w->replicas, "jetstream.replicas", fmt_plain);
    cmp_enum(d, "discard", discard_name(c->Discard), discard_name(w->discard));
    cmp_int(d, "duplicate window", c->Duplicates, w->dup_ns, w->dup_key, fmt_dur);
    cmp_int(d, "max age", c->MaxAge < 0 ? 0 : c->MaxAge, w->max_age_ns, w->age_key, fmt_age);
    bool tasks = w->retention == js_WorkQueuePolicy;
    cmp_int(d, "max msgs", norm_limit(c->MaxMsgs), norm_limit(w->max_msgs), tasks ? "jetstream.max_msgs" : NULL,
            fmt_limit);
    cmp_int(d, "max bytes", norm_limit(c->MaxBytes), norm_limit(w->max_bytes),
            tasks ? "jetstream.max_bytes" : NULL, fmt_limit);
    cmp_int(d, "max msg size", norm_limit(c->MaxMsgSize), norm_limit(w->max_msg_size),
            tasks ? "jetstream.max_msg_size" : NULL, fmt_limit);
}

static void compare_bucket(const js_want *w, const jsStreamConfig *c, diffs *d)
{
    cmp_int(d, "history", c->MaxMsgsPerSubject, w->history, NULL, fmt_plain);
    cmp_int(d, "TTL", c->MaxAge < 0 ? 0 : c->MaxAge, w->max_age_ns, w->age_key, fmt_age);
    cmp_int(d, "replicas", c->Replicas < 1 ? 1 : c->Replicas, w->replicas, "jetstream.replicas", fmt_plain);
    cmp_enum(d, "storage", storage_name(c->Storage), "file");
    cmp_subjects(d, c, w->subject);
}

static void compare_consumer(const js_want *w, const jsConsumerConfig *c, diffs *d)
{
    if (c->DeliverSubject && *c->DeliverSubject)
        diff_add(d, "type", "push", "pull", NULL);
    cmp_enum(d, "filter subject", c->FilterSubject ? c->FilterSubject : "", w->subject);
    cmp_enum(d, "ack policy", ack_name(c->AckPolicy), "explicit");
    cmp_int(d, "ack wait", c->AckWait, w->ack_wait_ns, "jetstream.ack_wait", fmt_dur);
    cmp_int(d, "max deliver", norm_limit(c->MaxDeliver), -1, NULL, fmt_limit);
    if (c->BackOffLen > 0) {
        char have[160] = "[";
        size_t len = 1;
        for (int i = 0; i < c->BackOffLen && len < sizeof have - 1; i++) {
            char one[32];
            fmt_dur(c->BackOff[i], one, sizeof one);
            int k = snprintf(have + len, sizeof have - len, "%s%s", i ? ", " : "", one);
            len += k > 0 ? (size_t)k : 0;
        }
        if (len < sizeof have - 1)
            snprintf(have + len, sizeof have - len, "]");
        diff_add(d, "backoff", have, "none (agentd computes retry delays)", NULL);
    }
    cmp_int(d, "max ack pending", c->MaxAckPending, w->max_ack_pending, "jetstream.max_ack_pending", fmt_plain);
    cmp_enum(d, "deliver policy", deliver_name(c->DeliverPolicy), "all");
}

/* ------------------------------------------------------------------ errors */

/* "<object>: <doing>: <library error without its (file.c:line) prefix>" */
static jet_status nats_fail(jet_err *err, const js_want *w, natsStatus s, const char *doing)
{
    char l[LABEL_MAX], what[LABEL_MAX + 64];
    snprintf(what, sizeof what, "%s: %s", label(w, l, sizeof l), doing);
    if (s == NATS_NO_RESPONDERS)
        return jet_err_set(err, JET_ERR_UNAVAILABLE,
                           "%s: no JetStream responders (is JetStream enabled on the server?)", what);
    const char *last = nats_GetLastError(NULL);
    if (!last || !*last)
        last = natsStatus_GetText(s);
    const char *close = last[0] == '(' ? strstr(last, "): ") : NULL;
    if (close)
        last = close + 3;
    jet_err scratch;
    return jet_err_set(err, jet_nats_err(&scratch, s, what), "%s: %s", what, last);
}

static jet_status conflict(jet_err *err, const js_want *w, const diffs *d)
{
    char l[LABEL_MAX];
    return jet_err_set(err, JET_ERR_CONFLICT, "%s: %s; refusing to change it (delete or fix the %s by hand)",
                       label(w, l, sizeof l), d->buf, kind_noun(w->kind));
}

/* ------------------------------------------------------------------ look-up */

/* Looks w up: sets w->exists and, when it exists, fills d with what differs. */
static jet_status check_one(jsCtx *js, js_want *w, diffs *d, jet_err *err)
{
    jsErrCode je = 0;
    natsStatus s;
    memset(d, 0, sizeof *d);
    w->exists = false;
    if (w->kind == OBJ_CONSUMER) {
        jsConsumerInfo *ci = NULL;
        s = js_GetConsumerInfo(&ci, js, w->stream, w->name, NULL, &je);
        if (s == NATS_OK) {
            w->exists = true;
            compare_consumer(w, ci->Config, d);
            jsConsumerInfo_Destroy(ci);
            return JET_OK;
        }
        if (s == NATS_NOT_FOUND || je == JSConsumerNotFoundErr || je == JSStreamNotFoundErr)
            return JET_OK;
        return nats_fail(err, w, s, "look-up failed");
    }
    jsStreamInfo *si = NULL;
    s = js_GetStreamInfo(&si, js, w->stream, NULL, &je);
    if (s == NATS_OK) {
        w->exists = true;
        if (w->kind == OBJ_KV)
            compare_bucket(w, si->Config, d);
        else
            compare_stream(w, si->Config, d);
        jsStreamInfo_Destroy(si);
        return JET_OK;
    }
    if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr)
        return JET_OK;
    return nats_fail(err, w, s, "look-up failed");
}

/* ------------------------------------------------------------------ creating */

static natsStatus create_stream(jsCtx *js, const js_want *w, diffs *d, jsErrCode *je)
{
    jsStreamConfig sc;
    const char *subjects[1] = {w->subject};
    jsStreamConfig_Init(&sc);
    sc.Name = w->name;
    sc.Description = w->desc;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = w->retention;
    sc.Storage = js_FileStorage;
    sc.Replicas = w->replicas;
    sc.Discard = w->discard;
    sc.Duplicates = w->dup_ns;
    sc.MaxAge = w->max_age_ns;
    sc.MaxMsgs = w->max_msgs;
    sc.MaxBytes = w->max_bytes;
    sc.MaxMsgSize = (int32_t)w->max_msg_size;
    jsStreamInfo *si = NULL;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, je);
    if (s == NATS_OK)
        compare_stream(w, si->Config, d);
    jsStreamInfo_Destroy(si);
    return s;
}

static natsStatus create_bucket(jsCtx *js, const js_want *w)
{
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = w->name;
    kc.Description = w->desc;
    kc.History = (uint8_t)w->history;
    kc.TTL = w->max_age_ns;
    kc.StorageType = js_FileStorage;
    kc.Replicas = (int)w->replicas;
    kvStore *kv = NULL;
    natsStatus s = js_CreateKeyValue(&kv, js, &kc);
    kvStore_Destroy(kv);
    return s;
}

/* nats-server 2.9 treats a create of an existing durable as an update; the
 * check pass makes that a narrow race between two processes only. */
static natsStatus create_consumer(jsCtx *js, const js_want *w, diffs *d, jsErrCode *je)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = w->name;
    cc.Description = w->desc;
    cc.FilterSubject = w->subject;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = w->ack_wait_ns;
    cc.MaxDeliver = -1;
    cc.MaxAckPending = w->max_ack_pending;
    cc.ReplayPolicy = js_ReplayInstant;
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_AddConsumer(&ci, js, w->stream, &cc, NULL, je);
    if (s == NATS_OK)
        compare_consumer(w, ci->Config, d);
    jsConsumerInfo_Destroy(ci);
    return s;
}

/* The stream whose subjects overlap w's, for a clearer error (best effort). */
static void overlapping_stream(jsCtx *js, const js_want *w, char *buf, size_t len)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = w->subject;
    jsStreamNamesList *names = NULL;
    buf[0] = '\0';
    if (js_StreamNames(&names, js, &o, NULL) == NATS_OK && names) {
        for (int i = 0; i < names->Count; i++)
            if (strcmp(names->List[i], w->name) != 0) {
                snprintf(buf, len, "%s", names->List[i]);
                break;
            }
    }
    jsStreamNamesList_Destroy(names);
}

static jet_status create_failed(jsCtx *js, const js_want *w, natsStatus s, jsErrCode je, jet_err *err)
{
    if (w->kind == OBJ_STREAM && je == JSStreamSubjectOverlapErr) {
        char other[96];
        overlapping_stream(js, w, other, sizeof other);
        return jet_err_set(err, JET_ERR_CONFLICT,
                           "stream %s: its subjects \"%s\" overlap those of the existing stream %s; "
                           "refusing to change it (delete or fix that stream by hand, or set another nats.prefix)",
                           w->name, w->subject, other[0] ? other : "(unknown)");
    }
    char l[LABEL_MAX];
    if (je == JSStreamReplicasNotSupportedErr)
        return jet_err_set(err, JET_ERR_INVALID,
                           "%s: jetstream.replicas is %" PRId64 " but the server is not clustered (use 1)",
                           label(w, l, sizeof l), w->replicas);
    if (w->kind == OBJ_STREAM && je == JSStorageResourcesExceededErr)
        return jet_err_set(err, JET_ERR_INVALID,
                           "stream %s: the server cannot reserve jetstream.max_bytes (%" PRId64
                           " bytes) of JetStream file storage; lower it or raise the server's max_file_store",
                           w->name, w->max_bytes);
    if (w->kind == OBJ_CONSUMER && je == JSStreamNotFoundErr)
        return jet_err_set(err, JET_ERR_NOT_FOUND, "consumer %s/%s: stream %s does not exist (run `jetsched init`)",
                           w->stream, w->name, w->stream);
    return nats_fail(err, w, s, "create failed");
}

/* Creates w; when another process created it meanwhile, checks it instead. */
static jet_status create_one(jsCtx *js, js_want *w, jet_js_outcome *out, jet_err *err)
{
    diffs d = {0};
    jsErrCode je = 0;
    natsStatus s;
    if (w->kind == OBJ_STREAM)
        s = create_stream(js, w, &d, &je);
    else if (w->kind == OBJ_KV)
        s = create_bucket(js, w);
    else
        s = create_consumer(js, w, &d, &je);
    if (s == NATS_OK) {
        if (d.n)
            return conflict(err, w, &d);
        *out = JET_JS_CREATED;
        return JET_OK;
    }
    jet_err create_err;
    jet_status cst = create_failed(js, w, s, je, &create_err);
    jet_status st = check_one(js, w, &d, err);
    if (st != JET_OK)
        return st;
    if (!w->exists) {
        if (err)
            *err = create_err;
        return cst;
    }
    if (d.n)
        return conflict(err, w, &d);
    *out = JET_JS_UNCHANGED;
    return JET_OK;
}

/* ------------------------------------------------------------------ ensure */

/* Appends s to the string in dst (capacity cap), truncating. */
static void append(char *dst, size_t cap, const char *s)
{
    size_t len = strlen(dst), n = strlen(s);
    if (len + 1 >= cap)
        return;
    if (n > cap - len - 1)
        n = cap - len - 1;
    memcpy(dst + len, s, n);
    dst[len + n] = '\0';
}

/* Appends one conflict line to the combined error. */
static void add_conflict(jet_err *all, int *count, const jet_err *one)
{
    if (*count)
        append(all->msg, sizeof all->msg, "\n");
    append(all->msg, sizeof all->msg, one->msg);
    (*count)++;
}

static jet_status plan_run(jsCtx *js, js_plan *p, jet_js_report_fn report, void *ctx, jet_err *err)
{
    jet_err all = {.code = JET_ERR_CONFLICT, .msg = ""};
    int conflicts = 0;
    for (size_t i = 0; i < p->n; i++) {
        diffs d;
        jet_status st = check_one(js, &p->v[i], &d, err);
        if (st != JET_OK)
            return st;
        if (d.n) {
            jet_err one;
            conflict(&one, &p->v[i], &d);
            add_conflict(&all, &conflicts, &one);
        }
    }
    if (conflicts) {
        if (err)
            *err = all;
        return JET_ERR_CONFLICT;
    }
    for (size_t i = 0; i < p->n; i++) {
        jet_js_outcome outcome = JET_JS_UNCHANGED;
        if (!p->v[i].exists) {
            jet_status st = create_one(js, &p->v[i], &outcome, err);
            if (st != JET_OK)
                return st;
        }
        if (report)
            report(ctx, kind_word(p->v[i].kind), p->v[i].name, outcome);
    }
    return JET_OK;
}

static jet_status names_from(const jet_config *cfg, jet_js_names *n, jet_err *err)
{
    const char *prefix = jet_cfg_str(cfg, "nats.prefix");
    if (!jet_js_prefix_valid(prefix))
        return jet_err_set(err, JET_ERR_INVALID,
                           "nats.prefix \"%s\": use 1-%d letters, digits, '_' or '-' (it names subjects, "
                           "streams and buckets)",
                           prefix ? prefix : "", PREFIX_MAX);
    jet_js_names_init(n, prefix);
    return JET_OK;
}

/* Validates queue and adds its consumers unless the plan has them already. */
static jet_status add_queue(js_plan *p, const jet_js_names *n, const jet_config *cfg, const char *queue,
                            jet_err *err)
{
    if (!jet_name_valid(queue))
        return jet_err_set(err, JET_ERR_INVALID,
                           "queue \"%s\": a queue name is 1-64 characters of a-z, 0-9, '_' and '-'",
                           queue ? queue : "(null)");
    return plan_has_queue(p, queue) ? JET_OK : plan_queue(p, n, cfg, queue, err);
}

/* Plans the base objects (when base), the consumers of jetstream.queues (when
 * cfg_queues) and of `queues`, then runs the plan. */
static jet_status run_with(jsCtx *js, const jet_config *cfg, bool base, bool cfg_queues,
                           const char *const *queues, size_t n_queues, jet_js_report_fn report, void *ctx,
                           jet_err *err)
{
    jet_js_names n;
    js_plan p = {0};
    jet_status st = names_from(cfg, &n, err);
    if (st == JET_OK && base)
        st = plan_base(&p, &n, cfg, err);
    size_t n_cfg = cfg_queues ? jet_cfg_list_len(cfg, "jetstream.queues") : 0;
    for (size_t i = 0; st == JET_OK && i < n_cfg; i++)
        st = add_queue(&p, &n, cfg, jet_cfg_list_at(cfg, "jetstream.queues", i), err);
    for (size_t i = 0; st == JET_OK && i < n_queues; i++)
        st = add_queue(&p, &n, cfg, queues[i], err);
    if (st == JET_OK)
        st = plan_run(js, &p, report, ctx, err);
    free(p.v);
    return st;
}

jet_status jet_js_ensure_base(jsCtx *js, const jet_config *cfg, jet_js_report_fn report, void *ctx, jet_err *err)
{
    return run_with(js, cfg, true, false, NULL, 0, report, ctx, err);
}

jet_status jet_js_ensure_queue(jsCtx *js, const jet_config *cfg, const char *queue, jet_js_report_fn report,
                               void *ctx, jet_err *err)
{
    return run_with(js, cfg, false, false, &queue, 1, report, ctx, err);
}

jet_status jet_js_ensure_all(jsCtx *js, const jet_config *cfg, const char *const *extra_queues, size_t n_extra,
                             jet_js_report_fn report, void *ctx, jet_err *err)
{
    return run_with(js, cfg, true, true, extra_queues, n_extra, report, ctx, err);
}
