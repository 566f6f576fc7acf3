/* Flow control: the watch on the jetsched_control KV bucket. A key
 * `queue.<queue>` or `queue.<queue>.<priority>` whose value says
 * {"paused": true} pauses that queue or lane: the puller sends no new pull
 * request for it (the ones outstanding expire within a second), tasks already
 * delivered to this agent run, nothing is nacked. Deleting the key (or a
 * value without "paused": true) resumes. Metric jetsched_agent_lane_paused
 * {queue, priority}. */
#ifndef AGENTD_CONTROL_H
#define AGENTD_CONTROL_H

#include "agent.h"

/* Opens the bucket, applies its current keys (before the pullers start),
 * then follows changes on its own thread. */
jet_status control_start(agent *a, jet_err *err);
void control_stop(agent *a);

#endif
