/* Admission: whether a pulled task may run, decided before its handler
 * starts (DESIGN §4, §6): malformed (dead), poison (dead), past its deadline
 * (expired), cancelled, already succeeded (duplicate, asking PostgreSQL on a
 * redelivery, a redispatch, or with idempotency checks always on), no handler
 * (dead) or a handler that cannot run now (retried). The per-batch
 * PostgreSQL admission step of DESIGN §12 belongs here. */
#ifndef AGENTD_ADMISSION_H
#define AGENTD_ADMISSION_H

#include <stdbool.h>
#include "agent.h"

/* Returns true when the task was settled here (its outcome recorded, the
 * in-flight reference consumed); false when its handler should run. */
bool admission_settle(agent *a, inflight *f);

#endif
