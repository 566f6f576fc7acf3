/* tests/integration/pg_history_hostile.c: hostile values through the history
 * writer. Huge strings are capped, invalid UTF-8 is repaired, NUL bytes are
 * dropped, array-literal and escape metacharacters survive verbatim, binary payloads are stored
 * exactly; records PostgreSQL still refuses (bad task id, bad handler,
 * timestamp out of range) are isolated from a shared batch and rejected
 * through their callback with a reason while the rest commits; malformed
 * records are refused at submit; and the writer keeps working afterwards. */
#include "harness.h"
#include "pg_util.h"

#include <jetsched/history.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define GOOD 300
#define MAX_TEXT 65536

enum { BAD_ID, BAD_HANDLER, BAD_TIME, LONG_ID, UTF8_ID, BAD_COUNT };

static _Atomic int good_ok, good_calls, bad_calls[BAD_COUNT], others_ok;
static char bad_reason[BAD_COUNT][1100];

static void done_good(void *ctx, jet_status st, const char *reason)
{
    (void)ctx;
    CHECK(st == JET_OK, "a good record failed: %s", reason ? reason : "");
    good_ok++;
    good_calls++;
}

static void done_bad(void *ctx, jet_status st, const char *reason)
{
    int k = (int)(intptr_t)ctx;
    CHECK(st == JET_ERR_INVALID, "bad record %d: status %s", k, jet_status_code(st));
    CHECK(reason && *reason, "bad record %d rejected without a reason", k);
    snprintf(bad_reason[k], sizeof bad_reason[k], "%s", reason);
    bad_calls[k]++;
}

static void done_other(void *ctx, jet_status st, const char *reason)
{
    (void)ctx;
    CHECK(st == JET_OK, "a hostile-but-valid record failed: %s", reason ? reason : "");
    others_ok++;
}

static void submit(jet_history *h, const jet_history_record *r, jet_history_done_fn fn, void *ctx)
{
    jet_err err;
    CHECK(jet_history_submit(h, r, fn, ctx, 10000, &err) == JET_OK, "submit %s: %s", r->task_id, err.msg);
}

static jet_history_record base(const char *id)
{
    return (jet_history_record){.task_id = id, .queue = "default", .handler = "echo", .status = "dead",
                                .attempt = 1, .agent = "agent-h"};
}

static void submit_refused(jet_history *h)
{
    jet_history_record r = base("refused");
    jet_err err;
    r.task_id = NULL;
    CHECK(jet_history_submit(h, &r, done_bad, NULL, 0, &err) == JET_ERR_INVALID, "NULL task_id accepted");
    r = base("refused");
    r.queue = NULL;
    CHECK(jet_history_submit(h, &r, done_bad, NULL, 0, &err) == JET_ERR_INVALID, "NULL queue accepted");
    r = base("refused");
    r.status = "bogus";
    CHECK(jet_history_submit(h, &r, done_bad, NULL, 0, &err) == JET_ERR_INVALID, "status bogus accepted");
    CHECK(strstr(err.msg, "bogus"), "message does not name the value: %s", err.msg);
    r = base("refused");
    r.priority = "urgent";
    CHECK(jet_history_submit(h, &r, done_bad, NULL, 0, &err) == JET_ERR_INVALID, "priority urgent accepted");
    r = base("refused");
    r.attempt = -1;
    CHECK(jet_history_submit(h, &r, done_bad, NULL, 0, &err) == JET_ERR_INVALID, "attempt -1 accepted");
}

static const char UTF8_IN[] = "a\0b\xff\xfe" "c\xc0\xaf" "d\xed\xa0\x80" "e\xe2\x82" "f\xf0\x9f\x98\x80g";
#define FFFD "\xef\xbf\xbd"
static const char UTF8_OUT[] = "ab" FFFD FFFD "c" FFFD FFFD "d" FFFD FFFD FFFD "e" FFFD "f\xf0\x9f\x98\x80g";
static const char META[] = "{\"q\",NULL} line1\nline2\r\n\tcol\\x\\N\n\\.\nend";

/* Records PostgreSQL stores after the writer repaired them. */
static void submit_others(jet_history *h, char *big, char *big_agent, unsigned char *bytes)
{
    jet_history_record r = base("x-long");
    r.error = big;
    r.result = big; /* 1 MiB each */
    r.agent = big_agent;
    submit(h, &r, done_other, NULL);
    r = base("x-utf8");
    r.error = UTF8_IN;
    r.error_len = sizeof UTF8_IN - 1;
    r.result = UTF8_IN;
    r.result_len = sizeof UTF8_IN - 1;
    submit(h, &r, done_other, NULL);
    r = base("x-copy");
    r.error = "\\N";
    r.agent = "NULL";
    r.result = META;
    submit(h, &r, done_other, NULL);
    r = base("x-payload");
    r.payload = bytes;
    r.payload_len = 256;
    submit(h, &r, done_other, NULL);
}

/* Records PostgreSQL refuses even after repair; they share a batch with the good ones. */
static void submit_bad(jet_history *h, int k, char *long_id)
{
    jet_history_record r = base("x-bad");
    switch (k) {
    case BAD_ID: r.task_id = "bad id!"; break;
    case BAD_HANDLER: r.task_id = "x-bad-handler"; r.handler = "Echo!"; break;
    case BAD_TIME: r.task_id = "x-bad-time"; r.finished_ms = INT64_MAX; break;
    case LONG_ID: r.task_id = long_id; break;
    case UTF8_ID: r.task_id = "x-\xff\xfe"; break;
    }
    submit(h, &r, done_bad, (void *)(intptr_t)k);
}

static void check_stored(PGconn *c)
{
    CHECK(pgt_int(c, "SELECT octet_length(error) FROM tasks WHERE id = 'x-long'") <= MAX_TEXT, "error not capped");
    CHECK(pgt_int(c, "SELECT octet_length(error) FROM tasks WHERE id = 'x-long'") > MAX_TEXT - 64, "error cut short");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id = 'x-long' AND error LIKE 'eeee%…[truncated]'"
                     " AND result = error") == 1, "long text not marked as truncated");
    CHECK(pgt_int(c, "SELECT octet_length(agent) FROM tasks WHERE id = 'x-long'") <= 256, "agent not capped");
    CHECK(pgt_int(c, "SELECT octet_length(error) FROM task_attempts WHERE task_id = 'x-long'") <= MAX_TEXT,
          "attempt error not capped");
    PGresult *r = PQexec(c, "SELECT error, result FROM tasks WHERE id = 'x-utf8'");
    CHECK(PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), UTF8_OUT) == 0 && strcmp(PQgetvalue(r, 0, 1), UTF8_OUT) == 0,
          "repaired UTF-8 differs: %s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "(no row)");
    PQclear(r);
    r = PQexec(c, "SELECT error, result, agent FROM tasks WHERE id = 'x-copy'");
    CHECK(PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) && strcmp(PQgetvalue(r, 0, 0), "\\N") == 0 &&
              strcmp(PQgetvalue(r, 0, 1), META) == 0 && !PQgetisnull(r, 0, 2) && strcmp(PQgetvalue(r, 0, 2), "NULL") == 0,
          "metacharacters were not stored verbatim");
    PQclear(r);
    char want[600] = "";
    for (int i = 0; i < 256; i++)
        snprintf(want + 2 * i, 3, "%02x", i);
    r = PQexec(c, "SELECT encode(payload, 'hex') FROM tasks WHERE id = 'x-payload'");
    CHECK(PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), want) == 0, "payload bytes differ");
    PQclear(r);
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'g-%'") == GOOD + 1, "good records missing");
    CHECK(pgt_int(c, "SELECT count(*) FROM tasks WHERE id LIKE 'x-bad%' OR id LIKE 'bad%'") == 0,
          "a rejected record was stored");
}

static void check_sanitize(void)
{
    char out[64];
    bool changed;
    size_t n = jet_history_sanitize(UTF8_IN, sizeof UTF8_IN - 1, out, sizeof out, &changed);
    CHECK(changed && n == sizeof UTF8_OUT - 1 && memcmp(out, UTF8_OUT, n) == 0, "sanitize UTF-8");
    CHECK(jet_history_sanitize(UTF8_IN, sizeof UTF8_IN - 1, NULL, sizeof out, NULL) == n, "measure != write");
    n = jet_history_sanitize("plain text", 10, out, sizeof out, &changed);
    CHECK(!changed && n == 10, "clean text changed");
    n = jet_history_sanitize("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 18, out, 17,
                             &changed);
    CHECK(changed && n <= 17 && n == 3 + 14 && memcmp(out + 3, "\xe2\x80\xa6[truncated]", 14) == 0,
          "truncation not at a character boundary (%zu)", n);
}

int main(void)
{
    jet_log_init("pg_history_hostile", JET_LOG_WARN, false);
    check_sanitize();
    jet_config *cfg = pgt_config();
    PGconn *c = pgt_connect();
    pgt_migrate(c);
    jet_history_options opt;
    jet_history_options_default(&opt);
    opt.batch_size = 1024;
    opt.flush_interval_ms = 500; /* everything below lands in one batch */
    opt.max_text = MAX_TEXT;
    jet_history *h;
    jet_err err;
    CHECK(jet_history_open(cfg, &opt, &h, &err) == JET_OK, "open: %s", err.msg);
    submit_refused(h);

    size_t big_len = 1 << 20;
    char *big = malloc(big_len + 1), *big_agent = malloc(10001), long_id[301];
    memset(big, 'e', big_len);
    big[big_len] = '\0';
    memset(big_agent, 'a', 10000);
    big_agent[10000] = '\0';
    memset(long_id, 'l', 300);
    long_id[300] = '\0';
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    for (int i = 0; i < GOOD; i++) {
        char id[32];
        snprintf(id, sizeof id, "g-%d", i);
        jet_history_record r = base(id);
        r.status = "succeeded";
        submit(h, &r, done_good, NULL);
        if (i % 60 == 30)
            submit_bad(h, i / 60, long_id);
        if (i == 100)
            submit_others(h, big, big_agent, bytes);
    }
    /* the writer keeps working after the rejections */
    int64_t deadline = jet_mono_ms() + 30000;
    while (good_calls < GOOD && jet_mono_ms() < deadline)
        jet_sleep_ms(10);
    jet_history_record more = base("g-after");
    more.status = "succeeded";
    submit(h, &more, done_good, NULL);
    CHECK(jet_history_close(h, 30000) == JET_OK, "close");
    CHECK(good_ok == GOOD + 1, "%d of %d good records committed", good_ok, GOOD + 1);
    CHECK(others_ok == 4, "%d of 4 repaired records committed", others_ok);
    for (int k = 0; k < BAD_COUNT; k++) {
        CHECK(bad_calls[k] == 1, "bad record %d: %d callbacks", k, bad_calls[k]);
        printf("rejected %d: %s\n", k, bad_reason[k]);
    }
    CHECK(strstr(bad_reason[BAD_ID], "check constraint"), "reason: %s", bad_reason[BAD_ID]);
    CHECK(strstr(bad_reason[BAD_TIME], "out of range"), "reason: %s", bad_reason[BAD_TIME]);
    check_stored(c);
    free(big);
    free(big_agent);
    PQfinish(c);
    jet_config_free(cfg);
    printf("pg_history_hostile: ok\n");
    return 0;
}
