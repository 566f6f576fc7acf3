/* Support for the tests of schedulerd's HTTP API and console (web.listen):
 * writing token files, starting schedulerd with a web listener, and HTTP
 * requests with libcurl that remember which routes were exercised. */
#ifndef JETSCHED_TESTS_WEB_SUPPORT_H
#define JETSCHED_TESTS_WEB_SUPPORT_H

#include "sched_api_support.h"

#include <jansson.h>

typedef struct wt_server {
    ts_agent s;
    int port;
    char dir[512];      /* temporary directory of its files */
    char viewer[64];    /* token secrets */
    char operator_[64];
    char scheme[8];     /* http or https */
    char cafile[600];   /* https: the self-signed certificate */
} wt_server;

typedef struct wt_resp {
    long status;
    char *body;         /* NUL-terminated */
    size_t len;
    char *headers;      /* raw response headers */
    json_t *json;       /* the body parsed, or NULL */
} wt_resp;

/* Writes the token and session-secret files and starts schedulerd with
 * web.listen on a free loopback port; extra: more libconfig text inside
 * the web = { ... } group (e.g. "sse_heartbeat = \"200ms\";"). root: web.root. */
void wt_start(wt_server *w, const char *id, const char *root, const char *web_extra, const char *conf_extra);

/* The address wt_start listens on (default 127.0.0.1). */
void wt_listen_host(const char *host);

/* One request. auth: NULL, "viewer", "operator", a raw "Bearer x", or
 * "cookie:<value>". headers: more "Name: value" lines, NULL-terminated (may be NULL). */
wt_resp *wt_req(wt_server *w, const char *method, const char *path, const char *body, const char *auth,
                const char *const *headers);
void wt_free(wt_resp *r);
/* A response header's value (first match, case-insensitive name), copied into buf; NULL when absent. */
const char *wt_header(const wt_resp *r, const char *name, char *buf, size_t len);
/* Checks status and, for an error, the error code (and field unless NULL); frees r. */
void wt_expect(wt_resp *r, long status, const char *code, const char *field, const char *what);

/* The sum of every series of a metric in schedulerd's /metrics (-1 when unreachable). */
double wt_metric_sum(const wt_server *w, const char *name);

/* Records that a route was requested (method + path without the query);
 * wt_req records every request itself. */
void wt_record(const char *method, const char *path);
/* The operations of an OpenAPI document: {"GET /api/v1/tasks": {operation}, ...} (new reference). */
json_t *wt_operations(const json_t *openapi);
/* Checks that every operation of the OpenAPI document was requested at least once. */
void wt_check_coverage(const json_t *openapi);

#endif
