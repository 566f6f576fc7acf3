/* The in-flight list: every task this agent holds, from its arrival until
 * the action on its message (ack, Nak, Term). inflight objects are reference
 * counted (see agent.h); the list is a->inflight, guarded by its own mutex. */
#ifndef AGENTD_INFLIGHT_H
#define AGENTD_INFLIGHT_H

#include "agent.h"

void inflight_init(agent *a);
void inflight_destroy(agent *a);

/* Wraps a parsed task (taking ownership), links it into the list; one reference. */
inflight *inflight_new(agent *a, queue_rt *q, agent_task *t);
void inflight_retain(inflight *f);
void inflight_release(inflight *f);
/* Removes f from the list (once its message was acted on). */
void inflight_unlink(agent *a, inflight *f);

/* Calls fn for every task in the list, with the list locked: fn must not
 * block, take q->mu, or call back into this module. */
void inflight_foreach(agent *a, void (*fn)(inflight *f, void *arg), void *arg);

/* Tasks held (waiting, running, recording). */
int inflight_count(agent *a);

#endif
