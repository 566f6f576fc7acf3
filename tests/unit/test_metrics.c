/* Unit tests of the metrics registry (Prometheus text) and the HTTP endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/httpd.h>
#include <jetsched/metrics.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *render(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    jet_metrics_render(f);
    fclose(f);
    return buf;
}

static double answer(void *arg) { return *(double *)arg; }

static void counters_gauges_histograms_render(void **state)
{
    (void)state;
    jet_metric *c = jet_metric_counter("jetsched_test_tasks_total", "Tasks.", "queue,status");
    const char *l1[] = {"default", "succeeded"}, *l2[] = {"default", "dead"}, *l3[] = {"q\"x", "dead"};
    jet_metric_add(c, l1, 2);
    jet_metric_add(c, l1, 1);
    jet_metric_add(c, l2, 1);
    jet_metric_add(c, l3, 1);
    assert_true(jet_metric_counter("jetsched_test_tasks_total", "again", "queue,status") == c);
    assert_true(jet_metric_value(c, l1) == 3);
    jet_metric *h = jet_metric_histogram("jetsched_test_run_seconds", "Run time.", "queue");
    const char *q[] = {"default"};
    jet_metric_observe(h, q, 0.7);    /* 0.0007 s -> le=0.001 */
    jet_metric_observe(h, q, 2000);   /* 2 s -> le=2.5 */
    static double v = 42; /* read again by the /metrics scrape of the next test */
    jet_metric_gauge_fn("jetsched_test_in_flight", "In flight.", answer, &v);
    char *text = render();
    assert_non_null(strstr(text, "# TYPE jetsched_test_tasks_total counter\n"));
    assert_non_null(strstr(text, "jetsched_test_tasks_total{queue=\"default\",status=\"succeeded\"} 3\n"));
    assert_non_null(strstr(text, "jetsched_test_tasks_total{queue=\"default\",status=\"dead\"} 1\n"));
    assert_non_null(strstr(text, "jetsched_test_tasks_total{queue=\"q\\\"x\",status=\"dead\"} 1\n"));
    assert_non_null(strstr(text, "jetsched_test_run_seconds_bucket{queue=\"default\",le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(text, "jetsched_test_run_seconds_bucket{queue=\"default\",le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "jetsched_test_run_seconds_bucket{queue=\"default\",le=\"1\"} 1\n"));
    assert_non_null(strstr(text, "jetsched_test_run_seconds_bucket{queue=\"default\",le=\"2.5\"} 2\n"));
    assert_non_null(strstr(text, "jetsched_test_run_seconds_bucket{queue=\"default\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "jetsched_test_run_seconds_count{queue=\"default\"} 2\n"));
    assert_non_null(strstr(text, "jetsched_test_in_flight 42\n"));
    free(text);
}

static bool ready_flag;
static bool is_ready(void *arg, char *why, size_t len)
{
    (void)arg;
    if (!ready_flag)
        snprintf(why, len, "postgres unavailable");
    return ready_flag;
}

static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    char *buf = calloc(1, 65536);
    size_t used = 0;
    ssize_t r;
    while ((r = read(fd, buf + used, 65535 - used)) > 0)
        used += (size_t)r;
    close(fd);
    return buf;
}

static void http_endpoints_answer(void **state)
{
    (void)state;
    jet_httpd *h;
    jet_err err;
    assert_int_equal(jet_httpd_start("127.0.0.1:0", is_ready, NULL, &h, &err), JET_OK);
    int port = jet_httpd_port(h);
    assert_true(port > 0);
    char *r = http_get(port, "/healthz");
    assert_non_null(strstr(r, " 200 "));
    free(r);
    ready_flag = false;
    r = http_get(port, "/readyz");
    assert_non_null(strstr(r, " 503 "));
    assert_non_null(strstr(r, "not ready: postgres unavailable"));
    free(r);
    ready_flag = true;
    r = http_get(port, "/readyz");
    assert_non_null(strstr(r, " 200 "));
    free(r);
    r = http_get(port, "/metrics");
    assert_non_null(strstr(r, "jetsched_test_tasks_total"));
    free(r);
    r = http_get(port, "/nope");
    assert_non_null(strstr(r, " 404 "));
    free(r);
    jet_httpd_stop(h);
    assert_int_equal(jet_httpd_start("nonsense", NULL, NULL, &h, &err), JET_ERR_INVALID);
    assert_non_null(strstr(err.msg, "http.listen \"nonsense\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_gauges_histograms_render),
        cmocka_unit_test(http_endpoints_answer),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    jet_metrics_reset();
    return rc;
}
