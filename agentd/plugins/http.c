/* http: webhook delivery with libcurl. Each configured endpoint is a handler.
 *
 * {"endpoints":[{"name":"notify","url":"https://hooks.example.com/x",
 *                "timeout_ms":10000, "connect_timeout_ms":3000,
 *                "headers":["Content-Type: application/json","Authorization: Bearer ..."],
 *                "max_response_bytes":65536, "follow_redirects":false,
 *                "ca_file":"/etc/ssl/certs/internal-ca.pem"}]}
 *
 * POSTs the task payload to the URL with the headers, plus Jetsched-Task-Id,
 * Jetsched-Attempt and the W3C traceparent. Outcome: 2xx = JET_SUCCESS with
 * the response body (capped) as the result; 408 and 429 = JET_RETRY; other
 * 4xx = JET_FAIL; 3xx (not followed) = JET_FAIL; 5xx, connection errors and
 * timeouts = JET_RETRY. A Retry-After header (seconds or HTTP date) on 429 or
 * 503 makes it JET_RATE_LIMITED (ABI 1.1: the task's rate/concurrency key is
 * held back on every agent for that time, the attempt does not count), or
 * on a 1.0 host a retry after that delay (capped at one hour).
 * host->cancelled() aborts a transfer in progress.
 *
 * curl_global_init() runs in init(), which agentd calls from its main thread
 * before any worker starts (it is not thread-safe in every libcurl build);
 * curl_global_cleanup() in shutdown(). Easy handles are pooled (connections
 * are reused) and each is used by one thread at a time; CURLOPT_NOSIGNAL is
 * set since the agent is multi-threaded. */
#include <jetsched/plugin.h>

#include "skeleton.h"

#include <curl/curl.h>
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HTTP_DEFAULT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_MAX_RESPONSE (64 * 1024)
#define HTTP_MAX_RETRY_AFTER_S 3600
#define HTTP_POOL_MAX 32
#define HTTP_ERROR_BODY_MAX 256

typedef struct http_ep {
    char *name;
    char *url;
    int64_t timeout_ms;
    int64_t connect_timeout_ms;   /* 0 = libcurl's (bounded by timeout_ms) */
    char **headers;               /* NULL-terminated "Name: value" */
    bool has_content_type;
    size_t max_response;
    bool follow_redirects;
    char *ca_file;
} http_ep;

typedef struct http_state {
    const jet_host_api *host;
    http_ep *eps;
    size_t n;
    const char **names;
    bool curl_ready;
    pthread_mutex_t mu;
    CURL *idle[HTTP_POOL_MAX];
    size_t n_idle;
} http_state;

/* ------------------------------------------------------------------ config */

static void free_state(http_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_idle; i++)
        curl_easy_cleanup(st->idle[i]);
    for (size_t i = 0; i < st->n; i++) {
        http_ep *e = &st->eps[i];
        free(e->name);
        free(e->url);
        for (size_t j = 0; e->headers && e->headers[j]; j++)
            free(e->headers[j]);
        free(e->headers);
        free(e->ca_file);
    }
    free(st->eps);
    free(st->names);
    pthread_mutex_destroy(&st->mu);
    if (st->curl_ready)
        curl_global_cleanup();
    free(st);
}

/* A header value we forward must not be able to smuggle another header. */
static bool header_safe(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return false;
    return true;
}

static int parse_endpoint(const json_t *obj, size_t idx, http_ep *e, char *err, size_t errlen)
{
    char what[96];
    snprintf(what, sizeof what, "endpoints[%zu]", idx);
    if (!json_is_object(obj))
        return plugin_fail(err, errlen, "%s: must be an object", what);
    static const char *const known[] = {"name", "url", "timeout_ms", "connect_timeout_ms", "headers",
                                        "max_response_bytes", "follow_redirects", "ca_file", NULL};
    const json_t *name = json_object_get(obj, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return plugin_fail(err, errlen, "%s.name: required, a non-empty string (the handler name)", what);
    if (!(e->name = strdup(json_string_value(name))))
        return plugin_fail(err, errlen, "out of memory");
    snprintf(what, sizeof what, "endpoints[%zu] (%.40s)", idx, e->name);

    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], key) != 0)
            k++;
        if (!known[k])
            return plugin_fail(err, errlen, "%s: unknown key \"%s\"", what, key);
    }

    const json_t *url = json_object_get(obj, "url");
    if (!json_is_string(url))
        return plugin_fail(err, errlen, "%s.url: required, a string", what);
    CURLU *u = curl_url();
    if (!u)
        return plugin_fail(err, errlen, "out of memory");
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, json_string_value(url), 0);
    char *scheme = NULL;
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    bool web = scheme && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK)
        return plugin_fail(err, errlen, "%s.url: invalid URL: %s", what, curl_url_strerror(uc));
    if (!web)
        return plugin_fail(err, errlen, "%s.url: only http:// and https:// URLs are allowed", what);
    if (!(e->url = strdup(json_string_value(url))))
        return plugin_fail(err, errlen, "out of memory");

    e->timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    e->max_response = HTTP_DEFAULT_MAX_RESPONSE;
    int64_t maxresp = (int64_t)e->max_response;
    if (plugin_get_int(obj, "timeout_ms", what, 1, 24 * 3600 * 1000LL, NULL, &e->timeout_ms, err, errlen) ||
        plugin_get_int(obj, "connect_timeout_ms", what, 1, 24 * 3600 * 1000LL, NULL, &e->connect_timeout_ms, err,
                       errlen) ||
        plugin_get_int(obj, "max_response_bytes", what, 0, 64 * 1024 * 1024, NULL, &maxresp, err, errlen))
        return -1;
    e->max_response = (size_t)maxresp;

    const json_t *fr = json_object_get(obj, "follow_redirects");
    if (fr && !json_is_boolean(fr))
        return plugin_fail(err, errlen, "%s.follow_redirects: must be true or false", what);
    e->follow_redirects = fr && json_is_true(fr);

    const json_t *ca = json_object_get(obj, "ca_file");
    if (ca && !json_is_string(ca))
        return plugin_fail(err, errlen, "%s.ca_file: must be a string", what);
    if (ca && !(e->ca_file = strdup(json_string_value(ca))))
        return plugin_fail(err, errlen, "out of memory");

    const json_t *hs = json_object_get(obj, "headers");
    if (hs && !json_is_array(hs))
        return plugin_fail(err, errlen, "%s.headers: must be an array of \"Name: value\" strings", what);
    size_t nh = hs ? json_array_size(hs) : 0;
    if (!(e->headers = calloc(nh + 1, sizeof *e->headers)))
        return plugin_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < nh; i++) {
        const json_t *h = json_array_get(hs, i);
        const char *s = json_is_string(h) ? json_string_value(h) : NULL;
        const char *colon = s ? strchr(s, ':') : NULL;
        if (!s || !colon || colon == s || !header_safe(s, 8192) || strlen(s) != json_string_length(h))
            return plugin_fail(err, errlen, "%s.headers[%zu]: must be a \"Name: value\" string without control characters",
                        what, i);
        if ((size_t)(colon - s) == strlen("Content-Type") && strncasecmp(s, "Content-Type", 12) == 0)
            e->has_content_type = true;
        if (!(e->headers[i] = strdup(s)))
            return plugin_fail(err, errlen, "out of memory");
    }
    return 0;
}

static int parse_endpoint_item(const json_t *obj, size_t idx, void *item, char *err, size_t errlen)
{
    return parse_endpoint(obj, idx, item, err, errlen);
}

static int http_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    http_state *st = calloc(1, sizeof *st);
    if (!st)
        return plugin_fail(err, errlen, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    st->host = host;
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        plugin_fail(err, errlen, "curl_global_init: %s", curl_easy_strerror(cc));
        free_state(st);
        return -1;
    }
    st->curl_ready = true;
    plugin_list list = {0};
    int rc = plugin_parse_list(config_json, "endpoints", "endpoint", sizeof(http_ep), parse_endpoint_item, &list, err,
                               errlen);
    st->eps = list.items;
    st->n = list.n;
    st->names = list.names;
    if (rc != 0) {
        free_state(st);
        return -1;
    }
    *state = st;
    return 0;
}

static const char *const *http_handlers_after_init(void *state) { return ((http_state *)state)->names; }

static void http_shutdown(void *state) { free_state(state); }

/* ------------------------------------------------------------------ delivery */

typedef struct call {
    const jet_host_api *host;
    jet_task_ctx *ctx;
    bool cancelled;
    char *body;
    size_t len, cap;
    bool truncated;
    char retry_after[64];
    bool has_retry_after;
} call;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    call *c = userdata;
    size_t n = size * nmemb, room = c->cap - c->len, k = n < room ? n : room;
    if (k) {
        memcpy(c->body + c->len, ptr, k);
        c->len += k;
    }
    if (k < n)
        c->truncated = true; /* keep reading (the connection stays reusable), drop the rest */
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    call *c = userdata;
    size_t n = size * nitems;
    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a new response (after 100, a redirect...) */
        c->has_retry_after = false;
    } else if (n > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
        size_t i = 12;
        while (i < n && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        size_t j = n;
        while (j > i && isspace((unsigned char)buf[j - 1]))
            j--;
        size_t k = j - i < sizeof c->retry_after - 1 ? j - i : sizeof c->retry_after - 1;
        memcpy(c->retry_after, buf + i, k);
        c->retry_after[k] = '\0';
        c->has_retry_after = k > 0;
    }
    return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    call *c = userdata;
    if (c->host->cancelled && c->host->cancelled(c->ctx)) {
        c->cancelled = true;
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

/* Retry-After: delta-seconds or an HTTP date. -1 when unusable. */
static int64_t retry_after_ms(const char *v)
{
    if (!v[0])
        return -1;
    bool digits = true;
    for (const char *p = v; *p; p++)
        digits = digits && isdigit((unsigned char)*p);
    int64_t s;
    if (digits) {
        if (strlen(v) > 9)
            s = HTTP_MAX_RETRY_AFTER_S;
        else
            s = strtoll(v, NULL, 10);
    } else {
        time_t t = curl_getdate(v, NULL);
        if (t == (time_t)-1)
            return -1;
        s = (int64_t)(t - time(NULL));
        if (s < 0)
            s = 0;
    }
    if (s > HTTP_MAX_RETRY_AFTER_S)
        s = HTTP_MAX_RETRY_AFTER_S;
    return s * 1000;
}

static CURL *handle_get(http_state *st)
{
    CURL *h = NULL;
    pthread_mutex_lock(&st->mu);
    if (st->n_idle > 0)
        h = st->idle[--st->n_idle];
    pthread_mutex_unlock(&st->mu);
    return h ? h : curl_easy_init();
}

static void handle_put(http_state *st, CURL *h)
{
    curl_easy_reset(h); /* keeps the connection and DNS caches */
    pthread_mutex_lock(&st->mu);
    if (st->n_idle < HTTP_POOL_MAX) {
        st->idle[st->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&st->mu);
    if (h)
        curl_easy_cleanup(h);
}

static const http_ep *find_ep(const http_state *st, const char *name)
{
    return plugin_find(&(plugin_list){st->eps, st->n, st->names}, sizeof *st->eps, name);
}

static struct curl_slist *build_headers(const http_ep *e, const jet_task *t)
{
    struct curl_slist *l = NULL, *n;
    char line[600];
#define APPEND(s)                                                                                                    \
    do {                                                                                                             \
        if (!(n = curl_slist_append(l, (s)))) {                                                                      \
            curl_slist_free_all(l);                                                                                  \
            return NULL;                                                                                             \
        }                                                                                                            \
        l = n;                                                                                                       \
    } while (0)
    for (size_t i = 0; e->headers[i]; i++)
        APPEND(e->headers[i]);
    if (!e->has_content_type)
        APPEND("Content-Type: application/octet-stream");
    APPEND("Expect:"); /* no 100-continue round trip */
    if (t->id && header_safe(t->id, 256)) {
        snprintf(line, sizeof line, "Jetsched-Task-Id: %s", t->id);
        APPEND(line);
    }
    snprintf(line, sizeof line, "Jetsched-Attempt: %d", t->attempt);
    APPEND(line);
    if (t->traceparent && t->traceparent[0] && header_safe(t->traceparent, 256)) {
        snprintf(line, sizeof line, "traceparent: %s", t->traceparent);
        APPEND(line);
    }
#undef APPEND
    return l;
}

/* A short, printable excerpt of a response body for error messages. */
static void excerpt(const call *c, char *out, size_t outlen)
{
    size_t n = c->len < HTTP_ERROR_BODY_MAX ? c->len : HTTP_ERROR_BODY_MAX;
    if (n > outlen - 4)
        n = outlen - 4;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)c->body[i];
        out[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    if (c->len > n && o > 0) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static jet_outcome http_handle(void *state, const jet_task *task, jet_task_ctx *ctx)
{
    http_state *st = state;
    const jet_host_api *host = st->host;
    const http_ep *e = find_ep(st, task->handler);
    if (!e)
        return plugin_set_error(st->host, ctx, JET_FAIL, "http: no endpoint named \"%s\" is configured",
                         task->handler ? task->handler : "(null)");
    int64_t limit = e->timeout_ms;
    if (task->timeout_ms > 0 && task->timeout_ms < limit)
        limit = task->timeout_ms;

    call c;
    memset(&c, 0, sizeof c);
    c.host = host;
    c.ctx = ctx;
    c.cap = e->max_response;
    c.body = malloc(c.cap ? c.cap : 1);
    struct curl_slist *hdrs = build_headers(e, task);
    CURL *h = handle_get(st);
    if (!c.body || !hdrs || !h) {
        free(c.body);
        curl_slist_free_all(hdrs);
        if (h)
            curl_easy_cleanup(h);
        return plugin_set_error(st->host, ctx, JET_RETRY, "http %s: out of memory", e->name);
    }
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, e->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, task->payload_len ? (const char *)task->payload : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(task->payload ? task->payload_len : 0));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "jetsched-http/1.0");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)limit);
    if (e->connect_timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_timeout_ms);
    if (e->follow_redirects) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(h, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    }
    if (e->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &c);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    handle_put(st, h);
    curl_slist_free_all(hdrs);

    jet_outcome o;
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_ABORTED_BY_CALLBACK && c.cancelled) {
        o = plugin_set_error(st->host, ctx, JET_RETRY, "http %s: cancelled; transfer aborted", e->name);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        o = plugin_set_error(st->host, ctx, JET_RETRY, "http %s: timed out after %" PRId64 " ms (%s)", e->name, limit, detail);
    } else if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        o = plugin_set_error(st->host, ctx, JET_FAIL, "http %s: %s", e->name, detail);
    } else if (rc != CURLE_OK) {
        o = plugin_set_error(st->host, ctx, JET_RETRY, "http %s: %s (curl error %d)", e->name, detail, (int)rc);
    } else if (status >= 200 && status < 300) {
        if (c.truncated && host->log)
            host->log(ctx, JET_PLOG_WARN, "http: response body truncated");
        host->set_result(ctx, c.len ? c.body : "", c.len);
        o = JET_SUCCESS;
    } else {
        char body[HTTP_ERROR_BODY_MAX + 8];
        excerpt(&c, body, sizeof body);
        const char *sep = body[0] ? ": " : "";
        if (status == 408 || status == 429 || status >= 500 || status < 200)
            o = JET_RETRY;
        else
            o = JET_FAIL; /* other 4xx, and 3xx that were not followed */
        int64_t delay = -1;
        if ((status == 429 || status == 503) && c.has_retry_after)
            delay = retry_after_ms(c.retry_after);
        if (delay >= 0)
            plugin_set_error(st->host, ctx, o, "http %s: HTTP %ld (Retry-After %s)%s%s", e->name, status, c.retry_after, sep,
                      body);
        else if (status >= 300 && status < 400)
            plugin_set_error(st->host, ctx, o, "http %s: HTTP %ld redirect not followed (set follow_redirects)%s%s", e->name,
                      status, sep, body);
        else
            plugin_set_error(st->host, ctx, o, "http %s: HTTP %ld%s%s", e->name, status, sep, body);
        /* 429/503 with Retry-After: rate_limited (ABI 1.1): the task's key is
         * held back on every agent and the attempt does not count; on an
         * older host (or a task without a key) a retry after the delay. */
        if (delay >= 0 && host->retry_in)
            o = jet_ctx_rate_limited(host, ctx, delay);
    }
    free(c.body);
    return o;
}

static const char *const http_static_handlers[] = {NULL}; /* the endpoints are the handlers */

static const jet_plugin http_plugin = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "http",
    .version = "1.0.0",
    .handlers = http_static_handlers,
    .init = http_init,
    .handle = http_handle,
    .shutdown = http_shutdown,
    .handlers_after_init = http_handlers_after_init,
};

JET_PLUGIN_DEFINE(http_plugin)
