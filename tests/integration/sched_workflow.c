/* Workflows (docs/WORKFLOWS.md, issue 18) against a real schedulerd,
 * agentd, nats-server and PostgreSQL: bad DAGs each with its error, the
 * feature check, a diamond with callbacks, a chain of 100, fan-out 1,000 /
 * fan-in, a failing node with and without allow_failure (dependency_failed
 * down the DAG), cancel mid-way, workflow.add building a large DAG in
 * chunks, the `workflow` field of events, and a Lua handler that adds a
 * fan-out and a fan-in to its own workflow (ctx.workflow_add, workflow.add
 * with from_task), failing its first attempt after the adds: the retry adds
 * nothing twice, and the fan-in reads its parents' results. Every node must succeed once and
 * start only after all its parents finished (task_attempts times). */
#include "agentd_lua_util.h"
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char logfile[600];

/* ts_pg_text results, freed at the end. */
static char *kept[256];
static int nkept;
static const char *keep(char *s)
{
    if (nkept < 256)
        kept[nkept++] = s;
    return s;
}
#define PG(...) keep(ts_pg_text(__VA_ARGS__))

/* Every edge of wf whose child started before its parent finished: 0. */
static long early_starts(const char *wf)
{
    return ts_pg_long("SELECT count(*) FROM workflow_edges e JOIN tasks c ON c.id = e.child_id"
                      " JOIN tasks p ON p.id = e.parent_id WHERE c.workflow_id = '%s'"
                      " AND (SELECT min(a.started_at) FROM task_attempts a WHERE a.task_id = c.id) < p.finished_at",
                      wf);
}

/* Nodes of wf with other than exactly one succeeded attempt. */
static long not_once(const char *wf)
{
    return ts_pg_long("SELECT count(*) FROM tasks t WHERE t.workflow_id = '%s' AND t.deps_pending IS NOT NULL"
                      " AND (SELECT count(*) FROM task_attempts a WHERE a.task_id = t.id AND a.status = 'succeeded') <> 1",
                      wf);
}

static void wait_ended(const char *wf, const char *status, int timeout_ms)
{
    long got = ts_wait_long(1, timeout_ms,
                            "SELECT count(*) FROM workflows WHERE id = '%s' AND status = '%s' AND finished_at IS NOT NULL",
                            wf, status);
    CHECK(got == 1, "workflow %s did not end %s within %d ms (status %s, nodes %s)", wf, status, timeout_ms,
          PG("SELECT status || ' open=' || open FROM workflows WHERE id = '%s'", wf),
          PG("SELECT string_agg(status || ':' || n, ',') FROM (SELECT status, count(*) n FROM tasks"
                     " WHERE workflow_id = '%s' GROUP BY status) x", wf));
}

static void bad_dags(void)
{
    sa_expect_error(sa_req("workflow.submit", "{}"), "invalid_argument", "tasks", "no tasks");
    sa_expect_error(sa_req("workflow.submit", "{\"tasks\":[]}"), "invalid_argument", "tasks", "empty tasks");
    json_t *r = sa_req("workflow.submit", "{\"id\":\"bad1\",\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\","
                                          "\"depends_on\":[\"b\"]},{\"id\":\"b\",\"handler\":\"echo\",\"depends_on\":"
                                          "[\"c\"]},{\"id\":\"c\",\"handler\":\"echo\",\"depends_on\":[\"a\"]}]}");
    CHECK(strstr(sa_message(r), "cycle") && strstr(sa_message(r), "a -> b -> c -> a"), "cycle message: %s",
          sa_message(r));
    sa_expect_error(r, "invalid_argument", "tasks[2].depends_on", "cycle");
    r = sa_req("workflow.submit", "{\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\",\"depends_on\":[\"a\"]}]}");
    CHECK(strstr(sa_message(r), "node \"a\" depends on itself") != NULL, "self edge message: %s", sa_message(r));
    sa_expect_error(r, "invalid_argument", "tasks[0].depends_on[0]", "self edge");
    r = sa_req("workflow.submit", "{\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"},{\"id\":\"m\",\"handler\":\"echo\","
                                  "\"depends_on\":[\"a\",{\"id\":\"zz\",\"allow_failure\":true}]}]}");
    CHECK(strstr(sa_message(r), "\"m\" depends on \"zz\"") != NULL, "unknown id message: %s", sa_message(r));
    sa_expect_error(r, "invalid_argument", "tasks[1].depends_on[1]", "unknown parent");
    r = sa_req("workflow.submit", "{\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"},{\"id\":\"b\",\"handler\":\"echo\"},"
                                  "{\"id\":\"a\",\"handler\":\"echo\"}]}");
    CHECK(strstr(sa_message(r), "node \"a\" is defined twice (tasks[0] and tasks[2])") != NULL, "dup message: %s",
          sa_message(r));
    sa_expect_error(r, "invalid_argument", "tasks[2].id", "duplicate id");
    r = sa_req("workflow.submit", "{\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"},{\"id\":\"b\",\"handler\":\"echo\","
                                  "\"priority\":\"urgent\"}]}");
    CHECK(strstr(sa_message(r), "node \"b\": priority") != NULL, "node field message: %s", sa_message(r));
    sa_expect_error(r, "invalid_argument", "tasks[1].priority", "a node's bad field");
    sa_expect_error(sa_req("workflow.submit", "{\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\",\"delay\":\"1m\"}]}"),
                    "invalid_argument", "tasks[0].delay", "delay in a node");
    sa_expect_error(sa_req("workflow.submit", "{\"tasks\":[{\"handler\":\"echo\"}]}"), "invalid_argument",
                    "tasks[0].id", "node without id");
    sa_expect_error(sa_req("workflow.submit", "{\"tasks\":[{\"id\":\"on_success\",\"handler\":\"echo\"}]}"),
                    "invalid_argument", "tasks[0].id", "reserved node id");
    sa_expect_error(sa_req("workflow.submit", "{\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"}],\"on_success\":"
                                              "{\"handler\":\"echo\",\"id\":\"x\"}}"),
                    "invalid_argument", "on_success.id", "callback with id");
    /* byte limit: api.max_payload is 1KiB here */
    char big[1600];
    memset(big, 'x', 1500);
    big[1500] = '\0';
    r = sa_reqf("workflow.submit", "{\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"},{\"id\":\"fat\",\"handler\":\"echo\","
                                   "\"payload\":\"%s\"}]}", big);
    CHECK(strstr(sa_message(r), "node \"fat\"") && strstr(sa_message(r), "1024"), "byte limit message: %s",
          sa_message(r));
    sa_expect_error(r, "payload_too_large", "tasks[1].payload", "node payload over the limit");
    /* node limit: 10,001 nodes in one request */
    size_t cap = 10001 * 40 + 64, len = 0;
    char *body = malloc(cap);
    len += (size_t)snprintf(body + len, cap - len, "{\"tasks\":[");
    for (int i = 0; i < 10001; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s{\"id\":\"n%d\",\"handler\":\"echo\"}", i ? "," : "", i);
    snprintf(body + len, cap - len, "]}");
    r = sa_req("workflow.submit", body);
    free(body);
    CHECK(strstr(sa_message(r), "10001 nodes; at most 10000") != NULL, "node limit message: %s", sa_message(r));
    sa_expect_error(r, "invalid_argument", "tasks", "over the node limit");
    CHECK(ts_pg_long("SELECT count(*) FROM workflows") == 0 && ts_pg_long("SELECT count(*) FROM tasks") == 0,
          "a refused workflow stored something");
    /* validate_only stores nothing */
    r = sa_req("workflow.submit", "{\"id\":\"v1\",\"validate_only\":true,\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"}]}");
    CHECK(json_is_true(json_object_get(r, "valid")), "validate_only: %s", sa_message(r));
    json_decref(r);
    sa_expect_error(sa_req("workflow.get", "{\"id\":\"nope\"}"), "not_found", "id", "get of an unknown workflow");
    sa_expect_error(sa_req("workflow.cancel", "{\"id\":\"nope\"}"), "not_found", "id", "cancel of an unknown one");
    sa_expect_error(sa_req("workflow.add", "{\"id\":\"nope\",\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"}]}"),
                    "not_found", "id", "add to an unknown workflow");
    sa_expect_error(sa_req("workflow.list", "{\"status\":\"sleeping\"}"), "invalid_argument", "status", "bad status");
    /* a task holding a callback's id: the workflow ran it as its callback (and reported its state) */
    sa_expect_ok(sa_req("task.submit", "{\"id\":\"hj-on_complete\",\"handler\":\"echo\",\"run_at\":\"2099-01-01T00:00:00Z\"}"),
                 "a task with a callback's id");
    sa_expect_error(sa_req("workflow.submit", "{\"id\":\"hj\",\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"}],"
                                              "\"on_complete\":{\"handler\":\"echo\"}}"),
                    "already_exists", "on_complete", "on_complete's task id taken");
    CHECK(ts_pg_long("SELECT count(*) FROM workflows WHERE id = 'hj'") == 0, "a refused workflow was stored");
    sa_expect_ok(sa_req("task.cancel", "{\"id\":\"hj-on_complete\"}"), "cancel hj-on_complete");
    /* ... and the other order: a workflow with on_complete first, then a task with its id */
    sa_expect_ok(sa_req("workflow.submit", "{\"id\":\"hk\",\"open\":true,\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"}],"
                                           "\"on_complete\":{\"handler\":\"echo\"}}"),
                 "workflow hk");
    sa_expect_error(sa_req("task.submit", "{\"id\":\"hk-on_complete\",\"handler\":\"echo\"}"), "invalid_argument", "id",
                    "task.submit of a callback's task id");
    sa_expect_error(sa_req("task.submit_many", "{\"tasks\":[{\"id\":\"hk-on_complete\",\"handler\":\"echo\"}]}"),
                    "invalid_argument", "tasks[0].id", "task.submit_many of a callback's task id");
    sa_expect_ok(sa_req("task.submit", "{\"id\":\"hk-on_success\",\"handler\":\"echo\",\"run_at\":\"2099-01-01T00:00:00Z\"}"),
                 "hk has no on_success: its id is free");
    sa_expect_ok(sa_req("task.cancel", "{\"id\":\"hk-on_success\"}"), "cancel hk-on_success");
    sa_expect_ok(sa_req("workflow.cancel", "{\"id\":\"hk\"}"), "cancel hk");
    /* node x-on_complete of workflow h is task h-x-on_complete: the callback of workflow h-x */
    sa_expect_error(sa_req("workflow.submit", "{\"id\":\"h\",\"tasks\":[{\"id\":\"x-on_complete\",\"handler\":\"echo\"}]}"),
                    "invalid_argument", "tasks[0].id", "a node id ending in -on_complete");
}

/* An agent serving "legacy" without the feature: workflow.submit refuses. */
static void feature_check(void)
{
    kvStore *kv = NULL;
    CHECK(js_KeyValue(&kv, ts_js(), "jetsched_agents") == NATS_OK, "agents bucket");
    uint64_t rev = 0;
    kvStore_PutString(&rev, kv, "old-agent", "{\"host\":\"x\",\"queues\":[\"legacy\"],\"handlers\":[\"echo\"]}");
    json_t *r = sa_req("workflow.submit", "{\"id\":\"legacy1\",\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"},"
                                          "{\"id\":\"b\",\"queue\":\"legacy\",\"handler\":\"echo\",\"depends_on\":[\"a\"]}]}");
    CHECK(strstr(sa_message(r), "old-agent") && strstr(sa_message(r), "workflows"), "feature message: %s",
          sa_message(r));
    sa_expect_error(r, "failed_precondition", NULL, "an agent without the workflows feature");
    kvStore_Delete(kv, "old-agent");
    kvStore_Destroy(kv);
    r = sa_req("cluster.agents", "{}");
    json_t *f = json_object_get(json_array_get(json_object_get(r, "agents"), 0), "features");
    bool has = false;
    for (size_t i = 0; i < json_array_size(f); i++)
        has = has || !strcmp(json_string_value(json_array_get(f, i)), "workflows");
    CHECK(has, "agentd advertises the workflows feature");
    json_decref(r);
}

static void on_event(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    if (strstr(natsMsg_GetData(msg), "\"workflow\":\"dia\""))
        (*(int *)closure)++;
    natsMsg_Destroy(msg);
}

static void diamond(void)
{
    int with_wf = 0;
    natsSubscription *sub = NULL;
    natsConnection_Subscribe(&sub, ts_nats(), "jetsched.event.default.dia-d", on_event, &with_wf);
    natsConnection_Flush(ts_nats());
    json_t *r = sa_req("workflow.submit",
                       "{\"id\":\"dia\",\"tasks\":[{\"id\":\"a\",\"handler\":\"log\"},"
                       "{\"id\":\"b\",\"handler\":\"log\",\"depends_on\":[\"a\"]},"
                       "{\"id\":\"c\",\"handler\":\"log\",\"depends_on\":[\"a\"]},"
                       "{\"id\":\"d\",\"handler\":\"log\",\"depends_on\":[\"b\",{\"id\":\"c\",\"allow_failure\":false}]}],"
                       "\"on_success\":{\"handler\":\"log\"},\"on_complete\":{\"handler\":\"log\",\"priority\":\"high\"}}");
    CHECK(json_is_true(json_object_get(r, "created")) && sa_int(r, "nodes") == 4, "diamond submitted: %s",
          sa_message(r));
    json_t *t = json_object_get(r, "tasks");
    CHECK(!strcmp(sa_str(json_array_get(t, 0), "status"), "queued") &&
              !strcmp(sa_str(json_array_get(t, 3), "status"), "waiting") &&
              !strcmp(sa_str(json_array_get(t, 3), "task_id"), "dia-d"),
          "root queued, others waiting");
    json_decref(r);
    /* idempotent re-submit */
    r = sa_req("workflow.submit", "{\"id\":\"dia\",\"tasks\":[{\"id\":\"a\",\"handler\":\"log\"}]}");
    CHECK(json_is_false(json_object_get(r, "created")), "a repeated submit creates nothing");
    json_decref(r);
    wait_ended("dia", "succeeded", 20000);
    ts_wait_long(2, 10000, "SELECT count(*) FROM tasks WHERE id IN ('dia-on_success', 'dia-on_complete')"
                           " AND status = 'succeeded'");
    ts_sleep_ms(300);
    CHECK(early_starts("dia") == 0, "a diamond node started before its parents finished");
    CHECK(not_once("dia") == 0, "a diamond node did not succeed exactly once");
    CHECK(ss_count_lines(logfile, "dia-d") == 1 && ss_count_lines(logfile, "dia-on_success") == 1 &&
              ss_count_lines(logfile, "dia-on_complete") == 1,
          "d and each callback ran once (d %d, on_success %d, on_complete %d)", ss_count_lines(logfile, "dia-d"),
          ss_count_lines(logfile, "dia-on_success"), ss_count_lines(logfile, "dia-on_complete"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts a, tasks d WHERE a.task_id = 'dia-on_complete'"
                     " AND d.id = 'dia-d' AND a.started_at >= d.finished_at") == 1,
          "on_complete started after the last node finished");
    r = sa_req("workflow.get", "{\"id\":\"dia\"}");
    CHECK(!strcmp(sa_str(r, "workflow.status"), "succeeded") && sa_int(r, "workflow.counts.succeeded") == 4,
          "workflow.get: %s / %lld", sa_str(r, "workflow.status"), sa_int(r, "workflow.counts.succeeded"));
    json_t *d = json_array_get(json_object_get(r, "nodes"), 3);
    CHECK(!strcmp(sa_str(d, "id"), "d") && json_array_size(json_object_get(d, "depends_on")) == 2 &&
              !strcmp(sa_str(json_array_get(json_object_get(d, "depends_on"), 1), "id"), "c"),
          "node d with its parents");
    json_t *cb = json_object_get(r, "callbacks");
    CHECK(json_array_size(cb) == 2 && !strcmp(sa_str(json_array_get(cb, 1), "status"), "succeeded"),
          "callbacks in workflow.get");
    json_decref(r);
    r = sa_req("task.get", "{\"id\":\"dia-b\"}");
    CHECK(!strcmp(sa_str(r, "task.status"), "succeeded"), "a node is a task");
    json_decref(r);
    sa_expect_error(sa_req("workflow.cancel", "{\"id\":\"dia\"}"), "failed_precondition", "id", "cancel an ended one");
    CHECK(with_wf >= 2, "events of a node carry the workflow field (%d)", with_wf);
    natsSubscription_Destroy(sub);
}

static void chain(int n)
{
    size_t cap = (size_t)n * 80 + 64, len;
    char *body;
    body = malloc(cap);
    len = (size_t)snprintf(body, cap, "{\"id\":\"chain\",\"tasks\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            len += (size_t)snprintf(body + len, cap - len, ",{\"id\":\"s%03d\",\"handler\":\"echo\",\"depends_on\":"
                                    "[\"s%03d\"]}", i, i - 1);
        else
            len += (size_t)snprintf(body + len, cap - len, "{\"id\":\"s000\",\"handler\":\"echo\"}");
    }
    snprintf(body + len, cap - len, "]}");
    int64_t t0 = ts_now_ms();
    sa_expect_ok(sa_req("workflow.submit", body), "chain submitted");
    free(body);
    wait_ended("chain", "succeeded", 120000);
    printf("chain of %d: %lld ms (%.1f ms per link)\n", n, (long long)(ts_now_ms() - t0),
           (double)(ts_now_ms() - t0) / n);
    CHECK(early_starts("chain") == 0, "a chain link started before its parent finished");
    CHECK(not_once("chain") == 0, "a chain link did not succeed exactly once");
}

static void fan(int n)
{
    size_t cap = (size_t)n * 120 + 256, len = 0;
    char *body = malloc(cap);
    len = (size_t)snprintf(body, cap, "{\"id\":\"fan\",\"tasks\":[{\"id\":\"root\",\"handler\":\"echo\"}");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, ",{\"id\":\"c%d\",\"handler\":\"echo\",\"depends_on\":[\"root\"]}",
                                i);
    len += (size_t)snprintf(body + len, cap - len, ",{\"id\":\"join\",\"handler\":\"echo\",\"depends_on\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s\"c%d\"", i ? "," : "", i);
    snprintf(body + len, cap - len, "]}],\"on_success\":{\"handler\":\"log\"}}");
    int64_t t0 = ts_now_ms();
    sa_expect_ok(sa_req("workflow.submit", body), "fan submitted");
    free(body);
    wait_ended("fan", "succeeded", 120000);
    printf("fan-out %d / fan-in: %lld ms\n", n, (long long)(ts_now_ms() - t0));
    printf("fan-in start after the last child's finish: %s ms\n",
           PG("SELECT round(extract(epoch from (SELECT started_at FROM tasks WHERE id = 'fan-join') -"
                      " (SELECT max(finished_at) FROM tasks WHERE workflow_id = 'fan' AND id LIKE 'fan-c%%')) * 1000)"));
    CHECK(early_starts("fan") == 0, "a fan node started before its parents finished");
    CHECK(not_once("fan") == 0, "a fan node did not succeed exactly once");
    ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'fan-on_success' AND status = 'succeeded'");
    CHECK(ss_count_lines(logfile, "fan-on_success") == 1, "fan on_success ran once");
}

static void failing(void)
{
    /* a fails; b needs a (cancelled), e needs b (cancelled in turn), c allows a's failure (runs), d needs c */
    sa_expect_ok(sa_req("workflow.submit",
                        "{\"id\":\"fl\",\"tasks\":[{\"id\":\"a\",\"handler\":\"fail\",\"max_attempts\":1},"
                        "{\"id\":\"b\",\"handler\":\"echo\",\"depends_on\":[\"a\"]},"
                        "{\"id\":\"e\",\"handler\":\"echo\",\"depends_on\":[\"b\"]},"
                        "{\"id\":\"c\",\"handler\":\"log\",\"depends_on\":[{\"id\":\"a\",\"allow_failure\":true}]},"
                        "{\"id\":\"d\",\"handler\":\"echo\",\"depends_on\":[\"c\"]}],"
                        "\"on_success\":{\"handler\":\"log\"},\"on_complete\":{\"handler\":\"log\"}}"),
                 "failing workflow submitted");
    wait_ended("fl", "failed", 20000);
    CHECK(!strcmp(PG("SELECT status FROM tasks WHERE id = 'fl-a'"), "dead"), "a dead");
    CHECK(!strcmp(PG("SELECT status || ' ' || error FROM tasks WHERE id = 'fl-b'"),
                  "cancelled dependency_failed: fl-a ended dead"),
          "b: %s", PG("SELECT status || ' ' || error FROM tasks WHERE id = 'fl-b'"));
    CHECK(!strcmp(PG("SELECT status || ' ' || error FROM tasks WHERE id = 'fl-e'"),
                  "cancelled dependency_failed: fl-b ended cancelled"),
          "e: %s", PG("SELECT status || ' ' || error FROM tasks WHERE id = 'fl-e'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id IN ('fl-b', 'fl-e')") == 0,
          "a cancelled dependent never ran");
    CHECK(!strcmp(PG("SELECT status FROM tasks WHERE id = 'fl-c'"), "succeeded") &&
              !strcmp(PG("SELECT status FROM tasks WHERE id = 'fl-d'"), "succeeded"),
          "the allow_failure branch ran");
    CHECK(early_starts("fl") == 0, "a node started before its parents finished");
    ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'fl-on_complete' AND status = 'succeeded'");
    ts_sleep_ms(500);
    CHECK(ss_count_lines(logfile, "fl-on_complete") == 1 && ss_count_lines(logfile, "fl-on_success") == 0 &&
              ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'fl-on_success' AND status = 'skipped'"
                         " AND error = 'workflow failed: on_success not run'") == 1,
          "a failed workflow runs on_complete once, never on_success (its reserved row ends skipped: %s)",
          PG("SELECT status || ' ' || coalesce(error, '') FROM tasks WHERE id = 'fl-on_success'"));
}

static void cancel_midway(void)
{
    sa_expect_ok(sa_req("workflow.submit",
                        "{\"id\":\"cx\",\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"},"
                        "{\"id\":\"slow\",\"handler\":\"slow\",\"depends_on\":[\"a\"]},"
                        "{\"id\":\"after\",\"handler\":\"log\",\"depends_on\":[\"slow\"]},"
                        "{\"id\":\"after2\",\"handler\":\"log\",\"depends_on\":[\"after\"]}],"
                        "\"on_complete\":{\"handler\":\"log\"}}"),
                 "cancel workflow submitted");
    ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'cx-slow' AND status = 'running'");
    json_t *r = sa_req("workflow.cancel", "{\"id\":\"cx\"}");
    CHECK(!strcmp(sa_str(r, "status"), "cancelled") && sa_int(r, "cancelled") == 2 && sa_int(r, "cancelling") == 1,
          "cancel reply: %s %lld %lld", sa_str(r, "status"), sa_int(r, "cancelled"), sa_int(r, "cancelling"));
    json_decref(r);
    wait_ended("cx", "cancelled", 20000);
    CHECK(!strcmp(PG("SELECT status FROM tasks WHERE id = 'cx-slow'"), "cancelled") &&
              !strcmp(PG("SELECT status FROM tasks WHERE id = 'cx-after2'"), "cancelled") &&
              !strcmp(PG("SELECT status FROM tasks WHERE id = 'cx-a'"), "succeeded"),
          "running and waiting nodes cancelled, the finished one kept");
    ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'cx-on_complete' AND status = 'succeeded'");
    ts_sleep_ms(500);
    CHECK(ss_count_lines(logfile, "cx-after") == 0 && ss_count_lines(logfile, "cx-on_complete") == 1,
          "nothing after the cancel ran; on_complete ran once");
    sa_expect_error(sa_req("workflow.add", "{\"id\":\"cx\",\"tasks\":[{\"id\":\"z\",\"handler\":\"echo\"}]}"),
                    "failed_precondition", "id", "add to a cancelled workflow");
}

/* The Lua "spawn" node adds k1..k5 (echo) and "join" (depends on all five)
 * to its workflow, then fails its first attempt; the second adds the same
 * ids (nothing new). join (Lua) counts its parents' results. */
static void dynamic(void)
{
    sa_expect_ok(sa_req("workflow.submit", "{\"id\":\"dyn\",\"tasks\":[{\"id\":\"spawn\",\"handler\":\"spawn\","
                                           "\"max_attempts\":3}],\"on_success\":{\"handler\":\"log\"}}"),
                 "dynamic workflow submitted");
    wait_ended("dyn", "succeeded", 30000);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'dyn' AND deps_pending IS NOT NULL") == 7,
          "spawn + 5 children + join: %ld nodes",
          ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'dyn' AND deps_pending IS NOT NULL"));
    CHECK(ts_pg_long("SELECT attempts FROM tasks WHERE id = 'dyn-spawn'") == 2, "the spawning node ran twice");
    CHECK(!strcmp(PG("SELECT result FROM tasks WHERE id = 'dyn-spawn-join'"), "5 parents: echo,echo,echo,echo,echo"),
          "join read its parents: %s", PG("SELECT coalesce(result, '-') FROM tasks WHERE id = 'dyn-spawn-join'"));
    CHECK(early_starts("dyn") == 0 && not_once("dyn") == 0, "dynamic nodes in order, each succeeded once");
    ts_wait_long(1, 10000, "SELECT count(*) FROM tasks WHERE id = 'dyn-on_success' AND status = 'succeeded'");
}

/* workflow.add: an open workflow built in chunks of `chunk` nodes; each
 * chunk's nodes depend on the previous chunk's first node (often already
 * succeeded when the chunk arrives: the replay path), and a join on the
 * last node of every chunk closes it. */
static void build_large(int total, int chunk)
{
    int64_t t0 = ts_now_ms();
    sa_expect_ok(sa_req("workflow.submit", "{\"id\":\"big\",\"open\":true,\"tasks\":[{\"id\":\"r\",\"handler\":\"echo\"}]}"),
                 "open workflow submitted");
    size_t cap = (size_t)chunk * 90 + 256;
    char *body = malloc(cap);
    int64_t add_ms = 0;
    for (int k = 0; k < total / chunk; k++) {
        size_t len = (size_t)snprintf(body, cap, "{\"id\":\"big\",\"tasks\":[");
        for (int i = 0; i < chunk; i++) {
            int id = k * chunk + i;
            char parent[32];
            if (k == 0)
                snprintf(parent, sizeof parent, "r");
            else
                snprintf(parent, sizeof parent, "n%d", (k - 1) * chunk);
            len += (size_t)snprintf(body + len, cap - len, "%s{\"id\":\"n%d\",\"handler\":\"noop\",\"depends_on\":[\"%s\"]}",
                                    i ? "," : "", id, parent);
        }
        snprintf(body + len, cap - len, "]}");
        int64_t a0 = ts_now_ms();
        json_t *r = sa_req("workflow.add", body);
        add_ms += ts_now_ms() - a0;
        CHECK(sa_int(r, "added") == chunk, "chunk %d added: %s", k, sa_message(r));
        json_decref(r);
    }
    /* a repeated add (a client retrying after a timeout) stores nothing */
    json_t *r = sa_req("workflow.add", body);
    CHECK(sa_int(r, "added") == 0 && json_is_false(json_object_get(r, "created")), "repeated add: %s", sa_message(r));
    json_decref(r);
    size_t len = (size_t)snprintf(body, cap, "{\"id\":\"big\",\"close\":true,\"tasks\":[{\"id\":\"join\",\"handler\":"
                                             "\"echo\",\"depends_on\":[");
    for (int k = 0; k < total / chunk; k++)
        len += (size_t)snprintf(body + len, cap - len, "%s\"n%d\"", k ? "," : "", k * chunk + chunk - 1);
    snprintf(body + len, cap - len, "]}]}");
    r = sa_req("workflow.add", body);
    CHECK(json_is_false(json_object_get(r, "open")) && sa_int(r, "nodes") == total + 2, "closed: %s", sa_message(r));
    json_decref(r);
    free(body);
    printf("workflow.add: %d nodes in chunks of %d: %lld ms in the adds\n", total, chunk, (long long)add_ms);
    sa_expect_error(sa_req("workflow.add", "{\"id\":\"big\",\"tasks\":[{\"id\":\"late\",\"handler\":\"echo\"}]}"),
                    "failed_precondition", "id", "add to a closed workflow");
    wait_ended("big", "succeeded", 180000);
    printf("workflow of %d nodes built with workflow.add: done in %lld ms\n", total + 2,
           (long long)(ts_now_ms() - t0));
    CHECK(early_starts("big") == 0, "a node of the large workflow started before its parent finished");
    CHECK(not_once("big") == 0, "a node of the large workflow did not succeed exactly once");
    r = sa_req("workflow.get", "{\"id\":\"big\",\"nodes\":false}");
    CHECK(sa_int(r, "workflow.counts.succeeded") == total + 2 && !json_object_get(r, "nodes"), "counts of big");
    json_decref(r);
    r = sa_req("workflow.list", "{\"limit\":2}");
    CHECK(json_array_size(json_object_get(r, "workflows")) == 2 && sa_str(r, "next_cursor")[0],
          "workflow.list pages");
    json_decref(r);
}

static void free_kept(void)
{
    for (int i = 0; i < nkept; i++)
        free(kept[i]);
}

int main(void)
{
    ss_env();
    ts_setup("default");
    char *dir = th_tmpdir();
    atexit(free_kept);
    snprintf(logfile, sizeof logfile, "%s/wf-side-effects.log", dir);
    free(dir);
    const char *lua = lt_lua_dir();
    lt_write(lua, "spawn",
             "return { handle = function(task, ctx)\n"
             "  local deps = {}\n"
             "  for i = 1, 5 do\n"
             "    assert(ctx.workflow_add{ name = 'k' .. i, handler = 'echo', payload = 'echo' })\n"
             "    deps[#deps + 1] = 'k' .. i\n"
             "  end\n"
             "  assert(ctx.workflow_add{ name = 'join', handler = 'join', depends_on = deps })\n"
             "  if task.attempt == 1 then error('first attempt fails after its adds') end\n"
             "  return 'spawned'\n"
             "end }\n");
    lt_write(lua, "join",
             "return { handle = function(task, ctx)\n"
             "  local r = assert(ctx.parent_results())\n"
             "  local out, n = {}, 0\n"
             "  for node, p in pairs(r) do n = n + 1; out[#out + 1] = p.result end\n"
             "  table.sort(out)\n"
             "  return n .. ' parents: ' .. table.concat(out, ',')\n"
             "end }\n");
    ts_agent ag, s1;
    char conf[2048];
    snprintf(conf, sizeof conf,
             "queues = ( { name = \"default\"; concurrency = 16; backoff = \"fixed:200ms\"; } );\n"
             "exec = { commands = ( { name = \"log\"; argv = [\"/bin/sh\", \"-c\", \"echo $JETSCHED_TASK_ID >> %s\"]; },"
             " { name = \"fail\"; argv = [\"/bin/sh\", \"-c\", \"exit 2\"]; },"
             " { name = \"slow\"; argv = [\"/bin/sh\", \"-c\", \"sleep 30\"]; } ); };\n",
             logfile);
    ts_agent_start(&ag, "agent-wf", conf);
    ss_start(&s1, "wf-1", "api = { max_payload = \"1KiB\"; };");
    free(ss_wait_holder(NULL, 15000));

    bad_dags();
    feature_check();
    diamond();
    failing();
    cancel_midway();
    dynamic();
    chain(100);
    fan(1000);
    const char *env = getenv("JETSCHED_WF_LARGE");
    build_large(env ? atoi(env) : 10000, 2000);

    ts_agent_stop(&ag, SIGTERM, 10000);
    ts_agent_stop(&s1, SIGTERM, 10000);
    return ts_finish();
}
