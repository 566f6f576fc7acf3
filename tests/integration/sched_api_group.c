/* Concurrent API requests and group commit of task.submit (docs/API.md
 * "Operating the API", issue 15): many task.submit requests in flight from
 * one client are stored together (jetsched_api_submit_grouped_total /
 * groups_total > 1), each answered after the commit and published once;
 * concurrent resubmissions of the same id create it once; a submission
 * PostgreSQL refuses (a constraint the API's checks cannot know) fails alone,
 * the others of its group are stored; validate_only and delayed submits
 * mixed in; PostgreSQL down: every request unavailable, then each created
 * exactly once when submitted again; other verbs served meanwhile. No agent:
 * the stream keeps every message. */
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sends n task.submit bodies at once (all in flight) and collects the
 * replies in order (FATAL after 30 s). */
static void pipelined(const char *verb, char **bodies, int n, json_t **replies)
{
    natsSubscription *sub = NULL;
    char inbox[64], subject[128], reply_to[96];
    static int round;
    snprintf(inbox, sizeof inbox, "_INBOX.grp%d.*", ++round);
    snprintf(subject, sizeof subject, "jetsched.api.%s", verb);
    if (natsConnection_SubscribeSync(&sub, ts_nats(), inbox) != NATS_OK) {
        fprintf(stderr, "FATAL: subscribe %s\n", inbox);
        exit(1);
    }
    natsSubscription_SetPendingLimits(sub, -1, -1);
    for (int i = 0; i < n; i++) {
        replies[i] = NULL;
        snprintf(reply_to, sizeof reply_to, "_INBOX.grp%d.%d", round, i);
        natsConnection_PublishRequestString(ts_nats(), subject, reply_to, bodies[i]);
    }
    natsConnection_Flush(ts_nats());
    int got = 0;
    int64_t until = ts_now_ms() + 30000;
    while (got < n && ts_now_ms() < until) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 1000) != NATS_OK)
            continue;
        int i = atoi(strrchr(natsMsg_GetSubject(m), '.') + 1);
        if (i >= 0 && i < n && !replies[i]) {
            replies[i] = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
            got += replies[i] != NULL;
        }
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    if (got < n) {
        fprintf(stderr, "FATAL: %d of %d replies to %s\n", got, n, verb);
        exit(1);
    }
}

static void free_all(char **bodies, json_t **replies, int n)
{
    for (int i = 0; i < n; i++) {
        free(bodies[i]);
        json_decref(replies[i]);
    }
}

#define NA 400
#define NB 64
#define NC 128

int main(void)
{
    ss_env();
    ts_setup("default");
    ts_agent s1;
    ss_start(&s1, "group-1", "api = { pg_connections = 4; };");
    char *bodies[NA];
    json_t *replies[NA];

    /* A: 400 at once, every 10th delayed, every 50th validate_only */
    int delayed = 0, valid = 0;
    for (int i = 0; i < NA; i++) {
        char b[256];
        if (i % 50 == 49) {
            snprintf(b, sizeof b, "{\"id\":\"grp-v-%d\",\"handler\":\"log\",\"validate_only\":true}", i);
            valid++;
        } else if (i % 10 == 9) {
            snprintf(b, sizeof b, "{\"id\":\"grp-a-%d\",\"handler\":\"log\",\"delay\":\"1h\"}", i);
            delayed++;
        } else {
            snprintf(b, sizeof b, "{\"id\":\"grp-a-%d\",\"handler\":\"log\",\"payload\":\"p%d\"}", i, i);
        }
        bodies[i] = strdup(b);
    }
    pipelined("task.submit", bodies, NA, replies);
    int ok = 0, bad = 0, sch = 0, v = 0;
    for (int i = 0; i < NA; i++) {
        if (i % 50 == 49) {
            v += json_is_true(json_object_get(replies[i], "valid"));
            continue;
        }
        char id[32];
        snprintf(id, sizeof id, "grp-a-%d", i);
        bool created = json_is_true(json_object_get(replies[i], "created")) && !strcmp(sa_str(replies[i], "id"), id);
        const char *st = sa_str(replies[i], "status");
        if (created && i % 10 == 9 && !strcmp(st, "scheduled"))
            sch++;
        else if (created && i % 10 != 9 && !strcmp(st, "queued"))
            ok++;
        else if (bad++ < 3)
            fprintf(stderr, "reply %d: %s\n", i, json_dumps(replies[i], JSON_COMPACT));
    }
    free_all(bodies, replies, NA);
    CHECK(bad == 0 && ok == NA - delayed - valid && sch == delayed && v == valid,
          "400 in flight: %d queued, %d scheduled, %d valid, %d wrong", ok, sch, v, bad);
    /* answered after the commit: every row is there; published after it */
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'grp-a-%%'") == NA - valid, "rows stored");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'grp-v-%%'") == 0, "validate_only stored nothing");
    long disp = ts_wait_long(ok, 10000,
                             "SELECT count(*) FROM tasks WHERE id LIKE 'grp-a-%%' AND dispatched_at IS NOT NULL");
    CHECK(disp == ok, "dispatched_at recorded for the queued ones (%ld)", disp);
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == (uint64_t)ok, "each queued one published once (%llu messages)",
          (unsigned long long)ts_stream_msgs("JETSCHED_TASKS"));
    double groups = ss_metric(&s1, "jetsched_api_submit_groups_total"),
           grouped = ss_metric(&s1, "jetsched_api_submit_grouped_total");
    CHECK(grouped == NA - valid && groups >= 1 && groups < grouped,
          "submits stored in groups: %g submits in %g transactions", grouped, groups);
    printf("group commit: %g submits in %g transactions\n", grouped, groups);

    /* B: 8 ids, 8 submissions of each at once: each created exactly once */
    for (int i = 0; i < NB; i++) {
        char b[128];
        snprintf(b, sizeof b, "{\"id\":\"grp-b-%d\",\"handler\":\"log\"}", i % 8);
        bodies[i] = strdup(b);
    }
    pipelined("task.submit", bodies, NB, replies);
    int created = 0, existing = 0;
    for (int i = 0; i < NB; i++) {
        if (json_is_true(json_object_get(replies[i], "created")))
            created++;
        else if (json_is_false(json_object_get(replies[i], "created")) && !strcmp(sa_str(replies[i], "status"), "queued"))
            existing++;
    }
    free_all(bodies, replies, NB);
    CHECK(created == 8 && existing == NB - 8, "same ids at once: %d created, %d existing (queued)", created, existing);
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == (uint64_t)ok + 8, "published once each");

    /* C: PostgreSQL refuses one submission of a group: only it fails */
    ts_pg_long("ALTER TABLE tasks ADD CONSTRAINT grp_test_refuse CHECK (id NOT LIKE 'grp-bad%%') NOT VALID");
    bool fell_back = false;
    for (int round = 0; round < 5 && !fell_back; round++) {
        for (int i = 0; i < NC; i++) {
            char b[128];
            snprintf(b, sizeof b, "{\"id\":\"grp-%s%d-%d\",\"handler\":\"log\",\"delay\":\"1h\"}",
                     i == NC / 2 ? "bad-" : "c-", round, i);
            bodies[i] = strdup(b);
        }
        pipelined("task.submit", bodies, NC, replies);
        int good = 0;
        for (int i = 0; i < NC; i++)
            if (i != NC / 2)
                good += json_is_true(json_object_get(replies[i], "created"));
        CHECK(good == NC - 1, "round %d: the %d good submissions stored (%d)", round, NC - 1, good);
        CHECK(!strcmp(sa_code(replies[NC / 2]), "internal"), "round %d: the refused one fails (%s)", round,
              sa_code(replies[NC / 2]));
        free_all(bodies, replies, NC);
        ts_sleep_ms(200);
        fell_back = ts_log_contains(&s1, "storing them in halves");
    }
    CHECK(fell_back, "the refused submission was in a group (schedulerd stored that group in halves)");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'grp-bad%%'") == 0, "nothing of the refused ones");
    ts_pg_long("ALTER TABLE tasks DROP CONSTRAINT grp_test_refuse");

    /* D: PostgreSQL down: every request of the groups gets unavailable (its
     * outcome unknown); submitted again under the same ids once it is back,
     * each is created exactly once */
#define ND 100
    CHECK(th_ctl("pg stop") == 0, "PostgreSQL stopped");
    for (int i = 0; i < ND; i++) {
        char b[128];
        snprintf(b, sizeof b, "{\"id\":\"grp-d-%d\",\"handler\":\"log\"}", i);
        bodies[i] = strdup(b);
    }
    pipelined("task.submit", bodies, ND, replies);
    int unavailable = 0, createdd = 0;
    for (int i = 0; i < ND; i++) {
        unavailable += !strcmp(sa_code(replies[i]), "unavailable");
        createdd += json_is_true(json_object_get(replies[i], "created"));
        json_decref(replies[i]);
    }
    CHECK(unavailable == ND, "PostgreSQL down: all %d unavailable (%d)", ND, unavailable);
    CHECK(th_ctl("pg start") == 0, "PostgreSQL started");
    PQfinish(ts_pg());
    ts_reconnect_pg();
    for (int round = 0; round < 20 && createdd < ND; round++) {
        pipelined("task.submit", bodies, ND, replies);
        for (int i = 0; i < ND; i++) {
            createdd += json_is_true(json_object_get(replies[i], "created"));
            json_decref(replies[i]);
        }
        if (createdd < ND)
            ts_sleep_ms(500);
    }
    for (int i = 0; i < ND; i++)
        free(bodies[i]);
    CHECK(createdd == ND, "after the restart each created exactly once (%d)", createdd);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'grp-d-%%'") == ND, "%d rows", ND);

    /* other verbs are served while submits are grouped */
    json_t *r = sa_req("task.get", "{\"id\":\"grp-a-0\"}");
    CHECK(!strcmp(sa_str(r, "task.status"), "queued"), "task.get (%s)", sa_str(r, "task.status"));
    json_decref(r);

    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    return ts_finish();
}
