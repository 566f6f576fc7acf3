/* The task contract shared by agentd, schedulerd and the CLI (DESIGN §3, §4,
 * §12): the header names of a task message and of a dead letter, the task
 * states stored in PostgreSQL and sent in live events, and the reasons a task
 * is dead-lettered. The one place these strings are spelled. */
#ifndef JETSCHED_TASK_H
#define JETSCHED_TASK_H

#include <stdbool.h>

/* ---- headers of a task message (DESIGN §3) ---- */
#define JET_HDR_HANDLER      "Jetsched-Handler"
#define JET_HDR_MSG_ID       "Nats-Msg-Id"
#define JET_HDR_TASK_ID      "Jetsched-Task-Id"      /* names the task instead of Nats-Msg-Id when present */
#define JET_HDR_MAX_ATTEMPTS "Jetsched-Max-Attempts"
#define JET_HDR_TIMEOUT      "Jetsched-Timeout"
#define JET_HDR_DEADLINE     "Jetsched-Deadline"
#define JET_HDR_BACKOFF      "Jetsched-Backoff"
#define JET_HDR_SCHEDULE_ID  "Jetsched-Schedule-Id"
#define JET_HDR_FIRE_TIME    "Jetsched-Fire-Time"
#define JET_HDR_REDISPATCH   "Jetsched-Redispatch"
#define JET_HDR_IDEMPOTENCY  "Jetsched-Idempotency-Check"
#define JET_HDR_ATTEMPT_BUDGET "Jetsched-Attempt-Budget"
#define JET_HDR_TRACEPARENT  "traceparent"
#define JET_HDR_CONCURRENCY_KEY "Jetsched-Concurrency-Key" /* per-key concurrency limit (limit.set) */
#define JET_HDR_RATE_KEY     "Jetsched-Rate-Key"        /* per-key rate limit (limit.set) */
#define JET_HDR_WORKFLOW_ID  "Jetsched-Workflow-Id"  /* a workflow node or callback (docs/WORKFLOWS.md) */

/* ---- headers agentd adds to a dead letter ---- */
#define JET_HDR_QUEUE        "Jetsched-Queue"
#define JET_HDR_PRIORITY     "Jetsched-Priority"
#define JET_HDR_DEAD_REASON  "Jetsched-Dead-Reason"
#define JET_HDR_ATTEMPTS     "Jetsched-Attempts"
#define JET_HDR_LAST_ERROR   "Jetsched-Last-Error"
#define JET_HDR_ORIGINAL_SUBJECT "Jetsched-Original-Subject" /* a swept dead letter: where it was published */

/* Values of Jetsched-Idempotency-Check. */
#define JET_IDEMPOTENCY_ALWAYS      "always"
#define JET_IDEMPOTENCY_REDELIVERED "redelivered"

/* ---- task states (tasks.status, task_attempts.status, live events) ---- */
typedef enum jet_task_state {
    JET_TASK_SCHEDULED, /* delayed: a row waiting for run_at */
    JET_TASK_QUEUED,    /* published, not started */
    JET_TASK_RUNNING,
    JET_TASK_SUCCEEDED,
    JET_TASK_RETRYING,
    JET_TASK_DEAD,
    JET_TASK_EXPIRED,
    JET_TASK_CANCELLED,
    JET_TASK_DUPLICATE,
    JET_TASK_SKIPPED,   /* a fire a schedule's overlap policy skipped */
    JET_TASK_WAITING,   /* held: a workflow node whose dependencies are not done (DESIGN §12) */
    JET_TASK_THROTTLED, /* held: parked by a concurrency/rate limit, acked, published again later */
    JET_TASK_LOST,      /* task_attempts only: an attempt started and never recorded (agent died) */
    JET_TASK_RATE_LIMITED, /* task_attempts only: the handler answered rate_limited (ABI 1.1) */
    JET_TASK_STATE_COUNT
} jet_task_state;

/* The names, indexed by jet_task_state, NULL-terminated (so the table can be
 * walked as a list of the valid strings). */
extern const char *const jet_task_state_names[JET_TASK_STATE_COUNT + 1];

const char *jet_task_state_name(jet_task_state s);
/* True and *out set when s names a state (exact, lower case). */
bool jet_task_state_parse(const char *s, jet_task_state *out);
/* succeeded, dead, expired, cancelled, duplicate, skipped: no attempt follows. */
bool jet_task_state_terminal(jet_task_state s);
/* False for the states only an attempt row has (lost, rate_limited). */
bool jet_task_state_of_task(jet_task_state s);
/* succeeded or duplicate: the work is done (the message is acked). */
bool jet_task_state_ok(jet_task_state s);

/* Headers a handler's submit must not set (DESIGN §12 "Internal headers",
 * plus the id and handler the submit call itself sets): true for
 * Jetsched-Task-Id, -Redispatch, -Idempotency-Check, -Attempt-Budget,
 * -Schedule-Id, -Fire-Time, -Handler, -Workflow-Id and Nats-Msg-Id, any letter case. */
bool jet_header_internal(const char *name);
/* The same two on a state's name (a live event's or a row's status);
 * false for NULL or an unknown name. */
bool jet_task_status_terminal(const char *status);
bool jet_task_status_ok(const char *status);

/* ---- why a task was dead-lettered (Jetsched-Dead-Reason, history error prefix) ---- */
#define JET_REASON_MISSING_HANDLER     "missing_handler"
#define JET_REASON_INVALID_ID          "invalid_id"
#define JET_REASON_INVALID_HEADER      "invalid_header"
#define JET_REASON_UNKNOWN_HANDLER     "unknown_handler"
#define JET_REASON_POISON              "poison"
#define JET_REASON_ATTEMPTS_EXHAUSTED  "attempts_exhausted"
#define JET_REASON_PERMANENT_FAILURE   "permanent_failure"
#define JET_REASON_HANDLER_UNAVAILABLE "handler_unavailable" /* also the reason of such a retry */
#define JET_REASON_INVALID_SUBJECT     "invalid_subject"     /* on a task subject no agent reads (schedulerd's sweeper) */

#endif
