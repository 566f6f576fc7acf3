/* /healthz, /readyz and /metrics on libmicrohttpd (internal thread), with
 * bounded resources per peer: idle or half-open connections cannot starve
 * the probes (see HTTPD_* below and docs/RELIABILITY.md). */
#include <jetsched/httpd.h>
#include <jetsched/metrics.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A liveness probe must answer while a peer holds idle sockets open: a
 * request needs well under a second, so a connection idle for
 * HTTPD_IDLE_TIMEOUT_S is closed; one address holds at most
 * HTTPD_PER_IP_LIMIT connections, all together HTTPD_CONNECTION_LIMIT
 * (epoll, so no select() FD_SETSIZE limit); a request (line + headers) may
 * take HTTPD_MEMORY_LIMIT bytes. */
#define HTTPD_CONNECTION_LIMIT 512u
#define HTTPD_PER_IP_LIMIT 32u
#define HTTPD_IDLE_TIMEOUT_S 2u
#define HTTPD_MEMORY_LIMIT ((size_t)16384)

struct jet_httpd {
    struct MHD_Daemon *d;
    jet_ready_fn ready;
    void *arg;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    jet_httpd *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, 405, "text/plain", strdup("method not allowed\n"), 19);
    if (strcmp(url, "/healthz") == 0)
        return reply(c, 200, "text/plain", strdup("ok\n"), 3);
    if (strcmp(url, "/readyz") == 0) {
        char why[256] = "";
        bool ok = h->ready ? h->ready(h->arg, why, sizeof why) : true;
        char *body;
        int n = asprintf(&body, "%s%s%s\n", ok ? "ready" : "not ready", why[0] ? ": " : "", why);
        return reply(c, ok ? 200 : 503, "text/plain", body, n > 0 ? (size_t)n : 0);
    }
    if (strcmp(url, "/metrics") == 0) {
        char *body = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&body, &len);
        jet_metrics_render(f);
        fclose(f);
        return reply(c, 200, "text/plain; version=0.0.4", body, len);
    }
    return reply(c, 404, "text/plain", strdup("not found\n"), 10);
}

/* The paths served are plain ASCII: nothing is percent-decoded, so
 * "/metrics%00" (which decodes to "/metrics" and a NUL) is not /metrics. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

jet_status jet_listen_parse(const char *key, const char *listen, struct sockaddr_storage *ss, socklen_t *sl,
                            jet_err *err)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return jet_err_set(err, JET_ERR_INVALID, "%s \"%s\": expected host:port", key, listen);
    char host[128];
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return jet_err_set(err, JET_ERR_INVALID, "%s \"%s\": invalid port", key, listen);
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return jet_err_set(err, JET_ERR_INVALID, "%s \"%s\": bad IPv6 address", key, listen);
        host[n - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return jet_err_set(err, JET_ERR_INVALID, "%s \"%s\": bad IPv6 address", key, listen);
        *sl = sizeof *a;
        return JET_OK;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (host[0] && inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return jet_err_set(err, JET_ERR_INVALID, "%s \"%s\": bad IPv4 address", key, listen);
    *sl = sizeof *a;
    return JET_OK;
}

jet_status jet_httpd_start(const char *listen, jet_ready_fn ready, void *arg, jet_httpd **out, jet_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    jet_status st = jet_listen_parse("http.listen", listen, &ss, &sl, err);
    if (st)
        return st;
    jet_httpd *h = calloc(1, sizeof *h);
    h->ready = ready;
    h->arg = arg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, HTTPD_CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            HTTPD_PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_MEMORY_LIMIT, MHD_OPTION_UNESCAPE_CALLBACK,
                            no_unescape, NULL, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return jet_err_set(err, JET_ERR_IO, "http.listen \"%s\": cannot listen (address in use?)", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    *out = h;
    return JET_OK;
}

int jet_httpd_port(const jet_httpd *h) { return h->port; }

void jet_httpd_stop(jet_httpd *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
