/* Live events: formatting and publishing. */
#include "events.h"
#include "workflow.h"

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

void event_publish(agent *a, const agent_task *t, jet_task_state state, int attempt, const char *error,
                   const char *extra)
{
    const char *wf = wf_task_workflow(t); /* workflow.h: header + id rule */
    const char *status = jet_task_state_name(state);
    char subject[400], at[40];
    snprintf(subject, sizeof subject, "%s.event.%s.%s", a->names.prefix, t->queue, t->id);
    jet_rfc3339_format(jet_now_ms(), at, sizeof at);
    /* The two events of every task ("running", then the outcome, with no
     * error text) are formatted directly: building them with jansson cost
     * ~11 % of agentd's CPU under load. Anything that needs escaping (error
     * text, extra fields, an unusual agent id) goes through jansson. */
    if (!error && !extra && json_plain(t->id) && json_plain(a->id)) {
        char body[512];
        int n = snprintf(body, sizeof body,
                         "{\"id\":\"%s\",\"status\":\"%s\",\"attempt\":%d,\"agent\":\"%s\",\"at\":\"%s\"%s%s%s}",
                         t->id, status, attempt, a->id, at, wf ? ",\"workflow\":\"" : "", wf ? wf : "", wf ? "\"" : "");
        if (n > 0 && (size_t)n < sizeof body) {
            natsConnection_Publish(a->nc, subject, body, n);
            return;
        }
    }
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
