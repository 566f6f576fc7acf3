/* The running agent: its configuration, connections, queues and the state
 * every module of agentd shares. One `agent` per process. */
#ifndef AGENTD_AGENT_H
#define AGENTD_AGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <nats/nats.h>
#include <libpq-fe.h>
#include <jetsched/config.h>
#include <jetsched/jsobjects.h>

#include <jetsched/task.h>

#include "agentd.h"
#include "task.h"

typedef struct agent agent;
typedef struct queue_rt queue_rt;

/* A task on its way through the agent. Reference counted: the worker
 * running its handler and the outcome path each hold a reference, because a
 * handler that overran its timeout may still be running when the outcome is
 * recorded (the thread is abandoned; see worker.c). */
typedef enum run_state {
    RUN_WAITING,     /* pulled, not started */
    RUN_RUNNING,     /* handler running */
    RUN_RECORDING,   /* outcome submitted to history, waiting for the commit */
    RUN_DONE,
} run_state;

typedef struct inflight {
    agent_task *task;
    queue_rt *queue;
    _Atomic int refs;
    _Atomic int state;            /* run_state */
    _Atomic bool cancel;          /* cancelled() seen by handlers */
    _Atomic bool timed_out;
    _Atomic bool abandoned;       /* the worker gave up on the handler thread */
    int64_t started_mono;         /* when the handler started */
    int64_t deadline_mono;        /* started + timeout */
    int64_t last_progress_mono;   /* last +WPI sent */
    /* The hot path's timeline (microseconds, monotonic; 0: not reached), for
     * the pulled -> started and finished -> recorded -> acked histograms. */
    int64_t pulled_us, started_us, finished_us, recorded_us;
    _Atomic bool running_recorded; /* the 'running' record was submitted (history.running_after) */
    /* admission.c: the task's PostgreSQL row, read by the admission lookup
     * of its pull batch before a worker took it (NULL: not read; the worker
     * reads it), whether PostgreSQL answered, and when (jet_mono_us). */
    struct recorder_row *adm_row;
    bool adm_asked;
    int64_t adm_read_us;
    /* Outcome details set by the handler through the host API. */
    pthread_mutex_t mu;
    char *result;
    size_t result_len;     /* the result may hold NULs (binary output of echo, exec, http) */
    char *error;
    int64_t retry_in_ms;          /* -1: use the backoff policy */
    struct wf_run *wf;            /* workflow.c: the workflow calls' state of this attempt (f->mu), or NULL */
    struct inflight *prev, *next; /* the agent's in-flight list */
} inflight;

/* One served queue: its lanes, puller thread and worker pool. q->mu guards
 * every field below it but the ones marked otherwise. */
struct queue_rt {
    agent *a;
    char name[JET_NAME_MAX + 1];
    int concurrency;
    task_defaults defaults;        /* reloadable */

    pthread_mutex_t mu;
    pthread_cond_t cv;             /* puller, drain: slots freed, messages arrived, stop */
    pthread_cond_t work_cv;        /* workers: a task is ready, or stop */

    /* dispatch.c: the slots. busy + ready_len + arriving_len + admitting
     * + outstanding <= concurrency. */
    inflight **ready;              /* FIFO of pulled tasks waiting for a worker */
    size_t ready_head, ready_len, ready_cap;
    inflight **arriving;           /* deliveries of the batch being received, before their admission lookup */
    size_t arriving_len, arriving_cap;
    int admitting;                 /* taken from arriving for the lookup, not yet ready */
    int busy;                      /* workers running a handler */
    int idle;                      /* workers waiting on work_cv */
    int waking;                    /* workers signalled, not yet back from the wait (dispatch.c) */
    int outstanding;               /* messages the pull requests may still deliver */

    /* worker.c: the pool. */
    int workers_alive;
    bool stop_workers;

    /* puller.c: lanes and pull requests. */
    char pull_subject[JET_PRIO_COUNT][256];
    struct lane {
        int64_t weight, current;   /* smooth weighted round robin */
        int64_t empty_until_mono;  /* a no_wait pull found nothing: skip until then */
        uint64_t pulled;           /* messages received (metrics, tests) */
        uint64_t late;             /* deliveries no request of ours was waiting for */
        int64_t active_mono;       /* the last delivery on the lane (an idle wait asks it for more) */
        int64_t busy_until_mono;   /* a share filled fast (a high rate): idle waits are batch 1 until then */
        int64_t req_sent_mono;     /* when the outstanding request was sent */
        int req_batch;             /* and its batch */
        int max_batch;             /* the consumer's MaxRequestBatch once a 409 told it (0: none) */
        /* The lane's one outstanding pull request (req_id 0: none). */
        uint64_t req_id;
        int req_left;              /* messages it may still deliver (counted in outstanding) */
        bool req_longpoll;         /* an idle wait (expires) rather than a no_wait round */
        int64_t req_giveup_mono;   /* unanswered by then: forgotten */
        _Atomic bool paused;       /* control.c: paused in KV jetsched_control (read without q->mu) */
    } lanes[JET_PRIO_COUNT];
    bool strict;
    char inbox[128];
    natsSubscription *sub;
    uint64_t next_req;
    uint64_t reconnects_seen;      /* jet_nats_reconnects() when the requests were last counted */
    int longpoll_rotate;           /* which lane an idle wait starts with when slots are few */
    natsMsg **arrived;             /* messages/status replies handed over by the subscription callback */
    size_t arrived_len, arrived_cap;
    pthread_t puller;
};

/* What a finished (or settled) attempt amounts to: built by outcome.c (or
 * admission.c), stored by recorder.c, acted on by acker.c. */
typedef struct outcome {
    jet_task_state status; /* succeeded retrying dead expired cancelled duplicate */
    const char *reason;    /* dead: a JET_REASON_*; retrying: JET_REASON_HANDLER_UNAVAILABLE or NULL */
    const char *error;     /* human message, or NULL */
    const char *result;    /* succeeded: the handler's result, or NULL */
    size_t result_len;     /* its length (it may hold NULs; the history writer makes it text) */
    int64_t delay_ms;      /* retrying: the Nak delay */
} outcome;

/* The in-flight list (inflight.c): every task the agent holds, from its
 * arrival to the action on its message. */
typedef struct inflight_list {
    pthread_mutex_t mu;
    inflight *head;
    _Atomic int count;
} inflight_list;

struct agent {
    jet_config *cfg;
    agentd_settings set;           /* cfg bound to types (agentd.h); reloadable values are copied out on SIGHUP */
    char id[128];
    jet_js_names names;
    natsConnection *nc;
    jsCtx *js;
    queue_rt *queues;
    size_t nqueues;
    _Atomic bool draining;         /* SIGTERM: stop pulling */
    _Atomic bool stopped;          /* everything must exit now */
    int64_t ack_wait_ms;
    _Atomic bool idempotency_always; /* idempotency.check = always (reloadable) */

    inflight_list inflight;        /* inflight.c */
    _Atomic int recording;         /* outcomes waiting for their PostgreSQL commit (outcome.c +, acker.c -) */
    int64_t max_recording;         /* history.max_pending */

    /* Each module's own state, created by its start function. */
    struct recorder *recorder;     /* recorder.c: history writer, idempotency lookups */
    struct outcomes *outcomes;     /* outcome.c: its metrics */
    struct acker *acker;           /* acker.c: the post-commit action thread */
    struct supervisor *supervisor; /* supervisor.c: progress and timeouts */
    struct cancel_watch *cancels;  /* cancel.c: the cancellation watch */
    struct control_watch *control; /* control.c: queue/lane pauses */
    struct limits *limits;         /* keylimits.c: per-key concurrency/rate limits */
    struct handlers *handlers;     /* handlers.c: plugins + Lua */
    struct registry *registry;     /* registry.c: the heartbeat */
};

#endif
