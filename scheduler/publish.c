/* Task messages from PostgreSQL rows and their publish (see publish.h). */
#include "publish.h"

#include <jansson.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_stored_headers(natsMsg *m, const char *json)
{
    if (!json || !*json)
        return;
    json_t *o = json_loads(json, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (json_is_string(v)) {
            natsMsgHeader_Set(m, k, json_string_value(v));
        } else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (t)
                natsMsgHeader_Set(m, k, t);
            free(t);
        }
    }
    json_decref(o);
}

natsMsg *sched_task_msg(sched *s, PGresult *r, int i, bool redispatch, int64_t *fire_ms)
{
    const char *id = PQgetvalue(r, i, 0), *queue = PQgetvalue(r, i, 1), *prio = PQgetvalue(r, i, 2);
    jet_priority p;
    if (!jet_priority_parse(prio, &p))
        p = JET_PRIO_NORMAL;
    char subject[256];
    jet_js_task_subject(&s->names, queue, p, subject, sizeof subject);
    size_t plen = 0;
    unsigned char *payload = NULL;
    if (!PQgetisnull(r, i, 4))
        payload = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 4), &plen);
    natsMsg *m = NULL;
    natsStatus st = natsMsg_Create(&m, subject, NULL, (const char *)payload, (int)plen);
    PQfreemem(payload);
    if (st != NATS_OK)
        return NULL;
    if (!PQgetisnull(r, i, 5))
        add_stored_headers(m, PQgetvalue(r, i, 5));
    if (!PQgetisnull(r, i, 3))
        natsMsgHeader_Set(m, "Jetsched-Handler", PQgetvalue(r, i, 3));
    natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    /* The row exists before the message: agentd looks it up on every delivery. */
    natsMsgHeader_Set(m, "Jetsched-Idempotency-Check", "always");
    if (!PQgetisnull(r, i, 6))
        natsMsgHeader_Set(m, "Jetsched-Max-Attempts", PQgetvalue(r, i, 6));
    if (!PQgetisnull(r, i, 7))
        natsMsgHeader_Set(m, "Jetsched-Schedule-Id", PQgetvalue(r, i, 7));
    *fire_ms = -1;
    if (!PQgetisnull(r, i, 8)) {
        char at[64];
        *fire_ms = strtoll(PQgetvalue(r, i, 8), NULL, 10);
        natsMsgHeader_Set(m, "Jetsched-Fire-Time", jet_rfc3339_format(*fire_ms, at, sizeof at));
    }
    if (redispatch)
        natsMsgHeader_Set(m, "Jetsched-Redispatch", "1");
    return m;
}

int sched_publish_msg(sched *s, natsMsg *m, const char *id)
{
    int result = 0;
    /* Not connected: do not wait for pub-acks that cannot come (a caller
     * would stall for attempts x nats.publish_timeout); the reconciler
     * publishes rows never dispatched at its next run. */
    for (int attempt = 0; attempt < 3 && !atomic_load(&s->stop) &&
                          natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED;
         attempt++) {
        if (attempt)
            jet_sleep_ms(100 * attempt * attempt);
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus st = js_PublishMsg(&pa, s->js, m, NULL, &jerr);
        if (st == NATS_OK) {
            result = pa && pa->Duplicate ? -1 : 1;
            jsPubAck_Destroy(pa);
            break;
        }
        jet_warn("publish of task %s to %s failed (attempt %d): %s (%d)", id, natsMsg_GetSubject(m), attempt + 1,
                 natsStatus_GetText(st), (int)jerr);
        jsPubAck_Destroy(pa);
    }
    return result;
}

int sched_publish_row(sched *s, PGresult *r, int i, bool redispatch, int64_t *fire_ms)
{
    natsMsg *m = sched_task_msg(s, r, i, redispatch, fire_ms);
    if (!m)
        return 0;
    int rc = sched_publish_msg(s, m, PQgetvalue(r, i, 0));
    natsMsg_Destroy(m);
    return rc;
}
