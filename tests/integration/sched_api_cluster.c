/* API cluster.* verbs and the service itself (docs/API.md): two schedulerd
 * answer in the queue group `jetsched-api` (both serve, leader or not);
 * cluster.leader/agents/queues; PostgreSQL down => `unavailable` error JSON
 * at once (never a hang or a crash), NATS-only verbs keep answering, and
 * the API recovers when PostgreSQL is back. */
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double served(const ts_agent *s)
{
    double v = ss_metric(s, "jetsched_api_requests_total{verb=\"task.get\",code=\"not_found\"}");
    return v < 0 ? 0 : v;
}

int main(void)
{
    ss_env();
    ts_setup("default");
    ts_agent ag, s1, s2;
    ts_agent_start(&ag, "agent-c", NULL);
    ss_start(&s1, "api-c1", NULL);
    ss_start(&s2, "api-c2", NULL);
    char *holder = ss_wait_holder(NULL, 15000);
    CHECK(*holder, "a leader");

    /* cluster.leader */
    json_t *r = sa_req("cluster.leader", "{}");
    CHECK(!strcmp(sa_str(r, "leader.id"), holder), "leader id %s (holder %s)", sa_str(r, "leader.id"), holder);
    CHECK(sa_int(r, "leader.epoch") == ss_epoch() && sa_int(r, "leader.revision") == sa_int(r, "leader.epoch") &&
              sa_int(r, "leader.pid") > 0 && strlen(sa_str(r, "leader.since")) == 24,
          "leader epoch %lld, revision %lld, pid %lld", sa_int(r, "leader.epoch"), sa_int(r, "leader.revision"),
          sa_int(r, "leader.pid"));
    json_decref(r);
    sa_expect_error(sa_req("cluster.leader", "{\"verbose\":true}"), "invalid_argument", "verbose", "unknown field");

    /* cluster.agents (the registry heartbeats every second) */
    json_t *agent = NULL;
    for (int i = 0; i < 50 && !agent; i++) {
        r = sa_req("cluster.agents", "{}");
        json_t *list = json_object_get(r, "agents");
        for (size_t k = 0; k < json_array_size(list); k++)
            if (!strcmp(sa_str(json_array_get(list, k), "id"), "agent-c"))
                agent = json_incref(json_array_get(list, k));
        json_decref(r);
        if (!agent)
            ts_sleep_ms(200);
    }
    CHECK(agent && json_integer_value(json_object_get(agent, "pid")) == ag.pid, "agent-c registered with its pid");
    json_decref(agent);

    /* cluster.queues: the three consumers of queue default */
    r = sa_req("cluster.queues", "{}");
    json_t *qs = json_object_get(r, "queues");
    int found = 0;
    for (size_t k = 0; k < json_array_size(qs); k++) {
        json_t *q = json_array_get(qs, k);
        if (!strcmp(sa_str(q, "queue"), "default")) {
            found++;
            char want[64];
            snprintf(want, sizeof want, "q_default_%s", sa_str(q, "priority"));
            CHECK(!strcmp(sa_str(q, "consumer"), want) && sa_int(q, "pending") >= 0 && sa_int(q, "ack_floor") >= 0 &&
                      sa_int(q, "delivered_consumer") >= 0 && sa_int(q, "ack_floor_consumer") >= 0 &&
                      sa_int(q, "waiting") >= 0,
                  "consumer %s", sa_str(q, "consumer"));
        }
    }
    CHECK(found == 3, "three priority consumers of default (%d)", found);
    json_decref(r);

    /* The leader's gauges on /metrics (is_leader, epoch); the standby's are 0. */
    const ts_agent *lead = !strcmp(holder, "api-c1") ? &s1 : &s2, *standby = lead == &s1 ? &s2 : &s1;
    for (int i = 0; i < 50 && ss_metric(lead, "jetsched_scheduler_is_leader") != 1; i++)
        ts_sleep_ms(100);
    CHECK(ss_metric(lead, "jetsched_scheduler_is_leader") == 1 &&
              ss_metric(lead, "jetsched_scheduler_epoch") == (double)ss_epoch(),
          "leader gauges: is_leader %g, epoch %g", ss_metric(lead, "jetsched_scheduler_is_leader"),
          ss_metric(lead, "jetsched_scheduler_epoch"));
    CHECK(ss_metric(standby, "jetsched_scheduler_is_leader") == 0, "standby: is_leader 0");

    /* The queue group: both instances serve. */
    for (int i = 0; i < 40; i++)
        sa_expect_error(sa_reqf("task.get", "{\"id\":\"none-%d\"}", i), "not_found", "id", "unknown id");
    double a = served(&s1), b = served(&s2);
    CHECK(a + b == 40 && a > 0 && b > 0, "40 requests shared by the queue group: %g + %g", a, b);
    printf("queue group: %g and %g of 40 requests\n", a, b);

    /* PostgreSQL down: unavailable at once, nothing hangs or crashes. */
    CHECK(th_ctl("pg stop") == 0, "PostgreSQL stopped");
    static const char *const pg_verbs[][2] = {
        {"task.get", "{\"id\":\"x\"}"},
        {"task.submit", "{\"handler\":\"echo\"}"},
        {"task.list", "{}"},
        {"task.cancel", "{\"id\":\"x\"}"},
        {"schedule.create", "{\"id\":\"s\",\"spec\":\"* * * * *\",\"handler\":\"echo\"}"},
        {"schedule.list", "{}"},
        {"schedule.trigger", "{\"id\":\"s\"}"},
    };
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof pg_verbs / sizeof pg_verbs[0]; i++) {
            int64_t t0 = ts_now_ms();
            r = sa_req(pg_verbs[i][0], pg_verbs[i][1]);
            int64_t took = ts_now_ms() - t0;
            CHECK(strstr(sa_message(r), "PostgreSQL") != NULL, "%s: the message names PostgreSQL: %s",
                  pg_verbs[i][0], sa_message(r));
            sa_expect_error(r, "unavailable", NULL, pg_verbs[i][0]);
            CHECK(took < 5000, "%s answered in %lld ms", pg_verbs[i][0], (long long)took);
        }
    /* Validation still comes first, and NATS-only verbs still answer. */
    sa_expect_error(sa_req("task.submit", "{}"), "invalid_argument", "handler", "validation while PostgreSQL is down");
    r = sa_req("schedule.preview", "{\"spec\":\"0 * * * *\",\"count\":2}");
    CHECK(json_array_size(json_object_get(r, "next")) == 2, "preview of a spec works without PostgreSQL");
    json_decref(r);
    r = sa_req("cluster.leader", "{}");
    CHECK(*sa_str(r, "leader.id") && json_is_null(json_object_get(json_object_get(r, "leader"), "epoch")),
          "cluster.leader answers, epoch null");
    json_decref(r);
    CHECK(kill(s1.pid, 0) == 0 && kill(s2.pid, 0) == 0, "both schedulerd alive");
    CHECK(ss_metric(&s1, "jetsched_api_requests_total{verb=\"task.get\",code=\"unavailable\"}") +
                  ss_metric(&s2, "jetsched_api_requests_total{verb=\"task.get\",code=\"unavailable\"}") >=
              1,
          "unavailable counted");

    /* Back: the API reconnects. */
    CHECK(th_ctl("pg start") == 0, "PostgreSQL started");
    PQfinish(ts_pg());
    ts_reconnect_pg();
    bool ok = false;
    for (int i = 0; i < 100 && !ok; i++) {
        r = sa_req("task.submit", "{\"id\":\"after-outage\",\"handler\":\"echo\"}");
        ok = json_object_get(r, "error") == NULL;
        json_decref(r);
        if (!ok)
            ts_sleep_ms(200);
    }
    CHECK(ok, "task.submit works again after the outage");
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id = 'after-outage' AND status = 'succeeded'") == 1,
          "and the task runs");
    /* A restart between requests: the stale connection is replaced at once
     * (the first request after it already succeeds, on both instances). */
    CHECK(th_ctl("pg restart") == 0, "PostgreSQL restarted");
    PQfinish(ts_pg());
    ts_reconnect_pg();
    for (int i = 0; i < 10; i++)
        sa_expect_error(sa_req("task.get", "{\"id\":\"nope\"}"), "not_found", "id", "both instances reconnected");
    r = sa_req("cluster.queues", "{}");
    CHECK(!strcmp(sa_str(r, "queues.0.priority"), "high") && !strcmp(sa_str(r, "queues.1.priority"), "normal") &&
              !strcmp(sa_str(r, "queues.2.priority"), "low"),
          "consumers ordered high, normal, low");
    json_decref(r);

    free(holder);
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd 1 exits 0");
    CHECK(ts_agent_stop(&s2, SIGTERM, 10000) == 0, "schedulerd 2 exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
