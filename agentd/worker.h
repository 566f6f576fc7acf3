/* The worker pool of a queue: threads that take pulled tasks from dispatch
 * in order, have admission.c settle the ones that must not run, run the
 * others' handlers and hand the result to outcome.c; then free their slot
 * and ask the puller for the next task. */
#ifndef AGENTD_WORKER_H
#define AGENTD_WORKER_H

#include "agent.h"

jet_status workers_start(queue_rt *q, jet_err *err);
/* Lets the workers finish what is queued and running, up to grace_ms; then
 * hands the rest back (Nak without delay) and cancels what still runs. */
void workers_drain(queue_rt *q, int64_t grace_ms);
/* Stops the pool and waits up to wait_ms for every worker thread to exit
 * (the queue's memory may be freed only then); false when some did not
 * (a handler abandoned after its timeout still runs). */
bool workers_stop(queue_rt *q, int64_t wait_ms);
/* The supervisor gave up on f's handler thread: frees its slot and starts a
 * replacement worker (unless the pool is stopping). The abandoned thread
 * exits when its handler finally returns. */
void worker_replace_abandoned(queue_rt *q);

#endif
