/* The submit contract is language-agnostic: a task published by a client
 * that is not libnats (a raw NATS protocol client written here, speaking
 * HPUB over a TCP socket) runs, and its JetStream publish ack is received. */
#include "agent_support.h"
#include "harness.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads until `want` appears or 5 s pass; returns the buffer. */
static const char *read_until(int fd, const char *want)
{
    static char buf[8192];
    size_t used = 0;
    buf[0] = '\0';
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!strstr(buf, want) && used + 1 < sizeof buf) {
        ssize_t r = read(fd, buf + used, sizeof buf - 1 - used);
        if (r <= 0)
            break;
        used += (size_t)r;
        buf[used] = '\0';
    }
    return buf;
}

int main(void)
{
    ts_setup("default");
    ts_agent ag;
    ts_agent_start(&ag, "foreign", NULL);

    const char *url = th_require_env("JETSCHED_TEST_NATS_URL");
    int port = atoi(strrchr(url, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to %s", url);
    CHECK(strstr(read_until(fd, "\r\n"), "INFO ") != NULL, "no INFO line");

    const char *hdr = "NATS/1.0\r\nJetsched-Handler: echo\r\nNats-Msg-Id: raw-client-1\r\n\r\n";
    const char *payload = "{\"from\":\"raw protocol\"}";
    char proto[1024];
    int n = snprintf(proto, sizeof proto,
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"name\":\"raw-test\"}\r\n"
                     "SUB _INBOX.rawtest 1\r\n"
                     "HPUB jetsched.task.default.normal _INBOX.rawtest %zu %zu\r\n%s%s\r\nPING\r\n",
                     strlen(hdr), strlen(hdr) + strlen(payload), hdr, payload);
    CHECK(write(fd, proto, (size_t)n) == n, "write");
    const char *ack = read_until(fd, "\"seq\"");
    CHECK(strstr(ack, "\"stream\":\"JETSCHED_TASKS\"") != NULL, "no JetStream publish ack: %s", ack);
    close(fd);

    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='raw-client-1' AND status='succeeded'") == 1,
          "the raw-protocol task did not run");
    char *res = ts_pg_text("SELECT result FROM tasks WHERE id='raw-client-1'");
    CHECK(!strcmp(res, payload), "result \"%s\"", res);
    free(res);
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agentd did not exit 0");
    return ts_finish();
}
