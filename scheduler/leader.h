/* Shared by the leader's modules (not by the API): leader.c (the loop, the
 * PostgreSQL connection, the epoch claim and the fence), fire.c (fire
 * planning and publishing, delayed tasks) and reconcile.c (redispatch,
 * history retention). Everything here runs on the leader thread. */
#ifndef SCHED_LEADER_H
#define SCHED_LEADER_H

#include "publish.h"
#include "schedulerd.h"

#include <jetsched/metrics.h>

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

/* Growing PostgreSQL array literal ({"a","b",NULL}); every element quoted. */
typedef struct pgarr {
    char *buf;
    size_t len, cap, n;
} pgarr;

void pgarr_add(pgarr *a, const char *v);
/* v < 0 is NULL (no time). */
void pgarr_add_ms(pgarr *a, int64_t v);
const char *pgarr_lit(pgarr *a);

/* ---- fire.c ---- */
extern jet_metric *leader_m_publish_fail;
void fire_metrics_init(void);
/* One fenced transaction over up to a batch of due schedules. Returns the
 * number of due schedules seen, -1 on error; *more when there may be more
 * due now. The committed fires are handed to ps (published asynchronously). */
int fire_due(sched *s, uint64_t epoch, sched_pubset *ps, bool *more);
/* Queues up to DELAYED_BATCH due delayed tasks in one fenced transaction and
 * hands them to ps. Returns how many, -1 on error. */
int fire_queue_delayed(sched *s, uint64_t epoch, sched_pubset *ps);
/* Waits for every publish of ps, records dispatched_at of the stored ones,
 * the fire lag and the failures, and reopens ps. */
void fire_publish_finish(sched *s, sched_pubset *ps);
/* Drops the parsed schedules (shutdown). */
void fire_cache_clear(void);

/* ---- reconcile.c ---- */
void reconcile_metrics_init(void);
/* Republishes stale queued tasks; prunes history when due. */
void reconcile(sched *s, uint64_t epoch);

#endif
