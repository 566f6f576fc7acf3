/* A watch on one KV bucket run on its own thread: each entry (put, delete,
 * purge) is handed to a callback. Shared by cancel.c and control.c. */
#ifndef AGENTD_KVWATCH_H
#define AGENTD_KVWATCH_H

#include "agent.h"

typedef void (*kvwatch_fn)(void *arg, kvEntry *e);

typedef struct kvwatch {
    agent *a;
    kvStore *kv;
    kvWatcher *watcher;
    pthread_t thread;
    bool running;
    kvwatch_fn fn;
    void *arg;
} kvwatch;

/* Opens `bucket` and watches all its keys. With `sync_ms` > 0 the bucket's
 * current keys are handed to fn before this returns (an error when they do
 * not arrive within sync_ms); later entries come on the thread. */
jet_status kvwatch_start(kvwatch *w, agent *a, const char *bucket, int64_t sync_ms, kvwatch_fn fn, void *arg,
                         jet_err *err);
/* Stops the thread and closes the bucket; safe on a watch that never started. */
void kvwatch_stop(kvwatch *w);

#endif
