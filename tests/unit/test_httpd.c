/* common/httpd.c under hostile peers (issue 20 item 12 and a minor): 200
 * idle sockets from one address do not stop /healthz and /readyz from
 * answering another address at once, and the idle sockets are closed
 * within a few seconds so the same address is served again; "/metrics%00"
 * is not /metrics. No servers: the endpoint is started in-process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/httpd.h>
#include <jetsched/timeutil.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDLE 200

static int connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* GET path from src; returns the status (-1: reset or no answer within 2 s). */
static int get_from(const char *src, int port, const char *path)
{
    int fd = connect_from(src, port);
    if (fd < 0)
        return -1;
    char req[256], buf[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int status = -1;
    if (poll(&p, 1, 2000) == 1) {
        ssize_t r = read(fd, buf, sizeof buf - 1);
        if (r > 12) {
            buf[r] = '\0';
            status = atoi(buf + 9);
        }
    }
    close(fd);
    return status;
}

static bool ready(void *arg, char *why, size_t len)
{
    (void)arg;
    (void)why;
    (void)len;
    return true;
}

static void idle_sockets_do_not_starve_probes(void **state)
{
    (void)state;
    jet_httpd *h = NULL;
    jet_err err;
    assert_int_equal(jet_httpd_start("127.0.0.1:0", ready, NULL, &h, &err), JET_OK);
    int port = jet_httpd_port(h);
    int fds[IDLE], open_n = 0;
    for (int i = 0; i < IDLE; i++)
        if ((fds[i] = connect_from("127.0.0.1", port)) >= 0)
            open_n++;
    assert_true(open_n >= 64);
    /* Half-open: a request line and no end of headers on a few of them. */
    for (int i = 0; i < 8; i++)
        if (fds[i] >= 0 && write(fds[i], "GET /healthz HTTP/1.1\r\n", 23) < 0)
            fail();
    int64_t t0 = jet_mono_ms();
    assert_int_equal(get_from("127.0.0.2", port, "/healthz"), 200);
    assert_int_equal(get_from("127.0.0.2", port, "/readyz"), 200);
    assert_true(jet_mono_ms() - t0 < 1500);
    /* The idle sockets are closed by the server within a few seconds. */
    int closed = 0;
    for (int64_t end = jet_mono_ms() + 8000; jet_mono_ms() < end && closed < open_n;) {
        closed = 0;
        for (int i = 0; i < IDLE; i++) {
            if (fds[i] < 0) {
                continue;
            }
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            char b[64];
            if (poll(&p, 1, 0) == 1 && read(fds[i], b, sizeof b) <= 0) {
                close(fds[i]);
                fds[i] = -2;
            }
        }
        for (int i = 0; i < IDLE; i++)
            closed += fds[i] == -2 || fds[i] == -1;
        jet_sleep_ms(100);
    }
    assert_true(closed >= IDLE);
    assert_int_equal(get_from("127.0.0.1", port, "/healthz"), 200);
    jet_httpd_stop(h);
}

static void escaped_paths_are_not_endpoints(void **state)
{
    (void)state;
    jet_httpd *h = NULL;
    jet_err err;
    assert_int_equal(jet_httpd_start("127.0.0.1:0", ready, NULL, &h, &err), JET_OK);
    int port = jet_httpd_port(h);
    assert_int_equal(get_from("127.0.0.1", port, "/metrics"), 200);
    assert_int_equal(get_from("127.0.0.1", port, "/metrics%00"), 404);
    assert_int_equal(get_from("127.0.0.1", port, "/metrics%00.txt"), 404);
    assert_int_equal(get_from("127.0.0.1", port, "/%6detrics"), 404);
    assert_int_equal(get_from("127.0.0.1", port, "/healthz%00"), 404);
    jet_httpd_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle_sockets_do_not_starve_probes),
        cmocka_unit_test(escaped_paths_are_not_endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
