/* schedulerd internals shared between its modules: the daemon state, the
 * election (election.c), the leader's work (leader.c, fire.c, reconcile.c:
 * leader.h) and the API (api.h). */
#ifndef SCHEDULERD_H
#define SCHEDULERD_H

#include <jetsched/config.h>
#include <jetsched/jsobjects.h>

#include <libpq-fe.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

extern const jet_cfg_key *const schedulerd_schema[];

/* The KV key of the election in bucket <prefix>_leader. */
#define SCHED_LEADER_KEY "schedulerd"

typedef struct sched {
    jet_config *cfg;
    char id[200];              /* scheduler.id */
    char value[300];           /* KV value: "<id> pid=<pid> nonce=<ulid>" (this incarnation) */
    jet_js_names names;
    natsConnection *nc;
    jsCtx *js;
    int64_t ttl_ms;            /* jetstream.leader_ttl */

    /* Election state, written by the election thread. */
    _Atomic uint64_t won_rev;      /* revision of the winning Create (the epoch); 0: not leader */
    _Atomic int64_t deadline_mono; /* stop acting at this CLOCK_MONOTONIC ms */
    _Atomic bool abdicate;         /* set by the leader thread when fenced out: stop renewing */
    _Atomic bool stop;             /* shutting down */

    /* Leader state, written by the leader thread. */
    _Atomic uint64_t epoch;        /* fenced epoch we act under; 0: not acting */
    _Atomic bool pg_ok;

    /* Reloadable settings (ms). */
    _Atomic int64_t tick_ms, catchup_ms, misfire_ms, reconcile_ms, redispatch_ms, retention_ms;
    _Atomic int64_t max_payload;   /* api.max_payload (bytes) */
    _Atomic int64_t plan_ahead_ms, plan_max_tasks, plan_max_bytes; /* scheduler.plan_* */

    pthread_t election_thread, leader_thread;
} sched;

/* Election (election.c). */
jet_status election_start(sched *s, jet_err *err);
/* Stops campaigning; resigns (conditional delete of the key) if we hold it. */
void election_stop(sched *s);
/* True when the election says we hold a valid lease now (monotonic deadline). */
bool election_holds(sched *s, uint64_t *rev);

/* The leader's work (leader.c): its thread acts while the election holds a
 * lease and the epoch is fenced in PostgreSQL. */
jet_status leader_start(sched *s, jet_err *err);
void leader_stop(sched *s);
void leader_metrics_init(sched *s);

/* The leader's sampled gauges for /metrics (stats.c): started after the
 * leader thread, stopped after leader_stop (which sets s->stop). */
void stats_metrics_init(void);
jet_status stats_start(sched *s, jet_err *err);
/* The leader's per-minute rollup of finished tasks (rollup.c). */
jet_status rollup_start(sched *s, jet_err *err);
void rollup_stop(sched *s);
void stats_stop(sched *s);
/* The leader's sweeper of messages on task subjects no agent reads
 * (sweep.c): started and stopped with the stats thread. */
/* The leader's releaser of throttled tasks (release.c): started and
 * stopped with the stats thread. */
jet_status release_start(sched *s, jet_err *err);
void release_stop(sched *s);
jet_status sweep_start(sched *s, jet_err *err);
void sweep_stop(sched *s);
/* True when subject is a lane <prefix>.task.<valid queue>.<priority>;
 * queue receives the DLQ queue token for it (the queue when valid, else
 * "_invalid"). */
bool sweep_subject_is_lane(const char *prefix, const char *subject, char *queue, size_t qlen);
/* Counts a won election (election.c). */
void stats_leader_won(void);

#endif
