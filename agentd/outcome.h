/* Outcomes of attempts: what a handler's return (with the timeout, cancel
 * and drain flags) amounts to, the attempt's metrics, and its hand-off to
 * the recorder (PostgreSQL) with the acker acting after the commit. */
#ifndef AGENTD_OUTCOME_H
#define AGENTD_OUTCOME_H

#include <stdbool.h>
#include "agent.h"

jet_status outcome_start(agent *a, jet_err *err);
void outcome_free(agent *a);

/* Records o for f and acts on the message after the commit; consumes the
 * in-flight reference the agent holds on f. */
void outcome_record(agent *a, inflight *f, const outcome *o);
/* Maps a handler's return (and timeout/cancel flags) to an outcome and records it. */
void outcome_from_handler(agent *a, inflight *f, jet_outcome r);
/* The handler exists but cannot run (a Lua script that failed to load; the
 * reason is in f->error): retried with the backoff policy and reason
 * handler_unavailable, dead-lettered with that reason once the attempts are
 * used up. The handler did not run; the delivery still counts as an attempt. */
void outcome_unavailable(agent *a, inflight *f);
/* Retries the task with its backoff (an attempt spent, the reason kept in
 * the history), or dead-letters it with reason when its attempts are used up. */
void outcome_retry_or_dead(agent *a, inflight *f, const char *reason, const char *error);
/* The handler is about to run: start latency, the running event, and the
 * "running" record when history.running_after is 0. */
void outcome_started(agent *a, inflight *f);
/* For the supervisor: f has run for history.running_after without its
 * "running" record (a read of f only: may run under the in-flight lock) ... */
bool outcome_running_due(agent *a, inflight *f, int64_t now_mono);
/* ... and then writes that record (once; not once the outcome is decided). */
void outcome_running_late(agent *a, inflight *f);

#endif
