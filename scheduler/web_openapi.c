/* GET /api/v1/openapi.json: the OpenAPI 3.0.3 document of the REST API,
 * built from the route table of web_routes.c (so it cannot drift from the
 * routes); each operation names its API verb in x-jetsched-verb. Built once. */
#include "web.h"

#include <jetsched/version.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static char *doc_text;
static pthread_once_t doc_once = PTHREAD_ONCE_INIT;

static json_t *error_response(const char *desc)
{
    return json_pack("{s:s,s:{s:{s:{s:s}}}}", "description", desc, "content", "application/json", "schema", "$ref",
                     "#/components/schemas/Error");
}

static json_t *param(const web_route *rt, const web_arg *a, bool path)
{
    json_t *schema;
    switch (a->type) {
    case WEB_ARG_INT:
        schema = json_pack("{s:s,s:s}", "type", "integer", "format", "int64");
        break;
    case WEB_ARG_BOOL:
        schema = json_pack("{s:s}", "type", "boolean");
        break;
    case WEB_ARG_LIST:
        schema = json_pack("{s:s,s:{s:s}}", "type", "array", "items", "type", "string");
        break;
    default:
        schema = json_pack("{s:s}", "type", "string");
    }
    (void)rt;
    json_t *p = json_pack("{s:s,s:s,s:b,s:s,s:o}", "name", a->name, "in", path ? "path" : "query", "required", path,
                          "description", a->desc ? a->desc : a->name, "schema", schema);
    if (a->type == WEB_ARG_LIST)
        json_object_set_new(p, "explode", json_false());
    return p;
}

static json_t *operation(const web_route *rt)
{
    const api_verb_def *v = rt->verb ? api_verb_find(rt->verb) : NULL;
    bool writes = v ? v->writes : rt->writes;
    char tag[32] = "";
    sscanf(rt->path, "/api/v1/%31[^/{.]", tag);
    json_t *op = json_pack("{s:s,s:s,s:[s]}", "operationId", rt->op ? rt->op : rt->verb, "summary", rt->summary,
                           "tags", tag);
    if (rt->verb)
        json_object_set_new(op, "x-jetsched-verb", json_string(rt->verb));
    json_object_set_new(op, "x-jetsched-role", json_string(rt->auth_none ? "none" : writes ? "operator" : "viewer"));
    json_t *params = json_array();
    for (const web_arg *a = rt->args; a->name; a++) {
        char want[80];
        snprintf(want, sizeof want, "{%s}", a->name);
        json_array_append_new(params, param(rt, a, strstr(rt->path, want) != NULL));
    }
    if (json_array_size(params))
        json_object_set_new(op, "parameters", params);
    else
        json_decref(params);
    if (rt->body) {
        char desc[160];
        snprintf(desc, sizeof desc, "The request of %s (docs/API.md), a JSON object", rt->verb ? rt->verb : rt->op);
        json_object_set_new(op, "requestBody",
                            json_pack("{s:s,s:b,s:{s:{s:{s:s}}}}", "description", desc, "required", !rt->fixed,
                                      "content", "application/json", "schema", "type", "object"));
    } else if (!strcmp(rt->op ? rt->op : "", "login")) {
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b,s:{s:{s:{s:s,s:[s],s:{s:{s:s}}}}}}", "required", 1, "content",
                                      "application/json", "schema", "type", "object", "required", "token",
                                      "properties", "token", "type", "string"));
    }
    json_t *responses = json_object();
    const char *ok_type = !strcmp(rt->op ? rt->op : "", "events") ? "text/event-stream" : "application/json";
    json_t *ok = json_pack("{s:s,s:{s:{s:{s:s}}}}", "description", "success", "content", ok_type, "schema", "type",
                           !strcmp(ok_type, "application/json") ? "object" : "string");
    if (rt->created) {
        json_object_set_new(responses, "201", json_pack("{s:s,s:{s:{s:{s:s}}}}", "description", "created", "content",
                                                        "application/json", "schema", "type", "object"));
        json_object_set_new(ok, "description", json_string("exists already (idempotent)"));
    }
    json_object_set_new(responses, "200", ok);
    static const char *const errors[][2] = {
        {"400", "invalid_argument: the message names the field"},
        {"401", "unauthenticated: no or a bad token or session"},
        {"403", "permission_denied: a viewer on an operator action, or a CSRF failure"},
        {"404", "not_found"},
        {"409", "already_exists or failed_precondition"},
        {"413", "payload_too_large"},
        {"429", "resource_exhausted: too many failed logins (Retry-After)"},
        {"503", "unavailable: PostgreSQL or JetStream unreachable (Retry-After)"},
    };
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        json_object_set_new(responses, errors[i][0], error_response(errors[i][1]));
    json_object_set_new(op, "responses", responses);
    if (rt->auth_none)
        json_object_set_new(op, "security", json_array());
    return op;
}

static void build(void)
{
    size_t n;
    const web_route *rt = web_routes(&n);
    json_t *paths = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_object_get(paths, rt[i].path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, rt[i].path, item);
        }
        char method[16];
        size_t k = 0;
        for (; rt[i].method[k] && k < sizeof method - 1; k++)
            method[k] = (char)(rt[i].method[k] | 0x20);
        method[k] = '\0';
        json_object_set_new(item, method, operation(&rt[i]));
    }
    json_t *doc = json_pack(
        "{s:s,s:{s:s,s:s,s:s},s:o,s:{s:{s:{s:s,s:s},s:{s:s,s:s,s:s}},s:{s:{s:s,s:[s],s:{s:{s:s,s:{s:{s:s},s:{s:s},s:{s:s}},s:[s,s]}}}}},s:[{s:[]},{s:[]}]}",
        "openapi", "3.0.3", "info", "title", "jetsched", "version", JET_VERSION, "description",
        "The REST API of jetsched (docs/API.md): one resource per API verb, the same JSON bodies and error object "
        "as the NATS API.",
        "paths", paths, "components", "securitySchemes", "bearer", "type", "http", "scheme", "bearer", "session",
        "type", "apiKey", "in", "cookie", "name", "jetsched_session", "schemas", "Error", "type", "object",
        "required", "error", "properties", "error", "type", "object", "properties", "code", "type", "string",
        "message", "type", "string", "field", "type", "string", "required", "code", "message", "security", "bearer",
        "session");
    doc_text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
}

enum MHD_Result web_openapi(web_req *r)
{
    pthread_once(&doc_once, build);
    if (!doc_text)
        return web_fail(r, API_INTERNAL, NULL, "cannot build the OpenAPI document (a bug)");
    return web_reply(r, 200, "application/json", strdup(doc_text), strlen(doc_text));
}
