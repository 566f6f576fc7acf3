/* The REST resources of /api/v1 (web.h, docs/API.md "REST API"): the route
 * table (one route at least per API verb; tests/integration/web_api.c checks
 * that none is missing), matching a request to a route, turning path and
 * query parameters or the JSON body into the verb's request, calling
 * api_call, and the reply: the verb's JSON with the HTTP status of its error
 * code, 201 + Location for a creation, a Link rel="next" for a list page,
 * and an audit line for every state change. */
#include "web.h"

#include <jetsched/log.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P(n, d) {n, NULL, WEB_ARG_STR, d}
#define LIMIT {"limit", NULL, WEB_ARG_INT, "page size, 1-1000 (default 50)"}
#define CURSOR {"cursor", NULL, WEB_ARG_STR, "next_cursor of the previous page, unchanged"}
#define QUEUE {"queue", NULL, WEB_ARG_STR, "only this queue"}

static const web_route routes[] = {
    {"POST", "/api/v1/login", "login", NULL, "Log in with a token: sets the session cookie, returns the CSRF token",
     .special = web_login, .auth_none = true, .writes = true},
    {"POST", "/api/v1/logout", "logout", NULL, "Log out: clears the session cookie", .special = web_logout,
     .auth_none = true, .writes = true},
    {"GET", "/api/v1/session", "session", NULL, "Who is calling: token name, role, CSRF token of a session",
     .special = web_session, .auth_none = true},
    {"GET", "/api/v1/openapi.json", "openapi", NULL, "This OpenAPI 3.0 document", .special = web_openapi,
     .auth_none = true},
    {"GET", "/api/v1/events", "events", NULL, "Live task events as Server-Sent Events",
     .args = {P("queue", "only events of this queue"), P("task", "only events of this task id"),
              P("workflow", "only events of tasks of this workflow")},
     .special = web_events},

    {"POST", "/api/v1/tasks", NULL, "task.submit", "Submit a task (immediate or delayed)", .body = true,
     .created = 201},
    {"POST", "/api/v1/tasks/batch", NULL, "task.submit_many",
     "Submit up to 1,000 tasks in one transaction (atomic, or partial with per-task results)", .body = true},
    {"GET", "/api/v1/tasks", NULL, "task.list", "List tasks, newest first (keyset pages)",
     .args = {{"status", NULL, WEB_ARG_LIST, "task states, comma-separated or repeated"}, QUEUE,
              P("handler", "only this handler"), {"schedule", "schedule_id", WEB_ARG_STR, "only fires of this schedule"},
              P("since", "created at or after (RFC 3339)"), P("until", "created before (RFC 3339)"), LIMIT, CURSOR}},
    {"GET", "/api/v1/tasks/{id}", NULL, "task.get", "A task and all its attempts", .args = {P("id", "task id")}},
    {"POST", "/api/v1/tasks/{id}/cancel", NULL, "task.cancel", "Cancel a task", .args = {P("id", "task id")}},

    {"GET", "/api/v1/schedules", NULL, "schedule.list", "List schedules by id", .args = {QUEUE, LIMIT, CURSOR}},
    {"POST", "/api/v1/schedules", NULL, "schedule.create", "Create a schedule", .body = true, .created = 201},
    {"POST", "/api/v1/schedules/preview", "schedule.preview_spec", "schedule.preview",
     "Next fire times of a spec (not saved); a bad spec names the position", .body = true},
    {"GET", "/api/v1/schedules/{id}", NULL, "schedule.get", "A schedule", .args = {P("id", "schedule id")}},
    {"PATCH", "/api/v1/schedules/{id}", NULL, "schedule.update", "Change fields of a schedule",
     .args = {P("id", "schedule id")}, .body = true},
    {"DELETE", "/api/v1/schedules/{id}", NULL, "schedule.delete", "Delete a schedule (its history stays)",
     .args = {P("id", "schedule id")}},
    {"POST", "/api/v1/schedules/{id}/pause", NULL, "schedule.pause", "Pause a schedule",
     .args = {P("id", "schedule id")}},
    {"POST", "/api/v1/schedules/{id}/resume", NULL, "schedule.resume", "Resume a schedule",
     .args = {P("id", "schedule id")}},
    {"POST", "/api/v1/schedules/{id}/trigger", NULL, "schedule.trigger", "Run a schedule once now",
     .args = {P("id", "schedule id")}},
    {"GET", "/api/v1/schedules/{id}/preview", NULL, "schedule.preview", "Next fire times of a schedule",
     .args = {P("id", "schedule id"), {"count", NULL, WEB_ARG_INT, "how many (1-100, default 5)"},
              P("from", "now or an RFC 3339 time")}},

    {"GET", "/api/v1/dlq", NULL, "dlq.list", "Dead letters, oldest first", .args = {QUEUE, LIMIT, CURSOR}},
    {"POST", "/api/v1/dlq/replay", "dlq.replay_all", "dlq.replay",
     "Replay every dead letter (of the body's queue, when given)", .body = true, .fixed = "{\"all\":true}"},
    {"POST", "/api/v1/dlq/purge", "dlq.purge_all", "dlq.purge",
     "Purge every dead letter (of the body's queue, when given)", .body = true, .fixed = "{\"all\":true}"},
    {"GET", "/api/v1/dlq/{seq}", NULL, "dlq.get", "One dead letter",
     .args = {{"seq", NULL, WEB_ARG_INT, "stream sequence of the dead letter"}}},
    {"POST", "/api/v1/dlq/{seq}/replay", NULL, "dlq.replay", "Replay one dead letter",
     .args = {{"seq", NULL, WEB_ARG_INT, "stream sequence of the dead letter"}}},
    {"DELETE", "/api/v1/dlq/{seq}", "dlq.purge_one", "dlq.purge", "Purge one dead letter",
     .args = {{"seq", NULL, WEB_ARG_INT, "stream sequence of the dead letter"}}},

    {"GET", "/api/v1/leader", NULL, "cluster.leader", "The leader schedulerd", .body = false},
    {"GET", "/api/v1/agents", NULL, "cluster.agents", "The agents of the registry", .body = false},
    {"GET", "/api/v1/queues", NULL, "cluster.queues", "Every queue lane: depth, consumer lag", .body = false},
    {"POST", "/api/v1/queues/{queue}/pause", NULL, "queue.pause",
     "Pause a queue, or one lane with {\"priority\"}: agents stop pulling it within a second",
     .args = {P("queue", "queue name")}, .body = true},
    {"POST", "/api/v1/queues/{queue}/resume", NULL, "queue.resume",
     "Resume a queue (and all its lanes), or one lane with {\"priority\"}", .args = {P("queue", "queue name")},
     .body = true},
    {"GET", "/api/v1/limits", NULL, "limit.list", "Concurrency/rate limits: queue defaults, then keys (pages)",
     .args = {{"limit", NULL, WEB_ARG_INT, "limits per page, 1-1000 (default 1000)"}, CURSOR}, .body = false},
    {"PUT", "/api/v1/limits/{key}", NULL, "limit.set",
     "Set the limit of a key: {\"concurrency\", \"rate\", \"burst\"} (a queue default: POST /api/v1/limits)",
     .args = {P("key", "concurrency or rate key")}, .body = true},
    {"POST", "/api/v1/limits", "limit.set_body", "limit.set",
     "Set a limit named in the body: {\"key\"} or {\"queue\"} (a queue's default), with concurrency/rate/burst",
     .body = true},
    {"GET", "/api/v1/limits/{key}", NULL, "limit.get", "A key's limit, slots in use, parked tasks, hold",
     .args = {P("key", "concurrency or rate key")}},
    {"DELETE", "/api/v1/limits/{key}", NULL, "limit.delete", "Delete a key's limit (its parked tasks are released)",
     .args = {P("key", "concurrency or rate key")}},
    {"GET", "/api/v1/limits/queues/{queue}", "limit.get_queue", "limit.get", "A queue's default limit (of its keys)",
     .args = {P("queue", "queue name")}},
    {"DELETE", "/api/v1/limits/queues/{queue}", "limit.delete_queue", "limit.delete",
     "Delete a queue's default limit (its keys' parked tasks are released)", .args = {P("queue", "queue name")}},
    {"POST", "/api/v1/workflows", NULL, "workflow.submit",
     "Submit a workflow: a DAG of tasks with depends_on and callbacks (docs/WORKFLOWS.md)", .body = true,
     .created = 201},
    {"GET", "/api/v1/workflows", NULL, "workflow.list", "List workflows, newest first (keyset pages)",
     .args = {{"status", NULL, WEB_ARG_LIST, "workflow states, comma-separated or repeated"},
              P("since", "created at or after (RFC 3339)"), P("until", "created before (RFC 3339)"), LIMIT, CURSOR}},
    {"GET", "/api/v1/workflows/{id}", NULL, "workflow.get", "A workflow, its node counts and its nodes (paged)",
     .args = {P("id", "workflow id"), {"nodes", NULL, WEB_ARG_BOOL, "list the nodes (default true)"},
              {"limit", NULL, WEB_ARG_INT, "nodes per page, 1-10000 (default 1000)"}, CURSOR}},
    {"POST", "/api/v1/workflows/{id}/add", NULL, "workflow.add",
     "Add nodes to an open workflow; close it with {\"close\":true}", .args = {P("id", "workflow id")}, .body = true},
    {"POST", "/api/v1/workflows/{id}/cancel", NULL, "workflow.cancel", "Cancel a workflow and its unfinished nodes",
     .args = {P("id", "workflow id")}},
    {"GET", "/api/v1/stats", NULL, "stats.minutes", "Finished tasks per queue and minute (the per-minute rollup)",
     .args = {P("since", "how far back, a duration (default 1h, at most 8d)"), QUEUE}},
};

const web_route *web_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* ---------------- matching ---------------- */

/* Splits a path into at most max segments (pointers into buf). */
static int segments(const char *path, char *buf, size_t len, char **seg, int max)
{
    snprintf(buf, len, "%s", path);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        seg[n++] = t;
    }
    return n;
}

/* Does route match url? Fills the path parameters' values (pointers into ubuf). */
static bool match(const web_route *rt, char **useg, int un, const char **names, const char **values, int *np)
{
    char pbuf[256], *pseg[12];
    int pn = segments(rt->path, pbuf, sizeof pbuf, pseg, 12);
    if (pn != un)
        return false;
    *np = 0;
    for (int i = 0; i < pn; i++) {
        if (pseg[i][0] == '{') {
            if (!useg[i][0])
                return false;
            for (const web_arg *a = rt->args; a->name; a++)
                if (!strncmp(pseg[i] + 1, a->name, strlen(a->name)) && pseg[i][strlen(a->name) + 1] == '}') {
                    names[*np] = a->name;
                    values[(*np)++] = useg[i];
                }
        } else if (strcmp(pseg[i], useg[i]) != 0) {
            return false;
        }
    }
    return true;
}

static const web_arg *find_arg(const web_route *rt, const char *name)
{
    for (const web_arg *a = rt->args; a->name; a++)
        if (!strcmp(a->name, name))
            return a;
    return NULL;
}

static bool in_path(const web_route *rt, const char *name)
{
    char want[80];
    snprintf(want, sizeof want, "{%s}", name);
    return strstr(rt->path, want) != NULL;
}

/* A path or query value must be UTF-8 (json_string refuses others). */
static bool utf8_ok(const web_arg *a, const char *value, api_err *e)
{
    json_t *v = json_string(value);
    json_decref(v);
    if (!v)
        api_fail(e, API_INVALID, a->field ? a->field : a->name, "%s is not valid UTF-8", a->name);
    return v != NULL;
}

/* Sets a parameter's value into the verb's request. */
static bool set_arg(json_t *req, const web_arg *a, const char *value, api_err *e)
{
    const char *field = a->field ? a->field : a->name;
    if (a->type != WEB_ARG_LIST && json_object_get(req, field)) { /* ?limit=5&limit=6 */
        api_fail(e, API_INVALID, field, "parameter %s is given twice", a->name);
        return false;
    }
    switch (a->type) {
    case WEB_ARG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno) {
            api_fail(e, API_INVALID, field, "%s \"%.40s\" must be an integer", a->name, value);
            return false;
        }
        json_object_set_new(req, field, json_integer(v));
        return true;
    }
    case WEB_ARG_BOOL:
        if (strcmp(value, "true") && strcmp(value, "1") && strcmp(value, "false") && strcmp(value, "0")) {
            api_fail(e, API_INVALID, field, "%s \"%.40s\" must be true or false", a->name, value);
            return false;
        }
        json_object_set_new(req, field, json_boolean(!strcmp(value, "true") || !strcmp(value, "1")));
        return true;
    case WEB_ARG_LIST: {
        json_t *arr = json_object_get(req, field);
        if (!arr) {
            arr = json_array();
            json_object_set_new(req, field, arr);
        }
        if (!utf8_ok(a, value, e))
            return false;
        char *copy = strdup(value);
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_string(t));
        free(copy);
        return true;
    }
    case WEB_ARG_STR:
        break;
    }
    if (!utf8_ok(a, value, e))
        return false;
    json_object_set_new(req, field, json_string(value));
    return true;
}

struct query_ctx {
    const web_route *rt;
    json_t *req;
    api_err *e;
    bool failed;
};

static enum MHD_Result on_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct query_ctx *q = cls;
    if (q->failed)
        return MHD_NO;
    if (!*key) /* "?a=1&&b=2" */
        return MHD_YES;
    const web_arg *a = find_arg(q->rt, key);
    if (!a || in_path(q->rt, key) || q->rt->body) {
        char list[256] = "";
        for (const web_arg *x = q->rt->args; x->name; x++)
            if (!in_path(q->rt, x->name))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", x->name);
        api_fail(q->e, API_INVALID, key, "unknown query parameter \"%.60s\" (accepted: %s)", key,
                 list[0] ? list : "none");
        q->failed = true;
        return MHD_NO;
    }
    if (!value || !*value) /* ?queue= counts as absent */
        return MHD_YES;
    if (!set_arg(q->req, a, value, q->e)) {
        q->failed = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* ---------------- replies ---------------- */

/* Appends s to buf[*len] (bounded: returns false once buf is full),
 * percent-escaping every byte outside keep when escape is set. */
static bool put(char *buf, size_t cap, size_t *len, const char *s, bool escape, const char *keep)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = !escape || isalnum(ch) || strchr(keep, ch);
        if (*len + (plain ? 1 : 3) >= cap)
            return false;
        if (plain)
            buf[(*len)++] = (char)ch;
        else
            *len += (size_t)snprintf(buf + *len, cap - *len, "%%%02X", ch);
    }
    buf[*len] = '\0';
    return true;
}

/* Link: <url with cursor=next>; rel="next". The query values are the
 * client's (up to the connection's memory): a link that does not fit is
 * left out rather than cut. */
static void link_next(web_req *r, const char *next)
{
    char link[4096];
    size_t len = 0;
    bool ok = put(link, sizeof link, &len, "<", false, "") && put(link, sizeof link, &len, r->url, false, "") &&
              put(link, sizeof link, &len, "?", false, "");
    const char *keys[] = {"status", "queue", "handler", "schedule", "since", "until", "limit"};
    for (size_t i = 0; ok && i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, keys[i]);
        if (v && *v)
            ok = put(link, sizeof link, &len, keys[i], false, "") && put(link, sizeof link, &len, "=", false, "") &&
                 put(link, sizeof link, &len, v, true, "-_.~,") && put(link, sizeof link, &len, "&", false, "");
    }
    ok = ok && put(link, sizeof link, &len, "cursor=", false, "") && put(link, sizeof link, &len, next, true, "-_.~") &&
         put(link, sizeof link, &len, ">; rel=\"next\"", false, "");
    if (ok)
        web_header(r, "Link", link);
}

static enum MHD_Result call_verb(web_req *r, const web_route *rt, const api_verb_def *v, const char **names,
                                 const char **values, int np)
{
    api_err e = {0};
    json_t *req = NULL;
    if (rt->body) {
        if (!(req = api_parse_body(r->body ? r->body : "", r->len, &e)))
            goto fail;
    } else {
        req = json_object();
    }
    struct query_ctx q = {rt, req, &e, false};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, on_query, &q);
    if (q.failed)
        goto fail;
    for (int i = 0; i < np; i++) {
        const web_arg *a = find_arg(rt, names[i]);
        const char *field = a->field ? a->field : a->name;
        json_t *have = json_object_get(req, field);
        json_t *tmp = json_object();
        if (!set_arg(tmp, a, values[i], &e)) {
            json_decref(tmp);
            goto fail;
        }
        if (have && !json_equal(have, json_object_get(tmp, field))) {
            json_decref(tmp);
            api_fail(&e, API_INVALID, field, "%s in the body differs from the one in the path", field);
            goto fail;
        }
        json_object_update(req, tmp);
        json_decref(tmp);
    }
    if (rt->fixed) {
        json_t *fixed = json_loads(rt->fixed, 0, NULL);
        json_object_update(req, fixed);
        json_decref(fixed);
    }
    json_t *res = api_call(v->verb, req, &e);
    json_decref(req);
    req = NULL;
    if (!res)
        goto fail;
    int status = 200;
    if (rt->created && !json_is_false(json_object_get(res, "created"))) {
        status = rt->created;
        json_t *obj = json_object_get(res, "schedule");
        const char *id = json_string_value(json_object_get(obj ? obj : res, "id"));
        if (id) {
            char loc[300];
            snprintf(loc, sizeof loc, "%s/%s", rt->path, id);
            web_header(r, "Location", loc);
        }
    }
    const char *next = json_string_value(json_object_get(res, "next_cursor"));
    if (next)
        link_next(r, next);
    if (v->writes)
        web_audit(r, v->verb, status, NULL);
    return web_json(r, status, res);
fail:
    json_decref(req);
    if (v->writes)
        web_audit(r, v->verb, api_http_status(e.code), e.code);
    return web_error(r, &e);
}

enum MHD_Result web_api(web_req *r)
{
    char ubuf[1024], *useg[12];
    int un = segments(r->url, ubuf, sizeof ubuf, useg, 12);
    const char *method = !strcmp(r->method, "HEAD") ? "GET" : r->method;
    const web_route *found = NULL;
    const char *names[WEB_MAX_ARGS], *values[WEB_MAX_ARGS];
    int np = 0;
    char allow[128] = "";
    for (size_t i = 0; un > 0 && i < sizeof routes / sizeof routes[0] && !found; i++) {
        const char *n2[WEB_MAX_ARGS], *v2[WEB_MAX_ARGS];
        int np2 = 0;
        if (!match(&routes[i], useg, un, n2, v2, &np2))
            continue;
        if (strcmp(routes[i].method, method) != 0) {
            if (!strstr(allow, routes[i].method))
                snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
                         routes[i].method);
            continue;
        }
        found = &routes[i];
        memcpy(names, n2, sizeof names);
        memcpy(values, v2, sizeof values);
        np = np2;
    }
    if (!found && allow[0]) {
        web_header(r, "Allow", allow);
        api_err e = {0};
        api_fail(&e, API_INVALID, NULL, "%s is not allowed on %s (allowed: %s)", r->method, r->url, allow);
        return web_json(r, 405, api_error_body(&e));
    }
    if (!found)
        return web_fail(r, API_NOT_FOUND, NULL, "no route %s %s (GET /api/v1/openapi.json lists them)", r->method,
                        r->url);
    const api_verb_def *v = found->verb ? api_verb_find(found->verb) : NULL;
    if (found->verb && !v)
        return web_fail(r, API_INTERNAL, NULL, "route %s has no verb %s (a bug)", found->path, found->verb);
    if (!found->auth_none) {
        api_err e = {0};
        bool writes = v ? v->writes : found->writes;
        if (!web_authenticate(r, &e) || !web_authorize(r, writes, &e)) {
            if (writes || web_is_write_method(r->method))
                web_audit(r, v ? v->verb : found->op, api_http_status(e.code), e.code);
            return web_error(r, &e);
        }
    }
    if (found->special)
        return found->special(r);
    return call_verb(r, found, v, names, values, np);
}
