/* Cancellation: the watch on the jetsched_cancel KV bucket. A cancelled id
 * is remembered for jetstream.cancel_ttl (a task pulled later is settled
 * "cancelled" before it starts) and a running task with that id is
 * signalled (its handler sees cancelled()). */
#ifndef AGENTD_CANCEL_H
#define AGENTD_CANCEL_H

#include <stdbool.h>
#include "agent.h"

jet_status cancel_start(agent *a, jet_err *err);
/* Stops the watch thread and frees the table. */
void cancel_stop(agent *a);

/* A cancellation request for this task id was seen (and has not expired). */
bool cancel_requested(agent *a, const char *task_id);

#endif
