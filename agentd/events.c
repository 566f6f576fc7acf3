/* Live events: formatting and publishing. */
#include "events.h"
#include "task.h"

#include <jansson.h>
#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A text built with memcpy into a fixed buffer; ok goes false (and stays)
 * once something does not fit. */
typedef struct sbuf {
    char *p, *end;
    bool ok;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (!b->ok || n > (size_t)(b->end - b->p)) {
        b->ok = false;
        return;
    }
    memcpy(b->p, s, n);
    b->p += n;
}

static void put_str(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of now (24 bytes, no NUL): the date and time of
 * the second are formatted once per second and thread. */
static void format_at(char out[24])
{
    static _Thread_local int64_t second = -1;
    static _Thread_local char head[20];
    int64_t ms = jet_now_ms();
    if (ms < 0)
        ms = 0;
    if (ms / 1000 != second) {
        char b[40];
        jet_rfc3339_format(ms / 1000 * 1000, b, sizeof b);
        memcpy(head, b, 19);
        second = ms / 1000;
    }
    memcpy(out, head, 19);
    int frac = (int)(ms % 1000);
    out[19] = '.';
    out[20] = (char)('0' + frac / 100);
    out[21] = (char)('0' + frac / 10 % 10);
    out[22] = (char)('0' + frac % 10);
    out[23] = 'Z';
}

/* The subject and body of an event with nothing to escape, built with
 * memcpy: the two events of every task ("running", then the outcome, with
 * no error text) are the hot ones (jansson cost ~11 % of agentd's CPU under
 * load, snprintf still ~5 %). False when something does not fit. */
static bool publish_plain(agent *a, const agent_task *t, const char *status, int attempt, const char *wf)
{
    char subject[400], body[512], num[16], at[24];
    sbuf sb = {subject, subject + sizeof subject - 1, true};
    put_str(&sb, a->names.prefix);
    put(&sb, ".event.", 7);
    put_str(&sb, t->queue);
    put(&sb, ".", 1);
    put_str(&sb, t->id);
    if (!sb.ok)
        return false;
    *sb.p = '\0';
    char *q = num + sizeof num;
    unsigned v = attempt < 0 ? 0u : (unsigned)attempt;
    do
        *--q = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    format_at(at);
    sbuf bb = {body, body + sizeof body, true};
    put(&bb, "{\"id\":\"", 7);
    put_str(&bb, t->id);
    put(&bb, "\",\"status\":\"", 12);
    put_str(&bb, status);
    put(&bb, "\",\"attempt\":", 12);
    put(&bb, q, (size_t)(num + sizeof num - q));
    put(&bb, ",\"agent\":\"", 10);
    put_str(&bb, a->id);
    put(&bb, "\",\"at\":\"", 8);
    put(&bb, at, sizeof at);
    put(&bb, "\"", 1);
    if (wf) {
        put(&bb, ",\"workflow\":\"", 13);
        put_str(&bb, wf);
        put(&bb, "\"", 1);
    }
    put(&bb, "}", 1);
    if (!bb.ok)
        return false;
    natsConnection_Publish(a->nc, subject, body, (int)(bb.p - body));
    return true;
}

void event_publish(agent *a, const agent_task *t, jet_task_state state, int attempt, const char *error,
                   const char *extra)
{
    const char *wf = task_workflow(t); /* task.h: header + id rule, worked out at parse time */
    const char *status = jet_task_state_name(state);
    /* Anything that needs escaping (error text, extra fields, an unusual
     * agent id) goes through jansson. */
    if (!error && !extra && json_plain(t->id) && json_plain(a->id) && publish_plain(a, t, status, attempt, wf))
        return;
    char subject[400], at[40];
    snprintf(subject, sizeof subject, "%s.event.%s.%s", a->names.prefix, t->queue, t->id);
    jet_rfc3339_format(jet_now_ms(), at, sizeof at);
    json_t *ev = json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", t->id, "status", status, "attempt", attempt, "agent",
                           a->id, "at", at);
    if (wf)
        json_object_set_new(ev, "workflow", json_string(wf));
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

void event_progress(agent *a, const agent_task *t, int percent, const char *note)
{
    json_t *extra = json_pack("{s:i}", "progress", percent < 0 ? 0 : percent > 100 ? 100 : percent);
    if (note)
        json_object_set_new(extra, "note", json_string(note));
    char *text = json_dumps(extra, JSON_COMPACT);
    event_publish(a, t, JET_TASK_RUNNING, task_attempt(t), NULL, text);
    free(text);
    json_decref(extra);
}
