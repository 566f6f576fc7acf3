/* Regression tests of issue 20 (hardening) against the API of a real
 * schedulerd: every reply to hostile input is valid UTF-8 JSON naming the
 * field (item 6), durations and times are bounded (item 7), client input
 * never reaches PostgreSQL as `internal` and internal errors never echo rows
 * (item 8), a deadline before the due time and a preview before 1970 are
 * refused (minors), deeply nested request JSON is refused, and a password
 * inside nats.url never reaches the log (item 5). */
#include "sched_api_support.h"
#include "harness.h"

#include <jetsched/base64.h>
#include <jetsched/utf8.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The error reply is valid JSON (sa_req FATALs otherwise), valid UTF-8, with code and field. */
static void expect(json_t *r, const char *code, const char *field, const char *what)
{
    const char *m = sa_message(r);
    CHECK(jet_utf8_valid(m, strlen(m)), "%s: message is valid UTF-8", what);
    sa_expect_error(r, code, field, what);
}

static void non_ascii(void)
{
    /* Item 6: '%c' of one byte of "é" used to make the reply unencodable (no reply at all). */
    expect(sa_req("schedule.create", "{\"id\":\"u1\",\"handler\":\"echo\",\"spec\":\"0 0 * * \xc3\xa9\"}"),
           "invalid_argument", "spec", "cron spec with a non-ASCII character");
    expect(sa_req("schedule.preview", "{\"spec\":\"\xc3\xa9 * * * *\"}"), "invalid_argument", "spec",
           "preview of a non-ASCII spec");
    /* "%.Ns" cuts at a byte: long non-ASCII input quoted in messages. */
    char *e200 = sa_repeat("\xc3\xa9", 201), *body = malloc(2000);
    snprintf(body, 2000, "{\"id\":\"u2\",\"handler\":\"echo\",\"spec\":\"%s\"}", e200);
    expect(sa_req("schedule.create", body), "invalid_argument", "spec", "long non-ASCII cron spec");
    snprintf(body, 2000, "{\"handler\":\"echo\",\"id\":\"%s\"}", e200);
    expect(sa_req("task.submit", body), "invalid_argument", "id", "non-ASCII task id");
    snprintf(body, 2000, "{\"handler\":\"%s\"}", e200);
    expect(sa_req("task.submit", body), "invalid_argument", "handler", "non-ASCII handler");
    snprintf(body, 2000, "{\"handler\":\"echo\",\"%s\":1}", e200);
    expect(sa_req("task.submit", body), "invalid_argument", NULL, "non-ASCII unknown field");
    snprintf(body, 2000, "{\"handler\":\"echo\",\"timeout\":\"1\xe2\x82\xac\"}");
    expect(sa_req("task.submit", body), "invalid_argument", "timeout", "non-ASCII duration unit");
    snprintf(body, 2000, "{\"id\":\"u3\",\"handler\":\"echo\",\"spec\":\"* * * * *\",\"tz\":\"Europe/%s\"}", e200);
    expect(sa_req("schedule.create", body), "invalid_argument", "tz", "non-ASCII time zone");
    free(e200);
    free(body);
}

static void durations_and_times(void)
{
    /* Item 7: each used to run at once, fail at once, store year 116106 or answer internal. */
    const char *delays[] = {"106751990000d", "999999999h", "9999999999h", "36501d", "9223372036854775807ms"};
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        json_t *r = sa_reqf("task.submit", "{\"handler\":\"echo\",\"delay\":\"%s\"}", delays[i]);
        CHECK(strstr(sa_message(r), "delay") && strstr(sa_message(r), "100 years"), "delay %s: %s", delays[i],
              sa_message(r));
        expect(r, "invalid_argument", "delay", delays[i]);
    }
    json_t *r = sa_req("task.submit", "{\"handler\":\"echo\",\"timeout\":\"9223372036854775000ms\"}");
    CHECK(strstr(sa_message(r), "timeout") != NULL, "the message names timeout: %s", sa_message(r));
    expect(r, "invalid_argument", "timeout", "huge timeout");
    expect(sa_req("task.submit", "{\"handler\":\"echo\",\"backoff\":\"exp:1s:99999999999d\"}"), "invalid_argument",
           "backoff", "huge backoff cap");
    expect(sa_reqf("task.submit", "{\"handler\":\"echo\",\"timeout\":\"%0100ds\"}", 1), "invalid_argument", "timeout",
           "100-character duration");
    expect(sa_req("schedule.create", "{\"id\":\"every-huge\",\"handler\":\"echo\",\"spec\":\"@every 9999999999h\"}"),
           "invalid_argument", "spec", "huge @every");
    /* The longest delay accepted is stored as a sane time. */
    r = sa_req("task.submit", "{\"id\":\"far-1\",\"queue\":\"parked\",\"handler\":\"echo\",\"delay\":\"36500d\"}");
    CHECK(!strcmp(sa_str(r, "status"), "scheduled"), "100 years is accepted: %s", sa_str(r, "status"));
    json_decref(r);
    long year = ts_pg_long("SELECT extract(year from scheduled_for)::int FROM tasks WHERE id = 'far-1'");
    CHECK(year >= 2120 && year <= 2200, "stored year %ld", year);
    /* Times: before 1970 and after 9999 are out of range; deadline before the due time. */
    expect(sa_req("task.submit", "{\"handler\":\"echo\",\"run_at\":\"1969-12-31T23:59:59Z\"}"), "invalid_argument",
           "run_at", "run_at before 1970");
    expect(sa_req("task.submit", "{\"handler\":\"echo\",\"deadline\":\"9999-12-31T23:59:59-01:00\"}"),
           "invalid_argument", "deadline", "deadline after 9999");
    expect(sa_req("task.submit", "{\"handler\":\"echo\",\"run_at\":\"2100-01-02T00:00:00Z\","
                                 "\"deadline\":\"2100-01-01T00:00:00Z\"}"),
           "invalid_argument", "deadline", "deadline before run_at");
    expect(sa_req("task.submit", "{\"handler\":\"echo\",\"delay\":\"1h\",\"deadline\":\"2001-01-01T00:00:00Z\"}"),
           "invalid_argument", "deadline", "deadline before now + delay");
    expect(sa_req("schedule.preview", "{\"spec\":\"0 0 * * *\",\"from\":\"1969-06-01T00:00:00Z\"}"), "invalid_argument",
           "from", "preview from before 1970");
    r = sa_req("schedule.preview", "{\"spec\":\"0 0 * * *\",\"from\":\"1970-01-01T00:00:00Z\",\"count\":2}");
    CHECK(json_array_size(json_object_get(r, "next")) == 2 && !strcmp(sa_str(r, "next.0"), "1970-01-02T00:00:00.000Z"),
          "preview from 1970: %s", sa_str(r, "next.0"));
    json_decref(r);
}

static char *b64(const char *text)
{
    char *enc = jet_base64_encode(text, strlen(text), true);
    return enc;
}

static void postgres_input(void)
{
    /* Item 8: crafted cursors and an empty tz used to reach PostgreSQL. */
    const char *cursors[] = {"x|y", "2026-13-45 99:99:99+00|a", "123|bad id", "|a", "12|", "-5|a",
                             "99999999999999999999|a", "\xff\xfe|a"};
    for (size_t i = 0; i < sizeof cursors / sizeof cursors[0]; i++) {
        char *c = b64(cursors[i]);
        expect(sa_reqf("task.list", "{\"cursor\":\"%s\"}", c), "invalid_argument", "cursor", cursors[i]);
        free(c);
    }
    char *c = b64("\xff\xfe");
    expect(sa_reqf("schedule.list", "{\"cursor\":\"%s\"}", c), "invalid_argument", "cursor",
           "schedule cursor of invalid UTF-8");
    free(c);
    c = b64("1000|some-id");
    sa_expect_ok(sa_reqf("task.list", "{\"cursor\":\"%s\"}", c), "a well-formed cursor");
    free(c);
    json_t *r = sa_req("schedule.create", "{\"id\":\"tz-empty\",\"handler\":\"echo\",\"spec\":\"* * * * *\",\"tz\":\"\","
                                          "\"payload\":\"SECRET-PAYLOAD\"}");
    CHECK(!strstr(sa_message(r), "SECRET"), "no row in the reply: %s", sa_message(r));
    expect(r, "invalid_argument", "tz", "empty tz");
    expect(sa_req("schedule.preview", "{\"spec\":\"* * * * *\",\"tz\":\"\"}"), "invalid_argument", "tz",
           "preview with an empty tz");
    /* An internal error (here a constraint the API does not know) answers
     * without PostgreSQL's text: no failing row, no payload. */
    free(ts_pg_text("ALTER TABLE tasks ADD CONSTRAINT hostile_probe CHECK (handler <> 'forbidden')"));
    r = sa_req("task.submit", "{\"id\":\"probe-1\",\"handler\":\"forbidden\",\"payload\":\"SECRET-PAYLOAD\"}");
    CHECK(!strcmp(sa_code(r), "internal"), "the probe is internal: %s", sa_code(r));
    CHECK(!strstr(sa_message(r), "SECRET") && !strstr(sa_message(r), "probe-1") && !strstr(sa_message(r), "row"),
          "no row in an internal error: %s", sa_message(r));
    CHECK(strstr(sa_message(r), "SQLSTATE 23514") != NULL, "the SQLSTATE is kept: %s", sa_message(r));
    json_decref(r);
    free(ts_pg_text("ALTER TABLE tasks DROP CONSTRAINT hostile_probe"));
}

static void json_depth(void)
{
    /* A request body nested 10,000 deep is refused, naming the limit. */
    char *open = sa_repeat("[", 10000), *close = sa_repeat("]", 10000), *body = malloc(30000);
    snprintf(body, 30000, "{\"handler\":\"echo\",\"headers\":%s%s}", open, close);
    json_t *r = sa_req("task.submit", body);
    CHECK(strstr(sa_message(r), "deep") != NULL, "depth named: %s", sa_message(r));
    expect(r, "invalid_argument", NULL, "deeply nested JSON");
    free(open);
    free(close);
    free(body);
}

int main(void)
{
    ss_env();
    ts_setup("default,parked");
    ts_agent s1;
    ss_start(&s1, "hostile-1", NULL);
    non_ascii();
    durations_and_times();
    postgres_input();
    json_depth();

    /* Item 5: a password inside nats.url is never logged (start, reconnect). */
    const char *url = th_require_env("JETSCHED_TEST_NATS_URL");
    char cred_url[300];
    snprintf(cred_url, sizeof cred_url, "nats://ops:hunter2@%s", strstr(url, "://") ? strstr(url, "://") + 3 : url);
    setenv("JETSCHED_NATS_URL", cred_url, 1);
    ts_agent s2;
    ss_start(&s2, "hostile-2", NULL);
    setenv("JETSCHED_NATS_URL", url, 1);
    CHECK(th_ctl("nats restart") == 0, "nats restarted");
    bool reconnected = false;
    for (int i = 0; i < 100 && !reconnected; i++) {
        reconnected = ts_log_contains(&s2, "reconnected to");
        if (!reconnected)
            ts_sleep_ms(100);
    }
    CHECK(reconnected, "schedulerd logged its reconnect");
    CHECK(ts_log_contains(&s2, "ops:<redacted>@"), "the user stays visible");
    CHECK(!ts_log_contains(&s2, "hunter2"), "the password is not in the log");
    CHECK(ts_agent_stop(&s2, SIGTERM, 10000) == 0, "schedulerd 2 exits 0");
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    return ts_finish();
}
