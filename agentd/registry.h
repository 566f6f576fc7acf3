/* The agent registry: a heartbeat of this agent's description into the
 * jetsched_agents KV bucket, and its removal on drain. */
#ifndef AGENTD_REGISTRY_H
#define AGENTD_REGISTRY_H

#include "agent.h"

jet_status registry_start(agent *a, jet_err *err);
/* Stops the heartbeat and deletes this agent's key. */
void registry_stop(agent *a);

#endif
