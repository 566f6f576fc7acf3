/* Admission checks before a handler runs. */
#include "admission.h"
#include "cancel.h"
#include "handlers.h"
#include "outcome.h"
#include "recorder.h"

#include <jetsched/timeutil.h>

#include <stdio.h>

/* On redelivery, Jetsched-Redispatch, or with idempotency checks always on:
 * true when PostgreSQL says this task id already succeeded. */
static bool already_succeeded(agent *a, agent_task *t)
{
    /* Tasks schedulerd published (API, delayed, cron, reconciler) carry
     * Jetsched-Idempotency-Check: always, since their row exists before the
     * message: after a nats-server crash an acknowledged message can come
     * back as a first delivery (docs/RELIABILITY.md), which the delivery
     * count alone would not catch. */
    bool always = atomic_load(&a->idempotency_always) || t->check_always;
    if (!(t->delivered > 1 || t->redispatch || always))
        return false;
    int attempts = 0;
    bool done = recorder_succeeded(a, t->id, &attempts);
    /* A redispatched (republished) task starts a new delivery count: its
     * attempts continue after the ones already recorded. */
    if (t->redispatch || always)
        t->attempt_base = attempts >= (int)t->delivered ? attempts - (int)t->delivered + 1 : 0;
    t->pub.attempt = task_attempt(t);
    return done;
}

bool admission_settle(agent *a, inflight *f)
{
    agent_task *t = f->task;
    outcome o = {0};
    if (t->dead_reason) {
        o = (outcome){.status = JET_TASK_DEAD, .reason = t->dead_reason, .error = t->dead_detail};
    } else if ((int64_t)t->delivered > t->max_attempts) {
        o = (outcome){.status = JET_TASK_DEAD, .reason = JET_REASON_POISON,
                      .error = "delivered more times than its max attempts: an earlier attempt never finished "
                               "(the agent running it crashed or was killed)"};
    } else if (t->deadline_ms && jet_now_ms() > t->deadline_ms) {
        o = (outcome){.status = JET_TASK_EXPIRED, .error = "not started before its Jetsched-Deadline"};
    } else if (cancel_requested(a, t->id)) {
        o = (outcome){.status = JET_TASK_CANCELLED, .error = "cancelled before it started"};
    } else if (already_succeeded(a, t)) {
        o = (outcome){.status = JET_TASK_DUPLICATE, .error = "its idempotency key already succeeded"};
    } else if (!handlers_exists(a, t->handler)) {
        if (handlers_unavailable_reason(a, t->handler, f)) {
            outcome_unavailable(a, f);
            return true;
        }
        /* Another agent of the queue (or this one after a rolling upgrade)
         * may serve it: retry with backoff like handler_unavailable, and
         * dead-letter (reason kept) only when the attempts run out. */
        char why[200];
        snprintf(why, sizeof why, "agent %.64s has no plugin or Lua script serving handler %.64s", a->id,
                 t->handler);
        outcome_retry_or_dead(a, f, JET_REASON_UNKNOWN_HANDLER, why);
        return true;
    } else {
        return false;
    }
    outcome_record(a, f, &o);
    return true;
}
