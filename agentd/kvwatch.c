/* The KV watch thread (kvwatch.h). */
#include "kvwatch.h"

#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>

static void *watch_main(void *arg)
{
    kvwatch *w = arg;
    while (!atomic_load(&w->a->stopped)) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, w->watcher, 500);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK)
            break; /* stopped */
        if (e)
            w->fn(w->arg, e);
        kvEntry_Destroy(e);
    }
    return NULL;
}

jet_status kvwatch_start(kvwatch *w, agent *a, const char *bucket, int64_t sync_ms, kvwatch_fn fn, void *arg,
                         jet_err *err)
{
    *w = (kvwatch){.a = a, .fn = fn, .arg = arg};
    natsStatus s;
    if ((s = js_KeyValue(&w->kv, a->js, bucket)) != NATS_OK)
        return jet_nats_err(err, s, bucket);
    if ((s = kvStore_WatchAll(&w->watcher, w->kv, NULL)) != NATS_OK)
        return jet_nats_err(err, s, "watch a KV bucket");
    /* The current keys first: a NULL entry marks their end. */
    for (int64_t until = jet_mono_ms() + sync_ms; sync_ms > 0;) {
        int64_t left = until - jet_mono_ms();
        kvEntry *e = NULL;
        if (left <= 0 || (s = kvWatcher_Next(&e, w->watcher, left)) != NATS_OK)
            return jet_err_set(err, JET_ERR_NATS, "reading %s: %s", bucket, left <= 0 ? "timeout" : natsStatus_GetText(s));
        if (!e)
            break;
        fn(arg, e);
        kvEntry_Destroy(e);
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the watch of %s", bucket);
    w->running = true;
    return JET_OK;
}

void kvwatch_stop(kvwatch *w)
{
    if (w->running) {
        kvWatcher_Stop(w->watcher);
        pthread_join(w->thread, NULL);
        w->running = false;
    }
    kvWatcher_Destroy(w->watcher);
    kvStore_Destroy(w->kv);
    w->watcher = NULL;
    w->kv = NULL;
}
