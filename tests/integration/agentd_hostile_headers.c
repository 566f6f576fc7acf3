/* Issue 20 item 3 and the Jetsched-Timeout minor, against a real agentd:
 * a header with an empty value and a header line without a colon used to
 * make libnats drop every header (the task became seq-<n>, dead with
 * missing_handler, and its dead letter lost handler and id). Now every
 * good header is kept and the task runs under its own id; a
 * `Jetsched-Timeout: 0s` on a direct publish is refused like the API
 * refuses it. The malformed block is sent with a raw HPUB over TCP.
 * Item 11: an exec child that escapes with `setsid cmd &` is reaped.
 * Item 14: an unknown handler is retried, then dead-lettered. */
#include "agent_support.h"
#include "harness.h"
#include "procstat.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *conf =
    "queues = ( { name = \"default\"; concurrency = 2; } );\n"
    "exec = { commands = ( { name = \"escape\"; argv = [\"/bin/sh\", \"-c\","
    " \"setsid sh -c 'sleep 0.3' </dev/null >/dev/null 2>&1 & echo started\"]; } ); };\n";

/* Zombies whose parent is pid. */
static int count_zombie_child(const th_procstat *p, void *arg)
{
    int *n = arg; /* n[0]: parent, n[1]: count */
    if (p->state == 'Z' && p->ppid == n[0])
        n[1]++;
    return 0;
}

static int zombies_of(pid_t parent)
{
    int n[2] = {(int)parent, 0};
    th_procstat_each(count_zombie_child, n);
    return n[1];
}

/* HPUB of a raw header block and body on a fresh TCP connection; waits for PONG. */
static void raw_hpub(const char *subject, const char *hdrs, const char *body)
{
    const char *url = th_require_env("JETSCHED_TEST_NATS_URL");
    const char *hp = strstr(url, "://") ? strstr(url, "://") + 3 : url;
    int port = atoi(strrchr(hp, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "raw connect to nats-server");
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1); /* INFO */
    CHECK(n > 0, "INFO");
    size_t hl = strlen(hdrs), bl = strlen(body);
    n = snprintf(buf, sizeof buf,
                 "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":false}\r\n"
                 "HPUB %s %zu %zu\r\n%s%s\r\nPING\r\n",
                 subject, hl, hl + bl, hdrs, body);
    CHECK(write(fd, buf, (size_t)n) == n, "HPUB written");
    char got[512] = "";
    size_t used = 0;
    for (int i = 0; i < 50 && !strstr(got, "PONG"); i++) {
        ssize_t r = read(fd, got + used, sizeof got - 1 - used);
        if (r <= 0)
            break;
        used += (size_t)r;
        got[used] = '\0';
    }
    CHECK(strstr(got, "PONG") != NULL, "PONG after HPUB (got %s)", got);
    close(fd);
}

int main(void)
{
    ts_setup("default");
    ts_agent ag;
    ts_agent_start(&ag, "hostile-headers", conf);

    /* A header line without a colon, and an empty value, in one block. */
    raw_hpub("jetsched.task.default.normal",
             "NATS/1.0\r\nJetsched-Handler: echo\r\nthis line has no colon\r\nNats-Msg-Id: hdr-nocolon\r\n"
             "X-Empty: \r\nX-Keep: yes\r\n\r\n",
             "nocolon-body");
    /* An empty value through libnats' own encoder. */
    const char *empty[] = {"X-Empty: ", NULL};
    ts_publish("default", "normal", "echo", "hdr-empty", "empty-body", 10, empty);
    /* Jetsched-Timeout: 0s */
    const char *zero[] = {"Jetsched-Timeout: 0s", NULL};
    ts_publish("default", "normal", "echo", "hdr-timeout0", "t", 1, zero);

    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'hdr-nocolon' AND status = 'succeeded'") == 1,
          "the task with a line without a colon ran under its id");
    char *res = ts_pg_text("SELECT result FROM tasks WHERE id = 'hdr-nocolon'");
    CHECK(strcmp(res, "nocolon-body") == 0, "its result is its payload: %s", res);
    free(res);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'hdr-empty' AND status = 'succeeded'") == 1,
          "the task with an empty header value ran under its id");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'hdr-timeout0' AND status = 'dead'") == 1,
          "Jetsched-Timeout: 0s is dead");
    char *err = ts_pg_text("SELECT error FROM tasks WHERE id = 'hdr-timeout0'");
    CHECK(strstr(err, "invalid_header") && strstr(err, "more than 0s"), "its error: %s", err);
    free(err);
    /* A handler name with an invalid UTF-8 byte: dead, and agentd's log
     * quotes it repaired (the raw byte was written into the log). */
    raw_hpub("jetsched.task.default.normal",
             "NATS/1.0\r\nJetsched-Handler: ec\xffho\r\nNats-Msg-Id: hdr-badutf8\r\n\r\n", "x");
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'hdr-badutf8' AND status = 'dead'") == 1,
          "a handler name with an invalid UTF-8 byte is dead");
    for (int i = 0; i < 50 && !ts_log_contains(&ag, "hdr-badutf8"); i++)
        ts_sleep_ms(100);
    CHECK(ts_log_contains(&ag, "ec\xef\xbf\xbdho"), "the log quotes the handler repaired (U+FFFD)");
    CHECK(!ts_log_contains(&ag, "ec\xff"), "no raw invalid byte in the log");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'seq-%%'") == 0, "no task lost its id");

    /* Item 2 (ids): a task without Nats-Msg-Id is seq-<stream created>-<seq>,
     * so a recreated stream (sequences from 1 again) never repeats an id. */
    jsStreamInfo *si = NULL;
    CHECK(js_GetStreamInfo(&si, ts_js(), "JETSCHED_TASKS", NULL, NULL) == NATS_OK, "stream info");
    long long created = si ? (long long)(si->Created / 1000000000) : 0;
    jsStreamInfo_Destroy(si);
    ts_publish("default", "normal", "echo", NULL, "noid", 4, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id ~ '^seq-%lld-[0-9]+$' AND status = 'succeeded'",
                       created) == 1,
          "the task without an id is seq-%lld-<seq>", created);

    /* Minor: a binary result is no longer cut at its first NUL (the history
     * keeps it as text: NULs dropped, invalid bytes U+FFFD). */
    static const char bin[] = {'a', 'b', '\0', 'c', 'd', '\0', 'e'};
    ts_publish("default", "normal", "echo", "binary-1", bin, sizeof bin, NULL);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'binary-1' AND status = 'succeeded'") == 1,
          "the binary task ran");
    res = ts_pg_text("SELECT result FROM tasks WHERE id = 'binary-1'");
    CHECK(strcmp(res, "abcde") == 0, "the result after the first NUL is kept: \"%s\"", res);
    free(res);

    /* Item 14: an unknown handler is retried with backoff (another agent of
     * the queue may have it) and dead-lettered only when attempts run out. */
    const char *unknown[] = {"Jetsched-Max-Attempts: 3", "Jetsched-Backoff: fixed:100ms", NULL};
    ts_publish("default", "normal", "nosuch", "unknown-1", "u", 1, unknown);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'unknown-1' AND status = 'dead' AND "
                                 "error LIKE 'unknown_handler:%%'") == 1,
          "the unknown handler's task is dead with unknown_handler after its attempts");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'unknown-1'") == 3,
          "3 attempts were made (%ld)", ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'unknown-1'"));

    /* Item 11: a process that escaped its exec group (setsid ... &) and
     * exited is reaped by agentd (a child subreaper), not left a zombie. */
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "escape-%d", i);
        ts_publish("default", "normal", "escape", id, "", 0, NULL);
    }
    CHECK(ts_wait_long(3, 20000, "SELECT count(*) FROM tasks WHERE id LIKE 'escape-%%' AND status = 'succeeded'") == 3,
          "the escaping commands ran");
    int z = -1;
    for (int i = 0; i < 40 && (z = zombies_of(ag.pid)) != 0; i++)
        ts_sleep_ms(100);
    ts_sleep_ms(1000); /* the escaped sleeps (0.3 s) are over by now */
    z = zombies_of(ag.pid);
    CHECK(z == 0, "no zombie children of agentd (%d)", z);
    CHECK(ts_agent_stop(&ag, SIGTERM, 15000) == 0, "agentd exits 0");
    return ts_finish();
}
