/* GET /api/v1/events (docs/API.md "Live events") with a real schedulerd,
 * agentd, nats-server and PostgreSQL: a stream filtered on a task receives
 * that task's events (queued .. succeeded, as agentd publishes them) and a
 * stream filtered on another task receives none of them but heartbeat
 * comments; the workflow filter; a session cookie opens a stream (what a
 * browser's EventSource sends); a client that stops reading is cut off
 * (jetsched_web_sse_cut_total) and its connection closed, while a healthy
 * stream opened beside it keeps receiving. */
#include "web_support.h"
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static wt_server w;

/* A stream read by a thread into a buffer until stop. */
typedef struct stream {
    pthread_t th;
    char url[512], auth[512];
    pthread_mutex_t mu;
    char *data;
    size_t len;
    long status;
    _Atomic bool stop;
} stream;

static size_t on_data(char *p, size_t size, size_t n, void *cls)
{
    stream *s = cls;
    pthread_mutex_lock(&s->mu);
    s->data = realloc(s->data, s->len + size * n + 1);
    memcpy(s->data + s->len, p, size * n);
    s->len += size * n;
    s->data[s->len] = '\0';
    pthread_mutex_unlock(&s->mu);
    return size * n;
}

static int on_progress(void *cls, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return ((stream *)cls)->stop ? 1 : 0;
}

static void *run(void *arg)
{
    stream *s = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, s->auth);
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return NULL;
}

static void open_stream(stream *s, const char *query, const char *auth_header)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/api/v1/events%s", w.port, query);
    snprintf(s->auth, sizeof s->auth, "%s", auth_header);
    pthread_create(&s->th, NULL, run, s);
}

static bool stream_has(stream *s, const char *text)
{
    pthread_mutex_lock(&s->mu);
    bool has = s->data && strstr(s->data, text);
    pthread_mutex_unlock(&s->mu);
    return has;
}

static bool wait_for(stream *s, const char *text, int ms)
{
    for (int64_t until = ts_now_ms() + ms; ts_now_ms() < until; ts_sleep_ms(20))
        if (stream_has(s, text))
            return true;
    return false;
}

/* Whether the last 8 KiB received hold text. */
static bool tail_has(stream *s, const char *text)
{
    pthread_mutex_lock(&s->mu);
    bool has = s->data && strstr(s->data + (s->len > 8192 ? s->len - 8192 : 0), text);
    pthread_mutex_unlock(&s->mu);
    return has;
}

static int count_of(stream *s, const char *text)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (const char *p = s->data; p && (p = strstr(p, text)); p++)
        n++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void close_stream(stream *s)
{
    s->stop = true;
    pthread_join(s->th, NULL);
    free(s->data);
    pthread_mutex_destroy(&s->mu);
}

static void publish_event(const char *queue, const char *task, const char *json)
{
    char subject[300];
    snprintf(subject, sizeof subject, "jetsched.event.%s.%s", queue, task);
    natsConnection_PublishString(ts_nats(), subject, json);
}

/* A client that sends its request and never reads: it must be cut off. */
static void slow_client(void)
{
    double cut0 = wt_metric_sum(&w, "jetsched_web_sse_cut_total");
    stream healthy;
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", w.viewer);
    open_stream(&healthy, "?queue=flood", auth);
    CHECK(wait_for(&healthy, "retry: 3000", 5000), "the healthy stream opened");

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "slow client connects");
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/events?queue=flood HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
                     w.viewer);
    CHECK(write(fd, req, (size_t)n) == n, "slow client sends its request");
    for (int64_t until = ts_now_ms() + 5000; ts_now_ms() < until; ts_sleep_ms(20))
        if (wt_metric_sum(&w, "jetsched_web_sse_clients") >= 2)
            break;
    CHECK(wt_metric_sum(&w, "jetsched_web_sse_clients") == 2, "two streams connected");

    /* Up to 12 MB of events, far more than socket buffers and web.sse_buffer
     * (64 KiB) hold, in bursts of 50 that the healthy stream reads before the
     * next (so that only the slow one falls behind). */
    char ev[1100];
    int64_t t0 = ts_now_ms();
    bool cut = false, kept_up = true;
    for (int i = 0; i < 12000 && !cut && kept_up; i++) {
        snprintf(ev, sizeof ev, "{\"id\":\"flood-1\",\"status\":\"running\",\"n\":%d,\"pad\":\"%01000d\"}", i, 0);
        publish_event("flood", "flood-1", ev);
        if (i % 50 == 49) {
            natsConnection_Flush(ts_nats());
            char mark[40];
            snprintf(mark, sizeof mark, "\"n\":%d,", i);
            kept_up = false;
            for (int64_t until = ts_now_ms() + 10000; !kept_up && ts_now_ms() < until; ts_sleep_ms(1))
                kept_up = tail_has(&healthy, mark);
            cut = wt_metric_sum(&w, "jetsched_web_sse_cut_total") > cut0;
        }
    }
    CHECK(kept_up, "the healthy stream kept up with every burst");
    publish_event("flood", "flood-1", "{\"id\":\"flood-1\",\"status\":\"succeeded\",\"last\":true}");
    natsConnection_Flush(ts_nats());
    for (int64_t until = ts_now_ms() + 10000; !cut && ts_now_ms() < until; ts_sleep_ms(50))
        cut = wt_metric_sum(&w, "jetsched_web_sse_cut_total") > cut0;
    CHECK(cut, "the slow client is cut off (jetsched_web_sse_cut_total rose) after %lld ms",
          (long long)(ts_now_ms() - t0));
    CHECK(ts_log_contains(&w.s, "reads too slowly"), "the cut is logged");
    CHECK(wait_for(&healthy, "\"last\":true", 10000), "the healthy stream received every event to the last");

    /* The cut connection is closed: reading it to the end reaches EOF. */
    bool eof = false;
    char buf[65536];
    for (int64_t until = ts_now_ms() + 15000; !eof && ts_now_ms() < until;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0) {
            ssize_t r = read(fd, buf, sizeof buf);
            eof = r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN);
        }
    }
    CHECK(eof, "the slow client's connection is closed");
    close(fd);
    for (int64_t until = ts_now_ms() + 5000; ts_now_ms() < until; ts_sleep_ms(50))
        if (wt_metric_sum(&w, "jetsched_web_sse_clients") == 1)
            break;
    CHECK(wt_metric_sum(&w, "jetsched_web_sse_clients") == 1, "the cut client is gone, the healthy one stays");
    close_stream(&healthy);
}

int main(void)
{
    ss_env();
    ts_setup("default");
    curl_global_init(CURL_GLOBAL_ALL);
    ts_agent ag;
    ts_agent_start(&ag, "agent-sse", "queues = ( { name = \"default\"; concurrency = 2; } );\n");
    wt_start(&w, "web-sse", NULL, "sse_heartbeat = \"300ms\"; sse_buffer = \"64KiB\"; idle_timeout = \"3s\";", NULL);

    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", w.viewer);
    stream mine, other, all, wf;
    open_stream(&mine, "?task=sse-1", auth);
    open_stream(&other, "?task=sse-other&queue=default", auth);
    open_stream(&all, "", auth);
    open_stream(&wf, "?workflow=wf-1", auth);
    CHECK(wait_for(&mine, "retry: 3000", 5000) && wait_for(&other, "retry: 3000", 5000) &&
              wait_for(&all, "retry: 3000", 5000) && wait_for(&wf, "retry: 3000", 5000),
          "four streams open");
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"id\":\"sse-1\",\"handler\":\"echo\",\"payload\":\"x\"}", "operator",
                     NULL),
              201, NULL, NULL, "submit sse-1");
    CHECK(wait_for(&mine, "\"status\":\"succeeded\"", 15000), "the task's stream sees it succeed");
    CHECK(stream_has(&mine, "\"id\":\"sse-1\"") && stream_has(&mine, "id: 1\n") && stream_has(&mine, "data: {"),
          "SSE framing: id: and data: lines");
    CHECK(wait_for(&all, "\"status\":\"succeeded\"", 5000), "the unfiltered stream sees it too");
    CHECK(wait_for(&other, ": ping", 3000), "the other stream gets heartbeats");
    CHECK(!stream_has(&other, "sse-1"), "the stream filtered on another task gets none of its events");
    CHECK(!stream_has(&wf, "sse-1"), "the workflow stream gets no event of a task outside the workflow");
    publish_event("default", "wf-task", "{\"id\":\"wf-task\",\"status\":\"queued\",\"workflow\":\"wf-1\"}");
    publish_event("default", "wf-other", "{\"id\":\"wf-other\",\"status\":\"queued\",\"workflow\":\"wf-2\"}");
    natsConnection_Flush(ts_nats());
    CHECK(wait_for(&wf, "wf-task", 5000), "the workflow stream gets its workflow's event");
    ts_sleep_ms(200);
    CHECK(!stream_has(&wf, "wf-other"), "... and not another workflow's");
    CHECK(wt_metric_sum(&w, "jetsched_web_sse_clients") == 4, "four clients in /metrics");
    for (int64_t until = ts_now_ms() + 5000; count_of(&other, ": ping") < 3 && ts_now_ms() < until;)
        ts_sleep_ms(50);
    CHECK(count_of(&other, ": ping") >= 3, "heartbeats keep coming (%d)", count_of(&other, ": ping"));
    close_stream(&mine);
    close_stream(&other);
    close_stream(&all);
    close_stream(&wf);

    /* A browser's EventSource: the session cookie. */
    char body[200];
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", w.viewer);
    wt_resp *r = wt_req(&w, "POST", "/api/v1/login", body, NULL, NULL);
    char h[512], cookie[600];
    snprintf(cookie, sizeof cookie, "Cookie: %s", wt_header(r, "Set-Cookie", h, sizeof h) ?: "");
    char *semi = strchr(cookie, ';');
    if (semi)
        *semi = '\0';
    wt_free(r);
    stream byc;
    open_stream(&byc, "?queue=default", cookie);
    CHECK(wait_for(&byc, "retry: 3000", 5000), "a stream authenticated by the session cookie");
    close_stream(&byc);
    for (int64_t until = ts_now_ms() + 5000; ts_now_ms() < until; ts_sleep_ms(50))
        if (wt_metric_sum(&w, "jetsched_web_sse_clients") == 0)
            break;
    CHECK(wt_metric_sum(&w, "jetsched_web_sse_clients") == 0, "closed streams are gone from /metrics");

    slow_client();

    CHECK(ts_agent_stop(&w.s, SIGTERM, 15000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    curl_global_cleanup();
    return ts_finish();
}
