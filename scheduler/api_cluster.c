/* API verbs cluster.leader, cluster.agents, cluster.queues (docs/API.md):
 * the election key, the agent registry and the task stream's consumers
 * (with their pause state from api_queue.c).
 * They answer from NATS alone when PostgreSQL is down (the leader's epoch
 * is then null). */
#include "api.h"

#include <jetsched/names.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *api_cluster_leader(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    kvEntry *ke = NULL;
    natsStatus st = kvStore_Get(&ke, c->leader_kv, SCHED_LEADER_KEY);
    if (st == NATS_NOT_FOUND)
        return json_pack("{s:n}", "leader");
    if (st != NATS_OK)
        return api_fail(e, API_UNAVAILABLE, NULL, "reading %s/%s: %s", c->s->names.kv_leader, SCHED_LEADER_KEY,
                        natsStatus_GetText(st));
    /* value: "<id> pid=<pid> nonce=<ulid>" (election.c) */
    const char *v = kvEntry_ValueString(ke);
    char id[256] = "";
    long long pid = -1;
    const char *sp = v ? strstr(v, " pid=") : NULL;
    if (sp) {
        snprintf(id, sizeof id, "%.*s", (int)(sp - v), v);
        pid = atoll(sp + 5);
    } else if (v) {
        snprintf(id, sizeof id, "%s", v);
    }
    json_t *leader = json_pack("{s:s,s:I}", "id", id, "revision", (json_int_t)kvEntry_Revision(ke));
    json_object_set_new(leader, "pid", pid >= 0 ? json_integer(pid) : json_null());
    kvEntry_Destroy(ke);
    api_err pg_err = {0};
    const char *p[] = {id};
    PGresult *r = api_pg(c, "read epoch",
                         "SELECT epoch, " API_MS("updated_at") " FROM scheduler_epoch WHERE holder = $1", 1, p, NULL,
                         NULL, &pg_err);
    if (r && PQntuples(r) == 1) {
        api_set_intcol(leader, "epoch", r, 0, 0);
        api_set_time(leader, "since", r, 0, 1);
    } else {
        json_object_set_new(leader, "epoch", json_null()); /* not fenced yet, or PostgreSQL down */
        json_object_set_new(leader, "since", json_null());
    }
    PQclear(r);
    return json_pack("{s:o}", "leader", leader);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

json_t *api_cluster_agents(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    kvKeysList keys = {0};
    natsStatus st = kvStore_Keys(&keys, c->agents_kv, NULL);
    json_t *list = json_array();
    if (st == NATS_NOT_FOUND)
        return json_pack("{s:o}", "agents", list);
    if (st != NATS_OK) {
        json_decref(list);
        return api_fail(e, API_UNAVAILABLE, NULL, "listing %s: %s", c->s->names.kv_agents, natsStatus_GetText(st));
    }
    if (keys.Count > 0) /* an empty bucket may give no array: qsort(NULL) is undefined */
        qsort(keys.Keys, (size_t)keys.Count, sizeof *keys.Keys, cmp_str);
    for (int i = 0; i < keys.Count; i++) {
        kvEntry *ke = NULL;
        if (kvStore_Get(&ke, c->agents_kv, keys.Keys[i]) != NATS_OK)
            continue; /* expired meanwhile */
        json_t *v = json_loadb((const char *)kvEntry_Value(ke), (size_t)kvEntry_ValueLen(ke), 0, NULL);
        if (!json_is_object(v)) {
            json_decref(v);
            v = json_pack("{s:s%}", "raw", (const char *)kvEntry_Value(ke), (size_t)kvEntry_ValueLen(ke));
        }
        json_object_set_new(v, "id", json_string(keys.Keys[i]));
        json_array_append_new(list, v);
        kvEntry_Destroy(ke);
    }
    kvKeysList_Destroy(&keys);
    return json_pack("{s:o}", "agents", list);
}

static bool agent_has(const json_t *agent, const char *key, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(agent, key), i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
            return true;
    }
    return false;
}

bool api_queues_have_feature(api_ctx *c, const char *const *queues, size_t n, const char *feature, api_err *e)
{
    api_err ignored = {0};
    json_t *none = json_object();
    json_t *all = api_cluster_agents(c, none, &ignored);
    json_decref(none);
    if (!all)
        return api_fail(e, API_UNAVAILABLE, NULL, "checking the agents' features: %s", ignored.msg), false;
    bool ok = true;
    size_t i;
    json_t *agent;
    json_array_foreach(json_object_get(all, "agents"), i, agent)
    {
        for (size_t q = 0; ok && q < n; q++)
            if (agent_has(agent, "queues", queues[q]) && !agent_has(agent, "features", feature)) {
                const char *id = json_string_value(json_object_get(agent, "id"));
                api_fail(e, API_PRECONDITION, NULL,
                         "agent %s serves queue %s without the '%s' feature (an older agentd): upgrade it first",
                         id ? id : "?", queues[q], feature);
                ok = false;
            }
        if (!ok)
            break;
    }
    json_decref(all);
    return ok;
}

/* By queue, then high, normal, low. */
static int cmp_consumer(const void *a, const void *b)
{
    const char *na = (*(jsConsumerInfo *const *)a)->Name, *nb = (*(jsConsumerInfo *const *)b)->Name;
    char qa[JET_NAME_MAX + 1] = "", qb[JET_NAME_MAX + 1] = "";
    jet_priority pa = JET_PRIO_COUNT, pb = JET_PRIO_COUNT;
    jet_js_consumer_parse(na, qa, &pa);
    jet_js_consumer_parse(nb, qb, &pb);
    int c = strcmp(qa, qb);
    return c ? c : pa != pb ? (int)pa - (int)pb : strcmp(na, nb);
}

json_t *api_cluster_queues(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    jsConsumerInfoList *cl = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_Consumers(&cl, c->s->js, c->s->names.task_stream, NULL, &jerr);
    json_t *list = json_array();
    if (st == NATS_NOT_FOUND)
        return json_pack("{s:o}", "queues", list);
    if (st != NATS_OK) {
        json_decref(list);
        return api_fail(e, API_UNAVAILABLE, NULL, "listing the consumers of %s: %s (%d)", c->s->names.task_stream,
                        natsStatus_GetText(st), (int)jerr);
    }
    json_t *pauses = api_queue_pauses(c, e);
    if (!pauses) {
        json_decref(list);
        jsConsumerInfoList_Destroy(cl);
        return NULL;
    }
    qsort(cl->List, (size_t)cl->Count, sizeof *cl->List, cmp_consumer);
    for (int i = 0; i < cl->Count; i++) {
        jsConsumerInfo *ci = cl->List[i];
        const char *name = ci->Name;
        jet_priority p;
        char queue[JET_NAME_MAX + 1];
        if (!jet_js_consumer_parse(name, queue, &p))
            continue; /* not a jetsched consumer */
        json_array_append_new(
            list, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "queue", queue, "priority", jet_priority_name(p),
                            "consumer", name, "pending", (json_int_t)ci->NumPending, "ack_pending", (json_int_t)ci->NumAckPending,
                            "redelivered", (json_int_t)ci->NumRedelivered, "waiting", (json_int_t)ci->NumWaiting,
                            "delivered", (json_int_t)ci->Delivered.Stream, "ack_floor",
                            (json_int_t)ci->AckFloor.Stream));
        /* Consumer sequences count this lane's deliveries only (the stream
         * sequences above also move with other lanes' messages). */
        json_t *q = json_array_get(list, json_array_size(list) - 1);
        json_object_set_new(q, "delivered_consumer", json_integer((json_int_t)ci->Delivered.Consumer));
        json_object_set_new(q, "ack_floor_consumer", json_integer((json_int_t)ci->AckFloor.Consumer));
        api_queue_annotate(q, pauses, queue, jet_priority_name(p));
    }
    json_decref(pauses);
    jsConsumerInfoList_Destroy(cl);
    return json_pack("{s:o}", "queues", list);
}
