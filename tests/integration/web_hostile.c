/* Hostile clients of schedulerd's web listener (docs/API.md "REST API"):
 * requests a new user or an attacker sends by hand, each answered with a
 * clear error (4xx, JSON naming the field) and never a crash, a hang or a
 * 500: long query values echoed into the Link header of a list page, raw
 * HTTP over a socket (two Content-Length headers, chunked bodies, oversized
 * headers, a request line that never ends), and schedulerd still serving
 * afterwards. Real schedulerd, nats-server and PostgreSQL. */
#include "web_support.h"
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static wt_server w;

static void still_serving(const char *what)
{
    wt_resp *r = wt_req(&w, "GET", "/api/v1/leader", NULL, "viewer", NULL);
    CHECK(r->status == 200, "%s: schedulerd still answers (GET /api/v1/leader: %ld)", what, r->status);
    wt_free(r);
}

/* Sends raw bytes on a new connection and reads the answer until the peer
 * closes or wait_ms pass; returns the bytes read (malloc'd, NUL-terminated). */
static int connect_from(const char *source)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &src.sin_addr);
    CHECK(bind(fd, (struct sockaddr *)&src, sizeof src) == 0, "bind to %s", source);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect to the web listener from %s", source);
    return fd;
}

static char *raw_from(const char *source, const char *req, size_t len, int wait_ms)
{
    int fd = connect_from(source);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    size_t cap = 65536, got = 0;
    char *out = malloc(cap + 1);
    for (int64_t until = ts_now_ms() + wait_ms; ts_now_ms() < until && got < cap;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, out + got, cap - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
    return out;
}

static char *raw(const char *req, size_t len, int wait_ms) { return raw_from("127.0.0.1", req, len, wait_ms); }

static int raw_status(const char *resp)
{
    int st = 0;
    return sscanf(resp, "HTTP/1.%*d %d", &st) == 1 ? st : 0;
}

/* A list page whose query values are long: the Link rel="next" header is
 * built from them. Status lists may repeat a state. */
static void link_header(void)
{
    for (int i = 0; i < 3; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"id\":\"hl-%d\",\"handler\":\"echo\",\"queue\":\"default\"}", i);
        wt_expect(wt_req(&w, "POST", "/api/v1/tasks", body, "operator", NULL), 201, NULL, NULL, "submit");
    }
    char *states = sa_repeat("queued,", 400);
    states[strlen(states) - 1] = '\0';
    size_t n = strlen(states) + 200;
    char *path = malloc(n);
    snprintf(path, n, "/api/v1/tasks?status=%s&queue=default&limit=1", states);
    wt_resp *r = wt_req(&w, "GET", path, NULL, "viewer", NULL);
    CHECK(r->status == 200 && r->json && json_array_size(json_object_get(r->json, "tasks")) == 1,
          "a page with a 2,800-byte status list: 200 and one task (%ld %.200s)", r->status, r->body);
    char link[4096];
    const char *l = wt_header(r, "Link", link, sizeof link);
    CHECK(l && strstr(l, "rel=\"next\"") && strstr(l, "cursor="), "its Link rel=next carries the cursor: %s",
          l ? l : "(none)");
    wt_free(r);
    free(path);
    /* And a long limit (leading zeros) after a long status list. */
    n = strlen(states) + 3000;
    path = malloc(n);
    char *zeros = sa_repeat("0", 1500);
    snprintf(path, n, "/api/v1/tasks?status=%s&queue=default&limit=%s1", states, zeros);
    r = wt_req(&w, "GET", path, NULL, "viewer", NULL);
    CHECK(r->status == 200, "a page with a long status list and limit: 200 (%ld %.200s)", r->status, r->body);
    wt_free(r);
    free(path);
    free(zeros);
    free(states);
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks?limit=5&limit=6", NULL, "viewer", NULL), 400, "invalid_argument", "limit",
              "an integer parameter given twice");
    wt_expect(wt_req(&w, "GET", "/api/v1/workflows/x?nodes=true&nodes=false", NULL, "viewer", NULL), 400,
              "invalid_argument", "nodes", "a boolean parameter given twice");
    wt_expect(wt_req(&w, "GET", "/api/v1/events?queue=a&queue=b", NULL, "viewer", NULL), 400, "invalid_argument",
              "queue", "an event stream's queue given twice");
    still_serving("long query values in the Link header");
}

/* The audit line quotes the URL: a decoded %0A must not start a line of its
 * own (a forged log line). */
static void audit_injection(void)
{
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks/x%0AFORGED%20audit:%20by%20admin/cancel", NULL, "operator", NULL), 400,
              "invalid_argument", "id", "a task id with a newline");
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks/y%0D%0AFORGED/cancel", NULL, "viewer", NULL), 403, "permission_denied",
              NULL, "a viewer's refused request with CR LF");
    ts_sleep_ms(200);
    FILE *f = fopen(w.s.log, "r");
    CHECK(f != NULL, "read schedulerd's log");
    char line[8192];
    int forged = 0, quoted = 0;
    while (f && fgets(line, sizeof line, f)) {
        forged += !strncmp(line, "FORGED", 6);
        quoted += strstr(line, "audit: POST /api/v1/tasks/x%0AFORGED") != NULL ||
                  strstr(line, "audit: POST /api/v1/tasks/y%0D%0AFORGED") != NULL;
    }
    if (f)
        fclose(f);
    CHECK(forged == 0, "no log line starts with the URL's text after a newline (%d do)", forged);
    CHECK(quoted == 2, "both audit lines quote the URL with its control characters escaped (%d)", quoted);
}

/* Raw HTTP: request smuggling basics and oversized or endless requests. Each
 * gets a 4xx (or the connection is closed) and never a 2xx for a body the
 * server could read two ways. */
/* POST /api/v1/tasks as the operator with more header lines and a raw body: the status answered (0: closed). */
static int raw_post(const char *headers, const char *body, char **resp_out)
{
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\n%s\r\n%s",
                     w.operator_, headers, body);
    char *resp = raw(req, (size_t)n, 2500);
    int st = raw_status(resp);
    if (resp_out)
        *resp_out = resp;
    else
        free(resp);
    return st;
}

static void raw_http(void)
{
    int st = raw_post("Content-Length: 2\r\nContent-Length: 40\r\n", "{}{\"id\":\"smuggled-1\",\"handler\":\"echo\"}",
                      NULL);
    CHECK(st == 0 || (st >= 400 && st < 500), "two different Content-Length headers: 4xx or closed (%d)", st);
    st = raw_post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                  "2a\r\n{\"id\":\"smuggled-2\",\"handler\":\"echo\",\"x\":1}\r\n0\r\n\r\n", NULL);
    CHECK(st == 0 || (st >= 400 && st < 500), "Content-Length with Transfer-Encoding: chunked: 4xx or closed (%d)", st);
    /* A chunked body is read whole. */
    char *resp;
    st = raw_post("Transfer-Encoding: chunked\r\nConnection: close\r\n",
                  "5\r\n{\"id\"\r\n1e\r\n:\"chunked-1\",\"handler\":\"echo\"}\r\n0\r\n\r\n", &resp);
    CHECK(st == 201 && strstr(resp, "\"chunked-1\""), "a chunked body is read whole: 201 (%.200s)", resp);
    free(resp);
    /* A chunk size that overflows. */
    st = raw_post("Transfer-Encoding: chunked\r\nConnection: close\r\n", "fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
                  NULL);
    CHECK(st >= 400 && st < 500, "a chunk size past 2^64: 4xx (%d)", st);
    /* Oversized header. */
    char *big = sa_repeat("a", 200000);
    size_t bl = strlen(big) + 200;
    char *breq = malloc(bl);
    int n = snprintf(breq, bl, "GET /api/v1/leader HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big);
    resp = raw(breq, (size_t)n, 3000);
    st = raw_status(resp);
    CHECK(st == 431 || st == 0, "a 200 KB header: 431 or closed (%d)", st);
    free(resp);
    n = snprintf(breq, bl, "GET /api/v1/%s HTTP/1.1\r\nHost: x\r\n\r\n", big);
    resp = raw(breq, (size_t)n, 3000);
    st = raw_status(resp);
    CHECK(st == 414 || st == 431 || st == 0, "a 200 KB URL: 414 or closed (%d)", st);
    free(resp);
    free(breq);
    free(big);
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks/smuggled-1", NULL, "viewer", NULL), 404, "not_found", "id",
              "the body behind a second Content-Length was not run as a task");
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks/smuggled-2", NULL, "viewer", NULL), 404, "not_found", "id",
              "the chunked body behind a Content-Length was not run as a task");
    still_serving("raw HTTP");
}

/* Credentials given twice: libmicrohttpd reads the first header, a proxy in
 * front may pass on or log the last. */
static void auth_abuse(void)
{
    char line[200];
    snprintf(line, sizeof line, "Authorization: Bearer %s", w.operator_);
    const char *op_second[] = {line, NULL};
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"id\":\"two-auth\",\"handler\":\"echo\"}", "viewer", op_second),
              401, "unauthenticated", NULL, "a viewer's and an operator's Authorization header");
    snprintf(line, sizeof line, "Authorization: Bearer %s", w.viewer);
    const char *viewer_second[] = {line, NULL};
    wt_expect(wt_req(&w, "GET", "/api/v1/leader", NULL, "viewer", viewer_second), 401, "unauthenticated", NULL,
              "the same Authorization header twice");
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks/two-auth", NULL, "viewer", NULL), 404, "not_found", "id",
              "nothing was submitted with two Authorization headers");
    wt_expect(wt_req(&w, "GET", "/api/v1/leader", NULL, "cookie:jetsched_session=a.b; jetsched_session=c.d", NULL),
              401, "unauthenticated", NULL, "two session cookies");
    const char *types[] = {"application/jsonx", "application/json; charset=utf-8"};
    for (int i = 0; i < 2; i++) {
        char req[600];
        int n = snprintf(req, sizeof req,
                         "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n{\"token\":\"%s\"}",
                         types[i], strlen(w.viewer) + 12, w.viewer);
        char *resp = raw(req, (size_t)n, 2500);
        CHECK(raw_status(resp) == (i ? 200 : 400), "a login with Content-Type %s: %d (%d)", types[i], i ? 200 : 400,
              raw_status(resp));
        free(resp);
    }
}

/* Slowloris: one client holds connections open, trickling a header. With
 * web.max_connections_per_ip = 8 (web.max_connections 16 here) it cannot take
 * them all with 20: its ninth and later connections are closed at once, a client from another
 * address is served (before, the listener's slots were all taken and every
 * client waited until the attacker stopped). */
static void slowloris(void)
{
    int fds[20], n = 0;
    for (; n < 20; n++) {
        fds[n] = connect_from("127.0.0.1");
        const char *part = "GET /api/v1/leader HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        CHECK(send(fds[n], part, strlen(part), MSG_NOSIGNAL) > 0, "slow client %d sends a partial header", n);
    }
    ts_sleep_ms(1500); /* time to accept and close, on a loaded machine */
    int closed = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        char b[16];
        closed += poll(&p, 1, 200) > 0 && recv(fds[i], b, sizeof b, MSG_DONTWAIT) <= 0;
    }
    CHECK(closed == 12, "connections past 8 from one address are closed at once (%d of 20 closed)", closed);
    char req[300];
    int len = snprintf(req, sizeof req, "GET /api/v1/leader HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                                        "Connection: close\r\n\r\n", w.viewer);
    for (int i = 0; i < 6; i++) { /* more clients than the slots the attacker left */
        char *resp = raw_from("127.0.0.2", req, (size_t)len, 5000);
        CHECK(raw_status(resp) == 200, "a client of another address is served during the attack (%d)",
              raw_status(resp));
        free(resp);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    /* Their threads see the close and free the address's slots. */
    long st = 0;
    for (int64_t until = ts_now_ms() + 10000; ts_now_ms() < until && st != 200; ts_sleep_ms(100)) {
        wt_resp *r = wt_req(&w, "GET", "/api/v1/leader", NULL, "viewer", NULL);
        st = r->status;
        wt_free(r);
    }
    CHECK(st == 200, "the slow client's address is served again once it closed its connections (%ld)", st);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    ss_env();
    ts_setup("default");
    wt_start(&w, "web-hostile", NULL, "max_connections = 16; max_connections_per_ip = 8;", NULL);

    link_header();
    audit_injection();
    raw_http();
    auth_abuse();
    slowloris();
    still_serving("after the slow clients left");

    CHECK(ts_agent_stop(&w.s, SIGTERM, 15000) == 0, "schedulerd exits 0");
    curl_global_cleanup();
    return ts_finish();
}
