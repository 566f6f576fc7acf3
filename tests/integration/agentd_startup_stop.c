/* agentd stops promptly on SIGTERM at any point of its start-up: while it
 * waits for PostgreSQL (stopped by the test) it exits with status 0 within
 * a few seconds instead of waiting out its 60 s PostgreSQL wait; the same
 * for SIGINT; and, PostgreSQL back, it starts normally and drains on
 * SIGTERM (status 0). */
#include "agent_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *conf = "queues = ( { name = \"default\"; concurrency = 2; } );\n";

/* Starts agentd with PostgreSQL down, waits until its log says it waits for
 * PostgreSQL, sends sig and checks it exits with status 0 within 5 s. */
static void stop_while_waiting(const char *name, int sig)
{
    ts_agent ag;
    ts_agent_spawn(&ag, name, conf);
    bool waiting = false;
    for (int64_t until = ts_now_ms() + 20000; ts_now_ms() < until && !waiting; ts_sleep_ms(100))
        waiting = ts_log_contains(&ag, "waiting for PostgreSQL");
    CHECK(waiting, "%s: agentd never logged that it waits for PostgreSQL (log %s)", name, ag.log);
    int status = -1;
    CHECK(waitpid(ag.pid, &status, WNOHANG) == 0, "%s: agentd exited before the signal (status %d)", name, status);
    int64_t t0 = ts_now_ms();
    int rc = ts_agent_stop(&ag, sig, 5000);
    int64_t took = ts_now_ms() - t0;
    printf("%s: signal %d while waiting for PostgreSQL: exit %d after %lld ms\n", name, sig, rc, (long long)took);
    CHECK(rc == 0, "%s: exit status %d after signal %d during start-up, want 0", name, rc, sig);
    CHECK(took < 5000, "%s: took %lld ms to exit", name, (long long)took);
    CHECK(ts_log_contains(&ag, "stopped during start-up"), "%s: no 'stopped during start-up' in %s", name, ag.log);
}

int main(void)
{
    ts_setup("default");
    CHECK(th_ctl("pg stop") == 0, "could not stop PostgreSQL");
    stop_while_waiting("startup-term", SIGTERM);
    stop_while_waiting("startup-int", SIGINT);
    CHECK(th_ctl("pg start") == 0, "could not start PostgreSQL");
    PQfinish(ts_pg()); /* the connection of before the stop */
    ts_reconnect_pg();

    /* With PostgreSQL up the same agent starts, runs a task, and drains. */
    ts_agent ag;
    ts_agent_start(&ag, "startup-ok", conf);
    ts_publish("default", "normal", "noop", "startup-stop-1", "x", 1, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'startup-stop-1' AND status = 'succeeded'") ==
              1,
          "the task did not succeed after the restart of PostgreSQL");
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "drain after a normal start did not exit 0");
    return ts_finish();
}
