/* Registry heartbeat into KV jetsched_agents (key = agent id). */
#include "registry.h"
#include "handlers.h"
#include "inflight.h"

#include <jansson.h>
#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>
#include <jetsched/version.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct registry {
    kvStore *kv;
    pthread_t thread;
    _Atomic bool stop;
    int64_t started_ms;
    int64_t every_ms;              /* agent.heartbeat */
};

/* KV keys allow [-/_=.a-zA-Z0-9]; agent ids are host names, already fine, but be safe. */
static void key_for(const char *id, char *key, size_t len)
{
    size_t j = 0;
    for (; *id && j + 1 < len; id++) {
        char c = *id;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '=' || c == '.';
        key[j++] = ok ? c : '_';
    }
    key[j] = '\0';
}

/* The features of DESIGN §12 this build implements ("limits", "workflows"). */
static const char *const agent_features[] = {"limits", "workflows", NULL};

static char *describe(agent *a)
{
    char host[256] = "", at[40];
    gethostname(host, sizeof host - 1);
    json_t *queues = json_array();
    int concurrency = 0;
    for (size_t i = 0; i < a->nqueues; i++) {
        json_array_append_new(queues, json_string(a->queues[i].name));
        concurrency += a->queues[i].concurrency;
    }
    char *unavailable = NULL, *handlers = handlers_list_json(a, &unavailable);
    json_t *h = handlers ? json_loads(handlers, 0, NULL) : NULL;
    json_t *u = unavailable ? json_loads(unavailable, 0, NULL) : NULL;
    free(handlers);
    free(unavailable);
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:o,s:o,s:i,s:i,s:i,s:s}", "id", a->id, "host", host, "pid",
                          (int)getpid(), "version", JET_VERSION, "queues", queues, "handlers",
                          h ? h : json_array(), "concurrency", concurrency, "in_flight",
                          inflight_count(a), "recording", atomic_load(&a->recording), "started_at",
                          jet_rfc3339_format(a->registry->started_ms, at, sizeof at));
    json_object_set_new(o, "draining", json_boolean(atomic_load(&a->draining)));
    /* Lua scripts that exist but cannot run (their tasks are retried). */
    json_object_set_new(o, "handlers_unavailable", u ? u : json_array());
    /* What this agent understands beyond the first wave (DESIGN §12 "Rolling
     * upgrades"): a verb that needs a feature refuses while an agent serving
     * the queue lacks it (api_queues_have_feature in scheduler/api_cluster.c). */
    json_t *features = json_array();
    for (const char *const *f = agent_features; *f; f++)
        json_array_append_new(features, json_string(*f));
    json_object_set_new(o, "features", features);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void beat(agent *a)
{
    char key[160];
    key_for(a->id, key, sizeof key);
    char *v = describe(a);
    uint64_t rev = 0;
    natsStatus s = kvStore_PutString(&rev, a->registry->kv, key, v);
    if (s != NATS_OK)
        jet_warn("registry heartbeat failed: %s", natsStatus_GetText(s));
    free(v);
}

static void *heartbeat_main(void *arg)
{
    agent *a = arg;
    struct registry *r = a->registry;
    int64_t every = r->every_ms, next = jet_mono_ms() + every;
    while (!atomic_load(&r->stop)) {
        if (jet_mono_ms() >= next) {
            beat(a);
            next = jet_mono_ms() + every;
        }
        jet_sleep_ms(100);
    }
    return NULL;
}

jet_status registry_start(agent *a, jet_err *err)
{
    struct registry *r = jet_xcalloc(1, sizeof *r);
    r->started_ms = jet_now_ms();
    r->every_ms = a->set.heartbeat_ms;
    a->registry = r;
    natsStatus s = js_KeyValue(&r->kv, a->js, a->names.kv_agents);
    if (s != NATS_OK)
        return jet_nats_err(err, s, a->names.kv_agents);
    beat(a);
    if (pthread_create(&r->thread, NULL, heartbeat_main, a) != 0) {
        kvStore_Destroy(r->kv);
        r->kv = NULL;
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the heartbeat thread");
    }
    return JET_OK;
}

void registry_stop(agent *a)
{
    struct registry *r = a->registry;
    if (!r)
        return;
    if (!r->kv) {
        a->registry = NULL;
        free(r);
        return;
    }
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    char key[160];
    key_for(a->id, key, sizeof key);
    natsStatus s = kvStore_Delete(r->kv, key);
    if (s != NATS_OK)
        jet_warn("removing registry key %s failed: %s", key, natsStatus_GetText(s));
    kvStore_Destroy(r->kv);
    a->registry = NULL;
    free(r);
}
