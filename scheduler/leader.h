/* Shared by the leader's modules (not by the API): leader.c (the loop, the
 * PostgreSQL connection, the epoch claim and the fence), fire.c (fire
 * planning and publishing, delayed tasks) and reconcile.c (redispatch,
 * history retention). Everything here runs on the leader thread. */
#ifndef SCHED_LEADER_H
#define SCHED_LEADER_H

#include "publish.h"
#include "schedulerd.h"

#include <jetsched/metrics.h>
#include <jetsched/pgarray.h>

#define DELAYED_BATCH 500   /* delayed tasks per transaction */

/* ---- leader.c ---- */
/* The leader thread's connection (NULL while PostgreSQL is unavailable). */
PGconn *leader_pg(void);
/* Runs sql on it; returns the result when its status is OK (tuples or
 * command), else logs, clears and returns NULL. */
PGresult *leader_q(sched *s, const char *what, const char *sql, int n, const char *const *params);
void leader_rollback(sched *s);
/* BEGIN + the fence (the epoch row FOR SHARE must hold epoch); false when
 * not begun (fenced out: stepped down). */
bool leader_begin_fenced(sched *s, uint64_t epoch);
/* COMMIT after the lease deadline check; false when rolled back. */
bool leader_commit_fenced(sched *s);

/* ---- fire.c ---- */
extern jet_metric *leader_m_publish_fail;
void fire_metrics_init(void);
/* One fenced transaction over up to a batch of due schedules. Returns the
 * number of due schedules seen, -1 on error; *more when there may be more
 * due now. The committed fires are handed to ps (published asynchronously). */
int fire_due(sched *s, uint64_t epoch, sched_pubset *ps, bool *more);
/* The earliest fire time (Unix ms) fire_due committed in state `scheduled`
 * since the last call (INT64_MAX: none), for plan_rewind. */
int64_t fire_take_earliest_planned(void);
/* Queues up to DELAYED_BATCH rows in state `scheduled` due by now and by
 * before_ms (Unix ms: the plan publishes the later ones itself; <0: no
 * bound) in one fenced transaction and hands them to ps. Returns how many,
 * -1 on error. */
int fire_queue_delayed(sched *s, uint64_t epoch, int64_t before_ms, sched_pubset *ps);
/* Waits for every publish of ps, records the stored ones (`queued` with
 * dispatched_at; a planned row moves from `scheduled` to `queued`, never
 * from any other state), the fire lag and the failures, and reopens ps. */
void fire_publish_finish(sched *s, sched_pubset *ps);
/* Counts n delayed tasks moved from scheduled to queued (jetsched_scheduler_delayed_queued_total). */
void fire_count_delayed(int n);
/* Drops the parsed schedules (shutdown). */
void fire_cache_clear(void);

/* ---- plan.c: the in-memory plan of the fire-ahead path ---- */
/* Loads rows in state `scheduled` due inside scheduler.plan_ahead and not yet
 * planned (bounded). Returns how many were added, -1 on error. */
int plan_load(sched *s);
/* Earliest due time (Unix ms) in the plan, INT64_MAX when empty. */
int64_t plan_next_due_ms(void);
/* Publishes (into ps) every planned task due at now_ms, each after a lease
 * check. Returns how many, -1 when the lease is no longer ours (nothing more
 * was published). */
int plan_publish_due(sched *s, uint64_t epoch, sched_pubset *ps, int64_t now_ms);
/* Handles the notifications of channel jetsched_plan received on the leader
 * connection; true when there were any. */
bool plan_notified(sched *s);
/* Rows due at or after ms are (re)loaded by the next plan_load. */
void plan_rewind(int64_t ms);
void plan_drop(const char *id);
size_t plan_size(void);
/* Forgets everything (step-down, new connection). */
void plan_reset(void);

/* ---- reconcile.c ---- */
void reconcile_metrics_init(void);
/* Republishes stale queued tasks; prunes history when due. */
void reconcile(sched *s, uint64_t epoch);

#endif
