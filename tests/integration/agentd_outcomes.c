/* agentd outcomes against real servers: success with result and history,
 * retries then dead-letter (DLQ message with reason headers, PostgreSQL
 * `dead`, one attempt row per try), every malformed-task reason while good
 * tasks keep flowing, deadline => expired, a redispatched task whose key
 * already succeeded => duplicate (not run again), live events. */
#include "agent_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *conf =
    "queues = ( { name = \"default\"; concurrency = 4; backoff = \"fixed:100ms\"; } );\n"
    "exec = { commands = ( { name = \"fail\"; argv = [\"/bin/sh\", \"-c\", \"echo boom >&2; exit 1\"]; } ); };\n";

static int events_seen;
static char last_event[512];
static void on_event(natsConnection *c, natsSubscription *s, natsMsg *m, void *closure)
{
    (void)c, (void)s, (void)closure;
    events_seen++;
    snprintf(last_event, sizeof last_event, "%.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
    natsMsg_Destroy(m);
}

/* The DLQ message of a task: its reason header. */
static char *dlq_reason(const char *task_id)
{
    static char reason[128];
    reason[0] = '\0';
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "JETSCHED_DLQ";
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    if (js_SubscribeSync(&sub, ts_js(), "jetsched.dlq.default", NULL, &so, &jerr) != NATS_OK)
        return reason;
    natsMsg *m = NULL;
    while (natsSubscription_NextMsg(&m, sub, 1000) == NATS_OK) {
        const char *id = NULL, *r = NULL;
        if (natsMsgHeader_Get(m, "Jetsched-Task-Id", &id) == NATS_OK && !strcmp(id, task_id) &&
            natsMsgHeader_Get(m, "Jetsched-Dead-Reason", &r) == NATS_OK)
            snprintf(reason, sizeof reason, "%s", r);
        natsMsg_Destroy(m);
        if (reason[0])
            break;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return reason;
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_DUPLICATE_WINDOW", "1s", 1); /* the duplicate case republishes the same id */
    ts_setup("default");
    natsSubscription *evsub = NULL;
    natsConnection_Subscribe(&evsub, ts_nats(), "jetsched.event.default.t-echo-1", on_event, NULL);
    ts_agent ag;
    ts_agent_start(&ag, "outcomes", conf);

    /* success */
    ts_publish("default", "normal", "echo", "t-echo-1", "hello", 5, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='t-echo-1' AND status='succeeded'") == 1,
          "echo task not succeeded");
    char *res = ts_pg_text("SELECT result FROM tasks WHERE id='t-echo-1'");
    CHECK(!strcmp(res, "hello"), "result is \"%s\"", res);
    free(res);
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='t-echo-1' AND status='succeeded' "
                     "AND agent='outcomes'") == 1, "attempt row missing");
    /* no Nats-Msg-Id: the id is seq-<stream sequence> */
    ts_publish("default", "high", "noop", NULL, "", 0, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id LIKE 'seq-%%' AND status='succeeded'") == 1,
          "task without Nats-Msg-Id not recorded as seq-N");

    /* retry then dead-letter */
    const char *h3[] = {"Jetsched-Max-Attempts: 3", NULL};
    ts_publish("default", "normal", "fail", "t-fail-1", "x", 1, h3);
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id='t-fail-1' AND status='dead'") == 1,
          "failing task not dead");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='t-fail-1'") == 3, "expected 3 attempts");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='t-fail-1' AND status='retrying'") == 2,
          "expected 2 retrying attempts");
    char *err = ts_pg_text("SELECT error FROM tasks WHERE id='t-fail-1'");
    CHECK(strstr(err, "attempts_exhausted") && strstr(err, "boom"), "error is \"%s\"", err);
    free(err);
    CHECK(!strcmp(dlq_reason("t-fail-1"), "attempts_exhausted"), "DLQ reason \"%s\"", dlq_reason("t-fail-1"));

    /* malformed tasks, mixed with good ones */
    static char huge[20000];
    memset(huge, 'h', sizeof huge - 1);
    char huge_hdr[20100];
    snprintf(huge_hdr, sizeof huge_hdr, "X-Huge: %s", huge);
    const char *bad_attempts[] = {"Jetsched-Max-Attempts: lots", NULL};
    const char *bad_timeout[] = {"Jetsched-Timeout: forever", NULL};
    const char *huge_headers[] = {huge_hdr, NULL};
    const char *past[] = {"Jetsched-Deadline: 2001-01-01T00:00:00Z", NULL};
    const char garbage[] = {'\xff', '\0', '\xfe', 'x', '\x01'};
    for (int i = 0; i < 20; i++) {
        char id[64];
        snprintf(id, sizeof id, "good-%d", i);
        ts_publish("default", "low", "echo", id, garbage, sizeof garbage, NULL);
    }
    ts_publish("default", "normal", NULL, "t-nohandler", "x", 1, NULL);
    ts_publish("default", "normal", "nosuch", "t-unknown", "x", 1, NULL);
    ts_publish("default", "normal", "echo", "bad.id!", "x", 1, NULL);
    ts_publish("default", "normal", "echo", "t-badattempts", "x", 1, bad_attempts);
    ts_publish("default", "normal", "echo", "t-badtimeout", "x", 1, bad_timeout);
    ts_publish("default", "normal", "echo", "t-huge", "x", 1, huge_headers);
    ts_publish("default", "normal", "echo", "t-expired", "x", 1, past);
    CHECK(ts_wait_long(20, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'good-%%' AND status='succeeded'") == 20,
          "good tasks did not all succeed");
    struct { const char *id, *reason; } want[] = {
        {"t-nohandler", "missing_handler"}, {"t-unknown", "unknown_handler"}, {"t-badattempts", "invalid_header"},
        {"t-badtimeout", "invalid_header"}, {"t-huge", "invalid_header"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='%s' AND status='dead' AND error LIKE '%s:%%'",
                           want[i].id, want[i].reason) == 1,
              "%s not dead with %s", want[i].id, want[i].reason);
        CHECK(!strcmp(dlq_reason(want[i].id), want[i].reason), "%s: DLQ reason \"%s\"", want[i].id,
              dlq_reason(want[i].id));
    }
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id LIKE 'seq-%%' AND status='dead' "
                                 "AND error LIKE 'invalid_id:%%bad.id!%%'") == 1, "invalid id not dead-lettered");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='t-expired' AND status='expired'") == 1,
          "deadline passed but not expired");

    /* a redispatched task whose key already succeeded is not run again */
    ts_sleep_ms(1500); /* past the 1 s duplicate window */
    const char *redis[] = {"Jetsched-Redispatch: 1", NULL};
    ts_publish("default", "normal", "echo", "t-echo-1", "again", 5, redis);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM task_attempts WHERE task_id='t-echo-1' AND attempt=2 "
                                 "AND status='duplicate'") == 1, "redispatch not recorded as duplicate");
    res = ts_pg_text("SELECT status || '/' || result FROM tasks WHERE id='t-echo-1'");
    CHECK(!strcmp(res, "succeeded/hello"), "task row changed to %s", res);
    free(res);

    /* a FIRST delivery (delivery count 1, no redispatch) of a succeeded key
     * is not run either when it carries Jetsched-Idempotency-Check: always,
     * as everything schedulerd publishes does (after a nats-server crash an
     * acknowledged message can come back looking new) */
    const char *recheck[] = {"Jetsched-Task-Id: t-echo-1", "Jetsched-Idempotency-Check: always", NULL};
    ts_publish("default", "normal", "echo", "t-echo-1-msg2", "again", 5, recheck);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM task_attempts WHERE task_id='t-echo-1' AND attempt=3 "
                                 "AND status='duplicate'") == 1, "marked first delivery not recorded as duplicate");
    res = ts_pg_text("SELECT status || '/' || result FROM tasks WHERE id='t-echo-1'");
    CHECK(!strcmp(res, "succeeded/hello"), "task row changed to %s", res);
    free(res);
    const char *badcheck[] = {"Jetsched-Idempotency-Check: sometimes", NULL};
    ts_publish("default", "normal", "echo", "t-badcheck", "x", 1, badcheck);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='t-badcheck' AND status='dead' "
                                 "AND error LIKE 'invalid_header:%%Jetsched-Idempotency-Check%%'") == 1,
          "a bad Jetsched-Idempotency-Check value is not dead-lettered as invalid_header");

    /* everything settled leaves the work queue empty */
    for (int i = 0; i < 100 && ts_stream_msgs("JETSCHED_TASKS") != 0; i++)
        ts_sleep_ms(100);
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == 0, "%llu messages left in the task stream",
          (unsigned long long)ts_stream_msgs("JETSCHED_TASKS"));
    CHECK(events_seen >= 2 && strstr(last_event, "\"status\":\"duplicate\""), "events: %d, last %s", events_seen,
          last_event);

    static char body[1 << 17]; /* /metrics grows with every histogram */
    CHECK(ts_agent_http(&ag, "/metrics", body, sizeof body) == 200 &&
              strstr(body, "jetsched_agent_tasks_total{queue=\"default\",handler=\"echo\",status=\"succeeded\"}"),
          "metrics lack task counts");
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agentd did not exit 0 on SIGTERM");
    CHECK(!ts_log_contains(&ag, "AddressSanitizer") && !ts_log_contains(&ag, "runtime error"),
          "sanitizer report in %s", ag.log);
    natsSubscription_Destroy(evsub);
    return ts_finish();
}
