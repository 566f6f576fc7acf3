/* Dispatch: the ready FIFO and the slot counts of a queue (see dispatch.h). */
#include "dispatch.h"
#include "inflight.h"

#include <jetsched/alloc.h>

#include <stdlib.h>

int dispatch_free_slots(const queue_rt *q)
{
    int free = q->concurrency - q->busy - (int)q->ready_len - (int)q->arriving_len - q->admitting - q->outstanding;
    return free > 0 ? free : 0;
}

void dispatch_request_sent(queue_rt *q, int n) { q->outstanding += n; }

void dispatch_request_done(queue_rt *q, int n)
{
    q->outstanding -= n;
    if (q->outstanding < 0)
        q->outstanding = 0;
}

void dispatch_arrived(queue_rt *q, natsMsg *m, jet_priority lane)
{
    agent_task *t = task_from_msg(m, q->name, lane, &q->defaults);
    inflight *f = inflight_new(q->a, q, t);
    q->arriving = jet_xgrow(q->arriving, &q->arriving_cap, q->arriving_len + 1, sizeof *q->arriving, 16);
    q->arriving[q->arriving_len++] = f;
}

inflight **dispatch_take_arriving(queue_rt *q, size_t *n)
{
    inflight **fs = q->arriving;
    *n = q->arriving_len;
    if (*n == 0)
        return NULL;
    q->admitting += (int)*n;
    q->arriving = NULL;
    q->arriving_len = q->arriving_cap = 0;
    return fs;
}

static void ready_push(queue_rt *q, inflight *f)
{
    if (q->ready_len == q->ready_cap) {
        /* A ring: grow into a fresh array in FIFO order. */
        size_t ncap = q->ready_cap ? q->ready_cap * 2 : 16;
        inflight **n = jet_xcalloc(ncap, sizeof *n);
        for (size_t i = 0; i < q->ready_len; i++)
            n[i] = q->ready[(q->ready_head + i) % q->ready_cap];
        free(q->ready);
        q->ready = n;
        q->ready_cap = ncap;
        q->ready_head = 0;
    }
    q->ready[(q->ready_head + q->ready_len++) % q->ready_cap] = f;
}

void dispatch_admitted(queue_rt *q, inflight **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ready_push(q, fs[i]);
    q->admitting -= (int)n;
}

bool dispatch_wake_next(queue_rt *q)
{
    if (q->ready_len == 0 || q->waking > 0 || q->idle == 0)
        return false;
    q->waking++;
    return true;
}

void dispatch_wake(queue_rt *q) { pthread_cond_signal(&q->work_cv); }

void dispatch_wake_all(queue_rt *q) { pthread_cond_broadcast(&q->work_cv); }

inflight *dispatch_take_unstarted(queue_rt *q)
{
    if (q->ready_len == 0)
        return NULL;
    inflight *f = q->ready[q->ready_head];
    q->ready_head = (q->ready_head + 1) % q->ready_cap;
    q->ready_len--;
    return f;
}

inflight *dispatch_take(queue_rt *q)
{
    inflight *f = dispatch_take_unstarted(q);
    if (f)
        q->busy++;
    return f;
}

void dispatch_wait(queue_rt *q)
{
    q->idle++;
    pthread_cond_wait(&q->work_cv, &q->mu);
    q->idle--;
    /* Woken by dispatch_wake (or by a broadcast, or spuriously: then the
     * signal in flight finds another waiter or none, and the count is
     * right again either way). */
    if (q->waking > 0)
        q->waking--;
}

void dispatch_done(queue_rt *q) { q->busy--; }

void dispatch_free(queue_rt *q)
{
    free(q->ready);
    q->ready = NULL;
    free(q->arriving);
    q->arriving = NULL;
}
