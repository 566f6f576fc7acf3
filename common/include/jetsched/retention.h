/* History retention: deletes finished tasks (terminal states) older than an
 * age, with their attempts, in bounded batches so that no statement holds
 * many locks or runs long. Called by the schedulerd leader
 * (history.retention). */
#ifndef JETSCHED_RETENTION_H
#define JETSCHED_RETENTION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <jetsched/status.h>

#define JET_RETENTION_BATCH_DEFAULT 1000

typedef struct jet_retention_result {
    int64_t tasks;     /* task rows deleted (their task_attempts rows go with them) */
    int64_t batches;   /* DELETE statements run */
    bool complete;     /* false: stopped by *stop or max_ms with old rows left */
} jet_retention_result;

/* Deletes tasks in a terminal state (succeeded dead expired cancelled
 * duplicate skipped) that finished more than older_than_ms ago, batch_rows
 * (<= 0: JET_RETENTION_BATCH_DEFAULT) per statement, each statement its own
 * transaction, looping until none is left, *stop (may be NULL) turns true or
 * max_ms (<= 0: no limit) has passed. Rows locked by others are skipped. */
jet_status jet_retention_prune(PGconn *conn, int64_t older_than_ms, int batch_rows, const _Atomic bool *stop,
                               int64_t max_ms, jet_retention_result *out, jet_err *err);

#endif
