/* Dispatch: the hand-off between a queue's puller and its workers, and the
 * one rule on a queue's slots:
 *
 *     busy + ready + arriving + admitting + outstanding <= concurrency
 *
 * busy = workers running a task, ready = tasks pulled, admitted and waiting
 * for a worker, arriving = deliveries of the pull batch being received,
 * admitting = deliveries whose admission lookup (one PostgreSQL query for
 * the batch, admission.h) is running, outstanding = messages the pull
 * requests still out may deliver (the sum of their unfilled batches). The
 * puller asks dispatch_free_slots() before every pull request and asks for
 * at most that many; a delivery moves a slot from outstanding to arriving,
 * the batch's lookup moves it to admitting and then ready, a worker taking
 * it moves it to busy, and a finished task frees it. A late delivery (no
 * request of ours was waiting for it: puller.h) is queued all the same, so
 * the sum may exceed concurrency for a moment; no pull is sent until it is
 * back below, and no more than concurrency handlers ever run (one per
 * worker). Every function here is called with q->mu held unless it says
 * otherwise. */
#ifndef AGENTD_DISPATCH_H
#define AGENTD_DISPATCH_H

#include "agent.h"

/* Slots a new pull request may use (never negative). */
int dispatch_free_slots(const queue_rt *q);

/* Pull requests: n more messages may be delivered / n will not be any more
 * (delivered, or the request ended with a status, or it was forgotten). */
void dispatch_request_sent(queue_rt *q, int n);
void dispatch_request_done(queue_rt *q, int n);

/* A delivered task: wraps the message (ownership taken) and adds it to the
 * batch arriving (not yet visible to the workers). */
void dispatch_arrived(queue_rt *q, natsMsg *m, jet_priority lane);
/* The batch arriving, taken out for its admission lookup (counted as
 * admitting until dispatch_admitted): *n tasks in a fresh array (freed by
 * the caller), NULL when none. */
inflight **dispatch_take_arriving(queue_rt *q, size_t *n);
/* Tasks taken by dispatch_take_arriving, looked up: queued for the
 * workers. Does not wake a worker (dispatch_wake_next). */
void dispatch_admitted(queue_rt *q, inflight **fs, size_t n);
/* Workers are woken one at a time, in a chain: a ready task wakes an idle
 * worker only when no other is already being woken, and each worker that
 * takes a task with more left ready wakes the next. Running workers take
 * the ready tasks in a loop meanwhile, so short tasks are run by the few
 * workers already awake (one wake-up and context switch for several tasks,
 * not one per task) and long ones still get a worker each, one wake-up
 * latency after the other. True when the caller must call dispatch_wake()
 * after unlocking q->mu (so that the woken worker does not block on it);
 * counted in q->waking until that worker is back from dispatch_wait. */
bool dispatch_wake_next(queue_rt *q);
/* Wakes one idle worker (without q->mu). */
void dispatch_wake(queue_rt *q);
/* Wakes every worker waiting on the queue (with q->mu). */
void dispatch_wake_all(queue_rt *q);

/* Workers: the next ready task (NULL when none), counted busy. */
inflight *dispatch_take(queue_rt *q);
/* A ready task taken out for good (drain), not counted busy. */
inflight *dispatch_take_unstarted(queue_rt *q);
/* A worker waits for a ready task or a stop. */
void dispatch_wait(queue_rt *q);
/* A busy slot is free again (the task finished, or was abandoned). */
void dispatch_done(queue_rt *q);

void dispatch_free(queue_rt *q); /* at exit, no lock */

#endif
