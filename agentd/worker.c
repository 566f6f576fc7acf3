/* Worker threads: take, admit, run, record; and the drain of the pool. */
#include "worker.h"
#include "acker.h"
#include "admission.h"
#include "dispatch.h"
#include "handlers.h"
#include "inflight.h"
#include "keylimits.h"
#include "outcome.h"
#include "puller.h"
#include "recorder.h"
#include <jetsched/alloc.h>

#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>

static void run_task_logged(agent *a, inflight *f)
{
    if (admission_settle(a, f))
        return;
    f->started_mono = jet_mono_ms();
    f->deadline_mono = f->started_mono + f->task->timeout_ms;
    atomic_store(&f->state, RUN_RUNNING);
    outcome_started(a, f);
    jet_outcome r = handlers_run(a, f);
    limits_done(a, f);
    int expected = RUN_RUNNING;
    if (!atomic_compare_exchange_strong(&f->state, &expected, RUN_RECORDING))
        return; /* the supervisor abandoned this run and recorded it already */
    outcome_from_handler(a, f, r);
}

/* JSON log lines of this task carry its id and trace id (jet_log_task_begin). */
static void run_task(agent *a, inflight *f)
{
    char trace[33];
    jet_trace_id(f->task->traceparent, trace);
    jet_log_task_begin(f->task->id, trace);
    run_task_logged(a, f);
    jet_log_task_end();
}

static void *worker_main(void *arg)
{
    queue_rt *q = arg;
    agent *a = q->a;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        inflight *f;
        while (!(f = dispatch_take(q)) && !q->stop_workers)
            dispatch_wait(q);
        if (!f)
            break;
        bool wake = dispatch_wake_next(q); /* more ready: the next worker of the chain */
        pthread_mutex_unlock(&q->mu);
        if (wake)
            dispatch_wake(q);
        inflight_retain(f);
        run_task(a, f);
        bool abandoned = atomic_load(&f->abandoned);
        inflight_release(f);
        pthread_mutex_lock(&q->mu);
        if (abandoned) {
            /* The supervisor already freed this slot and started a replacement.
             * Nothing of q may be touched once workers_alive is down and the
             * lock released: the queue may be freed at exit (workers_stop). */
            jet_warn("queue %s: an abandoned handler finally returned; its thread exits", q->name);
            q->workers_alive--;
            pthread_cond_broadcast(&q->cv);
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        dispatch_done(q);
        /* A slot is free: ask for the next task from here instead of waking
         * the puller (one thread hand-off less per task). During a drain
         * workers_drain waits for busy == 0 on q->cv. */
        if (q->stop_workers)
            pthread_cond_broadcast(&q->cv);
        else
            puller_refill_locked(q);
    }
    q->workers_alive--;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static jet_status spawn_worker(queue_rt *q, jet_err *err)
{
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 1 << 20);
    pthread_mutex_lock(&q->mu);
    q->workers_alive++;
    pthread_mutex_unlock(&q->mu);
    int rc = pthread_create(&th, &attr, worker_main, q);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&q->mu);
        q->workers_alive--;
        pthread_mutex_unlock(&q->mu);
        return jet_err_set(err, JET_ERR_INTERNAL, "queue %s: cannot start a worker thread", q->name);
    }
    return JET_OK;
}

jet_status workers_start(queue_rt *q, jet_err *err)
{
    for (int i = 0; i < q->concurrency; i++) {
        jet_status st = spawn_worker(q, err);
        if (st)
            return st;
    }
    return JET_OK;
}

void worker_replace_abandoned(queue_rt *q)
{
    pthread_mutex_lock(&q->mu);
    dispatch_done(q);
    pthread_cond_broadcast(&q->cv);
    bool stopping = q->stop_workers;
    pthread_mutex_unlock(&q->mu);
    jet_err err;
    if (!stopping && spawn_worker(q, &err) != JET_OK)
        jet_error("%s", err.msg);
}

static void cancel_if_running(inflight *f, void *q)
{
    if (f->queue == q && atomic_load(&f->state) == RUN_RUNNING)
        atomic_store(&f->cancel, true);
}

void workers_drain(queue_rt *q, int64_t grace_ms)
{
    agent *a = q->a;
    int64_t until = jet_mono_ms() + grace_ms;
    pthread_mutex_lock(&q->mu);
    /* Tasks pulled but not started are handed back at once, recorded first
     * as handed back (one statement for all) so that their next delivery
     * spends no attempt (DESIGN §12). When PostgreSQL cannot take that
     * record they are naked all the same: a spent attempt is better than
     * a task held until the agent exits. */
    inflight **back = NULL;
    size_t nback = 0;
    inflight *f;
    while ((f = dispatch_take_unstarted(q)) != NULL) {
        back = jet_xrealloc(back, (nback + 1) * sizeof *back);
        back[nback++] = f;
    }
    pthread_mutex_unlock(&q->mu);
    if (nback) {
        agent_task **ts = jet_xcalloc(nback, sizeof *ts);
        for (size_t i = 0; i < nback; i++)
            ts[i] = back[i]->task;
        recorder_handed_back(a, ts, nback);
        free(ts);
    }
    for (size_t i = 0; i < nback; i++) {
        acker_nak_now(a, back[i]->task);
        inflight_unlink(a, back[i]);
        inflight_release(back[i]);
    }
    free(back);
    pthread_mutex_lock(&q->mu);
    q->stop_workers = true;
    dispatch_wake_all(q);
    while (q->busy > 0 && jet_mono_ms() < until)
        jet_cond_wait_ms(&q->cv, &q->mu, 20);
    pthread_mutex_unlock(&q->mu);
    /* Still running after the grace: cancel them (main hands their tasks back). */
    inflight_foreach(a, cancel_if_running, q);
}

bool workers_stop(queue_rt *q, int64_t wait_ms)
{
    int64_t until = jet_mono_ms() + wait_ms;
    pthread_mutex_lock(&q->mu);
    q->stop_workers = true;
    dispatch_wake_all(q);
    while (q->workers_alive > 0 && jet_mono_ms() < until)
        jet_cond_wait_ms(&q->cv, &q->mu, 20);
    int left = q->workers_alive;
    pthread_mutex_unlock(&q->mu);
    if (left > 0)
        jet_warn("queue %s: %d worker thread(s) still running a handler at exit", q->name, left);
    return left == 0;
}
