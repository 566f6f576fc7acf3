/* Workflows under faults (issue 18, docs/WORKFLOWS.md): a 1,000-node
 * workflow (10 layers of 100, each node waiting for two nodes of the layer
 * before) runs on two agents and two schedulerd while one agent is killed
 * with SIGKILL and restarted, then the leading schedulerd is killed with
 * SIGKILL (its releaser dies mid-way; the other one takes over and sweeps),
 * then PostgreSQL is stopped for 3 s and started again.
 * Judged from PostgreSQL's history: the workflow ends succeeded, every node
 * has exactly one succeeded attempt, no attempt of a node started before
 * each of its parents had finished (task_attempts times), each callback
 * exists once with one succeeded attempt, after the last node finished;
 * nothing is left in the outbox or waiting. */
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYERS 10
#define WIDTH 100

static const char *AGENT_CONF =
    "queues = ( { name = \"default\"; concurrency = 8; } );\n"
    "exec = { commands = ( { name = \"work\"; argv = [\"/bin/sh\", \"-c\", \"sleep 0.03\"]; } ); };\n";

static ts_agent agents[2], scheds[2];
static const char *agent_ids[2] = {"wfa-1", "wfa-2"}, *sched_ids[2] = {"wfs-1", "wfs-2"};

static long q(const char *sql) { return ts_pg_long("%s", sql); }

static int leader_index(const char *not)
{
    char *h = ss_wait_holder(not, 20000);
    int li = -1;
    for (int i = 0; i < 2; i++)
        if (!strcmp(h, sched_ids[i]))
            li = i;
    free(h);
    return li;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    ss_env();
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "4s", 1);
    ts_setup("default");
    for (int i = 0; i < 2; i++)
        ts_agent_start(&agents[i], agent_ids[i], AGENT_CONF);
    for (int i = 0; i < 2; i++)
        ss_start(&scheds[i], sched_ids[i], NULL);
    CHECK(leader_index(NULL) >= 0, "a leader at the start");

    size_t cap = LAYERS * WIDTH * 120 + 512, len;
    char *body = malloc(cap);
    len = (size_t)snprintf(body, cap, "{\"id\":\"wff\",\"tasks\":[");
    for (int l = 0; l < LAYERS; l++)
        for (int i = 0; i < WIDTH; i++) {
            len += (size_t)snprintf(body + len, cap - len, "%s{\"id\":\"l%d-%d\",\"handler\":\"work\"",
                                    l || i ? "," : "", l, i);
            if (l)
                len += (size_t)snprintf(body + len, cap - len, ",\"depends_on\":[\"l%d-%d\",\"l%d-%d\"]", l - 1, i,
                                        l - 1, (i + 1) % WIDTH);
            len += (size_t)snprintf(body + len, cap - len, "}");
        }
    snprintf(body + len, cap - len, "],\"on_success\":{\"handler\":\"work\"},\"on_complete\":{\"handler\":\"work\"}}");
    int64_t t0 = ts_now_ms();
    sa_expect_ok(sa_req("workflow.submit", body), "1,000-node workflow submitted");
    free(body);

    /* agent kill -9 once a quarter of the nodes succeeded */
    ts_wait_long(1, 60000, "SELECT (count(*) >= %d)::int FROM tasks WHERE workflow_id = 'wff' AND status = 'succeeded'",
                 LAYERS * WIDTH / 4);
    ts_agent_stop(&agents[0], SIGKILL, 5000);
    printf("kill -9 of agent %s at %lld ms (%ld nodes succeeded)\n", agent_ids[0], (long long)(ts_now_ms() - t0),
           q("SELECT count(*) FROM tasks WHERE workflow_id = 'wff' AND status = 'succeeded'"));
    ts_sleep_ms(1000);
    ts_agent_start(&agents[0], agent_ids[0], AGENT_CONF);

    /* leader kill -9 at half */
    ts_wait_long(1, 60000, "SELECT (count(*) >= %d)::int FROM tasks WHERE workflow_id = 'wff' AND status = 'succeeded'",
                 LAYERS * WIDTH / 2);
    int li = leader_index(NULL);
    CHECK(li >= 0, "a leader before the kill");
    if (li >= 0) {
        ts_agent_stop(&scheds[li], SIGKILL, 5000);
        printf("kill -9 of leader %s at %lld ms (%ld nodes succeeded)\n", sched_ids[li],
               (long long)(ts_now_ms() - t0),
               q("SELECT count(*) FROM tasks WHERE workflow_id = 'wff' AND status = 'succeeded'"));
        int nl = leader_index(sched_ids[li]);
        CHECK(nl >= 0, "a new leader after the kill");
        ss_start(&scheds[li], sched_ids[li], NULL);
    }

    /* PostgreSQL restart at three quarters */
    ts_wait_long(1, 60000, "SELECT (count(*) >= %d)::int FROM tasks WHERE workflow_id = 'wff' AND status = 'succeeded'",
                 LAYERS * WIDTH * 3 / 4);
    CHECK(th_ctl("pg stop") == 0, "PostgreSQL stopped");
    printf("PostgreSQL stopped at %lld ms for 3 s\n", (long long)(ts_now_ms() - t0));
    ts_sleep_ms(3000);
    CHECK(th_ctl("pg start") == 0, "PostgreSQL started");
    PQfinish(ts_pg()); /* ts_reconnect_pg replaces the connection */
    ts_reconnect_pg();

    long ended = ts_wait_long(1, 120000,
                              "SELECT count(*) FROM workflows WHERE id = 'wff' AND status = 'succeeded' AND finished_at IS NOT NULL");
    CHECK(ended == 1, "the workflow ended succeeded");
    ts_wait_long(2, 30000, "SELECT count(*) FROM tasks WHERE id IN ('wff-on_success', 'wff-on_complete') AND status = 'succeeded'");
    printf("1,000-node workflow under faults: %lld ms\n", (long long)(ts_now_ms() - t0));
    ts_sleep_ms(2000); /* late redeliveries would show up as extra attempts */

    CHECK(q("SELECT count(*) FROM tasks WHERE workflow_id = 'wff' AND deps_pending IS NOT NULL") == LAYERS * WIDTH,
          "1,000 nodes");
    long not_once = q("SELECT count(*) FROM tasks t WHERE t.workflow_id = 'wff'"
                      " AND (SELECT count(*) FROM task_attempts a WHERE a.task_id = t.id AND a.status = 'succeeded') <> 1");
    CHECK(not_once == 0, "%ld node(s) or callbacks without exactly one succeeded attempt", not_once);
    long early = q("SELECT count(*) FROM workflow_edges e JOIN tasks c ON c.id = e.child_id JOIN tasks p ON p.id = e.parent_id"
                   " JOIN task_attempts a ON a.task_id = c.id WHERE c.workflow_id = 'wff' AND a.started_at < p.finished_at");
    CHECK(early == 0, "%ld attempt(s) started before a parent finished", early);
    CHECK(q("SELECT count(*) FROM task_attempts a, tasks t WHERE a.task_id IN ('wff-on_success', 'wff-on_complete')"
            " AND a.started_at < (SELECT max(finished_at) FROM tasks WHERE workflow_id = 'wff' AND deps_pending IS NOT NULL)"
            " AND t.id = a.task_id") == 0,
          "a callback started before the last node finished");
    CHECK(q("SELECT count(*) FROM tasks WHERE workflow_id = 'wff' AND deps_pending IS NULL") == 2,
          "each callback exists once");
    CHECK(q("SELECT count(*) FROM workflow_outbox") == 0 && q("SELECT count(*) FROM tasks WHERE status = 'waiting'") == 0,
          "nothing left in the outbox or waiting");
    CHECK(q("SELECT count(*) FROM workflow_edges WHERE state <> 'satisfied'") == 0, "every edge satisfied once");
    printf("attempts: %ld for %d nodes + 2 callbacks (retries after the kills count here)\n",
           q("SELECT count(*) FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE t.workflow_id = 'wff'"),
           LAYERS * WIDTH);

    for (int i = 0; i < 2; i++) {
        ts_agent_stop(&agents[i], SIGTERM, 10000);
        ts_agent_stop(&scheds[i], SIGTERM, 10000);
    }
    return ts_finish();
}
