/* tests/integration/pg_history_outage.c: PostgreSQL goes away in the middle
 * of a load, twice: a fast shutdown held for 3 s (th_ctl("pg stop")), then a
 * crash (SIGKILL of the postmaster and its children) with an immediate
 * restart. Nothing may be lost or doubled, no callback may fire while
 * PostgreSQL is down, and every callback must find its row visible from an
 * independent connection (checked for a sample of records). The buffer must
 * push back on the producer while PostgreSQL is down. Finally, closing with
 * a deadline while PostgreSQL is down must return on time and fail every
 * pending record (JET_ERR_UNAVAILABLE) exactly once. */
#include "harness.h"
#include "pg_util.h"

#include <jetsched/history.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define N 30000
#define SAMPLE 20

static _Atomic int calls[N];
static _Atomic int committed, failures, full_events, checked;
static _Atomic bool producing = true;
static PGconn *checker; /* writer thread only */

static bool visible_once(const char *id, bool *conn_ok)
{
    const char *params[] = {id};
    PGresult *r = PQexecParams(checker, "SELECT count(*) FROM task_attempts WHERE task_id = $1", 1, NULL, params,
                               NULL, NULL, 0);
    *conn_ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    bool one = *conn_ok && strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    PQclear(r);
    return one;
}

/* PostgreSQL may go down between the commit and this check: then the check
 * is deferred until it is back (never blocking the writer's thread). */
static int deferred[N / SAMPLE], ndeferred;

static void check_visible(int i)
{
    char id[32];
    snprintf(id, sizeof id, "o-%d", i);
    bool conn_ok;
    bool one = checker && visible_once(id, &conn_ok);
    if (checker && conn_ok) {
        CHECK(one, "callback of record %d fired but its row is not visible (or not exactly once)", i);
        checked++;
        return;
    }
    PQfinish(checker);
    checker = PQconnectdb(th_require_env("JETSCHED_TEST_PG_DSN"));
    if (PQstatus(checker) == CONNECTION_OK) {
        check_visible(i);
        return;
    }
    PQfinish(checker);
    checker = NULL;
    deferred[ndeferred++] = i;
}

static void check_deferred(void)
{
    PQfinish(checker);
    checker = pgt_connect_wait(60000);
    for (int k = 0; k < ndeferred; k++) {
        bool conn_ok;
        char id[32];
        snprintf(id, sizeof id, "o-%d", deferred[k]);
        CHECK(visible_once(id, &conn_ok), "record %d was reported committed but is not stored", deferred[k]);
    }
}

static void done(void *ctx, jet_status st, const char *reason)
{
    int i = (int)(intptr_t)ctx;
    if (st != JET_OK) {
        fprintf(stderr, "record %d failed: %s: %s\n", i, jet_status_code(st), reason ? reason : "");
        failures++;
    }
    calls[i]++;
    if (st == JET_OK && i % SAMPLE == 0)
        check_visible(i);
    committed++;
}

static void *produce(void *arg)
{
    jet_history *h = arg;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "o-%d", i);
        jet_history_record r = {.task_id = id, .queue = "default", .handler = "echo", .status = "succeeded",
                                .attempt = 1, .max_attempts = 3, .agent = "agent-outage", .result = "done",
                                .started_ms = jet_now_ms() - 5, .finished_ms = jet_now_ms()};
        for (;;) {
            jet_err err;
            jet_status st = jet_history_submit(h, &r, done, (void *)(intptr_t)i, 200, &err);
            if (st == JET_OK)
                break;
            CHECK(st == JET_ERR_TIMEOUT, "submit %d: %s", i, err.msg);
            full_events++;
        }
    }
    producing = false;
    return NULL;
}

static void wait_committed(int n)
{
    int64_t deadline = jet_mono_ms() + 60000;
    while (committed < n) {
        CHECK(jet_mono_ms() < deadline, "only %d of %d committed after 60 s", committed, n);
        jet_sleep_ms(20);
    }
}

/* PostgreSQL down for hold_ms: no callback fires, the writer reports it is
 * disconnected, and the buffer fills up and pushes back. */
static void outage(jet_history *h, const char *how, int64_t hold_ms)
{
    int full_before = full_events;
    CHECK(th_ctl("pg %s", how) == 0, "ctl pg %s", how);
    jet_sleep_ms(500); /* a callback of a batch committed just before the stop may still be running */
    int frozen = committed;
    jet_sleep_ms(hold_ms);
    jet_history_stats st;
    jet_history_stats_get(h, &st);
    printf("pg %s: %d committed, %zu pending, connected=%d, full events %d\n", how, frozen, st.pending,
           (int)st.connected, full_events - full_before);
    CHECK(committed == frozen, "%d callbacks fired while PostgreSQL was down", committed - frozen);
    CHECK(!st.connected, "the writer still reports connected while PostgreSQL is down");
    if (hold_ms >= 2000 && producing)
        CHECK(st.pending == 3000 && full_events > full_before, "no back-pressure (pending %zu)", st.pending);
    CHECK(th_ctl("pg start") == 0, "ctl pg start");
}

static _Atomic int abandoned, abandoned_other;

static void done_close(void *ctx, jet_status st, const char *reason)
{
    (void)ctx;
    (void)reason;
    if (st == JET_ERR_UNAVAILABLE)
        abandoned++;
    else
        abandoned_other++;
}

static void close_while_down(const jet_config *cfg)
{
    jet_history *h;
    jet_err err;
    CHECK(jet_history_open(cfg, NULL, &h, &err) == JET_OK, "open: %s", err.msg);
    CHECK(th_ctl("pg stop") == 0, "ctl pg stop");
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "c-%d", i);
        jet_history_record r = {.task_id = id, .queue = "default", .handler = "echo", .status = "succeeded",
                                .attempt = 1};
        CHECK(jet_history_submit(h, &r, done_close, NULL, 0, &err) == JET_OK, "submit: %s", err.msg);
    }
    int64_t t0 = jet_mono_ms();
    CHECK(jet_history_close(h, 1000) == JET_ERR_TIMEOUT, "close reported success with PostgreSQL down");
    int64_t took = jet_mono_ms() - t0;
    printf("close with PostgreSQL down returned after %lld ms\n", (long long)took);
    CHECK(took < 8000, "close took %lld ms with a 1000 ms deadline", (long long)took);
    CHECK(abandoned == 50 && abandoned_other == 0, "%d abandoned, %d other callbacks", abandoned, abandoned_other);
}

int main(void)
{
    jet_log_init("pg_history_outage", JET_LOG_WARN, false);
    jet_config *cfg = pgt_config();
    PGconn *c = pgt_connect();
    pgt_migrate(c);
    PQfinish(c);
    checker = pgt_connect();
    jet_history_options opt;
    jet_history_options_default(&opt);
    opt.batch_size = 100;
    opt.flush_interval_ms = 10;
    opt.max_pending = 3000;
    jet_history *h;
    jet_err err;
    CHECK(jet_history_open(cfg, &opt, &h, &err) == JET_OK, "open: %s", err.msg);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, produce, h) == 0, "pthread_create");

    wait_committed(N / 5);
    outage(h, "stop", 3000);
    wait_committed(N / 2);
    outage(h, "kill", 0);

    pthread_join(th, NULL);
    CHECK(jet_history_close(h, 120000) == JET_OK, "close did not commit everything");
    c = pgt_connect();
    for (int i = 0; i < N; i++)
        CHECK(calls[i] == 1, "record %d: %d callbacks", i, calls[i]);
    CHECK(failures == 0, "%d records failed", failures);
    check_deferred();
    CHECK(checked + ndeferred == N / SAMPLE, "%d visibility checks, expected %d", checked + ndeferred, N / SAMPLE);
    CHECK(ndeferred <= N / SAMPLE / 20, "%d of %d visibility checks could not run in the callback", ndeferred, N / SAMPLE);
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts") == N, "attempt rows");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE status = 'succeeded'") == N, "task rows");
    printf("pg_history_outage: %d records, each stored once; %d full events; %d of %d visibility checks deferred\n",
           N, full_events, ndeferred, N / SAMPLE);
    PQfinish(c);
    PQfinish(checker);
    close_while_down(cfg);
    jet_config_free(cfg);
    return 0;
}
