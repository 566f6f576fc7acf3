/* The supervisor thread: progress, timeouts, and the late 'running' records. */
#include "supervisor.h"
#include "acker.h"
#include "inflight.h"
#include "outcome.h"
#include "worker.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>

#define ABANDON_GRACE_MS 5000  /* a handler ignoring cancelled() gets this long after its timeout */
#define MAX_ABANDON_PER_PASS 64
#define MAX_RUNNING_PER_PASS 1024 /* 'running' records due in one pass; the rest wait for the next */

struct supervisor {
    agent *a;
    pthread_t thread;
    _Atomic bool stop;
    _Atomic uint64_t abandoned;
};

static void abandon(struct supervisor *s, inflight *f)
{
    int expected = RUN_RUNNING;
    if (!atomic_compare_exchange_strong(&f->state, &expected, RUN_RECORDING))
        return;
    atomic_store(&f->abandoned, true);
    atomic_fetch_add(&s->abandoned, 1);
    jet_error("task %s: handler %s ignored its timeout for %d ms; abandoning its thread", f->task->id,
              f->task->handler, ABANDON_GRACE_MS);
    worker_replace_abandoned(f->queue);
    outcome_from_handler(s->a, f, JET_RETRY);
}

typedef struct pass {
    struct supervisor *s;
    int64_t now, progress_every;
    inflight *to_abandon[MAX_ABANDON_PER_PASS];
    int n_abandon;
    inflight **to_record; /* running for history.running_after without a 'running' record */
    int n_record;
} pass;

static void check_one(inflight *f, void *arg)
{
    pass *p = arg;
    int st = atomic_load(&f->state);
    /* Keep every task we hold alive on the server: running, waiting for a
     * slot or waiting for its history commit (PostgreSQL outage). */
    if (p->now - f->last_progress_mono >= p->progress_every) {
        f->last_progress_mono = p->now;
        acker_progress(p->s->a, f->task);
    }
    if (st != RUN_RUNNING)
        return;
    if (p->n_record < MAX_RUNNING_PER_PASS && outcome_running_due(p->s->a, f, p->now)) {
        inflight_retain(f);
        p->to_record[p->n_record++] = f;
    }
    if (p->now >= f->deadline_mono && !atomic_load(&f->timed_out)) {
        atomic_store(&f->timed_out, true);
        atomic_store(&f->cancel, true);
    }
    /* Lua handlers are stopped by their hook; one stuck inside a single C
     * library call (a pathological pattern match) is abandoned like a
     * native handler that ignores cancelled(). */
    if (atomic_load(&f->timed_out) && p->now >= f->deadline_mono + ABANDON_GRACE_MS &&
        p->n_abandon < MAX_ABANDON_PER_PASS) {
        inflight_retain(f);
        p->to_abandon[p->n_abandon++] = f;
    }
}

static void *supervisor_main(void *arg)
{
    struct supervisor *s = arg;
    inflight **to_record = jet_xcalloc(MAX_RUNNING_PER_PASS, sizeof *to_record);
    while (!atomic_load(&s->stop)) {
        pass p = {.s = s, .now = jet_mono_ms(), .progress_every = s->a->ack_wait_ms / 3, .to_record = to_record};
        inflight_foreach(s->a, check_one, &p);
        /* Outside the in-flight lock: the history submit takes the writer's. */
        for (int i = 0; i < p.n_record; i++) {
            outcome_running_late(s->a, p.to_record[i]);
            inflight_release(p.to_record[i]);
        }
        for (int i = 0; i < p.n_abandon; i++) {
            abandon(s, p.to_abandon[i]);
            inflight_release(p.to_abandon[i]);
        }
        jet_sleep_ms(100);
    }
    free(to_record);
    return NULL;
}

jet_status supervisor_start(agent *a, jet_err *err)
{
    struct supervisor *s = jet_xcalloc(1, sizeof *s);
    s->a = a;
    if (pthread_create(&s->thread, NULL, supervisor_main, s) != 0) {
        free(s);
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the supervisor thread");
    }
    a->supervisor = s;
    return JET_OK;
}

void supervisor_stop(agent *a)
{
    struct supervisor *s = a->supervisor;
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    a->supervisor = NULL;
    free(s);
}

uint64_t supervisor_abandoned(agent *a)
{
    return a->supervisor ? atomic_load(&a->supervisor->abandoned) : 0;
}
