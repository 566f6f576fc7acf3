/* Worker threads, the in-flight list and its supervisor. */
#include "worker.h"
#include "handlers.h"
#include "outcome.h"
#include "puller.h"

#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>

#define ABANDON_GRACE_MS 5000  /* a handler ignoring cancelled() gets this long after its timeout */

_Atomic uint64_t abandoned_threads;

/* ---- in-flight list ---- */

static inflight *inflight_new(agent *a, queue_rt *q, agent_task *t)
{
    inflight *f = calloc(1, sizeof *f);
    f->task = t;
    f->queue = q;
    atomic_init(&f->refs, 1);
    atomic_init(&f->state, RUN_WAITING);
    pthread_mutex_init(&f->mu, NULL);
    f->retry_in_ms = -1;
    f->last_progress_mono = jet_mono_ms();
    pthread_mutex_lock(&a->inflight_mu);
    f->next = a->inflight_head;
    if (a->inflight_head)
        a->inflight_head->prev = f;
    a->inflight_head = f;
    atomic_fetch_add(&a->inflight_count, 1);
    pthread_mutex_unlock(&a->inflight_mu);
    return f;
}

/* Removes f from the agent's list (when its message was acted on). */
void inflight_unlink(agent *a, inflight *f)
{
    pthread_mutex_lock(&a->inflight_mu);
    if (f->prev || f->next || a->inflight_head == f) {
        if (f->prev)
            f->prev->next = f->next;
        else
            a->inflight_head = f->next;
        if (f->next)
            f->next->prev = f->prev;
        f->prev = f->next = NULL;
        atomic_fetch_sub(&a->inflight_count, 1);
    }
    pthread_mutex_unlock(&a->inflight_mu);
}

void inflight_release(inflight *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    task_free(f->task);
    free(f->result);
    free(f->error);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ---- queueing ---- */

bool worker_enqueue_locked(queue_rt *q, natsMsg *m, jet_priority lane)
{
    agent_task *t = task_from_msg(m, q->name, lane, &q->defaults);
    if (!t) {
        natsMsg_Destroy(m);
        return false;
    }
    inflight *f = inflight_new(q->a, q, t);
    if (q->ready_len == q->ready_cap) {
        size_t ncap = q->ready_cap ? q->ready_cap * 2 : 16;
        inflight **n = calloc(ncap, sizeof *n);
        for (size_t i = 0; i < q->ready_len; i++)
            n[i] = q->ready[(q->ready_head + i) % q->ready_cap];
        free(q->ready);
        q->ready = n;
        q->ready_cap = ncap;
        q->ready_head = 0;
    }
    q->ready[(q->ready_head + q->ready_len++) % q->ready_cap] = f;
    return q->idle > 0;
}

void worker_wake(queue_rt *q) { pthread_cond_signal(&q->work_cv); }

static inflight *dequeue_locked(queue_rt *q)
{
    if (q->ready_len == 0)
        return NULL;
    inflight *f = q->ready[q->ready_head];
    q->ready_head = (q->ready_head + 1) % q->ready_cap;
    q->ready_len--;
    return f;
}

/* ---- running one task ---- */

/* The checks before a handler may run. Returns true when the task was
 * settled here (dead-lettered, expired, cancelled, duplicate). */
static bool settle_before_run(agent *a, inflight *f)
{
    agent_task *t = f->task;
    outcome o = {0};
    if (t->dead_reason) {
        o = (outcome){.status = "dead", .reason = t->dead_reason, .error = t->dead_detail};
    } else if ((int64_t)t->delivered > t->max_attempts) {
        o = (outcome){.status = "dead", .reason = "poison",
                      .error = "delivered more times than its max attempts: an earlier attempt never finished "
                               "(the agent running it crashed or was killed)"};
    } else if (t->deadline_ms && jet_now_ms() > t->deadline_ms) {
        o = (outcome){.status = "expired", .error = "not started before its Jetsched-Deadline"};
    } else if (handlers_cancelled(a, t->id)) {
        o = (outcome){.status = "cancelled", .error = "cancelled before it started"};
    } else if (outcome_already_succeeded(a, t)) {
        o = (outcome){.status = "duplicate", .error = "its idempotency key already succeeded"};
    } else if (!handlers_exists(a, t->handler)) {
        if (handlers_unavailable_reason(a, t->handler, f)) {
            outcome_unavailable(a, f);
            return true;
        }
        o = (outcome){.status = "dead", .reason = "unknown_handler", .error = "no plugin or Lua script serves it"};
    } else {
        return false;
    }
    outcome_record(a, f, &o);
    return true;
}

static void run_task(agent *a, inflight *f)
{
    if (settle_before_run(a, f))
        return;
    f->started_mono = jet_mono_ms();
    f->deadline_mono = f->started_mono + f->task->timeout_ms;
    atomic_store(&f->state, RUN_RUNNING);
    outcome_started(a, f);
    jet_outcome r = handlers_run(a, f);
    int expected = RUN_RUNNING;
    if (!atomic_compare_exchange_strong(&f->state, &expected, RUN_RECORDING))
        return; /* the supervisor abandoned this run and recorded it already */
    outcome_from_handler(a, f, r);
}

static void *worker_main(void *arg)
{
    queue_rt *q = arg;
    agent *a = q->a;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        inflight *f;
        while (!(f = dequeue_locked(q)) && !q->stop_workers) {
            q->idle++;
            pthread_cond_wait(&q->work_cv, &q->mu);
            q->idle--;
        }
        if (!f)
            break;
        q->busy++;
        pthread_mutex_unlock(&q->mu);
        atomic_fetch_add(&f->refs, 1);
        run_task(a, f);
        bool abandoned = atomic_load(&f->abandoned);
        inflight_release(f);
        pthread_mutex_lock(&q->mu);
        if (abandoned) {
            /* The supervisor already freed this slot and started a replacement. */
            q->workers_alive--;
            pthread_cond_broadcast(&q->cv);
            pthread_mutex_unlock(&q->mu);
            jet_warn("queue %s: an abandoned handler finally returned; its thread exits", q->name);
            return NULL;
        }
        q->busy--;
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

void workers_drain(queue_rt *q, int64_t grace_ms)
{
    agent *a = q->a;
    int64_t until = jet_mono_ms() + grace_ms;
    pthread_mutex_lock(&q->mu);
    /* Tasks pulled but not started are handed back at once. */
    inflight *f;
    while ((f = dequeue_locked(q)) != NULL) {
        pthread_mutex_unlock(&q->mu);
        ack_send(a, f->task, "-NAK");
        inflight_unlink(a, f);
        inflight_release(f);
        pthread_mutex_lock(&q->mu);
    }
    q->stop_workers = true;
    pthread_cond_broadcast(&q->work_cv);
    while (q->busy > 0 && jet_mono_ms() < until) {
        jet_cond_wait_ms(&q->cv, &q->mu, 20);
    }
    pthread_mutex_unlock(&q->mu);
    /* Still running after the grace: cancel them and hand their tasks back. */
    pthread_mutex_lock(&a->inflight_mu);
    for (inflight *g = a->inflight_head; g; g = g->next)
        if (g->queue == q && atomic_load(&g->state) == RUN_RUNNING)
            atomic_store(&g->cancel, true);
    pthread_mutex_unlock(&a->inflight_mu);
}

/* ---- supervisor: progress and timeouts ---- */

static pthread_t supervisor_thread;
static bool supervisor_running;
static _Atomic bool supervisor_stop_flag;

static void abandon(agent *a, inflight *f)
{
    int expected = RUN_RUNNING;
    if (!atomic_compare_exchange_strong(&f->state, &expected, RUN_RECORDING))
        return;
    atomic_store(&f->abandoned, true);
    atomic_fetch_add(&abandoned_threads, 1);
    queue_rt *q = f->queue;
    jet_error("task %s: handler %s ignored its timeout for %d ms; abandoning its thread", f->task->id,
              f->task->handler, ABANDON_GRACE_MS);
    pthread_mutex_lock(&q->mu);
    q->busy--;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    jet_err err;
    if (!q->stop_workers && spawn_worker(q, &err) != JET_OK)
        jet_error("%s", err.msg);
    outcome_from_handler(a, f, JET_RETRY);
}

static void supervise_once(agent *a)
{
    int64_t now = jet_mono_ms(), progress_every = a->ack_wait_ms / 3;
    inflight *to_abandon[64];
    int n_abandon = 0;
    pthread_mutex_lock(&a->inflight_mu);
    for (inflight *f = a->inflight_head; f; f = f->next) {
        int st = atomic_load(&f->state);
        /* Keep every task we hold alive on the server: running, waiting for a
         * slot or waiting for its history commit (PostgreSQL outage). */
        if (now - f->last_progress_mono >= progress_every) {
            f->last_progress_mono = now;
            ack_send(a, f->task, "+WPI");
        }
        if (st != RUN_RUNNING)
            continue;
        if (now >= f->deadline_mono && !atomic_load(&f->timed_out)) {
            atomic_store(&f->timed_out, true);
            atomic_store(&f->cancel, true);
        }
        /* Lua handlers are stopped by their hook; one stuck inside a single C
         * library call (a pathological pattern match) is abandoned like a
         * native handler that ignores cancelled(). */
        if (atomic_load(&f->timed_out) && now >= f->deadline_mono + ABANDON_GRACE_MS && n_abandon < 64) {
            atomic_fetch_add(&f->refs, 1);
            to_abandon[n_abandon++] = f;
        }
    }
    pthread_mutex_unlock(&a->inflight_mu);
    for (int i = 0; i < n_abandon; i++) {
        abandon(a, to_abandon[i]);
        inflight_release(to_abandon[i]);
    }
}

static void *supervisor_main(void *arg)
{
    agent *a = arg;
    while (!atomic_load(&supervisor_stop_flag)) {
        supervise_once(a);
        jet_sleep_ms(100);
    }
    return NULL;
}

jet_status supervisor_start(agent *a, jet_err *err)
{
    atomic_store(&supervisor_stop_flag, false);
    if (pthread_create(&supervisor_thread, NULL, supervisor_main, a) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the supervisor thread");
    supervisor_running = true;
    return JET_OK;
}

void supervisor_stop(agent *a)
{
    (void)a;
    if (!supervisor_running)
        return;
    atomic_store(&supervisor_stop_flag, true);
    pthread_join(supervisor_thread, NULL);
    supervisor_running = false;
}
