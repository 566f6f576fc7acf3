/* Pulling tasks for one queue: raw JetStream pull requests on the queue's
 * own inbox, one per lane at a time, batch = the lane's share of the free
 * worker slots (smooth weighted round robin, or strictly by priority), so
 * the lanes together never ask for more than can start.
 *
 * Why raw requests: libnats 3.4.1's natsSubscription_Fetch with batch > 1 can
 * write past its result array when late messages of an earlier pull are
 * buffered (fixed in 3.9.0). We publish to $JS.API.CONSUMER.MSG.NEXT.<stream>.
 * <consumer> ourselves with a reply subject <inbox>.<lane>.<request id>.
 *
 * Lanes with work get no_wait requests in rounds (the next round once every
 * answer is in); when all are empty each waits with batch 1 and expires 1 s
 * (a paused lane stops delivering within a second), except that a lane that
 * delivered in the last 2 s waits for its share of the free slots (expires
 * 250 ms): tasks are pushed as they are stored, no round trip each (not
 * at high rates: a share that filled faster than 10,000/s goes back to
 * batch 1 for 2 s). A status reply (404,
 * 408 with the unfilled count, 409) ends its request; a full batch ends
 * silently. Requests unanswered 2 s past their expiry are given up, and all
 * are forgotten on a NATS disconnect/reconnect: what they still deliver is
 * "late" and waits in the ready queue (no Nak, no attempt spent).
 * docs/ARCHITECTURE.md, "Pulling".
 *
 * Deliveries are handled in the subscription callback (libnats' delivery
 * thread): it collects the messages of a pull batch while more of them wait
 * in the subscription, looks their PostgreSQL rows up in one query
 * (admission.h) and hands them to the workers (dispatch.c, which owns the
 * slot rule); this thread gives up unanswered requests, resumes after a
 * pause, waits on idle lanes and hands back arrivals on drain. */
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
