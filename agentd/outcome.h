/* Outcomes of tasks: record the attempt in PostgreSQL through the history
 * writer and, only after the commit, act on the message (ack, Nak with the
 * backoff delay, dead-letter then Term, Term), publish the live event and
 * count it. The NATS actions run on one acker thread so the history
 * writer's completion callbacks never block on the network. */
#ifndef AGENTD_OUTCOME_H
#define AGENTD_OUTCOME_H

#include <stdbool.h>
#include "agent.h"

typedef struct outcome {
    const char *status;   /* succeeded retrying dead expired cancelled duplicate */
    const char *reason;   /* dead: missing_handler invalid_id unknown_handler invalid_header poison
                             attempts_exhausted permanent_failure handler_unavailable;
                             retrying: handler_unavailable */
    const char *error;    /* human message, or NULL */
    const char *result;   /* succeeded: the handler's result, or NULL */
    int64_t delay_ms;     /* retrying: the Nak delay */
} outcome;

jet_status outcome_start(agent *a, jet_err *err);
/* Flushes the history writer and the acker (shutdown), waiting at most wait_ms. */
void outcome_stop(agent *a, int64_t wait_ms);

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
/* The handler is about to run: live event "running". */
void outcome_started(agent *a, inflight *f);
/* On redelivery, Jetsched-Redispatch, or with idempotency checks always on:
 * true when PostgreSQL says this task id already succeeded. */
bool outcome_already_succeeded(agent *a, agent_task *t);

/* Publishes a live event for a task (used here and for progress). */
void event_publish(agent *a, const agent_task *t, const char *status, int attempt, const char *error,
                   const char *extra_json_fields);

#endif
