/* Dynamic workflows from handlers (plugin ABI 1.2 and Lua ctx, docs/WORKFLOWS.md
 * "Handler calls") against real schedulerd, agentd, nats-server and
 * PostgreSQL: a Lua node of a closed workflow fans out 100 children and a
 * fan-in child depending on all of them, fails its first attempt after
 * adding and adds nothing twice on the retry (rows counted), as does a
 * native node whose agent is killed (kill -9) after adding; the fan-in reads
 * its parents' results; the native test plugin wfkit makes the same calls
 * through the C ABI (a hashed node id for a long name, allow_failure edges,
 * parent_results' JSON); calls outside a workflow task are errors; a forged
 * Jetsched-Workflow-Id header adds nothing; workflow.add's from_task is
 * refused once the workflow ended or for a task that is not a running node. */
#include "agentd_lua_util.h"
#include "harness.h"
#include "sched_api_support.h"

#include <jetsched/sha256.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FANOUT 100

static char *kept[64];
static int nkept;
static const char *keep(char *s)
{
    if (nkept < 64)
        kept[nkept++] = s;
    return s;
}
#define PG(...) keep(ts_pg_text(__VA_ARGS__))

static void wait_ended(const char *wf, const char *status, int timeout_ms)
{
    long got = ts_wait_long(1, timeout_ms,
                            "SELECT count(*) FROM workflows WHERE id = '%s' AND status = '%s' AND finished_at IS NOT NULL",
                            wf, status);
    CHECK(got == 1, "workflow %s did not end %s within %d ms (workflow %s; nodes %s)", wf, status, timeout_ms,
          PG("SELECT status || ' open=' || open || ' nodes=' || nodes FROM workflows WHERE id = '%s'", wf),
          PG("SELECT string_agg(status || ':' || n, ',') FROM (SELECT status, count(*) n FROM tasks"
             " WHERE workflow_id = '%s' GROUP BY status) x", wf));
}

/* Nodes of wf with other than exactly one succeeded attempt. */
static long not_once(const char *wf)
{
    return ts_pg_long("SELECT count(*) FROM tasks t WHERE t.workflow_id = '%s' AND t.deps_pending IS NOT NULL"
                      " AND (SELECT count(*) FROM task_attempts a WHERE a.task_id = t.id AND a.status = 'succeeded') <> 1",
                      wf);
}

/* Edges of wf whose child started before its parent finished. */
static long early_starts(const char *wf)
{
    return ts_pg_long("SELECT count(*) FROM workflow_edges e JOIN tasks c ON c.id = e.child_id"
                      " JOIN tasks p ON p.id = e.parent_id WHERE c.workflow_id = '%s'"
                      " AND (SELECT min(a.started_at) FROM task_attempts a WHERE a.task_id = c.id) < p.finished_at",
                      wf);
}

static void lua_scripts(const char *dir)
{
    char text[1024];
    snprintf(text, sizeof text,
             "return { handle = function(task, ctx)\n"
             "  local names = {}\n"
             "  for i = 1, tonumber(task.payload) do\n"
             "    names[i] = 'c' .. i\n"
             "    local id = assert(ctx.workflow_add{ name = names[i], handler = 'wf_child', payload = tostring(i) })\n"
             "    assert(id == ctx.workflow .. '-spawn-c' .. i, id)\n"
             "  end\n"
             "  local m = assert(ctx.workflow_add{ name = 'merge', handler = 'wf_merge', depends_on = names })\n"
             "  if task.attempt == 1 then error('failing attempt 1 after adding its children') end\n"
             "  return m\n"
             "end }\n");
    lt_write(dir, "fanout_wf", text);
    lt_write(dir, "wf_child", "return { handle = function(task, ctx) return 'r' .. task.payload end }\n");
    lt_write(dir, "wf_merge",
             "return { handle = function(task, ctx)\n"
             "  local n, sum = 0, 0\n"
             "  for node, p in pairs(assert(ctx.parent_results())) do\n"
             "    if p.status ~= 'succeeded' then error(node .. ' is ' .. p.status) end\n"
             "    n = n + 1\n"
             "    sum = sum + tonumber(p.result:sub(2))\n"
             "  end\n"
             "  return { n = n, sum = sum, workflow = ctx.workflow }\n"
             "end }\n");
    lt_write(dir, "wf_outside",
             "return { handle = function(task, ctx)\n"
             "  local ok, add = pcall(ctx.workflow_add, { name = 'x', handler = 'wf_child' })\n"
             "  local ok2, parents = pcall(ctx.parent_results)\n"
             "  return { workflow = ctx.workflow or json.null, add = ok and 'accepted' or add,\n"
             "           parents = ok2 and 'accepted' or parents }\n"
             "end }\n");
}

/* 1. Lua: fan-out 100 + fan-in from a node of a closed workflow, retried. */
static void lua_fanout(void)
{
    sa_expect_ok(sa_reqf("workflow.submit", "{\"id\":\"fan\",\"tasks\":[{\"id\":\"spawn\",\"handler\":\"fanout_wf\","
                                            "\"payload\":\"%d\"}]}", FANOUT),
                 "submit fan");
    wait_ended("fan", "succeeded", 120000);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'fan'") == FANOUT + 2,
          "fan: %ld task rows, want %d", ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'fan'"), FANOUT + 2);
    CHECK(ts_pg_long("SELECT nodes FROM workflows WHERE id = 'fan'") == FANOUT + 2, "fan: workflow counts %ld nodes",
          ts_pg_long("SELECT nodes FROM workflows WHERE id = 'fan'"));
    CHECK(ts_pg_long("SELECT count(*) FROM workflow_edges WHERE child_id = 'fan-spawn-merge'") == FANOUT,
          "fan: merge has %ld edges", ts_pg_long("SELECT count(*) FROM workflow_edges WHERE child_id = 'fan-spawn-merge'"));
    CHECK(ts_pg_long("SELECT count(*) FROM workflow_edges e JOIN tasks t ON t.id = e.child_id"
                     " WHERE t.workflow_id = 'fan'") == FANOUT, "fan: edges added twice");
    CHECK(!strcmp(PG("SELECT string_agg(status, ',' ORDER BY attempt) FROM task_attempts WHERE task_id = 'fan-spawn'"),
                  "retrying,succeeded"),
          "fan-spawn attempts: %s", PG("SELECT string_agg(status, ',' ORDER BY attempt) FROM task_attempts"
                                       " WHERE task_id = 'fan-spawn'"));
    CHECK(!strcmp(PG("SELECT result FROM tasks WHERE id = 'fan-spawn'"), "fan-spawn-merge"), "fan-spawn result %s",
          PG("SELECT result FROM tasks WHERE id = 'fan-spawn'"));
    json_t *m = json_loads(PG("SELECT result FROM tasks WHERE id = 'fan-spawn-merge'"), 0, NULL);
    CHECK(json_integer_value(json_object_get(m, "n")) == FANOUT &&
              json_integer_value(json_object_get(m, "sum")) == FANOUT * (FANOUT + 1) / 2 &&
              !strcmp(json_string_value(json_object_get(m, "workflow")) ?: "", "fan"),
          "merge result %s", PG("SELECT result FROM tasks WHERE id = 'fan-spawn-merge'"));
    json_decref(m);
    /* For the record (not checked): one attempt's 101 workflow_add calls, and the fan-in's wait. */
    printf("fan: attempt 2 of fan-spawn (101 workflow_add calls) took %s ms; fan-in started %s ms after the last "
           "child ended\n",
           PG("SELECT round(extract(epoch FROM finished_at - started_at) * 1000) FROM task_attempts"
              " WHERE task_id = 'fan-spawn' AND attempt = 2"),
           PG("SELECT round(extract(epoch FROM (SELECT min(started_at) FROM task_attempts WHERE task_id ="
              " 'fan-spawn-merge') - (SELECT max(finished_at) FROM tasks WHERE id LIKE 'fan-spawn-c%%')) * 1000)"));
    CHECK(not_once("fan") == 0, "fan: %ld nodes did not succeed exactly once", not_once("fan"));
    CHECK(early_starts("fan") == 0, "fan: %ld children started before a parent ended", early_starts("fan"));
    CHECK(!strcmp(PG("SELECT string_agg(DISTINCT status, ',') FROM tasks WHERE workflow_id = 'fan'"), "succeeded"),
          "fan: node states %s", PG("SELECT string_agg(DISTINCT status, ',') FROM tasks WHERE workflow_id = 'fan'"));
}

/* 2. The C ABI through the wfkit plugin. */
static void native_calls(void)
{
    sa_expect_ok(sa_req("workflow.submit", "{\"id\":\"nat\",\"tasks\":[{\"id\":\"s\",\"handler\":\"wfadd\"}]}"),
                 "submit nat");
    wait_ended("nat", "succeeded", 60000);
    static const char long_name[] = "a-child-name-long-enough-that-its-node-id-is-hashed-0123456789";
    char key[128], hex[JET_SHA256_HEX_LEN], want[512];
    int kl = snprintf(key, sizeof key, "s/%s", long_name);
    jet_sha256_hex(key, (size_t)kl, hex);
    snprintf(want, sizeof want, "nat nat-s-n1 nat-s-n2 nat-h%.32s nat-s-join", hex);
    CHECK(!strcmp(PG("SELECT result FROM tasks WHERE id = 'nat-s'"), want), "wfadd result %s, want %s",
          PG("SELECT result FROM tasks WHERE id = 'nat-s'"), want);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'nat' AND status = 'succeeded'") == 5,
          "nat: %s", PG("SELECT string_agg(id || ':' || status, ',') FROM tasks WHERE workflow_id = 'nat'"));
    CHECK(!strcmp(PG("SELECT priority FROM tasks WHERE id = 'nat-s-n2'"), "high"), "n2 priority");
    CHECK(!strcmp(PG("SELECT queue FROM tasks WHERE id = 'nat-s-n1'"), "default"), "n1 queue");
    CHECK(ts_pg_long("SELECT count(*) FROM workflow_edges WHERE child_id = 'nat-s-join' AND allow_failure"
                     " AND parent_id IN ('nat-s-n1', 'nat-s-n2')") == 2, "join's edges");
    json_t *j = json_loads(PG("SELECT result FROM tasks WHERE id = 'nat-s-join'"), 0, NULL);
    json_t *n1 = json_object_get(j, "s-n1"), *n2 = json_object_get(j, "s-n2");
    CHECK(json_object_size(j) == 2 && !strcmp(json_string_value(json_object_get(n1, "result")) ?: "", "one") &&
              !strcmp(json_string_value(json_object_get(n2, "result")) ?: "", "two") &&
              !strcmp(json_string_value(json_object_get(n1, "status")) ?: "", "succeeded") &&
              !strcmp(json_string_value(json_object_get(n2, "task_id")) ?: "", "nat-s-n2"),
          "join's parent_results %s", PG("SELECT result FROM tasks WHERE id = 'nat-s-join'"));
    json_decref(j);
}

/* 2b. The agent running a node is killed after the node added its children;
 * the redelivery adds them again: nothing is stored twice. */
static void killed_spawner(ts_agent *ag, const char *conf)
{
    sa_expect_ok(sa_req("workflow.submit", "{\"id\":\"kil\",\"tasks\":[{\"id\":\"k\",\"handler\":\"wfkill\"}]}"),
                 "submit kil");
    CHECK(ts_wait_long(3, 30000, "SELECT count(*) FROM tasks WHERE workflow_id = 'kil' AND id <> 'kil-k'") == 3,
          "kil: the children were not added");
    ts_sleep_ms(300);
    CHECK(ts_agent_stop(ag, SIGKILL, 5000) == 128 + SIGKILL, "agent not killed");
    ts_agent_start(ag, "agent-wfh", conf);
    wait_ended("kil", "succeeded", 60000);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'kil'") == 4 &&
              ts_pg_long("SELECT nodes FROM workflows WHERE id = 'kil'") == 4,
          "kil: %ld rows, %ld nodes; want 4", ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'kil'"),
          ts_pg_long("SELECT nodes FROM workflows WHERE id = 'kil'"));
    CHECK(ts_pg_long("SELECT max(attempt) FROM task_attempts WHERE task_id = 'kil-k'") == 2 &&
              !strcmp(PG("SELECT status FROM task_attempts WHERE task_id = 'kil-k' AND attempt = 2"), "succeeded"),
          "kil-k attempts: %s", PG("SELECT string_agg(attempt || ':' || status, ',' ORDER BY attempt) FROM task_attempts"
                                   " WHERE task_id = 'kil-k'"));
    CHECK(not_once("kil") == 0, "kil: %ld nodes did not succeed exactly once", not_once("kil"));
}

/* 3. Outside a workflow task, a forged header, and from_task refusals. */
static void refusals(void)
{
    sa_expect_ok(sa_req("task.submit", "{\"id\":\"out-lua\",\"handler\":\"wf_outside\"}"), "submit out-lua");
    sa_expect_ok(sa_req("task.submit", "{\"id\":\"out-c\",\"handler\":\"wfadd\"}"), "submit out-c");
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id = 'out-lua' AND status = 'succeeded'") == 1,
          "out-lua did not succeed");
    json_t *r = json_loads(PG("SELECT result FROM tasks WHERE id = 'out-lua'"), 0, NULL);
    CHECK(json_is_null(json_object_get(r, "workflow")) &&
              strstr(json_string_value(json_object_get(r, "add")) ?: "",
                     "ctx.workflow_add: task out-lua is not a task of a workflow") &&
              strstr(json_string_value(json_object_get(r, "parents")) ?: "",
                     "ctx.parent_results: task out-lua is not a task of a workflow"),
          "out-lua result %s", PG("SELECT result FROM tasks WHERE id = 'out-lua'"));
    json_decref(r);
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id = 'out-c' AND status = 'dead'") == 1,
          "out-c not dead: %s", PG("SELECT status FROM tasks WHERE id = 'out-c'"));
    CHECK(strstr(PG("SELECT error FROM tasks WHERE id = 'out-c'"), "workflow_add: task out-c is not a task of a "
                                                                     "workflow") != NULL,
          "out-c error %s", PG("SELECT error FROM tasks WHERE id = 'out-c'"));

    /* An open workflow with a forged node: the header names it, the row does not. */
    sa_expect_ok(sa_req("workflow.submit", "{\"id\":\"opn\",\"open\":true,\"tasks\":[{\"id\":\"a\",\"handler\":\"wf_child\","
                                           "\"payload\":\"1\"}]}"),
                 "submit opn");
    const char *hdrs[] = {"Jetsched-Workflow-Id: opn", NULL};
    ts_publish("default", "normal", "wfadd", "opn-forged", "", 0, hdrs);
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id = 'opn-forged' AND status = 'dead'") == 1,
          "opn-forged not dead: %s", PG("SELECT status || ' ' || coalesce(error, '') FROM tasks WHERE id = 'opn-forged'"));
    CHECK(strstr(PG("SELECT error FROM tasks WHERE id = 'opn-forged'"), "task opn-forged is not a node of workflow opn"),
          "opn-forged error %s", PG("SELECT error FROM tasks WHERE id = 'opn-forged'"));
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'opn'") == 1, "the forged node added %ld rows",
          ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id = 'opn'") - 1);

    /* from_task straight through the API */
    const char *node = "{\"id\":\"late\",\"handler\":\"wf_child\"}";
    json_t *e = sa_reqf("workflow.add", "{\"id\":\"fan\",\"from_task\":\"fan-spawn\",\"tasks\":[%s]}", node);
    CHECK(strstr(sa_message(e), "workflow fan is over"), "add to an ended workflow: %s", sa_message(e));
    sa_expect_error(e, "failed_precondition", "id", "from_task on an ended workflow");
    e = sa_reqf("workflow.add", "{\"id\":\"opn\",\"from_task\":\"fan-spawn\",\"tasks\":[%s]}", node);
    CHECK(strstr(sa_message(e), "from_task \"fan-spawn\" is not a node of workflow opn"), "foreign from_task: %s",
          sa_message(e));
    sa_expect_error(e, "invalid_argument", "from_task", "from_task of another workflow");
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id = 'opn-a' AND status = 'succeeded'") == 1,
          "opn-a did not succeed");
    e = sa_reqf("workflow.add", "{\"id\":\"opn\",\"from_task\":\"opn-a\",\"tasks\":[%s]}", node);
    CHECK(strstr(sa_message(e), "task opn-a has ended: it cannot add nodes"),
          "ended from_task: %s", sa_message(e));
    sa_expect_error(e, "failed_precondition", "from_task", "from_task that ended");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE workflow_id IN ('fan', 'opn') AND id LIKE '%%-late'") == 0,
          "a refused add stored a node");
    sa_expect_ok(sa_req("workflow.cancel", "{\"id\":\"opn\"}"), "cancel opn");
}

static void free_kept(void)
{
    for (int i = 0; i < nkept; i++)
        free(kept[i]);
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "4s", 1); /* the killed agent's task comes back soon */
    ss_env();
    lua_scripts(lt_lua_dir());
    ts_setup("default");
    atexit(free_kept);
    char conf[1024];
    snprintf(conf, sizeof conf,
             "plugins = { load = [\"%s/tests/plugins/wfkit.so\"]; };\n"
             "queues = ( { name = \"default\"; concurrency = 16; backoff = \"fixed:200ms\"; } );\n",
             th_require_env("JETSCHED_BUILD_DIR"));
    ts_agent ag, s1;
    ts_agent_start(&ag, "agent-wfh", conf);
    ss_start(&s1, "wfh-1", NULL);
    free(ss_wait_holder(NULL, 15000));

    lua_fanout();
    native_calls();
    killed_spawner(&ag, conf);
    refusals();

    ts_agent_stop(&ag, SIGTERM, 10000);
    ts_agent_stop(&s1, SIGTERM, 10000);
    return ts_finish();
}
