/* API verbs dlq.list, dlq.get, dlq.replay, dlq.purge (docs/API.md) on the
 * JETSCHED_DLQ stream. Messages are read with the JetStream "get message"
 * API (next_by_subj pages through one queue's dead letters).
 *
 * Replay: the PostgreSQL row goes back from `dead` to `queued` (a terminal
 * row never changes again, so the agent's records would otherwise be
 * dropped) with max_attempts = recorded attempts + a fresh budget; then the
 * message is published to its original subject with its original headers
 * and payload, Jetsched-Task-Id = the task id (agentd names the task by it),
 * a distinct Nats-Msg-Id (so the stream's duplicate window does not drop
 * it), Jetsched-Redispatch (attempts are numbered on from the recorded
 * ones), Jetsched-Max-Attempts and Jetsched-Attempt-Budget (the budget of
 * a later replay); last the dead letter is deleted. A failed publish puts
 * the row back to `dead`. */
#include "api.h"
#include "publish.h"

#include <jetsched/base64.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>
#include <jetsched/utf8.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JS_TIMEOUT_MS 5000

typedef struct dead {
    uint64_t seq;
    char subject[256];
    json_t *headers;       /* name -> value (the last one of repeated headers), as valid UTF-8 */
    unsigned char *hb;     /* the header block as stored (replayed byte for byte) */
    size_t hl;
    unsigned char *data;
    size_t len;
    int64_t time_ms;
} dead;

static void dead_free(dead *d)
{
    json_decref(d->headers);
    free(d->hb);
    free(d->data);
    memset(d, 0, sizeof *d);
}

static const char *hdr(const dead *d, const char *name)
{
    json_t *v = json_object_get(d->headers, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "NATS/1.0\r\nName: value\r\n...\r\n\r\n" into an object. */
/* Calls fn(arg, name, value) for each "Name: value" line of a NATS header
 * block (after the NATS/1.0 line), name and value NUL-terminated copies of
 * the bytes as stored (not necessarily UTF-8). */
static void each_header(const unsigned char *b, size_t n, void (*fn)(void *, const char *, const char *), void *arg)
{
    const char *p = (const char *)b, *end = p + n;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    for (p = eol ? eol + 1 : end; p < end;) {
        eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon && colon > p) {
            const char *v = colon + 1;
            while (v < le && *v == ' ')
                v++;
            const char *ve = le;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
            char *value = strndup(v, (size_t)(ve - v));
            if (value)
                fn(arg, name, value);
            free(value);
        }
        p = eol ? eol + 1 : end;
    }
}

/* A header for the JSON of dlq.list/get: bytes that are not UTF-8 shown as
 * U+FFFD (json_string refuses them: the header, e.g. a Jetsched-Last-Error
 * quoting a bad Nats-Msg-Id, was left out and last_error was null). */
static void header_to_json(void *arg, const char *name, const char *value)
{
    char nbuf[256 * 3 + 16];
    size_t vl = strlen(value), cap = 3 * vl + 32;
    char *vbuf = malloc(cap);
    if (!vbuf)
        return;
    nbuf[jet_utf8_sanitize(name, strlen(name), nbuf, sizeof nbuf - 1, NULL)] = '\0';
    vbuf[jet_utf8_sanitize(value, vl, vbuf, cap - 1, NULL)] = '\0';
    json_object_set_new(arg, nbuf, json_string(vbuf));
    free(vbuf);
}

static json_t *parse_header_block(const unsigned char *b, size_t n)
{
    json_t *o = json_object();
    each_header(b, n, header_to_json, o);
    return o;
}

static void filter_subject(api_ctx *c, const char *queue, char *buf, size_t len)
{
    if (queue)
        snprintf(buf, len, "%s.dlq.%s", c->s->names.prefix, queue);
    else
        snprintf(buf, len, "%s", c->s->names.dlq_subjects);
}

/* A JetStream API request; the reply JSON or NULL (unavailable in *e). */
static json_t *js_api(api_ctx *c, const char *subject, const char *body, api_err *e)
{
    natsMsg *reply = NULL;
    natsStatus st = natsConnection_Request(&reply, c->s->nc, subject, body, (int)strlen(body), JS_TIMEOUT_MS);
    if (st != NATS_OK)
        return api_fail(e, API_UNAVAILABLE, NULL, "JetStream request %s failed: %s", subject, natsStatus_GetText(st));
    json_t *v = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
    natsMsg_Destroy(reply);
    if (!json_is_object(v)) {
        json_decref(v);
        return api_fail(e, API_UNAVAILABLE, NULL, "JetStream request %s: no JSON reply", subject);
    }
    return v;
}

/* One MSG.GET: the message at seq, or (filter) the first at or after seq on
 * filter. Returns 1 found, 0 404, -1 error. */
static int dlq_get(api_ctx *c, uint64_t seq, const char *filter, dead *d, api_err *e)
{
    memset(d, 0, sizeof *d);
    char subject[200];
    snprintf(subject, sizeof subject, "$JS.API.STREAM.MSG.GET.%s", c->s->names.dlq_stream);
    json_t *req = filter ? json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "next_by_subj", filter)
                         : json_pack("{s:I}", "seq", (json_int_t)seq);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *v = js_api(c, subject, body, e);
    free(body);
    if (!v)
        return -1;
    json_t *err = json_object_get(v, "error"), *m = json_object_get(v, "message");
    if (err) {
        int code = (int)json_integer_value(json_object_get(err, "code"));
        if (code == 404) {
            json_decref(v);
            return 0;
        }
        api_fail(e, API_UNAVAILABLE, NULL, "reading %s: %s", c->s->names.dlq_stream,
                 json_string_value(json_object_get(err, "description")));
        json_decref(v);
        return -1;
    }
    memset(d, 0, sizeof *d);
    d->seq = (uint64_t)json_integer_value(json_object_get(m, "seq"));
    snprintf(d->subject, sizeof d->subject, "%s", json_string_value(json_object_get(m, "subject")));
    const char *h = json_string_value(json_object_get(m, "hdrs")), *data = json_string_value(json_object_get(m, "data"));
    if (h && jet_base64_decode(h, strlen(h), &d->hb, &d->hl)) {
        d->headers = parse_header_block(d->hb, d->hl);
    } else {
        d->headers = json_object();
        d->hb = NULL;
        d->hl = 0;
    }
    if (!data || !jet_base64_decode(data, strlen(data), &d->data, &d->len)) {
        d->data = calloc(1, 1);
        d->len = 0;
    }
    const char *t = json_string_value(json_object_get(m, "time"));
    d->time_ms = -1;
    if (t)
        jet_rfc3339_parse(t, &d->time_ms, NULL);
    json_decref(v);
    return 1;
}

/* Highest sequence ever stored in the DLQ stream (STREAM.INFO state.last_seq);
 * 0 with an error in *e. */
static uint64_t dlq_last_seq(api_ctx *c, api_err *e)
{
    char subject[200];
    snprintf(subject, sizeof subject, "$JS.API.STREAM.INFO.%s", c->s->names.dlq_stream);
    json_t *v = js_api(c, subject, "", e);
    if (!v)
        return 0;
    json_t *err = json_object_get(v, "error");
    uint64_t last = (uint64_t)json_integer_value(json_object_get(json_object_get(v, "state"), "last_seq"));
    if (err)
        api_fail(e, API_UNAVAILABLE, NULL, "reading %s: %s", c->s->names.dlq_stream,
                 json_string_value(json_object_get(err, "description")));
    json_decref(v);
    return err ? 0 : last;
}

/* filter is "<prefix>.dlq.>" or an exact "<prefix>.dlq.<queue>". */
static bool filter_matches(const char *filter, const char *subject)
{
    size_t n = strlen(filter);
    if (n >= 2 && !strcmp(filter + n - 2, ".>"))
        return !strncmp(subject, filter, n - 1) && subject[n - 1];
    return !strcmp(subject, filter);
}

/* Sequences the fallback below reads one by one at most per call. */
#define DLQ_WALK_MAX 5000

/* The dead letter at seq (filter: the first at or after seq on filter).
 * Returns 1 found, 0 none, -1 error.
 *
 * A 404 to next_by_subj is not trusted as "no more": nats-server 2.9.10
 * (file and memory store) answers 404 for a subject whose LAST message and
 * then its FIRST were deleted while one in between remains (published
 * 1 2 3 4 on one subject, deleted 4, 1, 2: 3 is there, next_by_subj from 1
 * gives 404; with other subjects in the stream the exact subject fails,
 * with only that subject the wildcard does too). Replay and purge delete
 * dead letters in just that order, and dlq.list answered short or empty
 * pages (the web console test). So a 404 is checked against the stream
 * state: past last_seq it is the end (one STREAM.INFO, the usual case);
 * otherwise the sequences up to last_seq are read with plain gets, which
 * are right (deleted ones answer 404 and are skipped), keeping the first
 * whose subject matches the filter. For a list by queue this reads the
 * dead letters of other queues after the last match, once per list;
 * at most DLQ_WALK_MAX of them per call, then the list ends with a warning. */
static int dlq_fetch(api_ctx *c, uint64_t seq, const char *filter, dead *d, api_err *e)
{
    int rc = dlq_get(c, seq, filter, d, e);
    if (rc != 0 || !filter)
        return rc;
    uint64_t last = dlq_last_seq(c, e);
    if (e->code)
        return -1;
    uint64_t n = 0;
    for (; seq <= last && n < DLQ_WALK_MAX; seq++, n++) {
        rc = dlq_get(c, seq, NULL, d, e);
        if (rc < 0)
            return -1;
        if (rc == 1 && filter_matches(filter, d->subject)) {
            jet_warn("api dlq: next_by_subj %s answered 404 but dead letter %llu matches (found by walking)", filter,
                     (unsigned long long)d->seq);
            return 1;
        }
        if (rc == 1)
            dead_free(d);
    }
    if (seq <= last)
        jet_warn("api dlq: stopped walking %s at seq %llu of %llu after %d reads", c->s->names.dlq_stream,
                 (unsigned long long)seq, (unsigned long long)last, DLQ_WALK_MAX);
    return 0;
}

static const char *dead_queue(api_ctx *c, const dead *d)
{
    const char *q = hdr(d, JET_HDR_QUEUE);
    if (q)
        return q;
    size_t n = strlen(c->s->names.prefix);
    return strlen(d->subject) > n + 5 ? d->subject + n + 5 : d->subject; /* <prefix>.dlq.<queue> */
}

static json_t *dead_json(api_ctx *c, const dead *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)d->seq));
    json_object_set_new(o, "queue", json_string(dead_queue(c, d)));
    const char *v;
    json_object_set_new(o, "priority", (v = hdr(d, JET_HDR_PRIORITY)) ? json_string(v) : json_null());
    json_object_set_new(o, "task_id", (v = hdr(d, JET_HDR_TASK_ID)) ? json_string(v) : json_null());
    json_object_set_new(o, "handler", (v = hdr(d, JET_HDR_HANDLER)) ? json_string(v) : json_null());
    json_object_set_new(o, "reason", (v = hdr(d, JET_HDR_DEAD_REASON)) ? json_string(v) : json_null());
    json_object_set_new(o, "attempts", (v = hdr(d, JET_HDR_ATTEMPTS)) ? json_integer(atoll(v)) : json_null());
    json_object_set_new(o, "last_error", (v = hdr(d, JET_HDR_LAST_ERROR)) ? json_string(v) : json_null());
    char at[40];
    json_object_set_new(o, "dead_at", d->time_ms >= 0 ? json_string(api_ms_text(d->time_ms, at, sizeof at)) : json_null());
    json_object_set_new(o, "headers", json_incref(d->headers));
    api_set_bytes(o, d->data, d->len);
    return o;
}

static int seq_field(const json_t *req, bool required, uint64_t *seq, api_err *e)
{
    int64_t v = 0;
    int rc = api_int(req, "seq", required, 1, INT64_MAX, &v, e);
    *seq = (uint64_t)v;
    return rc;
}

/* ---------------- list, get ---------------- */

json_t *api_dlq_list(api_ctx *c, json_t *req, api_err *e)
{
    const char *queue = NULL, *cursor = NULL;
    int64_t limit;
    if (!api_list_args(req, &queue, &limit, &cursor, e))
        return NULL;
    uint64_t seq = 1;
    if (cursor) {
        char *text = api_cursor_decode(cursor, e), *end = NULL;
        if (!text)
            return NULL;
        seq = strtoull(text, &end, 10);
        bool bad = !*text || *end || seq == 0;
        free(text);
        if (bad)
            return api_fail(e, API_INVALID, "cursor", "cursor is not one returned by dlq.list");
    }
    char filter[200];
    filter_subject(c, queue, filter, sizeof filter);
    json_t *list = json_array(), *next = json_null();
    for (int64_t n = 0;; n++) {
        dead d;
        int rc = dlq_fetch(c, seq, filter, &d, e);
        if (rc < 0) {
            json_decref(list);
            return NULL;
        }
        if (rc == 0)
            break;
        if (n == limit) {
            char text[32];
            snprintf(text, sizeof text, "%llu", (unsigned long long)d.seq);
            char *enc = api_cursor_encode(text);
            next = json_string(enc);
            free(enc);
            dead_free(&d);
            break;
        }
        json_array_append_new(list, dead_json(c, &d));
        seq = d.seq + 1;
        dead_free(&d);
    }
    return json_pack("{s:o,s:o}", "messages", list, "next_cursor", next);
}

json_t *api_dlq_get(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"seq", NULL};
    uint64_t seq;
    if (!api_check_fields(req, fields, e) || seq_field(req, true, &seq, e) < 0)
        return NULL;
    dead d;
    int rc = dlq_fetch(c, seq, NULL, &d, e);
    if (rc < 0)
        return NULL;
    if (rc == 0)
        return api_fail(e, API_NOT_FOUND, "seq", "no dead letter with seq %llu in %s", (unsigned long long)seq,
                        c->s->names.dlq_stream);
    json_t *out = json_pack("{s:o}", "message", dead_json(c, &d));
    dead_free(&d);
    return out;
}

/* ---------------- replay ---------------- */

/* Headers of a dead letter that a replay does not carry over (set anew or
 * describing the death). */
static bool replay_drops(const char *name)
{
    static const char *const drop[] = {JET_HDR_MSG_ID, JET_HDR_TASK_ID, JET_HDR_QUEUE, JET_HDR_PRIORITY,
                                       JET_HDR_DEAD_REASON, JET_HDR_ATTEMPTS, JET_HDR_LAST_ERROR,
                                       JET_HDR_MAX_ATTEMPTS, JET_HDR_REDISPATCH, JET_HDR_ATTEMPT_BUDGET,
                                       NULL};
    for (size_t i = 0; drop[i]; i++)
        if (!strcasecmp(drop[i], name))
            return true;
    return false;
}

static void replay_header(void *arg, const char *name, const char *value)
{
    if (!replay_drops(name))
        natsMsgHeader_Set(arg, name, value);
}

/* Returns 1 replayed, 0 refused (*why), -1 error (in *e). */
static int replay_one(api_ctx *c, const dead *d, char *why, size_t wlen, api_err *e)
{
    const char *id = hdr(d, JET_HDR_TASK_ID);
    if (!id || !jet_task_id_valid(id)) {
        snprintf(why, wlen, "dead letter %llu has no valid Jetsched-Task-Id header", (unsigned long long)d->seq);
        return 0;
    }
    const char *queue = dead_queue(c, d), *prio = hdr(d, JET_HDR_PRIORITY);
    jet_priority p;
    if (!jet_name_valid(queue)) {
        snprintf(why, wlen, "dead letter %llu: queue \"%.64s\" is not a valid name", (unsigned long long)d->seq, queue);
        return 0;
    }
    if (!prio || !jet_priority_parse(prio, &p))
        p = JET_PRIO_NORMAL;
    const char *vals[] = {id, hdr(d, JET_HDR_ATTEMPT_BUDGET), hdr(d, JET_HDR_MAX_ATTEMPTS)};
    for (int i = 1; i < 3; i++)
        if (vals[i] && (atoi(vals[i]) < 1 || atoi(vals[i]) > 1000))
            vals[i] = NULL;
    PGresult *r = api_pg(c, "requeue dead task",
                         "WITH cur AS (SELECT id, greatest(attempts, (SELECT coalesce(max(attempt), 0)"
                         " FROM task_attempts WHERE task_id = $1)) AS done,"
                         " coalesce($2::integer, max_attempts, $3::integer, 5) AS budget"
                         " FROM tasks WHERE id = $1 AND status = 'dead' FOR UPDATE)"
                         " UPDATE tasks t SET status = 'queued', max_attempts = least(cur.done + cur.budget, 1000),"
                         " finished_at = NULL, error = NULL, result = NULL, dispatched_at = now(), updated_at = now()"
                         " FROM cur WHERE t.id = cur.id RETURNING t.max_attempts, cur.budget",
                         3, vals, NULL, NULL, e);
    if (!r)
        return -1;
    char max[16], budget[16];
    bool have_row = PQntuples(r) == 1;
    if (have_row) {
        snprintf(max, sizeof max, "%s", PQgetvalue(r, 0, 0));
        snprintf(budget, sizeof budget, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    if (!have_row) {
        const char *pp[] = {id};
        r = api_pg(c, "read task", "SELECT status FROM tasks WHERE id = $1", 1, pp, NULL, NULL, e);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            snprintf(why, wlen, "task %s is %s, not dead (replay only dead tasks)", id, PQgetvalue(r, 0, 0));
            PQclear(r);
            return 0;
        }
        PQclear(r);
        /* No history row (history disabled, or pruned): replay with a budget. */
        snprintf(budget, sizeof budget, "%s", vals[1] ? vals[1] : vals[2] ? vals[2] : "5");
        snprintf(max, sizeof max, "%s", budget);
    }
    char subject[256], msgid[300];
    jet_js_task_subject(&c->s->names, queue, p, subject, sizeof subject);
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subject, NULL, (const char *)d->data, (int)d->len) != NATS_OK) {
        api_fail(e, API_INTERNAL, NULL, "out of memory");
        return -1;
    }
    each_header(d->hb, d->hl, replay_header, m);
    snprintf(msgid, sizeof msgid, "%s-replay-%llu", id, (unsigned long long)d->seq);
    natsMsgHeader_Set(m, JET_HDR_MSG_ID, msgid);
    natsMsgHeader_Set(m, JET_HDR_TASK_ID, id);
    natsMsgHeader_Set(m, JET_HDR_REDISPATCH, "1");
    natsMsgHeader_Set(m, JET_HDR_MAX_ATTEMPTS, max);
    natsMsgHeader_Set(m, JET_HDR_ATTEMPT_BUDGET, budget);
    int rc = sched_publish_msg(c->s, m, id);
    natsMsg_Destroy(m);
    if (rc == 0) {
        const char *pp[] = {id};
        api_err ignore = {0};
        PQclear(api_pg(c, "put back dead task",
                       "UPDATE tasks SET status = 'dead', finished_at = now(), error = 'replay failed: publish failed',"
                       " updated_at = now() WHERE id = $1 AND status = 'queued' AND attempts > 0",
                       1, pp, NULL, NULL, &ignore));
        api_fail(e, API_UNAVAILABLE, NULL, "replay of %s: publish to %s failed; the dead letter stays", id, subject);
        return -1;
    }
    jsErrCode jerr = 0;
    natsStatus st = js_DeleteMsg(c->s->js, c->s->names.dlq_stream, d->seq, NULL, &jerr);
    if (st != NATS_OK)
        jet_warn("api dlq.replay: task %s replayed but dead letter %llu not deleted: %s (%d)", id,
                 (unsigned long long)d->seq, natsStatus_GetText(st), (int)jerr);
    jet_info("api dlq.replay: task %s replayed from dead letter %llu (max attempts %s)", id,
             (unsigned long long)d->seq, max);
    return 1;
}

/* seq, or all (with an optional queue). */
static int select_args(const json_t *req, uint64_t *seq, const char **queue, bool *all, api_err *e)
{
    static const char *const fields[] = {"seq", "queue", "all", NULL};
    *seq = 0;
    *queue = NULL;
    *all = false;
    if (!api_check_fields(req, fields, e) || seq_field(req, false, seq, e) < 0 ||
        api_name(req, "queue", false, queue, e) < 0 || api_bool(req, "all", false, all, e) < 0)
        return -1;
    if (*seq && (*all || *queue)) {
        api_fail(e, API_INVALID, "seq", "give either seq or all (with an optional queue), not both");
        return -1;
    }
    if (!*seq && !*all) {
        api_fail(e, API_INVALID, "seq", "give seq, or \"all\":true (with an optional queue)");
        return -1;
    }
    return 1;
}

json_t *api_dlq_replay(api_ctx *c, json_t *req, api_err *e)
{
    uint64_t seq;
    const char *queue;
    bool all;
    if (select_args(req, &seq, &queue, &all, e) < 0)
        return NULL;
    json_t *ids = json_array(), *skipped = json_array();
    char why[400];
    if (!all) {
        dead d;
        int rc = dlq_fetch(c, seq, NULL, &d, e);
        if (rc == 0)
            api_fail(e, API_NOT_FOUND, "seq", "no dead letter with seq %llu in %s", (unsigned long long)seq,
                     c->s->names.dlq_stream);
        if (rc == 1) {
            rc = replay_one(c, &d, why, sizeof why, e);
            if (rc == 0)
                api_fail(e, API_PRECONDITION, "seq", "%s", why);
            if (rc == 1)
                json_array_append_new(ids, json_string(hdr(&d, JET_HDR_TASK_ID)));
            dead_free(&d);
        }
        if (rc != 1) {
            json_decref(ids);
            json_decref(skipped);
            return NULL;
        }
    } else {
        char filter[200];
        filter_subject(c, queue, filter, sizeof filter);
        for (uint64_t next = 1;;) {
            dead d;
            int rc = dlq_fetch(c, next, filter, &d, e);
            if (rc < 0 || rc == 0)
                break;
            next = d.seq + 1;
            rc = replay_one(c, &d, why, sizeof why, e);
            if (rc == 1)
                json_array_append_new(ids, json_string(hdr(&d, JET_HDR_TASK_ID)));
            else if (rc == 0)
                json_array_append_new(skipped, json_pack("{s:I,s:s?,s:s}", "seq", (json_int_t)d.seq, "task_id",
                                                         hdr(&d, JET_HDR_TASK_ID), "reason", why));
            dead_free(&d);
            if (rc < 0)
                break;
        }
        if (e->code && json_array_size(ids) == 0) {
            json_decref(ids);
            json_decref(skipped);
            return NULL;
        }
        if (e->code) /* stopped part-way: report what was done */
            jet_warn("api dlq.replay: stopped after %zu task(s): %s", json_array_size(ids), e->msg);
        memset(e, 0, sizeof *e);
    }
    json_t *out = json_pack("{s:I,s:o}", "replayed", (json_int_t)json_array_size(ids), "task_ids", ids);
    if (json_array_size(skipped))
        json_object_set_new(out, "skipped", skipped);
    else
        json_decref(skipped);
    return out;
}

/* ---------------- purge ---------------- */

json_t *api_dlq_purge(api_ctx *c, json_t *req, api_err *e)
{
    uint64_t seq;
    const char *queue;
    bool all;
    if (select_args(req, &seq, &queue, &all, e) < 0)
        return NULL;
    if (!all) {
        dead d;
        int rc = dlq_fetch(c, seq, NULL, &d, e);
        if (rc < 0)
            return NULL;
        dead_free(&d);
        if (rc == 0)
            return api_fail(e, API_NOT_FOUND, "seq", "no dead letter with seq %llu in %s", (unsigned long long)seq,
                            c->s->names.dlq_stream);
        jsErrCode jerr = 0;
        natsStatus st = js_DeleteMsg(c->s->js, c->s->names.dlq_stream, seq, NULL, &jerr);
        if (st == NATS_OK)
            return json_pack("{s:i}", "purged", 1);
        return api_fail(e, API_UNAVAILABLE, NULL, "deleting dead letter %llu: %s (%d)", (unsigned long long)seq,
                        natsStatus_GetText(st), (int)jerr);
    }
    char subject[200], filter[200];
    snprintf(subject, sizeof subject, "$JS.API.STREAM.PURGE.%s", c->s->names.dlq_stream);
    filter_subject(c, queue, filter, sizeof filter);
    json_t *preq = queue ? json_pack("{s:s}", "filter", filter) : json_object();
    char *body = json_dumps(preq, JSON_COMPACT);
    json_decref(preq);
    json_t *v = js_api(c, subject, body, e);
    free(body);
    if (!v)
        return NULL;
    if (!json_is_true(json_object_get(v, "success"))) {
        json_t *out = api_fail(e, API_UNAVAILABLE, NULL, "purging %s: %s", c->s->names.dlq_stream,
                               json_string_value(json_object_get(json_object_get(v, "error"), "description")));
        json_decref(v);
        return out;
    }
    json_t *out = json_pack("{s:I}", "purged", json_integer_value(json_object_get(v, "purged")));
    json_decref(v);
    return out;
}
