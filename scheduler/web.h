/* The HTTP API and web console of schedulerd (DESIGN §12, docs/API.md "REST
 * API", docs/OPERATIONS.md "Exposing the console"), internals shared by its
 * modules:
 *   web.c         the `web.listen` listener (libmicrohttpd, TLS), request
 *                 bodies, replies and security headers, start-up checks
 *   web_auth.c    tokens and roles, the signed session cookie, CSRF, the
 *                 failed-login limiter, the audit log
 *   web_routes.c  the REST resources: one route per API verb, calling api_call
 *   web_openapi.c the OpenAPI 3.0 document built from the route table
 *   web_sse.c     GET /api/v1/events: live events as Server-Sent Events
 *   web_static.c  the console's static files under web.root
 * Connections run one thread each (MHD thread-per-connection): a verb that
 * waits for PostgreSQL blocks only its own connection, never an SSE stream. */
#ifndef SCHED_WEB_H
#define SCHED_WEB_H

#include "api.h"
#include "schedulerd.h"

#include <jansson.h>
#include <microhttpd.h>

/* Starts the listener when web.listen is set (refuses an unsafe
 * configuration with a message naming the key); web_stop ends SSE streams
 * and stops it. */
jet_status web_start(sched *s, jet_err *err);
void web_stop(void);

typedef enum web_role { WEB_ROLE_NONE = 0, WEB_ROLE_VIEWER, WEB_ROLE_OPERATOR } web_role;

typedef struct web_who {
    web_role role;
    char name[72];     /* the token's name (never the secret) */
    bool cookie;       /* authenticated by the session cookie: CSRF applies */
    char session[200]; /* the cookie's signed payload (CSRF token derivation) */
} web_who;

#define WEB_MAX_HEADERS 6

/* One request (per connection, MHD's con_cls). */
typedef struct web_req {
    struct MHD_Connection *conn;
    sched *s;
    const char *method, *url;
    char *body;
    size_t len, cap;
    bool too_large;
    char peer[160]; /* client address; with web.trust_proxy "<proxy> for <X-Forwarded-For>" */
    char ip[64];    /* the address the login limiter counts (the forwarded one behind a trusted proxy) */
    web_who who;
    const char *hdr[WEB_MAX_HEADERS][2]; /* extra reply headers (static or owned by hdr_own) */
    char *hdr_own[WEB_MAX_HEADERS];
    int nhdr;
} web_req;

/* ---- replies (web.c) ---- */

/* Adds a reply header for the next reply; value is copied. */
void web_header(web_req *r, const char *name, const char *value);
/* Queues a reply with the standard security headers; body is freed. */
enum MHD_Result web_reply(web_req *r, int status, const char *type, char *body, size_t len);
/* Queues resp (destroyed) with the security headers and r's extra headers. */
enum MHD_Result web_queue_response(web_req *r, int status, struct MHD_Response *resp);
/* A JSON reply (body stolen). */
enum MHD_Result web_json(web_req *r, int status, json_t *body);
/* The API error object with the status of its code (401 adds
 * WWW-Authenticate, 429/503 add Retry-After). */
enum MHD_Result web_error(web_req *r, const api_err *e);
enum MHD_Result web_fail(web_req *r, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A request header, or NULL. */
const char *web_get_header(web_req *r, const char *name);
bool web_is_write_method(const char *method);

/* ---- authentication (web_auth.c) ---- */

jet_status web_auth_init(sched *s, jet_err *err);
void web_auth_free(void);
/* Number of tokens configured. */
size_t web_auth_tokens(void);
/* Fills r->who from the bearer token or the session cookie. false: no or a
 * bad credential (e: unauthenticated, or resource_exhausted when the client
 * has too many recent failures). */
bool web_authenticate(web_req *r, api_err *e);
/* Role and CSRF checks of an authenticated request: false with
 * permission_denied in e. */
bool web_authorize(web_req *r, bool writes, api_err *e);
/* POST /api/v1/login, POST /api/v1/logout, GET /api/v1/session. */
enum MHD_Result web_login(web_req *r);
enum MHD_Result web_logout(web_req *r);
enum MHD_Result web_session(web_req *r);
/* One audit log line of a state-changing request: who, what, from where, the outcome. */
void web_audit(web_req *r, const char *what, int status, const char *code);

/* ---- routes (web_routes.c) and the OpenAPI document (web_openapi.c) ---- */

typedef enum web_arg_type { WEB_ARG_STR, WEB_ARG_INT, WEB_ARG_BOOL, WEB_ARG_LIST } web_arg_type;

typedef struct web_arg {
    const char *name;  /* query or path parameter */
    const char *field; /* the verb's field (NULL: same as name) */
    web_arg_type type;
    const char *desc;
} web_arg;

#define WEB_MAX_ARGS 10

typedef struct web_route {
    const char *method;
    const char *path;    /* /api/v1/tasks/{id}/cancel: {x} matches one segment */
    const char *op;      /* operationId when not the verb (a second route of a verb, or a special) */
    const char *verb;    /* the API verb; NULL: handled by `special` */
    const char *summary;
    web_arg args[WEB_MAX_ARGS]; /* path ({x} in path) and query parameters */
    bool body;           /* takes a JSON body (the verb's request) */
    const char *fixed;   /* JSON merged into the request (e.g. {"all":true}) */
    int created;         /* status when the reply says it created something (201), else 0 */
    enum MHD_Result (*special)(web_req *r);
    bool auth_none;      /* served without credentials (login, openapi.json) */
    bool writes;         /* for specials: changes state */
} web_route;

/* The route table (for the OpenAPI document and the tests). */
const web_route *web_routes(size_t *n);
enum MHD_Result web_api(web_req *r);
/* GET /api/v1/openapi.json. */
enum MHD_Result web_openapi(web_req *r);

/* ---- live events (web_sse.c) ---- */

jet_status web_sse_init(sched *s, jet_err *err);
void web_sse_stop(void);
enum MHD_Result web_events(web_req *r);

/* ---- static files (web_static.c) ---- */

void web_static_init(const char *root);
void web_static_free(void);
enum MHD_Result web_static(web_req *r);

#endif
