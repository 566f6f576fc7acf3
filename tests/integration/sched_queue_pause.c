/* Queue pause/resume (issue 17, docs/OPERATIONS.md "Pausing a queue"):
 * queue.pause / queue.resume through a real schedulerd, KV jetsched_control
 * watched by a real agentd. A queue with thousands of queued tasks is paused
 * while it runs: from the history in PostgreSQL, no attempt starts between
 * one second after the pause and the resume, every task then succeeds with
 * one attempt (nothing nacked into retries). A pause of one priority lane
 * leaves the other lanes running. cluster.queues and the agent's
 * jetsched_agent_lane_paused gauge show the paused lanes. Bad requests are
 * refused naming the field. */
#include "sched_api_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASKS 10000    /* the 10,000 queued tasks */
#define PAUSE_MS 5000  /* how long the queue stays paused (the issue says 30 s; 5 s keeps CI short) */
#define GRACE_MS 1000  /* a paused lane stops being pulled within this */
#define LANE_TASKS 300

/* Publishes n noop tasks <prefix>-<i> to a lane without waiting for
 * each ack (ts_publish waits for every one: too slow for thousands). */
static void publish_many(const char *queue, const char *prio, const char *prefix, int n)
{
    char subject[128], id[64];
    snprintf(subject, sizeof subject, "jetsched.task.%s.%s", queue, prio);
    for (int i = 0; i < n; i++) {
        natsMsg *m = NULL;
        natsMsg_Create(&m, subject, NULL, "x", 1);
        natsMsgHeader_Set(m, "Jetsched-Handler", "noop");
        snprintf(id, sizeof id, "%s-%05d", prefix, i);
        natsMsgHeader_Set(m, "Nats-Msg-Id", id);
        natsStatus st = js_PublishMsgAsync(ts_js(), &m, NULL);
        natsMsg_Destroy(m); /* NULL when the library took it */
        CHECK(st == NATS_OK, "async publish %d: %s", i, natsStatus_GetText(st));
    }
    CHECK(js_PublishAsyncComplete(ts_js(), NULL) == NATS_OK, "every publish acknowledged");
}

static int64_t pg_now_ms(void) { return ts_pg_long("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint"); }

static long started_between(const char *like, int64_t from_ms, int64_t to_ms)
{
    return ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE '%s' AND started_at > to_timestamp(%lld / "
                      "1000.0) AND started_at < to_timestamp(%lld / 1000.0)",
                      like, (long long)from_ms, (long long)to_ms);
}

/* The cluster.queues entry of queue/priority (a new reference, or NULL). */
static json_t *lane_of(const char *queue, const char *prio)
{
    json_t *r = sa_req("cluster.queues", "{}"), *found = NULL;
    json_t *qs = json_object_get(r, "queues");
    for (size_t k = 0; k < json_array_size(qs); k++) {
        json_t *q = json_array_get(qs, k);
        if (!strcmp(sa_str(q, "queue"), queue) && !strcmp(sa_str(q, "priority"), prio))
            found = json_incref(q);
    }
    json_decref(r);
    return found;
}

static bool lane_paused(const char *queue, const char *prio, const char *scope)
{
    json_t *q = lane_of(queue, prio);
    bool paused = q && json_is_true(json_object_get(q, "paused"));
    bool ok = scope ? paused && !strcmp(sa_str(q, "pause.scope"), scope) : !paused && q &&
                                                                                json_is_null(json_object_get(q, "pause"));
    json_decref(q);
    return ok;
}

static double gauge(const ts_agent *ag, const char *queue, const char *prio)
{
    char name[160];
    snprintf(name, sizeof name, "jetsched_agent_lane_paused{queue=\"%s\",priority=\"%s\"}", queue, prio);
    return ss_metric(ag, name);
}

static void api_errors(void)
{
    sa_expect_error(sa_req("queue.pause", "{}"), "invalid_argument", "queue", "queue missing");
    sa_expect_error(sa_req("queue.pause", "{\"queue\":\"Bad Queue!\"}"), "invalid_argument", "queue", "bad queue name");
    sa_expect_error(sa_req("queue.pause", "{\"queue\":7}"), "invalid_argument", "queue", "queue not a string");
    sa_expect_error(sa_req("queue.pause", "{\"queue\":\"pq\",\"color\":\"red\"}"), "invalid_argument", "color",
                    "unknown field");
    sa_expect_error(sa_req("queue.pause", "{\"queue\":\"pq\",\"priority\":\"urgent\"}"), "invalid_argument",
                    "priority", "bad priority");
    char big[700];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sa_expect_error(sa_reqf("queue.pause", "{\"queue\":\"pq\",\"reason\":\"%s\"}", big), "invalid_argument", "reason",
                    "reason too long");
    sa_expect_error(sa_req("queue.resume", "{\"queue\":\"pq\",\"reason\":\"x\"}"), "invalid_argument", "reason",
                    "resume takes no reason");
    sa_expect_error(sa_req("queue.resume", "{\"queue\":\"\"}"), "invalid_argument", "queue", "empty queue name");
    CHECK(lane_paused("pq", "normal", NULL), "refused requests paused nothing");
}

static void pause_whole_queue(const ts_agent *ag)
{
    int64_t t0 = ts_now_ms();
    publish_many("pq", "normal", "pause", TASKS);
    printf("pause: %d tasks published in %lld ms\n", TASKS, (long long)(ts_now_ms() - t0));
    long done = 0;
    for (int i = 0; i < 300 && (done = ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'pause-%%' AND status = "
                                                  "'succeeded'")) < 100;
         i++)
        ts_sleep_ms(50);
    CHECK(done >= 100, "the queue runs before the pause (%ld succeeded)", done);

    int64_t t_pause = pg_now_ms();
    json_t *r = sa_req("queue.pause", "{\"queue\":\"pq\",\"by\":\"test\",\"reason\":\"downstream down\"}");
    CHECK(json_is_true(json_object_get(r, "paused")) && !strcmp(sa_str(r, "queue"), "pq") &&
              json_is_null(json_object_get(r, "priority")) && !strcmp(sa_str(r, "reason"), "downstream down") &&
              !strcmp(sa_str(r, "by"), "test") && strlen(sa_str(r, "at")) >= 20,
          "queue.pause reply");
    sa_expect_ok(r, "queue.pause");
    ts_sleep_ms(PAUSE_MS);
    long at_resume = ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'pause-%%' AND status = 'succeeded'");
    CHECK(lane_paused("pq", "high", "queue") && lane_paused("pq", "normal", "queue") &&
              lane_paused("pq", "low", "queue"),
          "cluster.queues shows every lane of pq paused (scope queue)");
    r = lane_of("pq", "normal");
    CHECK(r && !strcmp(sa_str(r, "pause.reason"), "downstream down") && !strcmp(sa_str(r, "pause.by"), "test"),
          "cluster.queues shows who paused and why");
    json_decref(r);
    CHECK(gauge(ag, "pq", "normal") == 1 && gauge(ag, "pq", "low") == 1 && gauge(ag, "lq", "normal") == 0,
          "agent gauges: pq/normal %g, pq/low %g, lq/normal %g", gauge(ag, "pq", "normal"), gauge(ag, "pq", "low"),
          gauge(ag, "lq", "normal"));

    int64_t t_resume = pg_now_ms();
    r = sa_req("queue.resume", "{\"queue\":\"pq\"}");
    CHECK(json_is_false(json_object_get(r, "paused")), "queue.resume reply");
    sa_expect_ok(r, "queue.resume");

    long late = started_between("pause-%", t_pause + GRACE_MS, t_resume);
    long last_ms = ts_pg_long("SELECT coalesce(max((extract(epoch from started_at) * 1000)::bigint - %lld), -1) FROM "
                              "task_attempts WHERE task_id LIKE 'pause-%%' AND started_at < to_timestamp(%lld / 1000.0)",
                              (long long)t_pause, (long long)t_resume);
    printf("pause: %ld of %d succeeded when paused for %d ms; last start %ld ms after the pause request\n", at_resume,
           TASKS, PAUSE_MS, last_ms);
    CHECK(late == 0, "%ld attempts started more than %d ms after the pause", late, GRACE_MS);
    CHECK(at_resume < TASKS / 2, "tasks were still queued during the pause (%ld of %d done)", at_resume, TASKS);
    t0 = ts_now_ms();
    long all = ts_wait_long(TASKS, 60000, "SELECT count(*) FROM tasks WHERE id LIKE 'pause-%%' AND status = 'succeeded'");
    CHECK(all == TASKS, "all %d tasks succeeded after the resume (%ld)", TASKS, all);
    printf("pause: the remaining %ld tasks ran in %lld ms after the resume\n", TASKS - at_resume,
           (long long)(ts_now_ms() - t0));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'pause-%%'") == TASKS,
          "one attempt per task: nothing was nacked into a retry");
    CHECK(started_between("pause-%", t_resume, t_resume + 60000) > 0, "tasks started again after the resume");
    for (int i = 0; i < 30 && gauge(ag, "pq", "normal") != 0; i++)
        ts_sleep_ms(100);
    CHECK(gauge(ag, "pq", "normal") == 0, "agent gauge back to 0");
}

static void pause_one_lane(void)
{
    sa_expect_ok(sa_req("queue.pause", "{\"queue\":\"pq\",\"priority\":\"low\"}"), "pause lane low");
    ts_sleep_ms(GRACE_MS);
    int64_t t_pause = pg_now_ms();
    publish_many("pq", "low", "lane-low", LANE_TASKS);
    publish_many("pq", "high", "lane-high", LANE_TASKS);
    long high = ts_wait_long(LANE_TASKS, 30000,
                             "SELECT count(*) FROM tasks WHERE id LIKE 'lane-high-%%' AND status = 'succeeded'");
    CHECK(high == LANE_TASKS, "lane high runs while low is paused (%ld)", high);
    ts_sleep_ms(500);
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'lane-low-%%'") == 0,
          "no attempt of the paused lane low");
    CHECK(lane_paused("pq", "low", "lane") && lane_paused("pq", "high", NULL) && lane_paused("pq", "normal", NULL),
          "cluster.queues: only pq/low paused (scope lane)");
    json_t *r = sa_req("queue.resume", "{\"queue\":\"pq\",\"priority\":\"low\"}");
    CHECK(!strcmp(sa_str(r, "priority"), "low"), "resume names the lane");
    sa_expect_ok(r, "resume lane low");
    long low = ts_wait_long(LANE_TASKS, 30000,
                            "SELECT count(*) FROM tasks WHERE id LIKE 'lane-low-%%' AND status = 'succeeded'");
    CHECK(low == LANE_TASKS, "lane low runs after its resume (%ld)", low);
    CHECK(started_between("lane-low-%", t_pause - 60000, t_pause + 60000) == LANE_TASKS, "one attempt each");

    /* resume without priority clears the queue key and every lane key */
    sa_expect_ok(sa_req("queue.pause", "{\"queue\":\"pq\"}"), "pause queue");
    sa_expect_ok(sa_req("queue.pause", "{\"queue\":\"pq\",\"priority\":\"high\"}"), "pause lane high");
    CHECK(lane_paused("pq", "high", "lane") && lane_paused("pq", "low", "queue"), "both keys set");
    sa_expect_ok(sa_req("queue.resume", "{\"queue\":\"pq\"}"), "resume queue");
    CHECK(lane_paused("pq", "high", NULL) && lane_paused("pq", "low", NULL), "resume of the queue clears its lanes");
}

/* An agent started while a lane is paused never pulls it (the watch's
 * current keys are applied before the pullers start). */
static void paused_before_start(void)
{
    sa_expect_ok(sa_req("queue.pause", "{\"queue\":\"lq\"}"), "pause lq");
    ts_publish("lq", "normal", "noop", "early-1", "x", 1, NULL);
    ts_agent ag;
    ts_agent_start(&ag, "agent-late", "queues = ( { name = \"lq\"; concurrency = 2; } );\n");
    ts_sleep_ms(1500);
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'early-1'") == 0,
          "a new agent does not pull a lane paused before it started");
    CHECK(gauge(&ag, "lq", "normal") == 1, "its gauge shows lq paused");
    sa_expect_ok(sa_req("queue.resume", "{\"queue\":\"lq\"}"), "resume lq");
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'early-1' AND status = 'succeeded'") == 1,
          "it runs after the resume");
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agent-late exits 0");
}

int main(void)
{
    ss_env();
    ts_setup("pq,lq");
    ts_agent s, ag;
    ss_start(&s, "pause-s", NULL);
    ts_agent_start(&ag, "agent-p", "queues = ( { name = \"pq\"; concurrency = 8; }, { name = \"lq\"; concurrency = 2; } );\n");
    api_errors();
    pause_whole_queue(&ag);
    pause_one_lane();
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agent-p exits 0");
    paused_before_start();
    CHECK(ts_agent_stop(&s, SIGTERM, 20000) == 0, "schedulerd exits 0");
    return ts_finish();
}
