/* Per-key concurrency and rate limits in agentd (DESIGN §12 "Flow control",
 * docs/ARCHITECTURE.md "Flow control"): slot leases and rate tokens taken
 * from PostgreSQL (sql/0008_limits.sql) before a task with
 * Jetsched-Concurrency-Key / Jetsched-Rate-Key runs, leases kept and reused
 * for the next task of the same key, renewed while a task runs and returned
 * when idle; a task that cannot start is parked (throttled) and acked. */
#ifndef AGENTD_KEYLIMITS_H
#define AGENTD_KEYLIMITS_H

#include <stdbool.h>
#include "agent.h"

jet_status limits_start(agent *a, jet_err *err);
/* Returns every idle lease (drain) and stops the thread. */
void limits_stop(agent *a);

/* The admission hook, for a task that may otherwise run: true when it was
 * settled here (parked as throttled and acked, the in-flight reference
 * consumed); false when it may run (its slot, if any, is now held). */
bool limits_admit(agent *a, inflight *f);
/* A delivery whose PostgreSQL row is 'throttled' (a stale copy of a parked
 * task): acked without running or recording; the in-flight reference is
 * consumed. */
void limits_drop_stale(agent *a, inflight *f);
/* The handler of f returned: its slot becomes idle (reused or returned). */
void limits_done(agent *a, inflight *f);
/* A handler answered JET_RATE_LIMITED (ABI 1.1): holds the task's
 * Rate-Key (else its Concurrency-Key) back on every agent for
 * retry_after_ms (limit_holds), records the attempt as `rate_limited`
 * (its budget raised by one: it does not count against max_attempts),
 * parks the task and acks it; true when done (the in-flight reference
 * consumed). False when the task has no key or PostgreSQL failed: the
 * caller retries it like JET_RETRY after retry_after_ms. */
bool limits_rate_limited(agent *a, inflight *f, int64_t retry_after_ms, const char *error);

#endif
