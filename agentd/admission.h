/* Admission: whether a pulled task may run, decided before its handler
 * starts (DESIGN §4, §6, §12): malformed (dead), a PostgreSQL row already
 * terminal (refused: acked, recorded `duplicate`, counted; the row is looked
 * up for every delivery, one query for the deliveries at hand), poison
 * (dead), past its deadline (expired), cancelled, no handler (dead) or a
 * handler that cannot run now (retried). */
#ifndef AGENTD_ADMISSION_H
#define AGENTD_ADMISSION_H

#include <stdbool.h>
#include "agent.h"

/* Returns true when the task was settled here (its outcome recorded, the
 * in-flight reference consumed); false when its handler should run. */
bool admission_settle(agent *a, inflight *f);

#endif
