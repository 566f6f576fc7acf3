/* Pulling tasks for one queue: raw JetStream pull requests (batch 1) on the
 * queue's own inbox, never more outstanding than free worker slots, lanes
 * chosen by smooth weighted round robin (or strictly by priority).
 *
 * Why raw requests: libnats 3.4.1's natsSubscription_Fetch with batch > 1 can
 * write past its result array when late messages of an earlier pull are
 * buffered (fixed in 3.9.0). We publish to $JS.API.CONSUMER.MSG.NEXT.<stream>.
 * <consumer> ourselves with a reply subject <inbox>.<lane>.<request id>, so
 * every delivery, late or not, is accounted for by request id.
 *
 * Deliveries go to dispatch.c (which owns the slot rule) straight from the
 * subscription callback; this thread expires unanswered requests, resumes
 * after a pause, long-polls idle lanes and hands back late arrivals on drain. */
#ifndef AGENTD_PULLER_H
#define AGENTD_PULLER_H

#include "agent.h"

/* Initialises the queue's puller state (inbox subscription). */
jet_status puller_init(queue_rt *q, jet_err *err);
jet_status puller_start(queue_rt *q, jet_err *err);
/* Wakes the puller (pause state changed, stop requested). */
void puller_wake(queue_rt *q);
/* With q->mu held: sends pull requests for the free slots (dispatch.h)
 * unless the agent is draining or its history backlog is full (called by a
 * worker that just freed its slot). */
void puller_refill_locked(queue_rt *q);
/* Waits for the puller thread to exit (after a->draining/stopped was set) and
 * Naks, without delay, any message that still arrives for it. */
void puller_join(queue_rt *q);

#endif
