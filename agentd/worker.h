/* The worker pool of a queue: threads that take pulled tasks in order, run
 * the checks of DESIGN §4/§6 (malformed, poison, expired, cancelled,
 * duplicate) and then the handler, and hand the outcome to outcome.c.
 * Also the in-flight list and its supervisor thread: progress (+WPI) at
 * AckWait/3, timeouts (cancel, then abandon the thread after a grace). */
#ifndef AGENTD_WORKER_H
#define AGENTD_WORKER_H

#include "agent.h"

/* Called with q->mu held: wraps the message and queues it. Does not wake a
 * worker: the caller calls worker_wake() after unlocking when this returns
 * true (a worker is idle), so the woken worker does not block on q->mu. */
bool worker_enqueue_locked(queue_rt *q, natsMsg *m, jet_priority lane);
/* Wakes one idle worker (call without q->mu). */
void worker_wake(queue_rt *q);

jet_status workers_start(queue_rt *q, jet_err *err);
/* Lets the workers finish what is queued and running, up to grace_ms; then
 * hands the rest back (Nak without delay) and joins the threads that returned. */
void workers_drain(queue_rt *q, int64_t grace_ms);

jet_status supervisor_start(agent *a, jet_err *err);
void supervisor_stop(agent *a);

/* Reference counting of in-flight tasks. */
void inflight_release(inflight *f);
/* Removes f from the agent's in-flight list (once its message was acted on). */
void inflight_unlink(agent *a, inflight *f);

/* Number of handler threads abandoned after a timeout (metric). */
extern _Atomic uint64_t abandoned_threads;

#endif
