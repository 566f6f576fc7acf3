/* Late deliveries of batched pull requests, forced deterministically: the
 * agent talks to nats-server through a TCP proxy in this test that can hold
 * back everything the server sends (the agent keeps running, gives its
 * unanswered requests up after their expiry + grace and asks again; what
 * the forgotten requests delivered then arrives late) and can cut the
 * connection (the agent reconnects and forgets its requests). Under
 * AddressSanitizer: no memory error, every task succeeds with one attempt
 * (a late delivery spends none), never more handlers at once than
 * concurrency, nothing lost. */
#include "agent_support.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONCURRENCY 4

/* ---- the proxy ---- */

static int upstream_port;
static _Atomic bool hold_down;  /* server -> agent bytes are held back */
static _Atomic int cut_gen;     /* incremented: every proxied connection is closed */

typedef struct pump {
    int from, to;
    bool down; /* server -> agent */
    int gen;
} pump;

static void *pump_main(void *arg)
{
    pump *p = arg;
    char buf[65536];
    for (;;) {
        if (atomic_load(&cut_gen) != p->gen)
            break;
        if (p->down && atomic_load(&hold_down)) {
            ts_sleep_ms(5);
            continue;
        }
        struct pollfd pfd = {.fd = p->from, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        ssize_t n = read(p->from, buf, sizeof buf);
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(p->to, buf + off, (size_t)(n - off));
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    shutdown(p->from, SHUT_RDWR);
    shutdown(p->to, SHUT_RDWR);
    free(p);
    return NULL;
}

static void *accept_main(void *arg)
{
    int ls = *(int *)arg;
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            continue;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(c);
            close(s);
            continue;
        }
        int gen = atomic_load(&cut_gen);
        pump *up = malloc(sizeof *up), *down = malloc(sizeof *down);
        *up = (pump){c, s, false, gen};
        *down = (pump){s, c, true, gen};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, pump_main, up);
        pthread_create(&t2, NULL, pump_main, down);
        pthread_detach(t1);
        pthread_detach(t2);
    }
    return NULL;
}

/* Starts the proxy; returns its URL. */
static const char *proxy_start(void)
{
    const char *url = th_require_env("JETSCHED_TEST_NATS_URL");
    const char *colon = strrchr(url, ':');
    upstream_port = colon ? atoi(colon + 1) : 0;
    static int ls;
    ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (upstream_port <= 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 16) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &len) != 0) {
        fprintf(stderr, "FAIL: cannot start the proxy for %s\n", url);
        exit(1);
    }
    pthread_t t;
    pthread_create(&t, NULL, accept_main, &ls);
    pthread_detach(t);
    static char purl[64];
    snprintf(purl, sizeof purl, "nats://127.0.0.1:%d", ntohs(sa.sin_port));
    return purl;
}

/* ---- the test ---- */

static void publish_batch(const char *tag, int n, const char *ms)
{
    static const char *const prios[] = {"high", "normal", "low"};
    for (int i = 0; i < n; i++) {
        char id[48];
        snprintf(id, sizeof id, "lp-%s-%d", tag, i);
        ts_publish("lp", prios[i % 3], "napms", id, ms, (int)strlen(ms), NULL);
    }
}

static int log_count(const ts_agent *ag, const char *text)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "grep -c '%s' '%s'", text, ag->log);
    FILE *f = popen(cmd, "r");
    int n = 0;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = 0;
        pclose(f);
    }
    return n;
}

int main(void)
{
    ts_setup("lp");
    setenv("JETSCHED_NATS_URL", proxy_start(), 1); /* the agent goes through the proxy */
    char conf[1024];
    snprintf(conf, sizeof conf,
             "log = { level = \"debug\"; };\n"
             "plugins = { load = [\"%s/tests/plugins/testkit.so\"]; };\n"
             "queues = ( { name = \"lp\"; concurrency = %d; } );\n",
             getenv("JETSCHED_BUILD_DIR"), CONCURRENCY);
    ts_agent ag;
    ts_agent_start(&ag, "late-pulls", conf);

    /* 1. Busy: a no_wait round is out when the server's answers are held
     * back for 4.5 s. The agent gives it up after 2 s and asks for all its
     * (by then idle) slots in a second round, gives that up at 4 s and asks
     * again: released, the first two rounds' tasks arrive late, on top of
     * the third round's, twice as many as can start. */
    publish_batch("busy", 150, "40"); /* 1.5 s of work at concurrency 4 */
    int64_t until = ts_now_ms() + 30000;
    while (ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'lp-busy-%%' AND status='succeeded'") < 10 &&
           ts_now_ms() < until)
        ts_sleep_ms(10);
    atomic_store(&hold_down, true);
    ts_sleep_ms(4500);
    atomic_store(&hold_down, false);
    CHECK(ts_wait_long(150, 60000, "SELECT count(*) FROM tasks WHERE id LIKE 'lp-busy-%%' AND status='succeeded'") ==
              150, "not every busy task succeeded");
    int late_busy = log_count(&ag, "late delivery");
    int given_up = log_count(&ag, "giving it up");

    /* 2. Idle: the agent waits with batch-1 requests on each lane; tasks
     * published while the answers are held back 4 s reach it after it gave
     * those requests up. */
    ts_sleep_ms(500);
    atomic_store(&hold_down, true);
    ts_sleep_ms(200);
    publish_batch("idle", 6, "1");
    ts_sleep_ms(3800);
    atomic_store(&hold_down, false);
    CHECK(ts_wait_long(6, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'lp-idle-%%' AND status='succeeded'") == 6,
          "not every idle task succeeded");
    int late_total = log_count(&ag, "late delivery");
    printf("late deliveries: %d while busy (%d requests given up), %d in all\n", late_busy, given_up, late_total);
    CHECK(late_busy > 1, "holding the answers back while busy forced no late batch (log %s)", ag.log);
    CHECK(late_total > late_busy, "holding the answers back while idle forced no late delivery (log %s)", ag.log);

    /* 3. The connection is cut: the agent reconnects through the proxy,
     * forgets its requests and pulls again from zero. */
    atomic_fetch_add(&cut_gen, 1);
    until = ts_now_ms() + 20000;
    while (log_count(&ag, "reconnected") == 0 && ts_now_ms() < until)
        ts_sleep_ms(100);
    CHECK(log_count(&ag, "pull request(s) forgotten") > 0, "no request accounting reset after the reconnect (log %s)",
          ag.log);
    publish_batch("recon", 60, "5");
    CHECK(ts_wait_long(60, 30000, "SELECT count(*) FROM tasks WHERE id LIKE 'lp-recon-%%' AND status='succeeded'") ==
              60, "not every task after the reconnect succeeded");

    /* Nothing lost, no attempt spent, never more than concurrency at once. */
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'lp-%%' AND (status <> 'succeeded' OR attempts <> 1)") ==
              0, "a task with another status or more than one attempt");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'lp-%%' AND status = 'succeeded'") == 216,
          "succeeded attempt rows: %ld, want one per task",
          ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'lp-%%' AND status = 'succeeded'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id LIKE 'lp-%%' AND attempt <> 1") == 0,
          "an attempt row of a second attempt");
    long most = ts_pg_long("SELECT coalesce(max(result::int), 0) FROM tasks WHERE id LIKE 'lp-%%'");
    CHECK(most >= 1 && most <= CONCURRENCY, "%ld handlers ran at once (concurrency %d)", most, CONCURRENCY);
    until = ts_now_ms() + 15000; /* the ack follows the commit */
    while (ts_stream_msgs("JETSCHED_TASKS") > 0 && ts_now_ms() < until)
        ts_sleep_ms(100);
    CHECK(ts_stream_msgs("JETSCHED_TASKS") == 0, "%llu tasks left in the stream",
          (unsigned long long)ts_stream_msgs("JETSCHED_TASKS"));
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agentd did not exit 0 (sanitizer error?)");
    CHECK(!ts_log_contains(&ag, "AddressSanitizer"), "AddressSanitizer report in %s", ag.log);
    return ts_finish();
}
