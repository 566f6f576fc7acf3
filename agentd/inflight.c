/* The in-flight list and the reference counting of in-flight tasks. */
#include "inflight.h"
#include "timeline.h"
#include "workflow.h"

#include <jetsched/alloc.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>

void inflight_init(agent *a)
{
    pthread_mutex_init(&a->inflight.mu, NULL);
    a->inflight.head = NULL;
    atomic_init(&a->inflight.count, 0);
}

void inflight_destroy(agent *a) { pthread_mutex_destroy(&a->inflight.mu); }

inflight *inflight_new(agent *a, queue_rt *q, agent_task *t)
{
    inflight *f = jet_xcalloc(1, sizeof *f);
    f->task = t;
    f->queue = q;
    atomic_init(&f->refs, 1);
    atomic_init(&f->state, RUN_WAITING);
    pthread_mutex_init(&f->mu, NULL);
    f->retry_in_ms = -1;
    f->last_progress_mono = jet_mono_ms();
    timeline_pulled(f);
    pthread_mutex_lock(&a->inflight.mu);
    f->next = a->inflight.head;
    if (a->inflight.head)
        a->inflight.head->prev = f;
    a->inflight.head = f;
    atomic_fetch_add(&a->inflight.count, 1);
    pthread_mutex_unlock(&a->inflight.mu);
    return f;
}

void inflight_unlink(agent *a, inflight *f)
{
    timeline_acked(f); /* its message was just acted on (the acker unlinks right after) */
    pthread_mutex_lock(&a->inflight.mu);
    if (f->prev || f->next || a->inflight.head == f) {
        if (f->prev)
            f->prev->next = f->next;
        else
            a->inflight.head = f->next;
        if (f->next)
            f->next->prev = f->prev;
        f->prev = f->next = NULL;
        atomic_fetch_sub(&a->inflight.count, 1);
    }
    pthread_mutex_unlock(&a->inflight.mu);
}

void inflight_retain(inflight *f) { atomic_fetch_add(&f->refs, 1); }

void inflight_release(inflight *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    task_free(f->task);
    free(f->result);
    free(f->error);
    wf_run_free(f->wf);
    free(f->adm_row);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void inflight_foreach(agent *a, void (*fn)(inflight *f, void *arg), void *arg)
{
    pthread_mutex_lock(&a->inflight.mu);
    for (inflight *f = a->inflight.head; f; f = f->next)
        fn(f, arg);
    pthread_mutex_unlock(&a->inflight.mu);
}

int inflight_count(agent *a) { return atomic_load(&a->inflight.count); }
