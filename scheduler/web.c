/* The `web.listen` listener of schedulerd (web.h): libmicrohttpd with one
 * thread per connection, TLS from web.tls_cert/web.tls_key, the refusal to
 * listen beyond loopback without TLS (or web.trust_proxy) and tokens,
 * request bodies (bounded), the client's address, replies with the security
 * headers, and the split between /api/ (web_routes.c) and the console's
 * files (web_static.c). */
#include "web.h"

#include <jetsched/httpd.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct MHD_Daemon *daemon_;
static sched *web_s;
static bool web_tls, web_trust_proxy;
static char *tls_cert_pem, *tls_key_pem;
static jet_metric *m_requests;

/* URL and query unescaping: %XX decoded as libmicrohttpd does, except %00,
 * kept as the three characters: a decoded NUL would cut the C string, so
 * /api/v1/limits/a%00b would name key "a" (the kept '%' is refused by the
 * id and key checks instead). */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) &&
            (r[1] != '0' || r[2] != '0')) {
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* ---------------- replies ---------------- */

void web_header(web_req *r, const char *name, const char *value)
{
    if (r->nhdr >= WEB_MAX_HEADERS)
        return;
    r->hdr_own[r->nhdr] = strdup(value);
    r->hdr[r->nhdr][0] = name;
    r->hdr[r->nhdr][1] = r->hdr_own[r->nhdr];
    r->nhdr++;
}

const char *web_get_header(web_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

bool web_is_write_method(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && strcmp(method, "OPTIONS") != 0;
}

/* Queues resp with the security headers and r's extra headers. */
static enum MHD_Result queue(web_req *r, int status, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    if (web_tls)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
    for (int i = 0; i < r->nhdr; i++)
        MHD_add_response_header(resp, r->hdr[i][0], r->hdr[i][1]);
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *labels[] = {code};
    jet_metric_add(m_requests, labels, 1);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result web_queue_response(web_req *r, int status, struct MHD_Response *resp) { return queue(r, status, resp); }

enum MHD_Result web_reply(web_req *r, int status, const char *type, char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    return queue(r, status, resp);
}

enum MHD_Result web_json(web_req *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return MHD_NO;
    size_t n = strlen(text);
    text[n] = '\0';
    char *out = realloc(text, n + 2);
    if (out) {
        out[n++] = '\n';
        text = out;
    }
    web_header(r, "Cache-Control", "no-store");
    return web_reply(r, status, "application/json", text, n);
}

enum MHD_Result web_error(web_req *r, const api_err *e)
{
    int status = api_http_status(e->code ? e->code : API_INTERNAL);
    if (status == 401)
        web_header(r, "WWW-Authenticate", "Bearer realm=\"jetsched\"");
    if (status == 429 && !r->nhdr)
        web_header(r, "Retry-After", "60");
    if (status == 503)
        web_header(r, "Retry-After", "5");
    return web_json(r, status, api_error_body(e));
}

enum MHD_Result web_fail(web_req *r, const char *code, const char *field, const char *fmt, ...)
{
    api_err e = {0};
    char msg[sizeof e.msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_fail(&e, code, field, "%s", msg);
    return web_error(r, &e);
}

/* ---------------- requests ---------------- */

static void client_address(web_req *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "?";
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    }
    snprintf(r->ip, sizeof r->ip, "%s", addr);
    snprintf(r->peer, sizeof r->peer, "%s", addr);
    const char *xff = web_trust_proxy ? web_get_header(r, "X-Forwarded-For") : NULL;
    if (xff && *xff) {
        /* The right-most entry is the one our proxy appended. */
        const char *last = strrchr(xff, ',');
        last = last ? last + 1 : xff;
        while (*last == ' ')
            last++;
        char fwd[64];
        size_t n = 0;
        for (; last[n] && n < sizeof fwd - 1 && (isalnum((unsigned char)last[n]) || strchr(".:[]", last[n])); n++)
            fwd[n] = last[n];
        fwd[n] = '\0';
        if (n) {
            snprintf(r->ip, sizeof r->ip, "%s", fwd);
            snprintf(r->peer, sizeof r->peer, "%s via %s", fwd, addr);
        }
    }
}

static size_t max_body(const web_req *r)
{
    /* A payload of api.max_payload bytes in JSON (escaped or base64) plus the other fields. */
    return (size_t)atomic_load(&r->s->max_payload) * 2 + 65536;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    web_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->conn = conn;
        r->s = web_s;
        r->method = method;
        r->url = url;
        client_address(r);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->len + n > max_body(r)) {
            r->too_large = true;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n + 1)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b)
                return MHD_NO;
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    if (r->too_large)
        return web_fail(r, API_TOO_LARGE, NULL, "request body is larger than %zu bytes (twice api.max_payload + 64 KiB)",
                        max_body(r));
    if (!strncmp(url, "/api/", 5) || !strcmp(url, "/api"))
        return web_api(r);
    return web_static(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    web_req *r = *con_cls;
    if (!r)
        return;
    for (int i = 0; i < r->nhdr; i++)
        free(r->hdr_own[i]);
    free(r->body);
    explicit_bzero(&r->who, sizeof r->who);
    free(r);
    *con_cls = NULL;
}

/* ---------------- start and stop ---------------- */

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

static char *read_pem(const char *key, const char *path, jet_err *err)
{
    jet_err e2;
    char *pem = jet_read_secret_file(path, &e2);
    if (!pem) {
        jet_err_set(err, JET_ERR_INVALID, "%s: %s", key, e2.msg);
        return NULL;
    }
    if (!strstr(pem, "-----BEGIN ")) {
        explicit_bzero(pem, strlen(pem));
        free(pem);
        jet_err_set(err, JET_ERR_INVALID, "%s: %s is not a PEM file", key, path);
        return NULL;
    }
    return pem;
}

static void free_pems(void)
{
    if (tls_key_pem)
        explicit_bzero(tls_key_pem, strlen(tls_key_pem));
    free(tls_key_pem);
    free(tls_cert_pem);
    tls_key_pem = tls_cert_pem = NULL;
}

jet_status web_start(sched *s, jet_err *err)
{
    const char *listen = jet_cfg_str(s->cfg, "web.listen");
    if (!listen || !*listen)
        return JET_OK;
    web_s = s;
    struct sockaddr_storage ss;
    socklen_t sl;
    jet_status st = jet_listen_parse("web.listen", listen, &ss, &sl, err);
    if (st)
        return st;
    const char *cert = jet_cfg_str(s->cfg, "web.tls_cert"), *key = jet_cfg_str(s->cfg, "web.tls_key");
    if ((cert && *cert) != (key && *key))
        return jet_err_set(err, JET_ERR_INVALID, "web.tls_cert and web.tls_key: set both or neither");
    web_tls = cert && *cert;
    web_trust_proxy = jet_cfg_bool(s->cfg, "web.trust_proxy");
    if ((st = web_auth_init(s, err)))
        return st;
    if (!is_loopback(&ss)) {
        if (!web_tls && !web_trust_proxy) {
            web_auth_free();
            return jet_err_set(err, JET_ERR_INVALID,
                               "web.listen \"%s\" is beyond loopback: set web.tls_cert and web.tls_key, or "
                               "web.trust_proxy = true when a TLS-terminating proxy is the only client "
                               "(docs/OPERATIONS.md, Exposing the console)",
                               listen);
        }
        if (web_auth_tokens() == 0) {
            web_auth_free();
            return jet_err_set(err, JET_ERR_INVALID,
                               "web.listen \"%s\" is beyond loopback: configure at least one token in web.tokens",
                               listen);
        }
    }
    if (web_auth_tokens() == 0)
        jet_warn("web: no token in web.tokens: every API request is refused (401)");
    if (web_tls && (!(tls_cert_pem = read_pem("web.tls_cert", cert, err)) ||
                    !(tls_key_pem = read_pem("web.tls_key", key, err)))) {
        free_pems();
        web_auth_free();
        return JET_ERR_INVALID;
    }
    m_requests = jet_metric_counter("jetsched_web_requests_total", "HTTP requests on web.listen, by status.", "status");
    if ((st = web_sse_init(s, err))) {
        free_pems();
        web_auth_free();
        return st;
    }
    web_static_init(jet_cfg_str(s->cfg, "web.root"));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (web_tls)
        flags |= MHD_USE_TLS;
    unsigned max_conn = (unsigned)jet_cfg_int(s->cfg, "web.max_connections");
    unsigned timeout = (unsigned)(jet_cfg_int(s->cfg, "web.idle_timeout") / 1000);
    unsigned per_ip = web_trust_proxy ? 0 : (unsigned)jet_cfg_int(s->cfg, "web.max_connections_per_ip");
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_LIMIT, max_conn, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, timeout, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 128, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL},
        {web_tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    daemon_ = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!daemon_) {
        web_sse_stop();
        web_static_free();
        free_pems();
        web_auth_free();
        return jet_err_set(err, JET_ERR_IO, "web.listen \"%s\": cannot listen (address in use, or a bad TLS key "
                                            "or certificate in web.tls_key / web.tls_cert)", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    jet_info("web: console and REST API on %s://%s (port %d)%s, %zu token(s)", web_tls ? "https" : "http", listen,
             info ? info->port : 0, web_trust_proxy ? ", behind a trusted proxy" : "", web_auth_tokens());
    return JET_OK;
}

void web_stop(void)
{
    if (!daemon_)
        return;
    web_sse_stop(); /* wakes every stream so that its thread ends */
    MHD_stop_daemon(daemon_);
    daemon_ = NULL;
    web_static_free();
    free_pems();
    web_auth_free();
}
