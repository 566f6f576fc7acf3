/* Unit tests of the http plugin (agentd/plugins/http.so) through the plugin
 * host, against a small HTTP server running in a thread of this test on a
 * free loopback port: 200, 500, 404, 408, 429/503 with Retry-After, 302,
 * slow answers (timeout), cancellation, connection refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugin_host.h"
#include "test_host.h"

#include <jetsched/log.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define assert_contains(hay, needle)                                                                                  \
    do {                                                                                                              \
        if (!strstr((hay), (needle)))                                                                                 \
            fail_msg("expected \"%s\" in: %s", (needle), (hay));                                                     \
    } while (0)

/* ------------------------------------------------------------------ server */

static struct {
    int lfd;
    int port;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    int requests;
    char method[16];
    char path[256];
    char headers[16384];
    char *body;
    size_t body_len;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *extra_headers, const char *body, size_t body_len)
{
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d Test\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
                     body_len, extra_headers ? extra_headers : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, body_len);
}

static void serve_one(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    char *end = NULL;
    while (!end) { /* headers */
        if (len == cap)
            goto out;
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r <= 0)
            goto out;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - buf) + 4;
    size_t clen = 0;
    char saved = buf[head_len];
    buf[head_len] = '\0';
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl)
        clen = strtoul(cl + 17, NULL, 10);
    buf[head_len] = saved;
    char *body = malloc(clen + 1);
    size_t have = len - head_len < clen ? len - head_len : clen;
    memcpy(body, buf + head_len, have);
    while (have < clen) {
        ssize_t r = recv(fd, body + have, clen - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    pthread_mutex_lock(&srv.mu);
    srv.requests++;
    sscanf(buf, "%15s %255s", srv.method, srv.path);
    snprintf(srv.headers, sizeof srv.headers, "%.*s", (int)head_len, buf);
    free(srv.body);
    srv.body = body;
    srv.body_len = have;
    char path[256];
    snprintf(path, sizeof path, "%s", srv.path);
    pthread_mutex_unlock(&srv.mu);

    if (strcmp(path, "/ok") == 0) {
        respond(fd, 200, "Content-Type: text/plain\r\n", "accepted", 8);
    } else if (strcmp(path, "/created") == 0) {
        respond(fd, 201, NULL, "", 0);
    } else if (strcmp(path, "/fail") == 0) {
        respond(fd, 500, NULL, "internal error: db down", 23);
    } else if (strcmp(path, "/missing") == 0) {
        respond(fd, 404, NULL, "no such hook", 12);
    } else if (strcmp(path, "/timeout") == 0) {
        respond(fd, 408, NULL, "", 0);
    } else if (strcmp(path, "/busy") == 0) {
        respond(fd, 429, "Retry-After: 7\r\n", "slow down", 9);
    } else if (strcmp(path, "/unavailable") == 0) {
        respond(fd, 503, "retry-after:  2 \r\n", "", 0);
    } else if (strcmp(path, "/redirect") == 0) {
        respond(fd, 302, "Location: /ok\r\n", "", 0);
    } else if (strcmp(path, "/big") == 0) {
        size_t n = 200000;
        char *big = malloc(n);
        memset(big, 'b', n);
        respond(fd, 200, NULL, big, n);
        free(big);
    } else if (strcmp(path, "/slow") == 0) {
        /* Answer after 5 s, or give up when the client hangs up. */
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int64_t until = th_now_ms() + 5000;
        while (th_now_ms() < until && !atomic_load(&srv.stop)) {
            if (poll(&pf, 1, 50) > 0) {
                char c;
                if (recv(fd, &c, 1, 0) <= 0)
                    goto out;
            }
        }
        respond(fd, 200, NULL, "late", 4);
    } else {
        respond(fd, 400, NULL, "unknown path", 12);
    }
out:
    free(buf);
}

static void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        struct pollfd pf = {.fd = srv.lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_one(fd);
        close(fd);
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* ------------------------------------------------------------------ fixture */

static jet_plugin_registry *reg;
static char http_so[PATH_MAX + 16];

static json_t *endpoint(const char *name, const char *path, int port, int timeout_ms)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    return json_pack("{s:s,s:s,s:i,s:[s,s]}", "name", name, "url", url, "timeout_ms", timeout_ms, "headers",
                     "Content-Type: application/json", "X-Hook-Secret: s3cr3t");
}

static int setup(void **state)
{
    (void)state;
    srv.lfd = listen_loopback(&srv.port);
    if (srv.lfd < 0)
        return -1;
    atomic_init(&srv.stop, 0);
    if (pthread_create(&srv.thread, NULL, server_main, NULL) != 0)
        return -1;
    /* A port nobody listens on: bind one, close it. */
    int closed_port;
    int cfd = listen_loopback(&closed_port);
    close(cfd);

    json_t *eps = json_array();
    json_array_append_new(eps, endpoint("hook-ok", "/ok", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-created", "/created", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-fail", "/fail", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-missing", "/missing", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-408", "/timeout", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-busy", "/busy", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-unavailable", "/unavailable", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-redirect", "/redirect", srv.port, 5000));
    json_array_append_new(eps, endpoint("hook-slow", "/slow", srv.port, 400));
    json_array_append_new(eps, endpoint("hook-slow-long", "/slow", srv.port, 20000));
    json_array_append_new(eps, endpoint("hook-refused", "/ok", closed_port, 5000));
    json_t *big = endpoint("hook-big", "/big", srv.port, 5000);
    json_object_set_new(big, "max_response_bytes", json_integer(1000));
    json_array_append_new(eps, big);
    json_t *follow = endpoint("hook-follow", "/redirect", srv.port, 5000);
    json_object_set_new(follow, "follow_redirects", json_true());
    json_array_append_new(eps, follow);
    json_t *configs = json_pack("{s:{s:o}}", "http", "endpoints", eps);

    reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    jet_status st = jet_plugins_load(reg, http_so, configs, &err);
    json_decref(configs);
    if (st != JET_OK) {
        fprintf(stderr, "loading http.so: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jet_plugins_free(reg);
    atomic_store(&srv.stop, 1);
    pthread_join(srv.thread, NULL);
    close(srv.lfd);
    free(srv.body);
    return 0;
}

typedef struct run_result {
    jet_outcome outcome;
    jet_task_ctx ctx;
    int64_t elapsed_ms;
} run_result;

static void run_task(run_result *r, const char *handler, const void *payload, size_t len, int64_t cancel_after_ms)
{
    const jet_plugin_handler *h = jet_plugins_find(reg, handler);
    if (!h)
        fail_msg("handler %s is not registered", handler);
    th_ctx_init(&r->ctx);
    r->ctx.cancel_after_ms = cancel_after_ms;
    jet_task t = th_task(handler, payload, len);
    int64_t start = th_now_ms();
    r->outcome = jet_plugin_run(h, &t, &r->ctx);
    r->elapsed_ms = th_now_ms() - start;
}

static int requests(void)
{
    pthread_mutex_lock(&srv.mu);
    int n = srv.requests;
    pthread_mutex_unlock(&srv.mu);
    return n;
}

/* ------------------------------------------------------------------ tests */

static void success_2xx_posts_payload_and_headers(void **state)
{
    (void)state;
    /* Binary payload with NULs, large enough to need several reads. */
    size_t n = 100000;
    char *payload = malloc(n);
    for (size_t i = 0; i < n; i++)
        payload[i] = (char)(i * 7 % 251);
    int before = requests();
    run_result r;
    run_task(&r, "hook-ok", payload, n, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_string_equal(th_result(&r.ctx), "accepted");
    assert_int_equal(requests(), before + 1);
    pthread_mutex_lock(&srv.mu);
    assert_string_equal(srv.method, "POST");
    assert_string_equal(srv.path, "/ok");
    assert_int_equal(srv.body_len, n);
    assert_memory_equal(srv.body, payload, n);
    assert_contains(srv.headers, "\r\nJetsched-Task-Id: task-0001\r\n");
    assert_contains(srv.headers, "\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n");
    assert_contains(srv.headers, "\r\nJetsched-Attempt: 1\r\n");
    assert_contains(srv.headers, "\r\nContent-Type: application/json\r\n");
    assert_contains(srv.headers, "\r\nX-Hook-Secret: s3cr3t\r\n");
    assert_null(strstr(srv.headers, "Expect:"));
    pthread_mutex_unlock(&srv.mu);
    th_ctx_free(&r.ctx);
    free(payload);

    run_task(&r, "hook-created", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_true(r.ctx.has_result);
    assert_int_equal(r.ctx.result_len, 0);
    th_ctx_free(&r.ctx);

    run_task(&r, "hook-big", "x", 1, -1); /* response body capped */
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_int_equal(r.ctx.result_len, 1000);
    th_ctx_free(&r.ctx);
}

static void server_error_5xx_is_retry(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "hook-fail", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "HTTP 500");
    assert_contains(r.ctx.error, "internal error: db down");
    assert_int_equal(r.ctx.retry_in_ms, -1); /* backoff policy decides */
    th_ctx_free(&r.ctx);
}

static void client_error_4xx_is_permanent(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "hook-missing", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_FAIL);
    assert_contains(r.ctx.error, "HTTP 404");
    assert_contains(r.ctx.error, "no such hook");
    th_ctx_free(&r.ctx);

    run_task(&r, "hook-408", "{}", 2, -1); /* 408: retry */
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "HTTP 408");
    th_ctx_free(&r.ctx);

    run_task(&r, "hook-redirect", "{}", 2, -1); /* not followed: permanent */
    assert_int_equal(r.outcome, JET_FAIL);
    assert_contains(r.ctx.error, "HTTP 302 redirect not followed");
    th_ctx_free(&r.ctx);

    run_task(&r, "hook-follow", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_string_equal(th_result(&r.ctx), "accepted");
    th_ctx_free(&r.ctx);
}

static void too_many_requests_honours_retry_after(void **state)
{
    (void)state;
    run_result r;
    /* ABI 1.1 host: rate_limited with the Retry-After (the key is held back) */
    run_task(&r, "hook-busy", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_RATE_LIMITED);
    assert_contains(r.ctx.error, "HTTP 429");
    assert_int_equal(r.ctx.rate_limited_ms, 7000);
    assert_int_equal(r.ctx.retry_in_ms, -1);
    th_ctx_free(&r.ctx);

    run_task(&r, "hook-unavailable", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_RATE_LIMITED);
    assert_contains(r.ctx.error, "HTTP 503");
    assert_int_equal(r.ctx.rate_limited_ms, 2000);
    th_ctx_free(&r.ctx);
}

static void slow_server_times_out_as_retry(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "hook-slow", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "timed out after 400 ms");
    assert_true(r.elapsed_ms >= 350);
    assert_true(r.elapsed_ms < 3000);
    th_ctx_free(&r.ctx);
}

static void cancellation_aborts_transfer(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "hook-slow-long", "{}", 2, 300);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "cancelled");
    assert_true(r.elapsed_ms >= 250);
    assert_true(r.elapsed_ms < 3000);
    th_ctx_free(&r.ctx);
}

static void connection_refused_is_retry(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "hook-refused", "{}", 2, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "curl error 7");
    th_ctx_free(&r.ctx);
}

typedef struct par {
    char payload[32];
    run_result r;
} par;

static void *par_run(void *arg)
{
    par *p = arg;
    run_task(&p->r, "hook-ok", p->payload, strlen(p->payload), -1);
    return NULL;
}

static void concurrent_deliveries(void **state)
{
    (void)state;
    enum { N = 4 };
    par ps[N];
    pthread_t th[N];
    int before = requests();
    for (int i = 0; i < N; i++) {
        snprintf(ps[i].payload, sizeof ps[i].payload, "{\"n\":%d}", i);
        assert_int_equal(pthread_create(&th[i], NULL, par_run, &ps[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ps[i].r.outcome, JET_SUCCESS);
        th_ctx_free(&ps[i].r.ctx);
    }
    assert_int_equal(requests(), before + N);
}

static void config_errors(void **state)
{
    (void)state;
    const char *bad[][2] = {
        {"{\"endpoints\":[{\"name\":\"x\",\"url\":\"ftp://example.com/\"}]}", "only http:// and https://"},
        {"{\"endpoints\":[{\"name\":\"x\",\"url\":\"http://a/\",\"headers\":[\"NoColon\"]}]}", "headers[0]"},
        {"{\"endpoints\":[{\"name\":\"x\",\"url\":\"http://a/\",\"timeout\":5}]}", "unknown key \"timeout\""},
        {"{\"endpoints\":[{\"url\":\"http://a/\"}]}", "name: required"},
        {"{\"hooks\":[]}", "unknown key \"hooks\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t je;
        json_t *configs = json_pack("{s:o}", "http", json_loads(bad[i][0], 0, &je));
        jet_plugin_registry *r = jet_plugins_new(&th_api);
        jet_err err;
        jet_err_clear(&err);
        assert_int_equal(jet_plugins_load(r, http_so, configs, &err), JET_ERR_INVALID);
        assert_contains(err.msg, "init failed: ");
        assert_contains(err.msg, bad[i][1]);
        jet_plugins_free(r);
        json_decref(configs);
    }
}

int main(void)
{
    jet_log_init("test", JET_LOG_WARN, false);
    snprintf(http_so, sizeof http_so, "%s/http.so", th_env_dir("JETSCHED_PLUGIN_DIR"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(success_2xx_posts_payload_and_headers),
        cmocka_unit_test(server_error_5xx_is_retry),
        cmocka_unit_test(client_error_4xx_is_permanent),
        cmocka_unit_test(too_many_requests_honours_retry_after),
        cmocka_unit_test(slow_server_times_out_as_retry),
        cmocka_unit_test(cancellation_aborts_transfer),
        cmocka_unit_test(connection_refused_is_retry),
        cmocka_unit_test(concurrent_deliveries),
        cmocka_unit_test(config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
