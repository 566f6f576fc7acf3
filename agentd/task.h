/* A task as agentd holds it: the delivered NATS message, its parsed
 * headers and JetStream delivery metadata, and (when the message is
 * malformed) why it must be dead-lettered instead of run. */
#ifndef AGENTD_TASK_H
#define AGENTD_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <nats/nats.h>
#include <jetsched/backoff.h>
#include <jetsched/names.h>
#include <jetsched/plugin.h>
#include <jetsched/task.h>

/* Headers beyond this many bytes (names + values) make a task malformed. */
#define TASK_MAX_HEADER_BYTES 16384
#define JET_STRINGIFY_(x) #x
#define JET_STRINGIFY(x) JET_STRINGIFY_(x)

/* Defaults of the queue the task came from. */
typedef struct task_defaults {
    int max_attempts;
    int64_t timeout_ms;
    jet_backoff backoff;
} task_defaults;

typedef struct agent_task {
    jet_task pub;                 /* what handlers see; points into the fields below */
    natsMsg *msg;                 /* owned */
    char reply[256];              /* JetStream ack subject */
    char id[JET_TASK_ID_MAX + 1];
    char handler[JET_NAME_MAX + 1];
    char queue[JET_NAME_MAX + 1];
    jet_priority prio;
    uint64_t delivered;           /* delivery count = attempt number */
    uint64_t stream_seq;
    int64_t published_ms;         /* when JetStream stored the message (Unix ms) */
    int max_attempts;
    int64_t timeout_ms;
    int64_t deadline_ms;          /* 0 = none */
    jet_backoff backoff;
    bool redispatch;
    bool check_always;            /* Jetsched-Idempotency-Check: always (schedulerd sets it on all it publishes) */
    int attempt_base;             /* redispatched: attempts recorded before this message (from PostgreSQL) */
    char schedule_id[JET_NAME_MAX + 1];
    int64_t fire_time_ms;
    jet_header *headers;          /* every header: views into msg's strings or hdr_store */
    size_t n_headers;
    char *hdr_store;              /* owned copies of the headers parsed from the raw block (or NULL) */
    int skipped_header_lines;     /* malformed header lines left out (a line without ':', a bad name) */
    char *traceparent;
    const char *workflow;         /* Jetsched-Workflow-Id when the id rule holds (task_workflow), else NULL */
    char ckey[JET_LIMIT_KEY_MAX + 1]; /* Jetsched-Concurrency-Key, or "" */
    char rkey[JET_LIMIT_KEY_MAX + 1]; /* Jetsched-Rate-Key, or "" */
    /* Set when the message cannot run: a DESIGN reason (missing_handler,
     * invalid_id, invalid_header) and a detail naming the header. */
    const char *dead_reason;
    char dead_detail[256];
} agent_task;

/* Parses a delivered message. Never fails for bad input (sets dead_reason
 * instead). Takes ownership of msg. */
agent_task *task_from_msg(natsMsg *msg, const char *queue, jet_priority prio, const task_defaults *def);
/* The task stream's creation time (Unix s): a task published without
 * Nats-Msg-Id (and Jetsched-Task-Id) is named seq-<created>-<stream seq>,
 * unique across stream incarnations (seq-<stream seq> when unknown). */
void task_set_stream_created(int64_t unix_s);
void task_free(agent_task *t);

/* Parses a JetStream ack subject ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts_ns>.<pending>,
 * or the v2 form with domain and account hash). */
bool task_parse_ack_subject(const char *reply, uint64_t *delivered, uint64_t *stream_seq, int64_t *published_ms);

/* The attempt number of this delivery: earlier recorded attempts (for a
 * redispatched task) plus the JetStream delivery count. */
int task_attempt(const agent_task *t);

/* The workflow a task belongs to (docs/WORKFLOWS.md): its Jetsched-Workflow-Id
 * header, honoured only when the task id is "<workflow id>-<node>" (a
 * client cannot put a foreign task into a workflow), else NULL. Worked out
 * once by task_from_msg (events name it on every state change). */
const char *task_workflow(const agent_task *t);

/* Returns the value of a header of the task (case-sensitive), or NULL. */
const char *task_header(const agent_task *t, const char *name);

#endif
