/* GET /api/v1/events (web.h): the live task events of <prefix>.event.<queue>.<task>
 * (DESIGN §3, published by agentd) as Server-Sent Events. A client's filters
 * choose the subject it subscribes to (queue and task narrow the subject;
 * workflow is matched on the event's "workflow" field); clients with the
 * same subject share one NATS subscription. Events are appended by the NATS
 * callback to the client's bounded buffer; the connection's own thread
 * (MHD thread-per-connection) writes it out, events of up to 50 ms together,
 * and sends a heartbeat comment when idle. A client whose buffer overflows (it reads slower than events
 * come) is cut off: its stream ends with an error, it gets nothing more and
 * the browser reconnects. */
#include "web.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct topic topic;

typedef struct sse_client {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;
    size_t len, cap;  /* cap grows up to web.sse_buffer */
    bool overflow;
    int64_t first_ms; /* CLOCK_MONOTONIC ms of the oldest byte waiting (when len > 0) */
    uint64_t seq;
    char workflow[JET_TASK_ID_MAX + 1];
    char peer[160];
    topic *t;
    struct sse_client *next; /* in t->clients */
} sse_client;

struct topic {
    char subject[320];
    natsSubscription *sub;
    sse_client *clients;
    topic *next;
};

static sched *sse_s;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static topic *topics;
static int nclients, max_clients;
static size_t buf_max;
/* Events wait up to this long to be written together (one write and one
 * wake-up per batch instead of per event), unless SSE_COALESCE_BYTES are waiting. */
#define SSE_COALESCE_MS 50
#define SSE_COALESCE_BYTES 8192
static int64_t heartbeat_ms;
static _Atomic bool stopping;
static jet_metric *m_events, *m_cut;

static double gauge_clients(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reg_mu);
    int n = nclients;
    pthread_mutex_unlock(&reg_mu);
    return n;
}

jet_status web_sse_init(sched *s, jet_err *err)
{
    (void)err;
    sse_s = s;
    max_clients = (int)jet_cfg_int(s->cfg, "web.sse_max_clients");
    buf_max = (size_t)jet_cfg_int(s->cfg, "web.sse_buffer");
    heartbeat_ms = jet_cfg_int(s->cfg, "web.sse_heartbeat");
    atomic_store(&stopping, false);
    m_events = jet_metric_counter("jetsched_web_sse_events_total", "Events queued to Server-Sent Events clients.", NULL);
    m_cut = jet_metric_counter("jetsched_web_sse_cut_total",
                               "Server-Sent Events clients cut off because they read slower than events came.", NULL);
    jet_metric_gauge_fn("jetsched_web_sse_clients", "Connected Server-Sent Events clients.", gauge_clients, NULL);
    return JET_OK;
}

/* Appends text to c's buffer (c->mu held); overflow cuts the client off. */
static void append(sse_client *c, const char *text, size_t n)
{
    if (c->overflow)
        return;
    if (c->len + n > buf_max) {
        c->overflow = true;
        free(c->buf);
        c->buf = NULL;
        c->len = c->cap = 0;
        jet_metric_add(m_cut, NULL, 1);
        jet_warn("web: events client %s reads too slowly (more than %zu bytes waiting): cut off", c->peer, buf_max);
        return;
    }
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n)
            cap *= 2;
        char *b = realloc(c->buf, cap < buf_max ? cap : buf_max);
        if (!b)
            return;
        c->buf = b;
        c->cap = cap < buf_max ? cap : buf_max;
    }
    memcpy(c->buf + c->len, text, n);
    c->len += n;
}

static bool workflow_matches(const sse_client *c, const char *data, int len, json_t **parsed)
{
    if (!c->workflow[0])
        return true;
    if (!*parsed)
        *parsed = json_loadb(data, (size_t)len, 0, NULL);
    const char *w = json_string_value(json_object_get(*parsed, "workflow"));
    return w && !strcmp(w, c->workflow);
}

static void on_event(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    topic *t = closure;
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    /* One "data:" line per line of the event (agentd sends one line). */
    char *lines = malloc((size_t)len * 7 + 16);
    size_t n = 0;
    n += (size_t)sprintf(lines, "data: ");
    for (int i = 0; i < len; i++) {
        if (data[i] == '\n') {
            n += (size_t)sprintf(lines + n, "\ndata: ");
        } else if (data[i] != '\r') {
            lines[n++] = data[i];
        }
    }
    lines[n++] = '\n';
    lines[n++] = '\n';
    json_t *parsed = NULL;
    pthread_mutex_lock(&reg_mu);
    for (sse_client *c = t->clients; c; c = c->next) {
        if (!workflow_matches(c, data, len, &parsed))
            continue;
        pthread_mutex_lock(&c->mu);
        char id[40];
        int idn = snprintf(id, sizeof id, "id: %llu\n", (unsigned long long)++c->seq);
        bool was_empty = c->len == 0;
        if (was_empty)
            c->first_ms = jet_mono_ms();
        append(c, id, (size_t)idn);
        append(c, lines, n);
        /* The reader waits only on an empty buffer: one wake-up per batch of events. */
        if (was_empty || c->overflow)
            pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        jet_metric_add(m_events, NULL, 1);
    }
    pthread_mutex_unlock(&reg_mu);
    json_decref(parsed);
    free(lines);
    natsMsg_Destroy(msg);
}

/* Registers c under subject (reg_mu held). */
static bool subscribe(sse_client *c, const char *subject)
{
    topic *t = topics;
    while (t && strcmp(t->subject, subject) != 0)
        t = t->next;
    if (!t) {
        t = calloc(1, sizeof *t);
        snprintf(t->subject, sizeof t->subject, "%s", subject);
        if (natsConnection_Subscribe(&t->sub, sse_s->nc, subject, on_event, t) != NATS_OK) {
            free(t);
            return false;
        }
        natsSubscription_SetPendingLimits(t->sub, 65536, 64 * 1024 * 1024);
        t->next = topics;
        topics = t;
    }
    c->t = t;
    c->next = t->clients;
    t->clients = c;
    nclients++;
    return true;
}

static void client_free(void *cls)
{
    sse_client *c = cls;
    pthread_mutex_lock(&reg_mu);
    topic *t = c->t;
    for (sse_client **p = &t->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    nclients--;
    if (!t->clients) {
        for (topic **p = &topics; *p; p = &(*p)->next)
            if (*p == t) {
                *p = t->next;
                break;
            }
        natsSubscription_Unsubscribe(t->sub);
        natsSubscription_Destroy(t->sub);
        free(t);
    }
    pthread_mutex_unlock(&reg_mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->buf);
    free(c);
}

/* MHD content reader: blocks (its own thread) until events or the heartbeat is due. */
static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    sse_client *c = cls;
    pthread_mutex_lock(&c->mu);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += heartbeat_ms / 1000;
    until.tv_nsec += (heartbeat_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    ssize_t ret = 0;
    for (;;) {
        if (c->overflow) {
            ret = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        if (atomic_load(&stopping)) {
            ret = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        if (c->len && c->len < SSE_COALESCE_BYTES && jet_mono_ms() < c->first_ms + SSE_COALESCE_MS) {
            struct timespec soon;
            int64_t at = c->first_ms + SSE_COALESCE_MS;
            soon.tv_sec = at / 1000;
            soon.tv_nsec = (at % 1000) * 1000000;
            pthread_cond_timedwait(&c->cv, &c->mu, &soon);
            continue;
        }
        if (c->len) {
            size_t n = c->len < max ? c->len : max;
            memcpy(out, c->buf, n);
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            c->first_ms = jet_mono_ms();
            ret = (ssize_t)n;
            break;
        }
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0) {
            static const char ping[] = ": ping\n\n";
            memcpy(out, ping, sizeof ping - 1 < max ? sizeof ping - 1 : max);
            ret = (ssize_t)(sizeof ping - 1 < max ? sizeof ping - 1 : max);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return ret;
}

static bool filter_arg(web_req *r, const char *name, bool (*valid)(const char *), char *out, size_t len)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v || !*v) {
        out[0] = '\0';
        return true;
    }
    if (!valid(v) || strlen(v) >= len)
        return false;
    snprintf(out, len, "%s", v);
    return true;
}

struct sse_args {
    const char *bad, *twice;
    int seen[3]; /* queue, task, workflow */
};

static enum MHD_Result check_args(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    static const char *const names[] = {"queue", "task", "workflow"};
    struct sse_args *a = cls;
    if (!*key) /* "?a=1&&b=2", as on the other routes */
        return MHD_YES;
    for (int i = 0; i < 3; i++)
        if (!strcmp(key, names[i])) {
            if (++a->seen[i] > 1) { /* the first one was used: ?queue=a&queue=b streamed queue a */
                a->twice = names[i];
                return MHD_NO;
            }
            return MHD_YES;
        }
    a->bad = key;
    return MHD_NO;
}

enum MHD_Result web_events(web_req *r)
{
    char queue[JET_NAME_MAX + 1], task[JET_TASK_ID_MAX + 1], workflow[JET_TASK_ID_MAX + 1];
    struct sse_args args = {0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_args, &args);
    if (args.bad)
        return web_fail(r, API_INVALID, args.bad,
                        "unknown query parameter \"%.60s\" (accepted: queue, task, workflow)", args.bad);
    if (args.twice)
        return web_fail(r, API_INVALID, args.twice, "parameter %s is given twice", args.twice);
    if (!filter_arg(r, "queue", jet_name_valid, queue, sizeof queue))
        return web_fail(r, API_INVALID, "queue", "queue is not a valid name: 1-64 characters of [a-z0-9_-]");
    if (!filter_arg(r, "task", jet_task_id_valid, task, sizeof task))
        return web_fail(r, API_INVALID, "task", "task is not a valid task id: 1-128 characters of [A-Za-z0-9_-]");
    if (!filter_arg(r, "workflow", jet_task_id_valid, workflow, sizeof workflow))
        return web_fail(r, API_INVALID, "workflow",
                        "workflow is not a valid workflow id: 1-128 characters of [A-Za-z0-9_-]");
    char subject[320];
    if (queue[0] || task[0])
        snprintf(subject, sizeof subject, "%s.event.%s.%s", sse_s->names.prefix, queue[0] ? queue : "*",
                 task[0] ? task : "*");
    else
        snprintf(subject, sizeof subject, "%s.event.>", sse_s->names.prefix);
    sse_client *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(c->workflow, sizeof c->workflow, "%s", workflow);
    snprintf(c->peer, sizeof c->peer, "%s", r->peer);
    static const char hello[] = "retry: 3000\n: jetsched events\n\n";
    append(c, hello, sizeof hello - 1);
    pthread_mutex_lock(&reg_mu);
    bool full = nclients >= max_clients, ok = !full && !atomic_load(&stopping) && subscribe(c, subject);
    pthread_mutex_unlock(&reg_mu);
    if (!ok) {
        free(c->buf);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        web_header(r, "Retry-After", "10");
        if (full)
            return web_fail(r, API_UNAVAILABLE, NULL, "too many event streams (web.sse_max_clients = %d): retry later",
                            max_clients);
        return web_fail(r, API_UNAVAILABLE, NULL, "cannot subscribe to the live events (NATS unavailable or stopping)");
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, c, client_free);
    if (!resp) {
        client_free(c);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return web_queue_response(r, 200, resp);
}

void web_sse_stop(void)
{
    atomic_store(&stopping, true);
    pthread_mutex_lock(&reg_mu);
    for (topic *t = topics; t; t = t->next)
        for (sse_client *c = t->clients; c; c = c->next) {
            pthread_mutex_lock(&c->mu);
            pthread_cond_signal(&c->cv);
            pthread_mutex_unlock(&c->mu);
        }
    pthread_mutex_unlock(&reg_mu);
}
