/* The hot path's timeline of a task (inflight's *_us fields) and its
 * histograms on /metrics: pulled -> started, finished -> recorded -> acked.
 * Depends on nothing but agent.h, so that inflight, outcome and recorder
 * can all report to it. */
#ifndef AGENTD_TIMELINE_H
#define AGENTD_TIMELINE_H

#include "agent.h"

/* Registers the histograms (once per process). */
void timeline_init(void);
/* The message arrived (inflight_new). */
void timeline_pulled(inflight *f);
/* The handler starts: jetsched_agent_start_delay_seconds. */
void timeline_started(inflight *f);
/* The outcome was decided and handed to the history writer. */
void timeline_finished(inflight *f);
/* Its record committed: jetsched_agent_record_seconds. */
void timeline_recorded(inflight *f);
/* Its message was acted on after the commit: jetsched_agent_ack_seconds
 * (no-op for a task whose record never committed). */
void timeline_acked(inflight *f);

#endif
