/* Parsing and validation of delivered task messages. */
#include "task.h"

#include <jetsched/alloc.h>
#include <jetsched/natshdr.h>
#include <jetsched/timeutil.h>
#include <jetsched/utf8.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool task_parse_ack_subject(const char *reply, uint64_t *delivered, uint64_t *stream_seq, int64_t *published_ms)
{
    if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
        return false;
    const char *tok[16];
    size_t len[16];
    int n = 0;
    for (const char *p = reply; n < 16;) {
        const char *dot = strchr(p, '.');
        tok[n] = p;
        len[n++] = dot ? (size_t)(dot - p) : strlen(p);
        if (!dot)
            break;
        p = dot + 1;
    }
    int base; /* index of <delivered> */
    if (n == 9)
        base = 4;
    else if (n >= 11)
        base = 6;
    else
        return false;
    uint64_t v[3];
    for (int i = 0; i < 3; i++) {
        char num[32];
        int k = base + (i == 0 ? 0 : i == 1 ? 1 : 3);
        if (len[k] == 0 || len[k] >= sizeof num)
            return false;
        memcpy(num, tok[k], len[k]);
        num[len[k]] = '\0';
        char *end;
        errno = 0;
        v[i] = strtoull(num, &end, 10);
        if (*end || errno)
            return false;
    }
    *delivered = v[0];
    *stream_seq = v[1];
    *published_ms = (int64_t)(v[2] / 1000000);
    return true;
}

int task_attempt(const agent_task *t)
{
    uint64_t n = (uint64_t)t->attempt_base + (t->delivered ? t->delivered : 1);
    return n > 1000000 ? 1000000 : (int)n;
}

const char *task_header(const agent_task *t, const char *name)
{
    for (size_t i = 0; i < t->n_headers; i++)
        if (strcmp(t->headers[i].name, name) == 0)
            return t->headers[i].value;
    return NULL;
}

static _Atomic int64_t stream_created_s;

void task_set_stream_created(int64_t unix_s) { atomic_store(&stream_created_s, unix_s); }

/* snprintf(dst, cap, "%s", src) without printf (every task copies a few). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void mark_dead(agent_task *t, const char *reason, const char *fmt, const char *a, const char *b)
{
    if (t->dead_reason)
        return; /* the first problem wins */
    t->dead_reason = reason;
    snprintf(t->dead_detail, sizeof t->dead_detail, fmt, a, b);
    /* It quotes header values (peer input) and is logged and recorded:
     * invalid UTF-8, or a character cut by a %.Ns, becomes U+FFFD. */
    jet_utf8_repair(t->dead_detail, sizeof t->dead_detail);
}

/* The raw header block of a delivered message, as libnats 3.4 stores it:
 * one allocation "subject\0reply\0<header block>\0<data>". Found from the
 * public pointers and checked ("NATS/1.0" at the start, NUL right before
 * the data); false when the message has no block there (e.g. one built by
 * natsMsg_Create) or the layout differs. */
static bool raw_header_block(natsMsg *m, const char **block, size_t *len)
{
    const char *subj = natsMsg_GetSubject(m), *reply = natsMsg_GetReply(m), *data = natsMsg_GetData(m);
    if (!subj || !data)
        return false;
    const char *start = subj + strlen(subj) + 1;
    if (reply) {
        if (reply != start)
            return false;
        start = reply + strlen(reply) + 1;
    }
    if (data <= start + 8 || (size_t)(data - start) > (size_t)16 << 20 || data[-1] != '\0' ||
        memcmp(start, "NATS/1.0", 8) != 0)
        return false;
    *block = start;
    *len = (size_t)(data - start) - 1;
    return true;
}

typedef struct hdr_copy {
    agent_task *t;
    size_t cap;
    char *store, *at;
} hdr_copy;

static void keep_header(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    hdr_copy *c = arg;
    agent_task *t = c->t;
    if (t->n_headers == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        t->headers = jet_xrealloc(t->headers, c->cap * sizeof *t->headers);
    }
    char *n = c->at, *v = n + nlen + 1;
    memcpy(n, name, nlen);
    n[nlen] = '\0';
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    c->at = v + vlen + 1;
    t->headers[t->n_headers].name = n;
    t->headers[t->n_headers].value = v;
    t->n_headers++;
}

/* The task's header list. A delivered message's raw block is parsed here,
 * before libnats ever looks at it: libnats rejects a whole block for one
 * odd line (an empty value, a line without a colon) and would leave the
 * task without its handler and id; jet_hdr_block_parse keeps every good
 * header (copies in t->hdr_store) and counts the skipped lines. Otherwise
 * (a message built in-process) the headers are views into libnats'
 * strings, which live as long as the message. */
static void copy_headers(agent_task *t)
{
    const char *block;
    size_t blen;
    if (raw_header_block(t->msg, &block, &blen)) {
        hdr_copy c = {.t = t, .store = jet_xmalloc(blen + 2)};
        c.at = c.store; /* names and values together never exceed the block (each loses at least ": ") */
        t->hdr_store = c.store;
        t->skipped_header_lines = jet_hdr_block_parse(block, blen, keep_header, &c);
        return;
    }
    const char **keys = NULL;
    int nkeys = 0;
    if (natsMsgHeader_Keys(t->msg, &keys, &nkeys) != NATS_OK || nkeys <= 0)
        return;
    size_t cap = (size_t)nkeys + 4;
    t->headers = jet_xcalloc(cap, sizeof *t->headers);
    for (int i = 0; i < nkeys; i++) {
        const char **vals = NULL;
        int nv = 0;
        if (natsMsgHeader_Values(t->msg, keys[i], &vals, &nv) != NATS_OK)
            continue;
        if (t->n_headers + (size_t)nv > cap) {
            size_t ncap = (t->n_headers + (size_t)nv) * 2;
            t->headers = jet_xrealloc(t->headers, ncap * sizeof *t->headers);
            cap = ncap;
        }
        for (int j = 0; j < nv; j++) {
            t->headers[t->n_headers].name = keys[i];
            t->headers[t->n_headers].value = vals[j] ? vals[j] : "";
            t->n_headers++;
        }
        free((void *)vals);
    }
    free((void *)keys);
}

/* A limit key header (DESIGN §12): 1-128 of [A-Za-z0-9_.:-], else dead-lettered. */
static void limit_key(agent_task *t, const char *header, const char *v, char out[JET_LIMIT_KEY_MAX + 1])
{
    if (!v)
        return;
    if (jet_limit_key_valid(v))
        snprintf(out, JET_LIMIT_KEY_MAX + 1, "%s", v);
    else
        mark_dead(t, JET_REASON_INVALID_HEADER, "%s: \"%.64s\" is not 1-128 characters of [A-Za-z0-9_.:-]", header, v);
}

/* The headers parse_headers reads, found in one pass over the task's
 * headers (the first of each name wins, as with task_header). */
enum {
    H_TASK_ID, H_MSG_ID, H_HANDLER, H_MAX_ATTEMPTS, H_TIMEOUT, H_DEADLINE, H_BACKOFF, H_REDISPATCH,
    H_IDEMPOTENCY, H_SCHEDULE_ID, H_FIRE_TIME, H_CKEY, H_RKEY, H_TRACEPARENT, H_WORKFLOW, H_COUNT
};
#define KNOWN(name) {name, sizeof name - 1}
static const struct {
    const char *name;
    size_t len;
} known[H_COUNT] = {
    KNOWN(JET_HDR_TASK_ID), KNOWN(JET_HDR_MSG_ID), KNOWN(JET_HDR_HANDLER), KNOWN(JET_HDR_MAX_ATTEMPTS),
    KNOWN(JET_HDR_TIMEOUT), KNOWN(JET_HDR_DEADLINE), KNOWN(JET_HDR_BACKOFF), KNOWN(JET_HDR_REDISPATCH),
    KNOWN(JET_HDR_IDEMPOTENCY), KNOWN(JET_HDR_SCHEDULE_ID), KNOWN(JET_HDR_FIRE_TIME), KNOWN(JET_HDR_CONCURRENCY_KEY),
    KNOWN(JET_HDR_RATE_KEY), KNOWN(JET_HDR_TRACEPARENT), KNOWN(JET_HDR_WORKFLOW_ID)};
#undef KNOWN

/* One pass: hv[k] = the value of the first header named known[k] (or
 * NULL); returns the bytes the headers take (names + values + 4 each). */
static size_t find_known(const agent_task *t, const char *hv[H_COUNT])
{
    size_t bytes = 0;
    for (int k = 0; k < H_COUNT; k++)
        hv[k] = NULL;
    for (size_t i = 0; i < t->n_headers; i++) {
        const char *name = t->headers[i].name;
        size_t nl = strlen(name);
        bytes += nl + strlen(t->headers[i].value) + 4;
        for (int k = 0; k < H_COUNT; k++)
            if (known[k].len == nl && !hv[k] && memcmp(name, known[k].name, nl) == 0) {
                hv[k] = t->headers[i].value;
                break;
            }
    }
    return bytes;
}

/* The id rule of task_workflow (task.h); wf is its header's value. */
static const char *workflow_of(const agent_task *t, const char *wf)
{
    size_t n = wf ? strlen(wf) : 0;
    if (!n || n > 64 || strncmp(t->id, wf, n) != 0 || t->id[n] != '-' || !t->id[n + 1] || !jet_task_id_valid(wf))
        return NULL;
    return wf;
}

const char *task_workflow(const agent_task *t) { return t->workflow; }

static void parse_headers(agent_task *t, const task_defaults *def)
{
    const char *v, *hv[H_COUNT];
    jet_err err;
    size_t header_bytes = find_known(t, hv);
    if ((v = hv[H_TASK_ID]) != NULL) {
        /* Names the task; Nats-Msg-Id is then only the stream's dedupe key
         * (dlq.replay publishes a dead task again under a fresh one). */
        if (!jet_task_id_valid(v))
            mark_dead(t, JET_REASON_INVALID_ID, JET_HDR_TASK_ID " \"%.120s\" is not 1-128 characters of [A-Za-z0-9_-]%s", v, "");
        copy_str(t->id, sizeof t->id, jet_task_id_valid(v) ? v : "");
    } else if ((v = hv[H_MSG_ID]) != NULL) {
        if (!jet_task_id_valid(v))
            mark_dead(t, JET_REASON_INVALID_ID, "Nats-Msg-Id \"%.120s\" is not 1-128 characters of [A-Za-z0-9_-]%s", v, "");
        copy_str(t->id, sizeof t->id, jet_task_id_valid(v) ? v : "");
    }
    if (!t->id[0]) {
        int64_t inc = atomic_load(&stream_created_s);
        if (inc > 0)
            snprintf(t->id, sizeof t->id, "seq-%lld-%llu", (long long)inc, (unsigned long long)t->stream_seq);
        else
            snprintf(t->id, sizeof t->id, "seq-%llu", (unsigned long long)t->stream_seq);
    }

    if (header_bytes > TASK_MAX_HEADER_BYTES) {
        char n[32];
        snprintf(n, sizeof n, "%zu", header_bytes);
        mark_dead(t, JET_REASON_INVALID_HEADER, "headers take %s bytes, more than the %s allowed", n,
                  JET_STRINGIFY(TASK_MAX_HEADER_BYTES));
    }

    v = hv[H_HANDLER];
    if (!v || !*v)
        mark_dead(t, JET_REASON_MISSING_HANDLER, "the %s header is missing%s", JET_HDR_HANDLER, "");
    else if (!jet_name_valid(v))
        mark_dead(t, "unknown_handler", "handler \"%.64s\" is not a valid name%s", v, "");
    else
        copy_str(t->handler, sizeof t->handler, v);

    t->max_attempts = def->max_attempts;
    if ((v = hv[H_MAX_ATTEMPTS]) != NULL) {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (end == v || *end || errno || n < 1 || n > 1000)
            mark_dead(t, JET_REASON_INVALID_HEADER, "%s: \"%.64s\" is not an integer from 1 to 1000", JET_HDR_MAX_ATTEMPTS, v);
        else
            t->max_attempts = (int)n;
    }
    t->timeout_ms = def->timeout_ms;
    if ((v = hv[H_TIMEOUT]) != NULL && jet_duration_parse(v, &t->timeout_ms, &err) != JET_OK)
        mark_dead(t, JET_REASON_INVALID_HEADER, JET_HDR_TIMEOUT ": %.200s%s", err.msg, "");
    else if (v && t->timeout_ms <= 0)
        mark_dead(t, JET_REASON_INVALID_HEADER, JET_HDR_TIMEOUT ": \"%.64s\" must be more than 0s%s", v, "");
    else if (t->timeout_ms <= 0)
        t->timeout_ms = def->timeout_ms;
    if ((v = hv[H_DEADLINE]) != NULL && jet_rfc3339_parse(v, &t->deadline_ms, &err) != JET_OK)
        mark_dead(t, JET_REASON_INVALID_HEADER, JET_HDR_DEADLINE ": %.200s%s", err.msg, "");
    t->backoff = def->backoff;
    if ((v = hv[H_BACKOFF]) != NULL && jet_backoff_parse(v, &t->backoff, &err) != JET_OK)
        mark_dead(t, JET_REASON_INVALID_HEADER, JET_HDR_BACKOFF ": %.200s%s", err.msg, "");
    t->redispatch = hv[H_REDISPATCH] != NULL;
    if ((v = hv[H_IDEMPOTENCY]) != NULL) {
        if (!strcmp(v, JET_IDEMPOTENCY_ALWAYS))
            t->check_always = true;
        else if (strcmp(v, JET_IDEMPOTENCY_REDELIVERED) != 0)
            mark_dead(t, JET_REASON_INVALID_HEADER, JET_HDR_IDEMPOTENCY ": \"%.100s\"%s: \"always\" or \"redelivered\"", v, "");
    }
    if ((v = hv[H_SCHEDULE_ID]) != NULL)
        copy_str(t->schedule_id, sizeof t->schedule_id, v);
    if ((v = hv[H_FIRE_TIME]) != NULL)
        jet_rfc3339_parse(v, &t->fire_time_ms, NULL);
    limit_key(t, JET_HDR_CONCURRENCY_KEY, hv[H_CKEY], t->ckey);
    limit_key(t, JET_HDR_RATE_KEY, hv[H_RKEY], t->rkey);
    if ((v = hv[H_TRACEPARENT]) != NULL && strlen(v) < 128)
        t->traceparent = jet_xstrdup(v);
    t->workflow = workflow_of(t, hv[H_WORKFLOW]);
}

agent_task *task_from_msg(natsMsg *msg, const char *queue, jet_priority prio, const task_defaults *def)
{
    agent_task *t = jet_xcalloc(1, sizeof *t);
    t->msg = msg;
    t->prio = prio;
    copy_str(t->queue, sizeof t->queue, queue);
    copy_str(t->reply, sizeof t->reply, natsMsg_GetReply(msg) ? natsMsg_GetReply(msg) : "");
    if (!task_parse_ack_subject(t->reply, &t->delivered, &t->stream_seq, &t->published_ms))
        t->delivered = 1;
    copy_headers(t);
    parse_headers(t, def);

    jet_task *p = &t->pub;
    p->struct_size = sizeof *p;
    p->id = t->id;
    p->handler = t->handler;
    p->queue = t->queue;
    p->priority = jet_priority_name(prio);
    p->attempt = (int)(t->delivered > 100000 ? 100000 : t->delivered);
    p->max_attempts = t->max_attempts;
    p->payload = natsMsg_GetData(msg);
    p->payload_len = (size_t)natsMsg_GetDataLength(msg);
    p->headers = t->headers;
    p->n_headers = t->n_headers;
    p->deadline_ms = t->deadline_ms;
    p->timeout_ms = t->timeout_ms;
    p->traceparent = t->traceparent;
    return t;
}

void task_free(agent_task *t)
{
    if (!t)
        return;
    free(t->headers); /* the strings belong to t->msg or t->hdr_store */
    free(t->hdr_store);
    free(t->traceparent);
    natsMsg_Destroy(t->msg);
    free(t);
}
