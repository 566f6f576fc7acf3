/* Registry heartbeat into KV jetsched_agents (key = agent id). */
#include "registry.h"
#include "handlers.h"

#include <jansson.h>
#include <jetsched/log.h>
#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>
#include <jetsched/version.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kvStore *registry_kv;
static pthread_t heartbeat_thread;
static _Atomic bool heartbeat_stop;
static int64_t started_ms;

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
                          atomic_load(&a->inflight_count), "recording", atomic_load(&a->recording), "started_at",
                          jet_rfc3339_format(started_ms, at, sizeof at));
    json_object_set_new(o, "draining", json_boolean(atomic_load(&a->draining)));
    /* Lua scripts that exist but cannot run (their tasks are retried). */
    json_object_set_new(o, "handlers_unavailable", u ? u : json_array());
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
    natsStatus s = kvStore_PutString(&rev, registry_kv, key, v);
    if (s != NATS_OK)
        jet_warn("registry heartbeat failed: %s", natsStatus_GetText(s));
    free(v);
}

static void *heartbeat_main(void *arg)
{
    agent *a = arg;
    int64_t every = jet_cfg_int(a->cfg, "agent.heartbeat"), next = jet_mono_ms() + every;
    while (!atomic_load(&heartbeat_stop)) {
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
    started_ms = jet_now_ms();
    natsStatus s = js_KeyValue(&registry_kv, a->js, a->names.kv_agents);
    if (s != NATS_OK)
        return jet_nats_err(err, s, a->names.kv_agents);
    beat(a);
    atomic_store(&heartbeat_stop, false);
    if (pthread_create(&heartbeat_thread, NULL, heartbeat_main, a) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the heartbeat thread");
    return JET_OK;
}

void registry_stop(agent *a)
{
    if (!registry_kv)
        return;
    atomic_store(&heartbeat_stop, true);
    pthread_join(heartbeat_thread, NULL);
    char key[160];
    key_for(a->id, key, sizeof key);
    natsStatus s = kvStore_Delete(registry_kv, key);
    if (s != NATS_OK)
        jet_warn("removing registry key %s failed: %s", key, natsStatus_GetText(s));
    kvStore_Destroy(registry_kv);
    registry_kv = NULL;
}
