/* The cancellation watch and the table of cancelled task ids. */
#include "cancel.h"
#include "inflight.h"
#include "kvwatch.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/natsconn.h>
#include <jetsched/strmap.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>

struct cancel_watch {
    agent *a;
    int64_t ttl_ms;                /* jetstream.cancel_ttl */
    kvwatch watch;
    pthread_mutex_t mu;            /* guards ids and pruned_at */
    jet_strmap *ids;               /* task id -> int64_t until_mono */
    size_t pruned_at;              /* entries left by the last prune */
};

bool cancel_requested(agent *a, const char *task_id)
{
    struct cancel_watch *c = a->cancels;
    if (!c)
        return false;
    pthread_mutex_lock(&c->mu);
    const int64_t *until = jet_strmap_get(c->ids, task_id);
    bool found = until && *until > jet_mono_ms();
    pthread_mutex_unlock(&c->mu);
    return found;
}

static bool expired(const char *key, void *value, void *arg)
{
    (void)key;
    bool drop = *(int64_t *)value <= *(const int64_t *)arg;
    if (drop)
        free(value);
    return drop;
}

static void mark_running(inflight *f, void *arg)
{
    if (strcmp(f->task->id, arg) == 0) {
        atomic_store(&f->cancel, true);
        jet_info("task %s: cancellation requested", f->task->id);
    }
}

static void remember(struct cancel_watch *c, const char *id)
{
    int64_t *until = jet_xmalloc(sizeof *until);
    *until = jet_mono_ms() + c->ttl_ms;
    pthread_mutex_lock(&c->mu);
    free(jet_strmap_put(c->ids, id, until));
    /* Drop expired ids once the table has doubled since the last sweep. */
    if (jet_strmap_count(c->ids) >= 2 * c->pruned_at + 64) {
        int64_t now = jet_mono_ms();
        jet_strmap_prune(c->ids, expired, &now);
        c->pruned_at = jet_strmap_count(c->ids);
    }
    pthread_mutex_unlock(&c->mu);
    /* A running task with that id is signalled like a timeout. */
    inflight_foreach(c->a, mark_running, (void *)id);
}

static void on_entry(void *arg, kvEntry *e)
{
    if (kvEntry_Operation(e) == kvOp_Put)
        remember(arg, kvEntry_Key(e));
}

jet_status cancel_start(agent *a, jet_err *err)
{
    struct cancel_watch *c = jet_xcalloc(1, sizeof *c);
    c->a = a;
    c->ttl_ms = a->set.cancel_ttl_ms;
    c->ids = jet_strmap_new();
    pthread_mutex_init(&c->mu, NULL);
    a->cancels = c;
    return kvwatch_start(&c->watch, a, a->names.kv_cancel, 0, on_entry, c, err);
}

void cancel_stop(agent *a)
{
    struct cancel_watch *c = a->cancels;
    if (!c)
        return;
    kvwatch_stop(&c->watch);
    a->cancels = NULL;
    jet_strmap_free(c->ids, free);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
