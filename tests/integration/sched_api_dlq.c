/* API dlq.* verbs (docs/API.md) with a real schedulerd and agentd: a task
 * that fails until a flag file exists dies (attempts exhausted), is listed,
 * fetched, and replayed: it runs again under the same task id, its attempts
 * are numbered on (3 after 2), it succeeds, and the dead letter is gone.
 * Also: replay of a task that is not dead, replay all with a skip, purge,
 * paging and bad input; and Jetsched-Task-Id naming a task directly. */
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fake_dead_letter_on(const char *queue, const char *task_id)
{
    natsMsg *m = NULL;
    char subject[200];
    snprintf(subject, sizeof subject, "jetsched.dlq.%s", queue);
    natsMsg_Create(&m, subject, NULL, "fake", 4);
    natsMsgHeader_Set(m, "Jetsched-Task-Id", task_id);
    natsMsgHeader_Set(m, "Jetsched-Handler", "echo");
    natsMsgHeader_Set(m, "Jetsched-Queue", queue);
    natsMsgHeader_Set(m, "Jetsched-Dead-Reason", "permanent_failure");
    jsPubAck *pa = NULL;
    CHECK(js_PublishMsg(&pa, ts_js(), m, NULL, NULL) == NATS_OK, "fake dead letter published");
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
}

static void fake_dead_letter(const char *task_id) { fake_dead_letter_on("default", task_id); }

/* The task ids dlq.list (args) lists, space-separated in list order. */
static void listed(const char *args, char *buf, size_t len)
{
    json_t *r = sa_req("dlq.list", args);
    json_t *msgs = json_object_get(r, "messages");
    buf[0] = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s%s", n ? " " : "", sa_str(json_array_get(msgs, i), "task_id"));
    }
    json_decref(r);
}

/* After step: dlq.list lists all, and by queue def (default) and other. */
static void expect_listed(const char *step, const char *all, const char *def, const char *other)
{
    char got[400];
    listed("{}", got, sizeof got);
    CHECK(!strcmp(got, all), "%s: all listed (%s)", step, got);
    listed("{\"queue\":\"default\"}", got, sizeof got);
    CHECK(!strcmp(got, def), "%s: queue default listed (%s)", step, got);
    listed("{\"queue\":\"other\"}", got, sizeof got);
    CHECK(!strcmp(got, other), "%s: queue other listed (%s)", step, got);
}

/* seq of the dead letter of task_id (0 when none). */
static long long seq_of(const char *task_id)
{
    json_t *r = sa_req("dlq.list", "{\"limit\":1000}");
    json_t *msgs = json_object_get(r, "messages");
    long long seq = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++)
        if (!strcmp(sa_str(json_array_get(msgs, i), "task_id"), task_id))
            seq = sa_int(json_array_get(msgs, i), "seq");
    json_decref(r);
    return seq;
}

/* dlq.purge or dlq.replay (verb) of task_id's dead letter; CHECKs that it went. */
static void drop_dead(const char *verb, const char *task_id)
{
    json_t *r = sa_reqf(verb, "{\"seq\":%lld}", seq_of(task_id));
    CHECK(sa_int(r, strcmp(verb, "dlq.purge") ? "replayed" : "purged") == 1, "%s of %s", verb, task_id);
    json_decref(r);
}

/* A dead letter whose headers are not UTF-8 (published straight to NATS:
 * agentd quotes a bad Nats-Msg-Id in Jetsched-Last-Error): dlq.list shows
 * them repaired (they were left out, last_error null) and dlq.replay
 * carries them byte for byte (they were dropped from the replayed task). */
static void binary_headers(void)
{
    natsMsg *m = NULL;
    natsMsg_Create(&m, "jetsched.dlq.bin", NULL, "payload", 7);
    natsMsgHeader_Set(m, "Jetsched-Task-Id", "dl-bin");
    natsMsgHeader_Set(m, "Jetsched-Handler", "echo");
    natsMsgHeader_Set(m, "Jetsched-Queue", "bin");
    natsMsgHeader_Set(m, "Jetsched-Dead-Reason", "invalid_id");
    natsMsgHeader_Set(m, "Jetsched-Last-Error", "Nats-Msg-Id \"\xff\xfe\" is not valid");
    natsMsgHeader_Set(m, "X-Sig", "\xff\xfe-sig");
    jsPubAck *pa = NULL;
    CHECK(js_PublishMsg(&pa, ts_js(), m, NULL, NULL) == NATS_OK, "dead letter with binary headers published");
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    json_t *r = sa_req("dlq.list", "{\"queue\":\"bin\"}");
    json_t *dl = json_array_get(json_object_get(r, "messages"), 0);
    const char *le = json_string_value(json_object_get(dl, "last_error"));
    const char *sig = json_string_value(json_object_get(json_object_get(dl, "headers"), "X-Sig"));
    CHECK(le && strstr(le, "is not valid"), "last_error shown with the bad bytes repaired: %s", le ? le : "(null)");
    CHECK(sig && !strcmp(sig, "\xef\xbf\xbd\xef\xbf\xbd-sig"), "X-Sig listed as U+FFFD U+FFFD -sig: %s",
          sig ? sig : "(absent)");
    long long seq = json_integer_value(json_object_get(dl, "seq"));
    json_decref(r);
    natsSubscription *sub = NULL;
    CHECK(natsConnection_SubscribeSync(&sub, ts_nats(), "jetsched.task.bin.>") == NATS_OK, "subscribe");
    natsConnection_Flush(ts_nats());
    r = sa_reqf("dlq.replay", "{\"seq\":%lld}", seq);
    CHECK(sa_int(r, "replayed") == 1, "binary-header dead letter replayed: %s", json_dumps(r, 0));
    json_decref(r);
    natsMsg *got = NULL;
    CHECK(natsSubscription_NextMsg(&got, sub, 5000) == NATS_OK, "the replayed task is published");
    const char *v = NULL;
    CHECK(got && natsMsgHeader_Get(got, "X-Sig", &v) == NATS_OK && v && !strcmp(v, "\xff\xfe-sig"),
          "the replayed task carries X-Sig byte for byte (%s)", v ? v : "(absent)");
    natsMsg_Destroy(got);
    natsSubscription_Destroy(sub);
}

int main(void)
{
    ss_env();
    ts_setup("default");
    char *dir = th_tmpdir();
    char runs[600], flag[600], body[2048];
    snprintf(runs, sizeof runs, "%s/runs.log", dir);
    snprintf(flag, sizeof flag, "%s/flag", dir);
    free(dir);
    snprintf(body, sizeof body,
             "queues = ( { name = \"default\"; concurrency = 4; backoff = \"fixed:100ms\"; } );\n"
             "exec = { commands = ( { name = \"flaky\"; argv = [\"/bin/sh\", \"-c\", "
             "\"echo $JETSCHED_TASK_ID >> %s; test -e %s\"]; } ); };\n",
             runs, flag);
    ts_agent ag, s1;
    ts_agent_start(&ag, "agent-dlq", body);
    ss_start(&s1, "api-dlq", NULL);

    /* Bad input. */
    sa_expect_error(sa_req("dlq.replay", "{}"), "invalid_argument", "seq", "replay without seq or all");
    sa_expect_error(sa_req("dlq.replay", "{\"seq\":\"1\"}"), "invalid_argument", "seq", "seq as a string");
    sa_expect_error(sa_req("dlq.replay", "{\"seq\":1,\"all\":true}"), "invalid_argument", "seq", "seq and all");
    sa_expect_error(sa_req("dlq.purge", "{\"queue\":\"x.y\",\"all\":true}"), "invalid_argument", "queue", "bad queue");
    sa_expect_error(sa_req("dlq.list", "{\"cursor\":\"eA\"}"), "invalid_argument", "cursor", "bad cursor");
    sa_expect_error(sa_req("dlq.get", "{\"seq\":999999}"), "not_found", "seq", "get of an unknown seq");
    sa_expect_error(sa_req("dlq.replay", "{\"seq\":999999}"), "not_found", "seq", "replay of an unknown seq");
    sa_expect_error(sa_req("dlq.purge", "{\"seq\":999999}"), "not_found", "seq", "purge of an unknown seq");

    /* api.max_payload is 1MiB here, but the server takes at most 1MB per
     * message (headers included): the lower limit applies. */
    char *huge = malloc(1100000);
    int n = sprintf(huge, "{\"handler\":\"echo\",\"payload\":\"");
    memset(huge + n, 'z', 1040000);
    strcpy(huge + n + 1040000, "\"}");
    json_t *big = sa_req("task.submit", huge);
    free(huge);
    CHECK(strstr(sa_message(big), "NATS server") != NULL, "the server's limit is named: %s", sa_message(big));
    sa_expect_error(big, "payload_too_large", "payload", "payload over the server's max_payload");

    /* Two tasks die: attempts exhausted after 2. */
    sa_expect_ok(sa_req("task.submit", "{\"id\":\"flaky-1\",\"handler\":\"flaky\",\"max_attempts\":2,"
                                       "\"payload\":\"p1\",\"headers\":{\"X-Keep\":\"yes\"}}"), "submit flaky-1");
    sa_expect_ok(sa_req("task.submit", "{\"id\":\"flaky-2\",\"handler\":\"flaky\",\"max_attempts\":2}"),
                 "submit flaky-2");
    CHECK(ts_wait_long(2, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'flaky-%%' AND status = 'dead'") == 2,
          "both dead");
    for (int i = 0; i < 100 && ts_stream_msgs("JETSCHED_DLQ") < 2; i++)
        ts_sleep_ms(100);
    CHECK(ts_stream_msgs("JETSCHED_DLQ") == 2, "two dead letters");

    /* The two die in either order (full-jitter backoff between attempts). */
    json_t *r = sa_req("dlq.list", "{}");
    json_t *m0 = json_array_get(json_object_get(r, "messages"), 0);
    if (strcmp(sa_str(m0, "task_id"), "flaky-1") != 0)
        m0 = json_array_get(json_object_get(r, "messages"), 1);
    CHECK(json_array_size(json_object_get(r, "messages")) == 2, "dlq.list: 2 (%zu)",
          json_array_size(json_object_get(r, "messages")));
    CHECK(!strcmp(sa_str(m0, "task_id"), "flaky-1") && !strcmp(sa_str(m0, "reason"), "attempts_exhausted") &&
              sa_int(m0, "attempts") == 2 && !strcmp(sa_str(m0, "handler"), "flaky") &&
              !strcmp(sa_str(m0, "queue"), "default") && !strcmp(sa_str(m0, "payload"), "p1") &&
              !strcmp(sa_str(m0, "headers.X-Keep"), "yes") && strstr(sa_str(m0, "last_error"), "exited with code"),
          "the dead letter's fields");
    CHECK(strlen(sa_str(m0, "dead_at")) == 24, "dead_at");
    long long seq1 = sa_int(m0, "seq");
    json_decref(r);
    r = sa_req("dlq.list", "{\"limit\":1}");
    CHECK(json_array_size(json_object_get(r, "messages")) == 1 && json_is_string(json_object_get(r, "next_cursor")),
          "page 1 of 2");
    char cursor[200], first[64];
    snprintf(cursor, sizeof cursor, "%s", sa_str(r, "next_cursor"));
    snprintf(first, sizeof first, "%s", sa_str(r, "messages.0.task_id"));
    json_decref(r);
    r = sa_reqf("dlq.list", "{\"limit\":1,\"cursor\":\"%s\"}", cursor);
    const char *second = sa_str(r, "messages.0.task_id");
    CHECK(json_array_size(json_object_get(r, "messages")) == 1 && json_is_null(json_object_get(r, "next_cursor")) &&
              ((!strcmp(first, "flaky-1") && !strcmp(second, "flaky-2")) ||
               (!strcmp(first, "flaky-2") && !strcmp(second, "flaky-1"))),
          "page 2 of 2 (%s, then %s)", first, second);
    json_decref(r);
    r = sa_req("dlq.list", "{\"queue\":\"default\"}");
    CHECK(json_array_size(json_object_get(r, "messages")) == 2, "queue filter");
    json_decref(r);
    r = sa_req("dlq.list", "{\"queue\":\"elsewhere\"}");
    CHECK(json_array_size(json_object_get(r, "messages")) == 0, "another queue: none");
    json_decref(r);
    r = sa_reqf("dlq.get", "{\"seq\":%lld}", seq1);
    CHECK(!strcmp(sa_str(r, "message.task_id"), "flaky-1"), "dlq.get");
    json_decref(r);

    /* A dead letter whose task is not dead: refused. */
    sa_expect_ok(sa_req("task.submit", "{\"id\":\"ok-1\",\"handler\":\"echo\"}"), "submit ok-1");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'ok-1' AND status = 'succeeded'") == 1,
          "ok-1 ran");
    fake_dead_letter("ok-1");
    long long fake = seq_of("ok-1");
    CHECK(fake > 0, "fake dead letter listed");
    r = sa_reqf("dlq.replay", "{\"seq\":%lld}", fake);
    CHECK(strstr(sa_message(r), "succeeded") != NULL, "the message says why: %s", sa_message(r));
    sa_expect_error(r, "failed_precondition", "seq", "replay of a task that is not dead");

    /* Replay: runs again (the flag now exists) and succeeds; history continues. */
    FILE *f = fopen(flag, "w");
    fclose(f);
    CHECK(ss_count_lines(runs, "flaky-1") == 2, "flaky-1 ran twice before");
    r = sa_reqf("dlq.replay", "{\"seq\":%lld}", seq1);
    CHECK(sa_int(r, "replayed") == 1 && !strcmp(sa_str(r, "task_ids.0"), "flaky-1"), "replayed flaky-1");
    json_decref(r);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'flaky-1' AND status = 'succeeded'") == 1,
          "flaky-1 succeeded after the replay");
    CHECK(ts_pg_long("SELECT attempts FROM tasks WHERE id = 'flaky-1'") == 3, "attempts numbered on: %ld",
          ts_pg_long("SELECT attempts FROM tasks WHERE id = 'flaky-1'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'flaky-1'") == 3 &&
              ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'flaky-1' AND attempt = 3"
                         " AND status = 'succeeded'") == 1,
          "attempt 3 recorded as succeeded, 1 and 2 kept");
    CHECK(ts_pg_long("SELECT max_attempts FROM tasks WHERE id = 'flaky-1'") == 4, "a fresh budget of 2: max %ld",
          ts_pg_long("SELECT max_attempts FROM tasks WHERE id = 'flaky-1'"));
    CHECK(ss_count_lines(runs, "flaky-1") == 3, "flaky-1 ran once more (%d)", ss_count_lines(runs, "flaky-1"));
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'flaky-1-replay%%'") == 0, "no task under the msg id");
    sa_expect_error(sa_reqf("dlq.get", "{\"seq\":%lld}", seq1), "not_found", "seq", "the dead letter is gone");
    r = sa_req("task.get", "{\"id\":\"flaky-1\"}");
    CHECK(!strcmp(sa_str(r, "task.status"), "succeeded") && json_array_size(json_object_get(r, "attempts")) == 3,
          "task.get shows the continued history");
    json_decref(r);

    /* Replay all: flaky-2 replays, the fake one is skipped. */
    r = sa_req("dlq.replay", "{\"all\":true,\"queue\":\"default\"}");
    CHECK(sa_int(r, "replayed") == 1 && !strcmp(sa_str(r, "task_ids.0"), "flaky-2"), "replay all: flaky-2");
    CHECK(json_array_size(json_object_get(r, "skipped")) == 1 && !strcmp(sa_str(r, "skipped.0.task_id"), "ok-1"),
          "replay all: ok-1 skipped");
    json_decref(r);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'flaky-2' AND status = 'succeeded'"
                                 " AND attempts = 3") == 1,
          "flaky-2 succeeded on attempt 3");

    /* Purge one, then all. */
    r = sa_reqf("dlq.purge", "{\"seq\":%lld}", fake);
    CHECK(sa_int(r, "purged") == 1, "purge one");
    json_decref(r);
    fake_dead_letter("ok-1");
    fake_dead_letter("ok-1");
    r = sa_req("dlq.purge", "{\"all\":true}");
    CHECK(sa_int(r, "purged") == 2, "purge all: %lld", sa_int(r, "purged"));
    json_decref(r);
    r = sa_req("dlq.list", "{}");
    CHECK(json_array_size(json_object_get(r, "messages")) == 0, "empty after purge");
    json_decref(r);

    /* Jetsched-Task-Id names the task; Nats-Msg-Id is only the dedupe key. */
    const char *hdrs[] = {"Jetsched-Task-Id: named-1", NULL};
    ts_publish("default", "normal", "echo", "msgid-xyz", "n", 1, hdrs);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'named-1' AND status = 'succeeded'") == 1,
          "the task is named by Jetsched-Task-Id");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'msgid-xyz'") == 0, "not by Nats-Msg-Id");
    const char *bad[] = {"Jetsched-Task-Id: bad id!", NULL};
    ts_publish("default", "normal", "echo", "msgid-2", "n", 1, bad);
    for (int i = 0; i < 200 && ts_stream_msgs("JETSCHED_DLQ") == 0; i++)
        ts_sleep_ms(100);
    CHECK(ts_stream_msgs("JETSCHED_DLQ") == 1, "an invalid Jetsched-Task-Id is dead-lettered");
    r = sa_req("dlq.list", "{}");
    CHECK(!strcmp(sa_str(r, "messages.0.reason"), "invalid_id"), "reason invalid_id (%s)",
          sa_str(r, "messages.0.reason"));
    json_decref(r);

    /* Right after dead letters are deleted (replay and purge both end in
     * js_DeleteMsg), dlq.list, with and without a queue, lists every
     * remaining one at once. nats-server 2.9.10 answers next_by_subj with
     * 404 for a subject whose last and then first message were deleted
     * while one in between remains (the web console once saw an empty
     * page here): dl-5 (default's last) purged, dl-1 (its first) replayed;
     * then dl-6 (other's last) and dl-2 (its first) purged. */
    r = sa_req("dlq.purge", "{\"all\":true}");
    json_decref(r);
    const char *order[][2] = {{"default", "dl-1"}, {"other", "dl-2"}, {"default", "dl-3"},
                              {"other", "dl-4"},   {"default", "dl-5"}, {"other", "dl-6"}};
    for (size_t i = 0; i < 6; i++)
        fake_dead_letter_on(order[i][0], order[i][1]);
    char got[400];
    listed("{}", got, sizeof got);
    CHECK(!strcmp(got, "dl-1 dl-2 dl-3 dl-4 dl-5 dl-6"), "six dead letters listed (%s)", got);
    drop_dead("dlq.purge", "dl-5");
    drop_dead("dlq.replay", "dl-1");
    expect_listed("after purge of dl-5, replay of dl-1", "dl-2 dl-3 dl-4 dl-6", "dl-3", "dl-2 dl-4 dl-6");
    drop_dead("dlq.purge", "dl-6");
    drop_dead("dlq.purge", "dl-2");
    expect_listed("after purge of dl-6 and dl-2", "dl-3 dl-4", "dl-3", "dl-4");
    listed("{\"limit\":1}", got, sizeof got);
    CHECK(!strcmp(got, "dl-3"), "a page of one (%s)", got);
    r = sa_req("dlq.replay", "{\"all\":true,\"queue\":\"default\"}");
    CHECK(sa_int(r, "replayed") == 1 && !strcmp(sa_str(r, "task_ids.0"), "dl-3"), "replay all (default): dl-3");
    json_decref(r);

    CHECK(ss_metric(&s1, "jetsched_api_requests_total{verb=\"dlq.replay\",code=\"ok\"}") == 4, "replays counted");
    binary_headers();
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
