/* agentd's use of the PostgreSQL history writer: attempt records with a
 * completion after COMMIT, the idempotency lookup, flush on shutdown, and
 * the health the readiness probe and the pullers' pause read. */
#ifndef AGENTD_RECORDER_H
#define AGENTD_RECORDER_H

#include <stdbool.h>
#include "agent.h"

#include <jetsched/task.h>
#include <stddef.h>

jet_status recorder_start(agent *a, jet_err *err);
/* done(ctx, committed) runs once, after the record's transaction committed
 * (committed = true) or after PostgreSQL rejected it for good (false). */
void recorder_submit(agent *a, inflight *f, const outcome *o, int64_t started_ms, void (*done)(void *, bool),
                     void *ctx);
/* Records that an attempt started (visible as "running" in history, so a
 * long attempt shows, and one whose agent died). Best effort: skipped when
 * full. Written at start, or after history.running_after (outcome.h). */
void recorder_running(agent *a, inflight *f, int64_t started_ms);
/* A redelivered task whose attempts from..to have no record (the agent
 * running them died before its 'running' or outcome record, see
 * history.running_after): a 'lost' attempt row each (the task row
 * 'retrying' at attempt to), committed before this returns, so that poison
 * detection counts them (DESIGN §12). False when not all were stored. */
bool recorder_lost(agent *a, inflight *f, int from, int to);
/* A task's row as the admission step sees it. */
typedef struct recorder_row {
    bool found;            /* false: no row (a direct publish not seen before) */
    jet_task_state status;
    int attempts;          /* attempts recorded so far */
    int handed_back;       /* deliveries of stream message handed_back_seq naked without running */
    uint64_t handed_back_seq;
} recorder_row;
/* The admission lookup: the rows of n task ids in ONE query (id = ANY($1)).
 * rows[i] answers ids[i]. False when PostgreSQL could not be asked (rows
 * all not found) or history is disabled. */
bool recorder_rows(agent *a, const char *const *ids, size_t n, recorder_row *rows);
/* Counts one handed-back delivery (a Nak without running the handler) for
 * each of the n tasks, in ONE statement, so that their next delivery spends
 * no attempt (DESIGN §12): in the task's row when it has a non-terminal
 * one, else (a direct publish never seen by PostgreSQL) in task_handbacks,
 * a second statement only then. False when PostgreSQL could not be reached:
 * the caller naks all the same. */
bool recorder_handed_back(agent *a, agent_task *const *ts, size_t n);
/* The hand-backs counted in task_handbacks for t's stream message (a task
 * without a row); 0 when none or PostgreSQL could not answer. */
int recorder_handbacks(agent *a, const agent_task *t);
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
