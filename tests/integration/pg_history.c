/* tests/integration/pg_history.c: the history writer stores 100,000 records
 * through real PostgreSQL, each exactly once, every callback exactly once and
 * only after its COMMIT (checked from an independent connection for a
 * sample); then replays records (as after a lost COMMIT reply) and checks
 * that nothing is duplicated or moved backwards. */
#include "harness.h"
#include "pg_util.h"

#include <jetsched/history.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define N 100000
#define PRODUCERS 2
#define SAMPLE 500

static _Atomic int calls[N];
static _Atomic int failures;
static PGconn *checker; /* used only on the writer thread, from callbacks */
static _Atomic int checked;

/* Record i: tasks get one attempt, except that records 10k+8 / 10k+9 are
 * attempt 1 (retrying) and attempt 2 (succeeded) of one task. */
static void make_record(int i, jet_history_record *r, char *id, size_t idlen)
{
    int task = i % 10 == 9 ? i - 1 : i;
    snprintf(id, idlen, "h-%d", task);
    memset(r, 0, sizeof *r);
    r->task_id = id;
    r->queue = "default";
    r->handler = "echo";
    r->priority = i % 3 == 0 ? "high" : "normal";
    r->attempt = i % 10 == 9 ? 2 : 1;
    r->status = i % 10 == 8 ? "retrying" : "succeeded";
    r->max_attempts = 5;
    r->agent = "agent-test";
    r->error = i % 10 == 8 ? "boom: temporary failure" : NULL;
    r->result = i % 10 == 8 ? NULL : "ok";
    r->created_ms = jet_now_ms() - 1000;
    r->started_ms = jet_now_ms() - 10;
    r->finished_ms = jet_now_ms();
}

/* The attempt row must be visible from another connection when we are told it is committed. */
static void check_visible(int i)
{
    int task = i % 10 == 9 ? i - 1 : i;
    char id[32], attempt[8];
    snprintf(id, sizeof id, "h-%d", task);
    snprintf(attempt, sizeof attempt, "%d", i % 10 == 9 ? 2 : 1);
    const char *params[] = {id, attempt};
    PGresult *r = PQexecParams(checker, "SELECT count(*) FROM task_attempts WHERE task_id = $1 AND attempt = $2::int",
                               2, NULL, params, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK, "check: %s", PQresultErrorMessage(r));
    CHECK(strcmp(PQgetvalue(r, 0, 0), "1") == 0, "callback of record %d fired but its row is not visible", i);
    PQclear(r);
    checked++;
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
}

static void submit_retrying(jet_history *h, const jet_history_record *r, int i)
{
    for (;;) {
        jet_err err;
        jet_status st = jet_history_submit(h, r, done, (void *)(intptr_t)i, 1000, &err);
        if (st == JET_OK)
            return;
        CHECK(st == JET_ERR_TIMEOUT, "submit %d: %s", i, err.msg); /* full: back off and retry */
    }
}

struct producer {
    jet_history *h;
    int index;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int block = p->index; block * 10 < N; block += PRODUCERS)
        for (int i = block * 10; i < block * 10 + 10 && i < N; i++) {
            jet_history_record r;
            char id[32];
            make_record(i, &r, id, sizeof id);
            submit_retrying(p->h, &r, i);
        }
    return NULL;
}

static void load(const jet_config *cfg)
{
    jet_history_options opt;
    jet_history_options_default(&opt);
    jet_history *h;
    jet_err err;
    CHECK(jet_history_open(cfg, &opt, &h, &err) == JET_OK, "open: %s", err.msg);
    int64_t t0 = jet_mono_ms();
    pthread_t th[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){h, i};
        CHECK(pthread_create(&th[i], NULL, produce, &p[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    jet_history_stats st;
    jet_history_stats_get(h, &st);
    CHECK(st.pending <= opt.max_pending, "pending %zu above max_pending %zu", st.pending, opt.max_pending);
    CHECK(jet_history_close(h, 60000) == JET_OK, "close did not commit everything");
    printf("stored %d records in %lld ms (%" PRIu64 " batches)\n", N, (long long)(jet_mono_ms() - t0), st.batches);
}

static void check_once(PGconn *c)
{
    for (int i = 0; i < N; i++)
        CHECK(calls[i] == 1, "record %d: %d callbacks", i, calls[i]);
    CHECK(failures == 0, "%d records failed", failures);
    CHECK(checked == N / SAMPLE, "%d visibility checks, expected %d", checked, N / SAMPLE);
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts WHERE task_id LIKE 'h-%'") == N, "attempt rows != %d", N);
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'h-%'") == N - N / 10, "task rows");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE status = 'succeeded' AND result = 'ok' AND error IS NULL"
                     " AND finished_at IS NOT NULL") == N - N / 10, "succeeded task rows");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE attempts = 2") == N / 10, "tasks with two attempts");
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts WHERE attempt = 1 AND status = 'retrying'"
                     " AND error = 'boom: temporary failure'") == N / 10, "retrying attempts");
    CHECK(pgt_int(c, "SELECT count(*) FROM (SELECT task_id, attempt FROM task_attempts"
                     " GROUP BY 1, 2 HAVING count(*) > 1) d") == 0, "duplicate attempts");
}

/* Replays the first 10,000 records and every 'retrying' record: nothing may
 * change (no new rows, no task moved back from succeeded to retrying). */
static void replay(const jet_config *cfg, PGconn *c)
{
    int64_t before = pgt_int(c, "SELECT (extract(epoch FROM max(updated_at)) * 1e6)::bigint FROM tasks");
    memset(calls, 0, sizeof calls);
    jet_history *h;
    jet_err err;
    CHECK(jet_history_open(cfg, NULL, &h, &err) == JET_OK, "open: %s", err.msg);
    int replayed = 0;
    for (int i = 0; i < N; i++)
        if (i < 10000 || i % 10 == 8) {
            jet_history_record r;
            char id[32];
            make_record(i, &r, id, sizeof id);
            submit_retrying(h, &r, i);
            replayed++;
        }
    CHECK(jet_history_close(h, 60000) == JET_OK, "close after replay");
    for (int i = 0; i < N; i++)
        CHECK(calls[i] == ((i < 10000 || i % 10 == 8) ? 1 : 0), "replayed record %d: %d callbacks", i, calls[i]);
    CHECK(failures == 0, "%d replayed records failed", failures);
    CHECK(pgt_int(c, "SELECT count(*) FROM task_attempts") == N, "replay added attempt rows");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks") == N - N / 10, "replay added task rows");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE status <> 'succeeded'") == 0, "replay moved a task back");
    CHECK(pgt_int(c, "SELECT (extract(epoch FROM max(updated_at)) * 1e6)::bigint FROM tasks") == before,
          "replay rewrote task rows");
    printf("replayed %d records: no change\n", replayed);
}

int main(void)
{
    jet_log_init("pg_history", JET_LOG_WARN, false);
    jet_config *cfg = pgt_config();
    PGconn *c = pgt_connect();
    pgt_migrate(c);
    checker = pgt_connect();
    load(cfg);
    check_once(c);
    replay(cfg, c);
    PQfinish(checker);
    PQfinish(c);
    jet_config_free(cfg);
    printf("pg_history: ok\n");
    return 0;
}
