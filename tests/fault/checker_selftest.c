/* The checker checks itself: a doctored history (rows in a real PostgreSQL,
 * side-effect logs and submission files written by hand) with one instance
 * of every fault the checker must find: a task lost in the stream (no row),
 * one stuck in `queued`, a success without a side effect, a key that
 * succeeded twice, a run after the success, a run nobody submitted, a
 * missed, a late, a doubled and an off-grid cron fire, a fire after the
 * schedule was paused. A clean history next to it must pass, and
 * at-least-once re-runs and unconfirmed submissions must not be counted as
 * faults. */
#include "checker.h"
#include "harness.h"
#include "sched_support.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int64_t base;
static FILE *fx;

static void task(const char *id, const char *status, const char *sched, int64_t fire_ms, int64_t created_ms)
{
    char fire[64] = "NULL", sid[96] = "NULL";
    if (fire_ms >= 0)
        snprintf(fire, sizeof fire, "to_timestamp(%" PRId64 " / 1000.0)", fire_ms);
    if (sched)
        snprintf(sid, sizeof sid, "'%s'", sched);
    ts_pg_long("INSERT INTO tasks (id, queue, handler, status, schedule_id, scheduled_for, created_at)"
               " VALUES ('%s', 'default', 'sidefx', '%s', %s, %s, to_timestamp(%" PRId64 " / 1000.0))",
               id, status, sid, fire, created_ms);
}

static void attempt(const char *id, int n, const char *status, int64_t started, int64_t finished)
{
    ts_pg_long("INSERT INTO task_attempts (task_id, attempt, agent, status, started_at, finished_at)"
               " VALUES ('%s', %d, 'agent-1', '%s', to_timestamp(%" PRId64 " / 1000.0),"
               " to_timestamp(%" PRId64 " / 1000.0))",
               id, n, status, started, finished);
}

static void line(const char *id, int n, int64_t ms) { fprintf(fx, "%s %d agent-1 4242 %" PRId64 "\n", id, n, ms); }

/* A task that ran once and succeeded at base + at. */
static void good(const char *id, fc_kind kind, int64_t at)
{
    task(id, "succeeded", NULL, -1, base + at - 100);
    attempt(id, 1, "succeeded", base + at, base + at + 20);
    line(id, 1, base + at + 10);
    fc_submitted(id, kind);
}

/* A fire of schedule sid at fire time t, fired `lag` ms late, run once. */
static void fire(const char *sid, int64_t t, int64_t lag)
{
    char id[96];
    snprintf(id, sizeof id, "%s-%" PRId64, sid, t);
    task(id, "succeeded", sid, t, t + lag);
    attempt(id, 1, "succeeded", t + lag + 5, t + lag + 30);
    line(id, 1, t + lag + 10);
}

static void open_dir(const char *name)
{
    char *d = th_tmpdir(), dir[600], p[700];
    snprintf(dir, sizeof dir, "%s/%s", d, name);
    free(d);
    fc_open(dir);
    fc_fx_path("agent-1", p, sizeof p);
    fx = fopen(p, "w");
}

static fc_report check(const char *name)
{
    fclose(fx);
    fc_close();
    char p[700];
    fc_fx_path("", p, sizeof p); /* <dir>/fx/.log */
    char *dir = strdup(p);
    dir[strlen(dir) - strlen("/fx/.log")] = '\0';
    fc_limits lim = {.late_ms = 4000, .end_grace_ms = 1500};
    fc_report r;
    CHECK(fc_check(dir, ts_pg(), &lim, &r, stdout, 100) == 0, "%s: the checker ran", name);
    fc_print(&r, name, stdout);
    free(dir);
    return r;
}

int main(void)
{
    ts_setup("default");
    struct timeval tv;
    gettimeofday(&tv, NULL);
    base = (int64_t)tv.tv_sec * 1000 - 120000;
    int64_t F = (base / 1000 + 5) * 1000; /* a whole second */

    /* ---- a clean history passes ---- */
    open_dir("clean");
    good("ok-d1", FC_DIRECT, 100);
    good("ok-l1", FC_DELAYED, 200);
    good("ok-a1", FC_API, 300);
    /* re-run after an interrupted attempt (agent killed before recording) */
    task("rerun-1", "succeeded", NULL, -1, base);
    line("rerun-1", 1, base + 400);
    attempt("rerun-1", 2, "succeeded", base + 5000, base + 5030);
    line("rerun-1", 2, base + 5010);
    fc_submitted("rerun-1", FC_DELAYED);
    /* an unconfirmed submission that did run, and one that never existed */
    fc_unconfirmed("unconf-1");
    line("unconf-1", 1, base + 700);
    fc_unconfirmed("unconf-2");
    fc_schedule("good", F, 1000);
    for (int k = 0; k < 10; k++)
        fire("good", F + k * 1000, 15);
    fc_schedule_stop("good", F + 9000 + 500); /* the fire of F+9000: 500 ms before the stop */
    fc_report c = check("clean");
    CHECK(fc_pass(&c), "a clean history passes");
    CHECK(c.submitted[FC_DIRECT] == 1 && c.submitted[FC_DELAYED] == 2 && c.submitted[FC_API] == 1,
          "submissions counted (%ld %ld %ld)", c.submitted[FC_DIRECT], c.submitted[FC_DELAYED],
          c.submitted[FC_API]);
    CHECK(c.submitted[FC_CRON] == 10 && c.fires_expected == 10, "ten fires (%ld, expected %ld)",
          c.submitted[FC_CRON], c.fires_expected);
    CHECK(c.reruns[FC_DELAYED] == 1 && c.dup[FC_DELAYED] == 0, "a re-run after an interrupted attempt is no "
          "duplicate (reruns %ld, dup %ld)", c.reruns[FC_DELAYED], c.dup[FC_DELAYED]);
    CHECK(c.unconfirmed == 2 && c.unexpected_runs == 0, "unconfirmed submissions are neither lost nor unexpected");
    CHECK(c.lag_max_ms == 15 && c.lag_p50_ms == 15, "fire lag read from PostgreSQL (max %.0f)", c.lag_max_ms);

    /* ---- a doctored history: every fault once ---- */
    open_dir("doctored");
    good("ok-d2", FC_DIRECT, 100);
    fc_submitted("lost-nostream", FC_DIRECT);             /* published, acked, never ran: no row */
    task("lost-queued", "queued", NULL, -1, base);        /* committed, never ran */
    fc_submitted("lost-queued", FC_DELAYED);
    task("lost-noeffect", "succeeded", NULL, -1, base);   /* recorded success without a side effect */
    attempt("lost-noeffect", 1, "succeeded", base + 10, base + 20);
    fc_submitted("lost-noeffect", FC_API);
    task("dup-twice", "succeeded", NULL, -1, base);       /* the key succeeded twice */
    attempt("dup-twice", 1, "succeeded", base + 10, base + 30);
    line("dup-twice", 1, base + 20);
    attempt("dup-twice", 2, "succeeded", base + 4000, base + 4030);
    line("dup-twice", 2, base + 4020);
    fc_submitted("dup-twice", FC_DELAYED);
    task("dup-after", "succeeded", NULL, -1, base);       /* ran again after the success: no record */
    attempt("dup-after", 1, "succeeded", base + 10, base + 30);
    line("dup-after", 1, base + 20);
    line("dup-after", 2, base + 9000);
    fc_submitted("dup-after", FC_DIRECT);
    line("ghost-1", 1, base + 50);                        /* nobody submitted it */
    fc_schedule("sc", F, 1000);
    for (int k = 0; k < 10; k++) {
        if (k == 3)
            continue;                                     /* missed */
        fire("sc", F + k * 1000, k == 5 ? 9000 : 20);     /* k = 5: late by 9 s */
    }
    char id[96];
    snprintf(id, sizeof id, "sc-%" PRId64, F + 6000);     /* k = 6 ran a second time after its success */
    line(id, 2, F + 6000 + 5000);
    snprintf(id, sizeof id, "sc-%" PRId64, F + 4500);     /* an off-grid fire row */
    task(id, "succeeded", "sc", F + 4500, F + 4510);
    attempt(id, 1, "succeeded", F + 4520, F + 4540);
    line(id, 1, F + 4530);
    fc_schedule_stop("sc", F + 10500);
    fire("sc", F + 12000, 10);                            /* after the pause */
    fc_report d = check("doctored");
    CHECK(!fc_pass(&d), "the doctored history fails");
    CHECK(d.lost[FC_DIRECT] == 1 && d.lost[FC_DELAYED] == 1 && d.lost[FC_API] == 1,
          "three lost tasks found (direct %ld, delayed %ld, api %ld)", d.lost[FC_DIRECT], d.lost[FC_DELAYED],
          d.lost[FC_API]);
    CHECK(d.dup[FC_DELAYED] == 1, "the key that succeeded twice (%ld)", d.dup[FC_DELAYED]);
    CHECK(d.dup[FC_DIRECT] == 1, "the run after the success (%ld)", d.dup[FC_DIRECT]);
    CHECK(d.unexpected_runs == 1, "the unexpected run (%ld)", d.unexpected_runs);
    CHECK(d.fires_missed == 1, "the missed fire (%ld)", d.fires_missed);
    CHECK(d.fires_late == 1 && d.fires_late_ttl == 1, "the late fire (%ld)", d.fires_late);
    CHECK(d.fires_doubled == 2, "the doubled fire and the off-grid row (%ld)", d.fires_doubled);
    CHECK(d.fires_unexpected == 1, "the fire after the pause (%ld)", d.fires_unexpected);
    CHECK(d.lag_max_ms == 9000, "the late fire is the worst lag (%.0f)", d.lag_max_ms);
    CHECK(d.succeeded[FC_DIRECT] == 2, "the good direct task and dup-after succeeded (%ld)", d.succeeded[FC_DIRECT]);

    /* an outage allowance excuses the late fire due during it, nothing else */
    char p[700];
    fc_fx_path("", p, sizeof p);
    p[strlen(p) - strlen("/fx/.log")] = '\0';
    fc_limits lim = {.late_ms = 4000, .end_grace_ms = 1500, .n_outages = 2,
                     .outages = {{F - 20000, F - 15000}, {F + 4000, F + 12000}}};
    fc_report o;
    fc_check(p, ts_pg(), &lim, &o, NULL, 0);
    CHECK(o.fires_late == 0 && o.fires_late_ttl == 1 && o.fires_missed == 1, "outage allowance: late %ld, "
          "beyond TTL %ld, missed still %ld", o.fires_late, o.fires_late_ttl, o.fires_missed);
    return ts_finish();
}
