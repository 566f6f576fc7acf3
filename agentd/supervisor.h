/* The supervisor: one thread that walks the in-flight list every 100 ms,
 * sends progress (+WPI, through the acker) for every task held longer than
 * AckWait/3 since the last one (running, waiting for a slot, or waiting for
 * its history commit), cancels handlers past their timeout and abandons the
 * thread of one that ignores the cancel for ABANDON_GRACE_MS. */
#ifndef AGENTD_SUPERVISOR_H
#define AGENTD_SUPERVISOR_H

#include <stdint.h>
#include "agent.h"

jet_status supervisor_start(agent *a, jet_err *err);
void supervisor_stop(agent *a);
/* Handler threads abandoned after a timeout (metric). */
uint64_t supervisor_abandoned(agent *a);

#endif
