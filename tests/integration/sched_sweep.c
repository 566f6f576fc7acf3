/* Issue 20 item 4: messages on task subjects no agent reads (bad priority,
 * upper-case queue, extra token, missing priority) are moved by the leader
 * to the DLQ with reason invalid_subject, original headers, body and
 * subject kept; a valid lane without consumers is left alone; the stream
 * ends empty of them. Also the subject rule itself (sweep_subject_is_lane). */
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sweep_subject_is_lane(const char *prefix, const char *subject, char *queue, size_t qlen);

static void raw_publish(const char *subject, const char *id, const char *body)
{
    natsMsg *m = NULL;
    natsMsg_Create(&m, subject, NULL, body, (int)strlen(body));
    natsMsgHeader_Set(m, "Jetsched-Handler", "echo");
    natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    natsMsgHeader_Set(m, "X-Keep", "kept");
    jsPubAck *pa = NULL;
    CHECK(js_PublishMsg(&pa, ts_js(), m, NULL, NULL) == NATS_OK, "published on %s", subject);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
}

int main(void)
{
    char q[80];
    CHECK(sweep_subject_is_lane("jetsched", "jetsched.task.default.normal", q, sizeof q) && !strcmp(q, "default"),
          "a lane");
    CHECK(!sweep_subject_is_lane("jetsched", "jetsched.task.default.urgent", q, sizeof q) && !strcmp(q, "default"),
          "bad priority");
    CHECK(!sweep_subject_is_lane("jetsched", "jetsched.task.Default.normal", q, sizeof q) && !strcmp(q, "_invalid"),
          "bad queue");
    CHECK(!sweep_subject_is_lane("jetsched", "jetsched.task.default.normal.extra", q, sizeof q), "extra token");
    CHECK(!sweep_subject_is_lane("jetsched", "jetsched.task.default", q, sizeof q), "no priority");

    ss_env();
    ts_setup("default");
    ts_agent s1;
    ss_start(&s1, "sweep-1", NULL);
    const char *bad[] = {"jetsched.task.default.urgent", "jetsched.task.Default.normal",
                         "jetsched.task.default.normal.extra", "jetsched.task.default"};
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "swept-%d", i);
        raw_publish(bad[i], id, "payload-kept");
    }
    raw_publish("jetsched.task.noagents.normal", "waits-1", "x"); /* a lane without consumers: stays */
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == 5, "5 stored");
    uint64_t left = 5;
    for (int i = 0; i < 200 && (left = ts_stream_msgs("JETSCHED_TASKS")) != 1; i++)
        ts_sleep_ms(100);
    CHECK(left == 1, "only the lane without consumers is left (%llu)", (unsigned long long)left);
    CHECK(ts_stream_msgs("JETSCHED_DLQ") == 4, "4 dead letters (%llu)", (unsigned long long)ts_stream_msgs("JETSCHED_DLQ"));
    json_t *r = sa_req("dlq.list", "{\"limit\":100}");
    json_t *msgs = json_object_get(r, "messages");
    int good = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        if (!strcmp(sa_str(m, "reason"), "invalid_subject") && !strcmp(sa_str(m, "payload"), "payload-kept") &&
            !strcmp(sa_str(m, "headers.X-Keep"), "kept") && !strcmp(sa_str(m, "handler"), "echo") &&
            strstr(sa_str(m, "last_error"), "is not a task lane") && !strncmp(sa_str(m, "task_id"), "swept-", 6))
            good++;
        else {
            char *t = json_dumps(m, JSON_COMPACT);
            fprintf(stderr, "dead letter: %s\n", t);
            free(t);
        }
    }
    CHECK(good == 4, "4 dead letters with reason, headers and payload (%d)", good);
    json_decref(r);
    CHECK(ss_metric(&s1, "jetsched_invalid_subject_messages_total") == 4, "counted");
    CHECK(ts_log_contains(&s1, "which no agent reads"), "logged");
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    return ts_finish();
}
