/* The history checker of the fault-injection suite (tests/fault/, DESIGN
 * §11): a scenario records every submission and every schedule it creates
 * in a directory; the handler (tests/plugins/sidefx.c) appends one line per
 * run to a per-agent side-effect log in DIR/fx/; after a drain the checker
 * reads those files and PostgreSQL (tasks, task_attempts) and counts what
 * was lost, run twice, run unexpectedly, and which cron fires were missed,
 * doubled or late. It reads files only, so a doctored directory and a
 * doctored database check the checker itself (checker_selftest.c).
 *
 * Files of DIR:
 *   submissions.tsv   "<id>\t<kind>" per accepted submission (kind: direct,
 *                     delayed, api) or "<id>\tunconfirmed" for one whose
 *                     outcome the client could not learn (it may or may not
 *                     exist; neither its absence nor its run is an error)
 *   schedules.tsv     "S\t<schedule id>\t<first fire ms>\t<period ms>" when a
 *                     schedule is created, "E\t<schedule id>\t<stop ms>" when
 *                     it is paused for the check
 *   fx/<agent>.log    "<task id> <attempt> <agent> <pid> <unix ms>" per run */
#ifndef JETSCHED_FAULT_CHECKER_H
#define JETSCHED_FAULT_CHECKER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <libpq-fe.h>

typedef enum fc_kind { FC_DIRECT, FC_DELAYED, FC_API, FC_CRON, FC_NKINDS } fc_kind;

extern const char *const fc_kind_names[FC_NKINDS];

/* Recording (thread-safe). fc_open creates DIR and DIR/fx. */
void fc_open(const char *dir);
void fc_submitted(const char *id, fc_kind kind);
void fc_unconfirmed(const char *id);
void fc_schedule(const char *schedule_id, int64_t first_fire_ms, int64_t period_ms);
void fc_schedule_stop(const char *schedule_id, int64_t stop_ms);
/* DIR/fx/<agent>.log (static buffer per call site is the caller's business). */
void fc_fx_path(const char *agent, char *out, size_t len);
void fc_close(void);

typedef struct fc_limits {
    int64_t late_ms;            /* a fire is late when its row was created later than this after its time */
    int64_t end_grace_ms;       /* fires due within this before a schedule's stop may be absent */
    int n_outages;              /* windows [start, end] (wall ms) when a component the leader needs was down: */
    int64_t outages[16][2];     /* a fire due in [start - late_ms, end] may be late by (end - t) + late_ms */
} fc_limits;

typedef struct fc_report {
    long submitted[FC_NKINDS];  /* FC_CRON: fire rows of the recorded schedules */
    long succeeded[FC_NKINDS];
    long lost[FC_NKINDS];       /* not succeeded in PostgreSQL, or no side effect */
    long dup[FC_NKINDS];        /* successful runs of one key beyond the first */
    long reruns[FC_NKINDS];     /* extra runs after an interrupted attempt (at-least-once) */
    long unconfirmed;
    long unexpected_runs;       /* side-effect lines of ids nobody submitted */
    long lines;
    long fires_expected, fires_missed, fires_doubled, fires_late, fires_unexpected;
    long fires_late_ttl;        /* later than late_ms, whatever the outage allowance */
    double lag_p50_ms, lag_p99_ms, lag_max_ms; /* fire row created_at - fire time */
} fc_report;

/* Reads DIR and PostgreSQL; fills *r. Details of every finding go to
 * `details` (may be NULL), at most `max_details` lines. Returns 0, or -1 when
 * the inputs could not be read. */
int fc_check(const char *dir, PGconn *pg, const fc_limits *lim, fc_report *r, FILE *details, int max_details);
/* The targets: lost = 0, duplicates of delayed/API/cron tasks = 0, no
 * unexpected runs, cron fires missed/doubled/late/unexpected = 0. Duplicates
 * of directly published tasks are reported, not judged (at-least-once). */
bool fc_pass(const fc_report *r);
/* A human summary, and one JSON object per line (the fault matrix). */
void fc_print(const fc_report *r, const char *scenario, FILE *out);
void fc_json(const fc_report *r, const char *scenario, double seconds, const char *extra_json, FILE *out);

#endif
