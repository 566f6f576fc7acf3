/* Admission: whether a pulled task may run, decided before its handler
 * starts (DESIGN §4, §6, §12): malformed (dead), a PostgreSQL row already
 * terminal (refused: acked, recorded `duplicate`, counted; the row is looked
 * up for every delivery, one query for each pull batch), poison
 * (dead), past its deadline (expired), cancelled, no handler (dead) or a
 * handler that cannot run now (retried). */
#ifndef AGENTD_ADMISSION_H
#define AGENTD_ADMISSION_H

#include <stdbool.h>
#include "agent.h"

/* The admission lookup of a pull batch (DESIGN §12), by the thread that
 * received it, before the workers see it (no lock held): the PostgreSQL
 * rows of the n tasks in one query (or one per 256), attached to each
 * (inflight.adm_row) for admission_settle. */
void admission_lookup(agent *a, inflight *const *fs, size_t n);

/* Decides on the row attached by admission_lookup (read again when it is
 * stale or missing). Returns true when the task was settled here (its
 * outcome recorded, the in-flight reference consumed); false when its
 * handler should run. */
bool admission_settle(agent *a, inflight *f);

#endif
