/* Delayed tasks whose message is already in the stream (a pub-ack that timed
 * out, a predecessor that published and died before its scheduled -> queued
 * update): the planned publish is dropped as a duplicate and the row is
 * recorded as dispatched (queued, dispatched_at), so neither the at-due path
 * nor the reconciler publishes it again, and
 * jetsched_scheduler_delayed_queued_total counts each task once. Then
 * 30,000 delayed tasks due in the same millisecond: the plan loads them in
 * pages of 20,000 ordered by (due, id), so the second page goes on after the
 * last id of the first (it used to reload the first page forever and leave
 * the rest to the at-due path). No agent runs: the stream keeps every
 * message. */
#include "sched_support.h"
#include "harness.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 50
#define TIES 30000

static atomic_int seen;

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    atomic_fetch_add(&seen, 1);
    natsMsg_Destroy(m);
}

int main(void)
{
    ss_env();
    ts_setup("default");
    natsSubscription *sub = NULL;
    CHECK(natsConnection_Subscribe(&sub, ts_nats(), "jetsched.task.default.normal", on_msg, NULL) == NATS_OK,
          "subscribed to the lane's subject");
    natsConnection_Flush(ts_nats());
    ts_agent s1;
    /* a wider window than the default 2 s: the 30,000 rows below must all be
     * loaded before they are due even on a loaded machine under ASan */
    setenv("JETSCHED_SCHEDULER_PLAN_AHEAD", "5s", 1);
    ss_start(&s1, "dup-1", "log = { level = \"debug\"; };");
    char *holder = ss_wait_holder(NULL, 10000);
    CHECK(*holder, "a leader");
    free(holder);

    /* Due in 3 s (inside scheduler.plan_ahead: the plan path),
     * each already published once under its id. */
    ts_pg_long("INSERT INTO tasks (id, queue, handler, priority, status, scheduled_for)"
               " SELECT 'dup-' || g, 'default', 'log', 'normal', 'scheduled', now() + interval '3s'"
               " FROM generate_series(1, %d) g", N);
    for (int i = 1; i <= N; i++) {
        char id[32];
        snprintf(id, sizeof id, "dup-%d", i);
        ts_publish("default", "normal", "log", id, "x", 1, NULL);
    }
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == N, "the %d messages are in the stream", N);

    long queued = ts_wait_long(N, 15000,
                               "SELECT count(*) FROM tasks WHERE id LIKE 'dup-%%' AND status = 'queued'"
                               " AND dispatched_at IS NOT NULL");
    CHECK(queued == N, "every row recorded as dispatched although its publish was a duplicate (%ld)", queued);
    /* Long enough for the at-due path (next tick) and the reconciler
     * (dispatched_at NULL and updated 2 s ago) to act if they would. */
    ts_sleep_ms(4500);
    natsConnection_Flush(ts_nats());
    int got = atomic_load(&seen);
    /* Once each by schedulerd after the test's own publish; twice for those
     * whose planned publish's pub-ack timed out (a loaded machine: logged, and
     * the at-due path publishes again, by design). Without the fix: three
     * times (the plan, the at-due path, the reconciler). */
    bool timed_out = ts_log_contains(&s1, "pub-ack");
    CHECK(got == 2 * N || (timed_out && got > 2 * N && got <= 3 * N),
          "each task published once by schedulerd after the test's own publish (%d messages, want %d%s)", got,
          2 * N, timed_out ? " or, after pub-ack timeouts, at most 150" : "");
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == N, "the stream still holds %d messages", N);
    double m = ss_metric(&s1, "jetsched_scheduler_delayed_queued_total");
    CHECK(m == N, "delayed_queued_total counts each task once (%g)", m);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'dup-%%' AND dispatched_at < scheduled_for") == 0,
          "none recorded before it was due");

    /* 30,000 due in one millisecond, 10 s from now */
    ts_pg_long("INSERT INTO tasks (id, queue, handler, priority, status, scheduled_for)"
               " SELECT 'tie-' || g, 'default', 'log', 'normal', 'scheduled',"
               " date_trunc('milliseconds', now() + interval '10s') FROM generate_series(1, %d) g", TIES);
    long ties = ts_wait_long(TIES, 60000,
                             "SELECT count(*) FROM tasks WHERE id LIKE 'tie-%%' AND status = 'queued'"
                             " AND dispatched_at IS NOT NULL");
    CHECK(ties == TIES, "all %d published (%ld)", TIES, ties);
    CHECK(ts_log_contains(&s1, "(30000 planned"), "the plan held all %d: its second page went on after the first",
          TIES);
    m = ss_metric(&s1, "jetsched_scheduler_delayed_queued_total");
    CHECK(m == N + TIES, "delayed_queued_total %g", m);

    natsSubscription_Destroy(sub);
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    return ts_finish();
}
