/* agentd's use of the PostgreSQL history writer: attempt records with a
 * completion after COMMIT, the idempotency lookup, flush on shutdown, and
 * the health the readiness probe and the pullers' pause read. */
#ifndef AGENTD_RECORDER_H
#define AGENTD_RECORDER_H

#include <stdbool.h>
#include "agent.h"

jet_status recorder_start(agent *a, jet_err *err);
/* done(ctx, committed) runs once, after the record's transaction committed
 * (committed = true) or after PostgreSQL rejected it for good (false). */
void recorder_submit(agent *a, inflight *f, const outcome *o, int64_t started_ms, void (*done)(void *, bool),
                     void *ctx);
/* Records that an attempt started (visible as "running" in history, so an
 * attempt whose agent died still shows). Best effort: skipped when full. */
void recorder_running(agent *a, inflight *f, int64_t started_ms);
/* True when PostgreSQL says task `id` already succeeded; *attempts receives
 * the attempts recorded so far (0 when the task is unknown). */
bool recorder_succeeded(agent *a, const char *id, int *attempts);
/* Whether the writer can reach PostgreSQL; why receives the reason when not. */
bool recorder_healthy(agent *a, char *why, size_t len);
/* No new work should be taken: history.max_pending outcomes wait for their
 * commit, or PostgreSQL is unreachable with records waiting. */
bool recorder_backlogged(agent *a);
/* Waits until everything submitted is committed, at most wait_ms; then
 * stops the writer. Safe to call more than once. */
void recorder_flush(agent *a, int64_t wait_ms);
/* Frees what recorder_start allocated (after recorder_flush). */
void recorder_free(agent *a);

#endif
