/* agentd's life cycle against real servers: systemd READY / WATCHDOG /
 * STOPPING on a NOTIFY_SOCKET of the test's own, the registry heartbeat and
 * its removal on drain, cancellation of a queued and of a running task
 * (the exec plugin's process group is killed), SIGHUP reload, and SIGTERM
 * drain: a running task finishes inside the grace, one that outlives the
 * grace is handed back and completed by another agent. */
#include "agent_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *conf =
    "queues = ( { name = \"default\"; concurrency = 3; } );\n"
    "shutdown = { grace = \"%s\"; };\n"
    "exec = { commands = ( { name = \"sleeper\"; argv = [\"/bin/sh\", \"-c\", \"sleep $(cat)\"]; } ); };\n";

static int notify_fd;
static char notify_seen[4096];

static void drain_notify(void)
{
    char buf[512];
    ssize_t n;
    while ((n = recv(notify_fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        if (strlen(notify_seen) + (size_t)n + 2 < sizeof notify_seen) {
            strcat(notify_seen, buf);
            strcat(notify_seen, "\n");
        }
    }
}

static char *kv_get(const char *bucket, const char *key)
{
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    char *v = NULL;
    if (js_KeyValue(&kv, ts_js(), bucket) == NATS_OK && kvStore_Get(&e, kv, key) == NATS_OK &&
        kvEntry_Operation(e) == kvOp_Put)
        v = strndup(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);
    return v;
}

static void kv_put(const char *bucket, const char *key, const char *value)
{
    kvStore *kv = NULL;
    uint64_t rev;
    js_KeyValue(&kv, ts_js(), bucket);
    CHECK(kvStore_PutString(&rev, kv, key, value) == NATS_OK, "put %s/%s", bucket, key);
    kvStore_Destroy(kv);
}

static int sleepers_running(void)
{
    FILE *p = popen("pgrep -fc '[s]leep 317' 2>/dev/null", "r");
    int n = 0;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

int main(void)
{
    ts_setup("default");
    /* systemd notification socket */
    char *dir = th_tmpdir();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", dir);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(bind(notify_fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind notify socket");
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    setenv("WATCHDOG_USEC", "1000000", 1);

    char c[1024];
    snprintf(c, sizeof c, conf, "10s");
    ts_agent ag;
    ts_agent_start(&ag, "life", c);
    ts_sleep_ms(1500);
    drain_notify();
    CHECK(strstr(notify_seen, "READY=1") != NULL, "no READY=1 (got: %s)", notify_seen);
    CHECK(strstr(notify_seen, "WATCHDOG=1") != NULL, "no WATCHDOG=1 pings");

    /* registry */
    char *reg = kv_get("jetsched_agents", "life");
    CHECK(reg && strstr(reg, "\"queues\":[\"default\"]") && strstr(reg, "\"echo\"") && strstr(reg, "\"sleeper\""),
          "registry entry: %s", reg ? reg : "(none)");
    free(reg);

    /* cancellation: queued (cancelled before it starts) and running */
    kv_put("jetsched_cancel", "cancel-queued", "1");
    ts_sleep_ms(300);
    ts_publish("default", "normal", "echo", "cancel-queued", "x", 1, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='cancel-queued' AND status='cancelled'") == 1,
          "queued task not cancelled");
    ts_publish("default", "normal", "sleeper", "cancel-running", "317", 3, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM task_attempts WHERE task_id='cancel-running' AND "
                                 "status='running'") == 1, "sleeper did not start");
    ts_sleep_ms(300);
    CHECK(sleepers_running() >= 1, "no sleep process");
    kv_put("jetsched_cancel", "cancel-running", "1");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='cancel-running' AND status='cancelled'") == 1,
          "running task not cancelled");
    ts_sleep_ms(500);
    CHECK(sleepers_running() == 0, "the cancelled command's process is still running");

    /* SIGHUP: reloadable keys apply, the others are reported */
    FILE *f = fopen(ag.conf, "a");
    fprintf(f, "priority = { weight_low = 2; };\nhistory = { batch_size = 7; };\n");
    fclose(f);
    kill(ag.pid, SIGHUP);
    ts_sleep_ms(1000);
    CHECK(ts_log_contains(&ag, "SIGHUP: configuration reloaded"), "no reload logged");
    CHECK(ts_log_contains(&ag, "history.batch_size: changed but not reloadable"), "non-reloadable change not reported");

    /* drain: a task finishing inside the grace is recorded; exit 0; registry key gone */
    ts_publish("default", "normal", "sleeper", "drain-short", "1", 1, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM task_attempts WHERE task_id='drain-short' AND "
                                 "status='running'") == 1, "drain-short did not start");
    notify_seen[0] = '\0';
    CHECK(ts_agent_stop(&ag, SIGTERM, 30000) == 0, "agentd did not exit 0 on SIGTERM");
    drain_notify();
    CHECK(strstr(notify_seen, "STOPPING=1") != NULL, "no STOPPING=1");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id='drain-short' AND status='succeeded'") == 1,
          "the in-flight task was not finished and recorded before exit");
    reg = kv_get("jetsched_agents", "life");
    CHECK(reg == NULL, "registry key still present after drain: %s", reg);
    free(reg);

    /* the next agents do not talk to our notify socket (nobody reads it any more) */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");

    /* drain with a short grace: the long task is handed back at once and another agent runs it */
    snprintf(c, sizeof c, conf, "1s");
    ts_agent_start(&ag, "short-grace", c);
    ts_publish("default", "normal", "sleeper", "drain-long", "4", 1, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM task_attempts WHERE task_id='drain-long' AND "
                                 "status='running'") == 1, "drain-long did not start");
    int64_t t0 = ts_now_ms();
    CHECK(ts_agent_stop(&ag, SIGTERM, 30000) == 0, "agentd did not exit 0 after the grace");
    CHECK(ts_now_ms() - t0 < 4000, "drain took %lld ms with a 1 s grace", (long long)(ts_now_ms() - t0));
    ts_agent_start(&ag, "after", c);
    CHECK(ts_wait_long(1, 30000, "SELECT count(*) FROM tasks WHERE id='drain-long' AND status='succeeded' AND "
                                 "agent='after'") == 1, "handed-back task not completed by the next agent");
    CHECK(ts_agent_stop(&ag, SIGTERM, 30000) == 0, "agentd did not exit 0");
    free(dir);
    close(notify_fd);
    return ts_finish();
}
