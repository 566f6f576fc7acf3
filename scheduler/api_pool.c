/* Serving the API (docs/API.md "Operating the API"): api.pg_connections
 * worker threads, each with its own api_ctx (PostgreSQL connection,
 * asynchronous publisher), one queue of requests fed by the NATS
 * subscription (queue group jetsched-api on <prefix>.api.>) and by api_call
 * (the HTTP API), group commit of concurrent task.submit requests, and
 * jetsched_api_requests_total / jetsched_api_request_seconds. */
#include "api.h"
#include "publish.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_QUEUE_GROUP "jetsched-api"
#define GROUP_MAX_TASKS 1000           /* task.submit requests per group */
#define GROUP_MAX_BYTES (16 << 20)     /* their payloads and headers */

typedef struct job {
    struct job *next;
    const api_verb_def *v;
    json_t *req;            /* owned */
    api_done_fn done;
    void *closure;
    int64_t t0;
    api_submit *sub;        /* a validated task.submit waiting for its group */
    json_t *res;
    api_err e;
} job;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;       /* requests not yet taken by a worker */
    job **pending;          /* validated task.submit requests, oldest first */
    size_t npending, cap;
    int committers, max_committers, nworkers;
    bool stop, started;
    pthread_t *threads;
    api_ctx *ctxs;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* The context of api_init_offline and of calls before api_start or after
 * api_stop (one at a time). */
static api_ctx base;
/* base without PostgreSQL nor publisher, read-only once api_start has set
 * it: validation of a task.submit where it arrives (submit_on_arrival). */
static api_ctx vbase;
static pthread_mutex_t base_mu = PTHREAD_MUTEX_INITIALIZER;
/* dlq.replay and dlq.purge walk and change the dead-letter stream: one at a
 * time, as when the API served one request at a time. */
static pthread_mutex_t dlq_mu = PTHREAD_MUTEX_INITIALIZER;
static natsSubscription *sub;
static jet_metric *m_requests, *m_seconds, *m_groups, *m_grouped;
static char subject_prefix[96];

static bool is_submit(const api_verb_def *v) { return v->fn == api_task_submit; }

static bool is_serial(const api_verb_def *v) { return v->writes && !strncmp(v->verb, "dlq.", 4); }

/* Counts one request in the API metrics (verb "unknown" for an unknown one). */
static void count_request(const char *verb, const api_err *e, int64_t t0)
{
    const char *labels[] = {verb, e->code ? e->code : "ok"};
    jet_metric_add(m_requests, labels, 1);
    jet_metric_observe(m_seconds, labels, (double)(jet_mono_ms() - t0));
}

/* Answers j and frees it. */
static void finish(job *j)
{
    if (!j->res && !j->e.code)
        api_fail(&j->e, API_INTERNAL, NULL, "no reply (a bug)");
    if (!j->res && !strcmp(j->e.code, API_INTERNAL))
        jet_error("api %s: internal error: %s", j->v->verb, j->e.msg);
    count_request(j->v->verb, &j->e, j->t0);
    j->done(j->closure, j->res, &j->e);
    json_decref(j->req);
    free(j);
}

/* The replies (a group's, or one other request's) are written by the pusher thread
 * (sched_nats_push: at once instead of after libnats' flusher wait of 1
 * ms), so that the committer does not wait for the PONG. Signals coalesce. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wanted, stop, started;
    pthread_t thread;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *pusher(void *arg)
{
    sched *s = arg;
    pthread_mutex_lock(&R.mu);
    for (;;) {
        while (!R.wanted && !R.stop)
            pthread_cond_wait(&R.cv, &R.mu);
        if (R.stop)
            break;
        R.wanted = false;
        pthread_mutex_unlock(&R.mu);
        sched_nats_push(s);
        pthread_mutex_lock(&R.mu);
    }
    pthread_mutex_unlock(&R.mu);
    return NULL;
}

static void push_replies(void)
{
    pthread_mutex_lock(&R.mu);
    if (R.started && !R.wanted) {
        R.wanted = true;
        pthread_cond_signal(&R.cv);
    }
    pthread_mutex_unlock(&R.mu);
}

/* Runs j's verb on c (a task.submit is only validated: it joins the
 * pending list). */
static void run_job(api_ctx *c, job *j)
{
    c->verb = j->v->verb;
    if (is_submit(j->v) && !c->offline) {
        if (api_submit_prepare(c, j->req, &j->sub, &j->res, &j->e) <= 0) {
            finish(j);
            return;
        }
        pthread_mutex_lock(&P.mu);
        if (P.npending == P.cap) {
            P.cap = P.cap ? P.cap * 2 : 256;
            P.pending = realloc(P.pending, P.cap * sizeof *P.pending);
        }
        P.pending[P.npending++] = j;
        pthread_mutex_unlock(&P.mu);
        return;
    }
    bool serial = is_serial(j->v);
    if (serial)
        pthread_mutex_lock(&dlq_mu);
    j->res = j->v->fn(c, j->req, &j->e);
    api_pg_rollback(c); /* a verb never leaves a transaction open */
    if (serial)
        pthread_mutex_unlock(&dlq_mu);
    finish(j);
    push_replies();
}

typedef struct group {
    job **g;
    size_t n;
    json_t **res;
    api_err *errs;
} group;

/* Answers every request of a group (api_submit_group's answer step). */
static void answer_group(void *arg)
{
    group *gr = arg;
    for (size_t i = 0; i < gr->n; i++) {
        gr->g[i]->sub = NULL;
        gr->g[i]->res = gr->res[i];
        gr->g[i]->e = gr->errs[i];
        finish(gr->g[i]);
    }
    push_replies();
}

/* Stores, publishes and answers a group of validated task.submit requests. */
static void commit_group(api_ctx *c, job **g, size_t n)
{
    api_submit **subs = calloc(n, sizeof *subs);
    group gr = {.g = g, .n = n, .res = calloc(n, sizeof *gr.res), .errs = calloc(n, sizeof *gr.errs)};
    for (size_t i = 0; i < n; i++)
        subs[i] = g[i]->sub;
    c->verb = "task.submit";
    jet_metric_add(m_groups, NULL, 1);
    jet_metric_add(m_grouped, NULL, (double)n);
    api_submit_group(c, subs, n, gr.res, gr.errs, answer_group, &gr);
    api_pg_rollback(c);
    free(subs);
    free(gr.res);
    free(gr.errs);
}

/* Takes the oldest pending submits, up to the group bounds (P.mu held). */
static size_t take_group(job ***out)
{
    size_t n = 0, bytes = 0;
    while (n < P.npending && n < GROUP_MAX_TASKS) {
        size_t b = api_submit_bytes(P.pending[n]->sub);
        if (n && bytes + b > GROUP_MAX_BYTES)
            break;
        bytes += b;
        n++;
    }
    job **g = malloc(n * sizeof *g);
    memcpy(g, P.pending, n * sizeof *g);
    memmove(P.pending, P.pending + n, (P.npending - n) * sizeof *P.pending);
    P.npending -= n;
    *out = g;
    return n;
}

/* A worker: validates queued submits first (those submit_on_arrival left to
 * a worker; cheap, and the group grows),
 * then commits the pending ones when fewer than max_committers are
 * committing, else serves the next request. */
static void *worker(void *arg)
{
    api_ctx *c = arg;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        job *j = NULL;
        if (P.head && is_submit(P.head->v) &&
            (P.npending < GROUP_MAX_TASKS || P.committers >= P.max_committers)) {
            j = P.head;
        } else if (P.npending && P.committers < P.max_committers) {
            job **g;
            size_t n = take_group(&g);
            P.committers++;
            pthread_mutex_unlock(&P.mu);
            commit_group(c, g, n);
            free(g);
            pthread_mutex_lock(&P.mu);
            P.committers--;
            continue;
        } else if (P.head) {
            j = P.head;
        } else if (P.stop) {
            break;
        } else {
            pthread_cond_wait(&P.cv, &P.mu);
            continue;
        }
        P.head = j->next;
        if (!P.head)
            P.tail = NULL;
        pthread_mutex_unlock(&P.mu);
        run_job(c, j);
        pthread_mutex_lock(&P.mu);
    }
    pthread_mutex_unlock(&P.mu);
    return NULL;
}

/* Runs j at once on the base context (offline, or no workers). */
static void run_inline(job *j)
{
    pthread_mutex_lock(&base_mu);
    base.verb = j->v->verb;
    j->res = j->v->fn(&base, j->req, &j->e);
    api_pg_rollback(&base);
    pthread_mutex_unlock(&base_mu);
    finish(j);
}

/* An id whose check reads PostgreSQL (reserved_callback_id of
 * api_task.c: <workflow>-on_success, <workflow>-on_complete). */
static bool id_needs_pg(const json_t *req)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    size_t n = id ? strlen(id) : 0;
    return (n >= 11 && !strcmp(id + n - 11, "-on_success")) || (n >= 12 && !strcmp(id + n - 12, "-on_complete"));
}

/* A task.submit is validated where it arrives (the NATS delivery thread, an
 * HTTP thread) and joins the pending list at once: no worker is woken to
 * validate it, and none at all while the committers are all busy (the next
 * one to finish takes the pending ones as its group). false: not taken (an
 * id checked in PostgreSQL, or the pool stopped): queue it as any request. */
static bool submit_on_arrival(job *j)
{
    if (!is_submit(j->v) || id_needs_pg(j->req))
        return false;
    pthread_mutex_lock(&P.mu);
    bool running = P.started && !P.stop;
    pthread_mutex_unlock(&P.mu);
    if (!running)
        return false;
    api_ctx c = vbase;
    c.verb = j->v->verb;
    if (api_submit_prepare(&c, j->req, &j->sub, &j->res, &j->e) <= 0) {
        finish(j);
        return true;
    }
    pthread_mutex_lock(&P.mu);
    running = P.started && !P.stop;
    if (running) {
        if (P.npending == P.cap) {
            P.cap = P.cap ? P.cap * 2 : 256;
            P.pending = realloc(P.pending, P.cap * sizeof *P.pending);
        }
        P.pending[P.npending++] = j;
        if (P.committers < P.max_committers)
            pthread_cond_signal(&P.cv);
    }
    pthread_mutex_unlock(&P.mu);
    if (!running) { /* stopped meanwhile: served like one that came after the stop */
        api_task_row_free(j->sub);
        free(j->sub);
        j->sub = NULL;
    }
    return running;
}

void api_call_async(const char *verb, json_t *req, api_done_fn done, void *closure)
{
    job *j = calloc(1, sizeof *j);
    j->t0 = jet_mono_ms();
    j->req = req;
    j->done = done;
    j->closure = closure;
    j->v = api_verb_find(verb);
    if (!j->v || !json_is_object(req)) {
        api_err e = {0};
        if (!j->v)
            api_fail(&e, API_INVALID, NULL, "unknown verb \"%.100s\"; see docs/API.md", verb);
        else
            api_fail(&e, API_INVALID, NULL, "request body must be a JSON object");
        count_request(j->v ? j->v->verb : "unknown", &e, j->t0);
        done(closure, NULL, &e);
        json_decref(req);
        free(j);
        return;
    }
    if (submit_on_arrival(j))
        return;
    pthread_mutex_lock(&P.mu);
    bool queued = P.started && !P.stop;
    if (queued) {
        if (P.tail)
            P.tail->next = j;
        else
            P.head = j;
        P.tail = j;
        pthread_cond_signal(&P.cv);
    }
    pthread_mutex_unlock(&P.mu);
    if (!queued)
        run_inline(j);
}

/* api_call's wait for its reply. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    json_t *res;
    api_err e;
} waiter;

static void wake(void *closure, json_t *res, const api_err *e)
{
    waiter *w = closure;
    pthread_mutex_lock(&w->mu);
    w->res = res;
    if (e && !res)
        w->e = *e;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

json_t *api_call(const char *verb, json_t *req, api_err *e)
{
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    api_call_async(verb, json_incref(req), wake, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (!w.res)
        *e = w.e;
    return w.res;
}

/* ---------------- NATS ---------------- */

static void reply_done(void *closure, json_t *res, const api_err *e)
{
    natsMsg *msg = closure;
    if (!res)
        res = api_error_body(e);
    char *body = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    if (!body) /* never leave a client without a reply */
        body = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"the reply could not be encoded (a bug)\"}}");
    int64_t max = natsConnection_GetMaxPayload(base.s->nc);
    if (body && max > 0 && (int64_t)strlen(body) > max) {
        /* NATS would refuse to publish it and the client would only see a
         * timeout (e.g. workflow.get with a large limit): say why instead */
        api_err big = {0};
        api_fail(&big, API_TOO_LARGE, NULL,
                 "the reply is %zu bytes, more than the NATS server takes in one message (max_payload %lld): ask for "
                 "less (a smaller limit)",
                 strlen(body), (long long)max);
        jet_warn("api: %s on %s", big.msg, natsMsg_GetSubject(msg));
        free(body);
        json_t *err = api_error_body(&big);
        body = json_dumps(err, JSON_COMPACT);
        json_decref(err);
    }
    const char *reply = natsMsg_GetReply(msg);
    if (reply && body)
        natsConnection_Publish(base.s->nc, reply, body, (int)strlen(body));
    free(body);
    natsMsg_Destroy(msg);
}

static void on_request(natsConnection *nc, natsSubscription *s, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)s;
    (void)closure;
    const char *subject = natsMsg_GetSubject(msg);
    size_t plen = strlen(subject_prefix);
    const char *verb = strncmp(subject, subject_prefix, plen) == 0 ? subject + plen : subject;
    api_err e = {0};
    json_t *req = NULL;
    if (!api_verb_find(verb)) {
        api_fail(&e, API_INVALID, NULL, "unknown verb \"%.100s\" (subject %.200s); see docs/API.md", verb, subject);
        count_request("unknown", &e, jet_mono_ms());
    } else if ((req = api_parse_body(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &e))) {
        api_call_async(verb, req, reply_done, msg); /* answers and destroys msg */
        return;
    } else {
        count_request(verb, &e, jet_mono_ms());
    }
    reply_done(msg, NULL, &e);
}

static void api_metrics(void)
{
    m_requests = jet_metric_counter("jetsched_api_requests_total", "API requests served, by verb and result code.",
                                    "verb,code");
    m_seconds = jet_metric_histogram("jetsched_api_request_seconds", "API request handling time, by verb and code.",
                                     "verb,code");
    m_groups = jet_metric_counter("jetsched_api_submit_groups_total",
                                  "Transactions of task.submit requests stored together (group commit).", NULL);
    m_grouped = jet_metric_counter("jetsched_api_submit_grouped_total",
                                   "task.submit requests stored by those transactions (divided by groups: the mean "
                                   "group size).", NULL);
}

void api_init_offline(sched *s)
{
    base.s = s;
    base.offline = true;
    api_metrics();
}

jet_status api_start(sched *s, jet_err *err)
{
    base.s = s;
    api_metrics();
    natsStatus st = js_KeyValue(&base.cancel_kv, s->js, s->names.kv_cancel);
    if (st == NATS_OK)
        st = js_KeyValue(&base.agents_kv, s->js, s->names.kv_agents);
    if (st == NATS_OK)
        st = js_KeyValue(&base.leader_kv, s->js, s->names.kv_leader);
    if (st == NATS_OK)
        st = js_KeyValue(&base.control_kv, s->js, s->names.kv_control);
    if (st != NATS_OK)
        return jet_err_set(err, JET_ERR_NATS, "api: cannot open the KV buckets: %s", natsStatus_GetText(st));
    int n = (int)jet_cfg_int(s->cfg, "api.pg_connections");
    if (n < 1)
        n = 1;
    vbase = base;
    vbase.pg = NULL;
    vbase.pub = NULL;
    P.ctxs = calloc((size_t)n, sizeof *P.ctxs);
    P.threads = calloc((size_t)n, sizeof *P.threads);
    P.max_committers = n / 2 > 0 ? n / 2 : 1;
    P.stop = false;
    for (int i = 0; i < n; i++) {
        P.ctxs[i] = base;
        P.ctxs[i].pg = NULL;
        P.ctxs[i].pub = sched_publisher_new(s);
        if (pthread_create(&P.threads[i], NULL, worker, &P.ctxs[i]) != 0) {
            sched_publisher_free(P.ctxs[i].pub);
            P.ctxs[i].pub = NULL;
            break;
        }
        P.nworkers++;
    }
    if (!P.nworkers)
        return jet_err_set(err, JET_ERR_INTERNAL, "api: cannot start its worker threads");
    R.stop = R.wanted = false;
    R.started = pthread_create(&R.thread, NULL, pusher, s) == 0; /* without it libnats' flusher writes them */
    pthread_mutex_lock(&P.mu);
    P.started = true;
    pthread_mutex_unlock(&P.mu);
    snprintf(subject_prefix, sizeof subject_prefix, "%s.api.", s->names.prefix);
    char subject[128];
    snprintf(subject, sizeof subject, "%s.api.>", s->names.prefix);
    st = natsConnection_QueueSubscribe(&sub, s->nc, subject, API_QUEUE_GROUP, on_request, NULL);
    if (st != NATS_OK)
        return jet_err_set(err, JET_ERR_NATS, "api: cannot subscribe to %s: %s", subject, natsStatus_GetText(st));
    natsSubscription_SetPendingLimits(sub, 10000, 256 * 1024 * 1024);
    jet_info("api: serving %s in queue group %s (%d workers with a PostgreSQL connection each)", subject,
             API_QUEUE_GROUP, P.nworkers);
    return JET_OK;
}

void api_stop(void)
{
    if (sub) {
        if (natsSubscription_Drain(sub) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(sub, 10000);
        natsSubscription_Destroy(sub);
        sub = NULL;
    }
    /* The workers finish every queued and pending request, then exit. */
    pthread_mutex_lock(&P.mu);
    P.stop = true;
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    for (int i = 0; i < P.nworkers; i++)
        pthread_join(P.threads[i], NULL);
    pthread_mutex_lock(&R.mu);
    bool pushing = R.started;
    R.started = false;
    R.stop = true;
    pthread_cond_signal(&R.cv);
    pthread_mutex_unlock(&R.mu);
    if (pushing)
        pthread_join(R.thread, NULL);
    pthread_mutex_lock(&P.mu);
    P.started = false;
    pthread_mutex_unlock(&P.mu);
    for (int i = 0; i < P.nworkers; i++) {
        api_pg_close(&P.ctxs[i]);
        sched_publisher_free(P.ctxs[i].pub);
    }
    free(P.ctxs);
    free(P.threads);
    free(P.pending);
    P.ctxs = NULL;
    P.threads = NULL;
    P.pending = NULL;
    P.npending = P.cap = 0;
    P.nworkers = 0;
    pthread_mutex_lock(&base_mu);
    api_pg_close(&base);
    kvStore_Destroy(base.cancel_kv);
    kvStore_Destroy(base.agents_kv);
    kvStore_Destroy(base.leader_kv);
    kvStore_Destroy(base.control_kv);
    base.cancel_kv = base.agents_kv = base.leader_kv = base.control_kv = NULL;
    pthread_mutex_unlock(&base_mu);
}
