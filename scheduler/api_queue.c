/* API verbs queue.pause and queue.resume (docs/API.md): the pause state of
 * a queue or of one priority lane, kept in KV jetsched_control under
 * `queue.<queue>` or `queue.<queue>.<priority>` as a small JSON object
 * {paused, by, at, reason}. Every agentd watches the bucket and stops
 * pulling a paused lane (agentd/control.c); resuming deletes the key. Also
 * the read side cluster.queues uses (api_queue_pauses). */
#include "api.h"

#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 500
#define BY_MAX 128

static void pause_key(const char *queue, const char *prio, char *buf, size_t len)
{
    if (prio)
        snprintf(buf, len, "queue.%s.%s", queue, prio);
    else
        snprintf(buf, len, "queue.%s", queue);
}

/* queue (required), priority (optional) and, for pause, by/reason. */
static bool queue_args(const json_t *req, bool pause, const char **queue, const char **prio, const char **by,
                       const char **reason, api_err *e)
{
    static const char *const pause_fields[] = {"queue", "priority", "by", "reason", NULL};
    static const char *const resume_fields[] = {"queue", "priority", NULL};
    if (!api_check_fields(req, pause ? pause_fields : resume_fields, e))
        return false;
    *prio = NULL;
    if (api_name(req, "queue", true, queue, e) < 0 || api_priority(req, "priority", prio, e) < 0)
        return false;
    if (!pause)
        return true;
    *by = *reason = NULL;
    if (api_str(req, "by", false, by, e) < 0 || api_str(req, "reason", false, reason, e) < 0)
        return false;
    if (*by && strlen(*by) > BY_MAX)
        return api_fail(e, API_INVALID, "by", "by is longer than %d bytes", BY_MAX) != NULL;
    if (*reason && strlen(*reason) > REASON_MAX)
        return api_fail(e, API_INVALID, "reason", "reason is longer than %d bytes", REASON_MAX) != NULL;
    return true;
}

static json_t *reply(const char *queue, const char *prio, bool paused)
{
    return json_pack("{s:s,s:s?,s:b}", "queue", queue, "priority", prio, "paused", paused);
}

json_t *api_queue_pause(api_ctx *c, json_t *req, api_err *e)
{
    const char *queue, *prio, *by, *reason;
    if (!queue_args(req, true, &queue, &prio, &by, &reason, e))
        return NULL;
    if (c->offline || !c->control_kv)
        return api_fail(e, API_UNAVAILABLE, NULL, "the control bucket is not open");
    char at[40];
    api_ms_text(jet_now_ms(), at, sizeof at);
    json_t *v = json_pack("{s:b,s:s,s:s,s:s}", "paused", 1, "by", by ? by : "", "at", at, "reason",
                          reason ? reason : "");
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    char key[128];
    pause_key(queue, prio, key, sizeof key);
    uint64_t rev = 0;
    natsStatus st = kvStore_PutString(&rev, c->control_kv, key, text);
    free(text);
    if (st != NATS_OK)
        return api_fail(e, API_UNAVAILABLE, NULL, "writing %s/%s: %s", c->s->names.kv_control, key,
                        natsStatus_GetText(st));
    json_t *r = reply(queue, prio, true);
    json_object_set_new(r, "by", json_string(by ? by : ""));
    json_object_set_new(r, "at", json_string(at));
    json_object_set_new(r, "reason", json_string(reason ? reason : ""));
    return r;
}

static bool delete_key(api_ctx *c, const char *key, api_err *e)
{
    natsStatus st = kvStore_Delete(c->control_kv, key);
    if (st == NATS_OK || st == NATS_NOT_FOUND)
        return true;
    api_fail(e, API_UNAVAILABLE, NULL, "deleting %s/%s: %s", c->s->names.kv_control, key, natsStatus_GetText(st));
    return false;
}

/* Without priority: the queue key and every lane key of the queue. */
json_t *api_queue_resume(api_ctx *c, json_t *req, api_err *e)
{
    const char *queue, *prio;
    if (!queue_args(req, false, &queue, &prio, NULL, NULL, e))
        return NULL;
    if (c->offline || !c->control_kv)
        return api_fail(e, API_UNAVAILABLE, NULL, "the control bucket is not open");
    char key[128];
    pause_key(queue, prio, key, sizeof key);
    if (!delete_key(c, key, e))
        return NULL;
    for (int p = 0; !prio && p < JET_PRIO_COUNT; p++) {
        pause_key(queue, jet_priority_name((jet_priority)p), key, sizeof key);
        if (!delete_key(c, key, e))
            return NULL;
    }
    return reply(queue, prio, false);
}

json_t *api_queue_pauses(api_ctx *c, api_err *e)
{
    json_t *out = json_object();
    if (!c->control_kv)
        return out;
    kvKeysList keys = {0};
    natsStatus st = kvStore_Keys(&keys, c->control_kv, NULL);
    if (st == NATS_NOT_FOUND)
        return out;
    if (st != NATS_OK) {
        json_decref(out);
        return api_fail(e, API_UNAVAILABLE, NULL, "listing %s: %s", c->s->names.kv_control, natsStatus_GetText(st));
    }
    for (int i = 0; i < keys.Count; i++) {
        kvEntry *ke = NULL;
        if (strncmp(keys.Keys[i], "queue.", 6) != 0 || kvStore_Get(&ke, c->control_kv, keys.Keys[i]) != NATS_OK)
            continue;
        json_t *v = json_loadb((const char *)kvEntry_Value(ke), (size_t)kvEntry_ValueLen(ke), 0, NULL);
        if (json_is_object(v) && json_is_true(json_object_get(v, "paused")))
            json_object_set(out, keys.Keys[i] + 6, v);
        json_decref(v);
        kvEntry_Destroy(ke);
    }
    kvKeysList_Destroy(&keys);
    return out;
}

void api_queue_annotate(json_t *lane, const json_t *pauses, const char *queue, const char *prio)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", queue, prio);
    json_t *p = json_object_get(pauses, key);
    const char *scope = "lane";
    if (!p) {
        p = json_object_get(pauses, queue);
        scope = "queue";
    }
    json_object_set_new(lane, "paused", json_boolean(p != NULL));
    if (p) {
        json_t *info = json_deep_copy(p);
        json_object_del(info, "paused");
        json_object_set_new(info, "scope", json_string(scope));
        json_object_set_new(lane, "pause", info);
    } else {
        json_object_set_new(lane, "pause", json_null());
    }
}
