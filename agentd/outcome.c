/* Outcomes: from a handler's return to the record and the post-commit action. */
#include "outcome.h"
#include "acker.h"
#include "cancel.h"
#include "events.h"
#include "keylimits.h"
#include "recorder.h"
#include "timeline.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct outcomes {
    jet_metric *tasks, *run, *latency;
};

jet_status outcome_start(agent *a, jet_err *err)
{
    (void)err;
    struct outcomes *o = jet_xcalloc(1, sizeof *o);
    o->tasks = jet_metric_counter("jetsched_agent_tasks_total", "Task attempts finished, by outcome.",
                                  "queue,handler,status");
    o->run = jet_metric_histogram("jetsched_agent_task_run_seconds", "Handler run time.", "queue,handler");
    o->latency = jet_metric_histogram("jetsched_agent_task_start_latency_seconds",
                                      "From the message being stored in JetStream to the handler starting.", "queue");
    timeline_init();
    a->outcomes = o;
    return JET_OK;
}

void outcome_free(agent *a)
{
    free(a->outcomes);
    a->outcomes = NULL;
}

void outcome_started(agent *a, inflight *f)
{
    agent_task *t = f->task;
    const char *l[] = {t->queue};
    if (t->published_ms > 0)
        jet_metric_observe(a->outcomes->latency, l, (double)(jet_now_ms() - t->published_ms));
    timeline_started(f);
    /* history.running_after = 0: 'running' at every start. Otherwise the
     * supervisor writes it for an attempt still running after that long
     * (outcome_running_due), and a short attempt is recorded once. */
    if (a->set.history_running_after_ms <= 0 && !atomic_exchange(&f->running_recorded, true))
        recorder_running(a, f, jet_now_ms());
    event_publish(a, t, JET_TASK_RUNNING, task_attempt(t), NULL, NULL);
}

bool outcome_running_due(agent *a, inflight *f, int64_t now_mono)
{
    return a->set.history_running_after_ms > 0 && atomic_load(&f->state) == RUN_RUNNING &&
           now_mono - f->started_mono >= a->set.history_running_after_ms && !atomic_load(&f->running_recorded);
}

void outcome_running_late(agent *a, inflight *f)
{
    if (atomic_exchange(&f->running_recorded, true) || atomic_load(&f->state) != RUN_RUNNING)
        return;
    recorder_running(a, f, jet_now_ms() - (jet_mono_ms() - f->started_mono));
}

void outcome_record(agent *a, inflight *f, const outcome *o)
{
    agent_task *t = f->task;
    const char *handler = t->handler[0] ? t->handler : "-";
    const char *l[] = {t->queue, handler, jet_task_state_name(o->status)};
    jet_metric_add(a->outcomes->tasks, l, 1);
    if (f->started_mono) {
        const char *rl[] = {t->queue, handler};
        jet_metric_observe(a->outcomes->run, rl, (double)(jet_mono_ms() - f->started_mono));
    }
    atomic_store(&f->state, RUN_RECORDING);
    timeline_finished(f);
    ack_job *j = acker_job_new(f, o);
    atomic_fetch_add(&a->recording, 1);
    if (o->status == JET_TASK_DEAD)
        jet_warn("task %s (queue %s, handler %s) dead-lettered: %s%s%s", t->id, t->queue, handler, o->reason,
                 o->error ? ": " : "", o->error ? o->error : "");
    recorder_submit(a, f, o, f->started_mono ? jet_now_ms() - (jet_mono_ms() - f->started_mono) : 0,
                    acker_committed, j);
}

static uint64_t random64(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint64_t)jet_mono_ms() * 6364136223846793005ULL;
    return r;
}

void outcome_from_handler(agent *a, inflight *f, jet_outcome r)
{
    agent_task *t = f->task;
    char msg[600];
    pthread_mutex_lock(&f->mu);
    char *err = f->error ? jet_xstrdup(f->error) : NULL;
    size_t result_len = f->result_len;
    char *result = NULL;
    if (f->result) {
        result = jet_xmalloc(result_len + 1);
        memcpy(result, f->result, result_len + 1);
    }
    int64_t retry_in = f->retry_in_ms;
    pthread_mutex_unlock(&f->mu);
    outcome o = {.status = JET_TASK_STATE_COUNT, .error = err, .result = result, .result_len = result_len};
    /* status COUNT: not decided yet */
    if (atomic_load(&f->timed_out)) {
        snprintf(msg, sizeof msg, "timed out after %lld ms%s%s", (long long)t->timeout_ms, err ? ": " : "",
                 err ? err : "");
        o.error = msg;
        r = JET_RETRY;
    } else if (atomic_load(&f->cancel) && cancel_requested(a, t->id)) {
        o.status = JET_TASK_CANCELLED;
        o.error = "cancelled while running";
    } else if (atomic_load(&f->cancel) && atomic_load(&a->draining)) {
        /* Stopped by the drain after the grace: hand it back at once; the
         * interrupted attempt still counts (it may have had side effects). */
        o = (outcome){.status = JET_TASK_RETRYING, .error = "interrupted: the agent shut down", .delay_ms = 0};
    }
    if (o.status == JET_TASK_STATE_COUNT && r == JET_RATE_LIMITED) {
        /* ABI 1.1: hold the task's key and park it (keylimits.c); without a key, a retry after the delay. */
        retry_in = retry_in >= 0 ? retry_in : 1000;
        if (limits_rate_limited(a, f, retry_in, o.error)) {
            free(err);
            free(result);
            return;
        }
        r = JET_RETRY;
    }
    if (o.status == JET_TASK_STATE_COUNT) {
        if (r == JET_SUCCESS) {
            o.status = JET_TASK_SUCCEEDED;
        } else if (r == JET_FAIL) {
            o = (outcome){.status = JET_TASK_DEAD, .reason = JET_REASON_PERMANENT_FAILURE,
                          .error = o.error ? o.error : "failed"};
        } else if (task_attempt(t) >= t->max_attempts) {
            o = (outcome){.status = JET_TASK_DEAD, .reason = JET_REASON_ATTEMPTS_EXHAUSTED,
                          .error = o.error ? o.error : "failed"};
        } else {
            o.status = JET_TASK_RETRYING;
            o.delay_ms = retry_in >= 0 ? retry_in : jet_backoff_delay(&t->backoff, task_attempt(t), random64());
            if (!o.error)
                o.error = "failed";
        }
    }
    outcome_record(a, f, &o);
    free(err);
    free(result);
}

void outcome_retry_or_dead(agent *a, inflight *f, const char *reason, const char *error)
{
    agent_task *t = f->task;
    outcome o = {.status = JET_TASK_RETRYING, .reason = reason, .error = error};
    if (task_attempt(t) >= t->max_attempts)
        o.status = JET_TASK_DEAD;
    else
        o.delay_ms = jet_backoff_delay(&t->backoff, task_attempt(t), random64());
    outcome_record(a, f, &o);
}

void outcome_unavailable(agent *a, inflight *f)
{
    pthread_mutex_lock(&f->mu);
    char *why = f->error ? jet_xstrdup(f->error) : NULL;
    pthread_mutex_unlock(&f->mu);
    outcome_retry_or_dead(a, f, JET_REASON_HANDLER_UNAVAILABLE, why ? why : "handler unavailable");
    free(why);
}
