/* The flow-control watch (control.h): pause state of the served lanes. */
#include "control.h"
#include "kvwatch.h"
#include "puller.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_WAIT_MS 5000 /* reading the bucket's current keys at start */

struct control_watch {
    agent *a;
    kvwatch watch;
    jet_metric *m_paused;
    /* per served queue (a->queues order): the queue key and each lane key */
    struct { bool queue, lane[JET_PRIO_COUNT]; } *keys;
};

/* Recomputes queue i's lanes from its keys; wakes the puller on a resume. */
static void apply(struct control_watch *c, size_t i)
{
    queue_rt *q = &c->a->queues[i];
    bool resumed = false;
    for (int p = 0; p < JET_PRIO_COUNT; p++) {
        bool now = c->keys[i].queue || c->keys[i].lane[p];
        bool was = atomic_exchange(&q->lanes[p].paused, now);
        if (now != was) {
            jet_info("queue %s lane %s: %s", q->name, jet_priority_name((jet_priority)p), now ? "paused" : "resumed");
            resumed |= !now;
        }
        const char *l[] = {q->name, jet_priority_name((jet_priority)p)};
        jet_metric_set(c->m_paused, l, now ? 1 : 0);
    }
    if (resumed)
        puller_wake(q);
}

/* "queue.<queue>" or "queue.<queue>.<priority>" of a served queue. */
static void on_entry(void *arg, kvEntry *e)
{
    struct control_watch *c = arg;
    const char *key = kvEntry_Key(e);
    if (strncmp(key, "queue.", 6) != 0)
        return;
    key += 6;
    bool paused = false;
    if (kvEntry_Operation(e) == kvOp_Put) {
        json_t *v = json_loadb((const char *)kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
        paused = json_is_true(json_object_get(v, "paused"));
        if (!json_is_object(v))
            jet_warn("%s: key queue.%s is not a JSON object; taken as not paused", c->a->names.kv_control, key);
        json_decref(v);
    }
    const char *dot = strchr(key, '.');
    size_t qlen = dot ? (size_t)(dot - key) : strlen(key);
    jet_priority p = JET_PRIO_COUNT;
    if (dot && !jet_priority_parse(dot + 1, &p))
        return;
    for (size_t i = 0; i < c->a->nqueues; i++) {
        const char *name = c->a->queues[i].name;
        if (strlen(name) != qlen || strncmp(name, key, qlen) != 0)
            continue;
        if (dot)
            c->keys[i].lane[p] = paused;
        else
            c->keys[i].queue = paused;
        apply(c, i);
    }
}

jet_status control_start(agent *a, jet_err *err)
{
    struct control_watch *c = jet_xcalloc(1, sizeof *c);
    c->a = a;
    c->keys = jet_xcalloc(a->nqueues ? a->nqueues : 1, sizeof *c->keys);
    c->m_paused = jet_metric_gauge("jetsched_agent_lane_paused",
                                   "1 while the lane is paused (KV jetsched_control): no new pulls.", "queue,priority");
    a->control = c;
    for (size_t i = 0; i < a->nqueues; i++)
        apply(c, i);
    /* The current keys before the pullers start: a lane paused before this
     * agent started is never pulled. */
    return kvwatch_start(&c->watch, a, a->names.kv_control, INITIAL_WAIT_MS, on_entry, c, err);
}

void control_stop(agent *a)
{
    struct control_watch *c = a->control;
    if (!c)
        return;
    kvwatch_stop(&c->watch);
    a->control = NULL;
    free(c->keys);
    free(c);
}
