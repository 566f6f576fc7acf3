/* The REST API of schedulerd's web listener (docs/API.md "REST API") with a
 * real schedulerd, agentd, nats-server and PostgreSQL, over HTTP with
 * libcurl: every route of the OpenAPI document is requested (checked at the
 * end), every API verb of scheduler/api.c has a route, docs/API.md lists
 * exactly the routes of the document; success and the error codes with
 * their HTTP statuses (400, 401, 403, 404, 405, 409, 413, 429); a viewer
 * refused on operator actions; the session cookie (attributes, CSRF refusal
 * and acceptance, tampering); the audit log (and no secret in the log); the
 * static files (types, ETag, no path traversal); and the failed-login
 * limiter (429, counted in /metrics). */
#include "web_support.h"
#include "harness.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static wt_server w;

static json_t *ok_json(wt_resp *r, long status, const char *what)
{
    CHECK(r->status == status, "%s: HTTP %ld expected, got %ld: %.300s", what, status, r->status, r->body);
    json_t *j = r->json ? json_incref(r->json) : json_object();
    wt_free(r);
    return j;
}

static void check_verbs_routed(const json_t *openapi)
{
    /* The verb table of scheduler/api.c: {"task.submit", api_task_submit, true}. */
    char path[700], line[512];
    snprintf(path, sizeof path, "%s/scheduler/api.c", th_require_env("JETSCHED_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "read %s", path);
    int verbs = 0;
    while (f && fgets(line, sizeof line, f)) {
        char verb[64], fn[64];
        if (sscanf(line, " {\"%63[a-z_.]\", %63[a-z_],", verb, fn) != 2 || strncmp(fn, "api_", 4) != 0)
            continue;
        verbs++;
        bool routed = false;
        json_t *ops = wt_operations(openapi), *op;
        const char *key;
        json_object_foreach(ops, key, op)
            routed |= !strcmp(json_string_value(json_object_get(op, "x-jetsched-verb")) ?: "", verb);
        json_decref(ops);
        CHECK(routed, "API verb %s has a REST route (scheduler/web_routes.c)", verb);
    }
    if (f)
        fclose(f);
    CHECK(verbs >= 20, "the verb table of scheduler/api.c was read (%d verbs)", verbs);
}

/* docs/API.md's route table ("| `GET` | `/api/v1/tasks` |") equals the document's operations. */
static void check_docs(const json_t *openapi)
{
    char path[700], line[1024];
    snprintf(path, sizeof path, "%s/docs/API.md", th_require_env("JETSCHED_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "read %s", path);
    json_t *documented = json_object();
    while (f && fgets(line, sizeof line, f)) {
        char method[16], route[300];
        if (sscanf(line, "| `%15[A-Z]` | `%299[^`]` |", method, route) == 2) {
            char key[400];
            snprintf(key, sizeof key, "%s %s", method, route);
            json_object_set_new(documented, key, json_true());
        }
    }
    if (f)
        fclose(f);
    json_t *ops = wt_operations(openapi), *op;
    const char *key;
    json_object_foreach(ops, key, op)
        CHECK(json_object_get(documented, key) != NULL, "docs/API.md lists the route %s", key);
    CHECK(json_object_size(documented) == json_object_size(ops),
          "docs/API.md lists %zu routes, the OpenAPI document has %zu", json_object_size(documented),
          json_object_size(ops));
    json_decref(ops);
    json_decref(documented);
}

static void wait_status(const char *id, const char *want)
{
    char path[200];
    snprintf(path, sizeof path, "/api/v1/tasks/%s", id);
    char got[32] = "";
    for (int64_t until = ts_now_ms() + 20000; ts_now_ms() < until; ts_sleep_ms(100)) {
        wt_resp *r = wt_req(&w, "GET", path, NULL, "viewer", NULL);
        snprintf(got, sizeof got, "%s", r->json ? sa_str(r->json, "task.status") : "");
        wt_free(r);
        if (!strcmp(got, want))
            break;
    }
    CHECK(!strcmp(got, want), "task %s reaches %s (is %s)", id, want, got);
}

static void tasks(void)
{
    wt_resp *r = wt_req(&w, "POST", "/api/v1/tasks", "{\"id\":\"w-1\",\"handler\":\"echo\",\"payload\":\"hi\"}",
                        "operator", NULL);
    char h[512];
    CHECK(r->status == 201, "submit: 201 (%ld %s)", r->status, r->body);
    CHECK(wt_header(r, "Location", h, sizeof h) && !strcmp(h, "/api/v1/tasks/w-1"), "submit: Location %s",
          wt_header(r, "Location", h, sizeof h) ?: "(none)");
    CHECK(r->json && !strcmp(sa_str(r->json, "status"), "queued"), "submit: the verb's reply: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks/batch", "{\"tasks\":[{\"id\":\"w-b1\",\"handler\":\"echo\"}]}",
                     "operator", NULL),
              200, NULL, NULL, "batch submit (task.submit_many)");
    r = wt_req(&w, "POST", "/api/v1/tasks", "{\"id\":\"w-1\",\"handler\":\"echo\",\"payload\":\"hi\"}", "operator",
               NULL);
    CHECK(r->status == 200 && r->json && json_is_false(json_object_get(r->json, "created")),
          "submit again: 200 created false (%ld %s)", r->status, r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"hanlder\":\"echo\"}", "operator", NULL), 400,
              "invalid_argument", "hanlder", "submit with a typo");
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"handler\":", "operator", NULL), 400, "invalid_argument", NULL,
              "submit with bad JSON");
    char big[3000];
    snprintf(big, sizeof big, "{\"handler\":\"echo\",\"payload\":\"%02000d\"}", 0);
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", big, "operator", NULL), 413, "payload_too_large", "payload",
              "submit over api.max_payload");
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"handler\":\"echo\"}", "viewer", NULL), 403, "permission_denied",
              NULL, "a viewer submits");
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"handler\":\"echo\"}", NULL, NULL), 401, "unauthenticated", NULL,
              "submit without a token");

    wait_status("w-1", "succeeded");
    json_t *j = ok_json(wt_req(&w, "GET", "/api/v1/tasks/w-1", NULL, "viewer", NULL), 200, "task.get");
    CHECK(!strcmp(sa_str(j, "task.result"), "hi") && json_array_size(json_object_get(j, "attempts")) == 1,
          "task.get: result and the attempt");
    json_decref(j);
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks/nope", NULL, "viewer", NULL), 404, "not_found", "id", "unknown task");
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks/bad.id", NULL, "viewer", NULL), 400, "invalid_argument", "id",
              "a bad task id in the path");

    /* Keyset pages with a Link to the next one. */
    for (int i = 0; i < 3; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"id\":\"page-%d\",\"handler\":\"listme\",\"queue\":\"parked\"}", i);
        wt_expect(wt_req(&w, "POST", "/api/v1/tasks", body, "operator", NULL), 201, NULL, NULL, "submit page task");
    }
    r = wt_req(&w, "GET", "/api/v1/tasks?handler=listme&limit=2&status=queued,retrying", NULL, "viewer", NULL);
    CHECK(r->status == 200 && json_array_size(json_object_get(r->json, "tasks")) == 2, "list page 1: %s", r->body);
    const char *link = wt_header(r, "Link", h, sizeof h);
    CHECK(link && strstr(link, "rel=\"next\"") && strstr(link, "handler=listme") && strstr(link, "cursor="),
          "list: Link rel=next with the filters: %s", link ?: "(none)");
    char next[600] = "";
    if (link && link[0] == '<')
        snprintf(next, sizeof next, "%.*s", (int)(strchr(link, '>') - link - 1), link + 1);
    wt_free(r);
    r = wt_req(&w, "GET", next[0] ? next : "/api/v1/tasks?cursor=x", NULL, "viewer", NULL);
    CHECK(r->status == 200 && json_array_size(json_object_get(r->json, "tasks")) == 1 &&
              !strcmp(sa_str(r->json, "tasks.0.id"), "page-0") && json_is_null(json_object_get(r->json, "next_cursor")),
          "list page 2 from the Link: %s", r->body);
    CHECK(!wt_header(r, "Link", h, sizeof h), "the last page has no Link");
    wt_free(r);
    r = wt_req(&w, "GET", "/api/v1/tasks?schedule=nosuch&queue=parked", NULL, "viewer", NULL);
    CHECK(r->status == 200 && json_array_size(json_object_get(r->json, "tasks")) == 0, "schedule filter: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks?status=bogus", NULL, "viewer", NULL), 400, "invalid_argument",
              "status", "a bad status filter");
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks?limit=x", NULL, "viewer", NULL), 400, "invalid_argument", "limit",
              "a bad limit");
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks?colour=red", NULL, "viewer", NULL), 400, "invalid_argument", "colour",
              "an unknown query parameter");
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks?limit=1&&queue=default&", NULL, "viewer", NULL), 200, NULL, NULL,
              "empty query parameters are ignored");

    /* Cancel: a finished task is failed_precondition (409), a delayed one cancelled. */
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks/w-1/cancel", NULL, "operator", NULL), 409, "failed_precondition", "id",
              "cancel a succeeded task");
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"id\":\"w-2\",\"handler\":\"echo\",\"delay\":\"1h\"}", "operator",
                     NULL),
              201, NULL, NULL, "submit delayed");
    r = wt_req(&w, "POST", "/api/v1/tasks/w-2/cancel", NULL, "operator", NULL);
    CHECK(r->status == 200 && !strcmp(sa_str(r->json, "status"), "cancelled"), "cancel delayed: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks/w-2/cancel", NULL, "viewer", NULL), 403, "permission_denied", NULL,
              "a viewer cancels");
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks/nope/cancel", NULL, "operator", NULL), 404, "not_found", NULL,
              "cancel an unknown task");
}

static void schedules(void)
{
    const char *create = "{\"id\":\"s1\",\"spec\":\"0 3 * * *\",\"handler\":\"echo\",\"tz\":\"Europe/Paris\"}";
    wt_resp *r = wt_req(&w, "POST", "/api/v1/schedules", create, "operator", NULL);
    char h[256];
    CHECK(r->status == 201 && !strcmp(sa_str(r->json, "schedule.id"), "s1"), "schedule create: %ld %s", r->status,
          r->body);
    CHECK(wt_header(r, "Location", h, sizeof h) && !strcmp(h, "/api/v1/schedules/s1"), "schedule Location");
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/schedules", create, "operator", NULL), 409, "already_exists", "id",
              "create twice");
    wt_expect(wt_req(&w, "POST", "/api/v1/schedules", "{\"id\":\"s2\",\"spec\":\"*/0 * * * *\",\"handler\":\"echo\"}",
                     "operator", NULL),
              400, "invalid_argument", "spec", "create with a bad spec");
    wt_expect(wt_req(&w, "POST", "/api/v1/schedules", create, "viewer", NULL), 403, "permission_denied", NULL,
              "a viewer creates a schedule");
    json_t *j = ok_json(wt_req(&w, "GET", "/api/v1/schedules?limit=10", NULL, "viewer", NULL), 200, "schedule.list");
    CHECK(json_array_size(json_object_get(j, "schedules")) == 1, "schedule.list has s1");
    json_decref(j);
    wt_expect(wt_req(&w, "GET", "/api/v1/schedules/s1", NULL, "viewer", NULL), 200, NULL, NULL, "schedule.get");
    wt_expect(wt_req(&w, "GET", "/api/v1/schedules/nope", NULL, "viewer", NULL), 404, "not_found", "id",
              "unknown schedule");
    r = wt_req(&w, "PATCH", "/api/v1/schedules/s1", "{\"spec\":\"*/5 * * * *\",\"tz\":\"UTC\"}", "operator", NULL);
    CHECK(r->status == 200 && !strcmp(sa_str(r->json, "schedule.spec"), "*/5 * * * *"), "schedule update: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "PATCH", "/api/v1/schedules/s1", "{\"id\":\"other\"}", "operator", NULL), 400,
              "invalid_argument", "id", "update: the body's id differs from the path's");
    r = wt_req(&w, "PATCH", "/api/v1/schedules/s1", "{\"spec\":null}", "operator", NULL);
    CHECK(r->status == 400 && strstr(r->body, "must not be null") && !strcmp(sa_str(r->json, "error.field"), "spec"),
          "update: a null spec names the field (not \"is required\"): %s", r->body);
    wt_free(r);
    r = wt_req(&w, "POST", "/api/v1/schedules/s1/pause", NULL, "operator", NULL);
    CHECK(r->status == 200 && json_is_true(json_object_get(json_object_get(r->json, "schedule"), "paused")),
          "pause: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/schedules/s1/resume", NULL, "operator", NULL), 200, NULL, NULL, "resume");
    r = wt_req(&w, "POST", "/api/v1/schedules/s1/trigger", NULL, "operator", NULL);
    CHECK(r->status == 200 && !strncmp(sa_str(r->json, "task_id"), "s1-manual-", 10), "trigger: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/schedules/s1/trigger", NULL, "viewer", NULL), 403, "permission_denied", NULL,
              "a viewer triggers");
    r = wt_req(&w, "GET", "/api/v1/schedules/s1/preview?count=3", NULL, "viewer", NULL);
    CHECK(r->status == 200 && json_array_size(json_object_get(r->json, "next")) == 3, "preview by id: %s", r->body);
    wt_free(r);
    r = wt_req(&w, "POST", "/api/v1/schedules/preview", "{\"spec\":\"*/15 9-17 * * mon-fri\",\"count\":2}", "viewer",
               NULL);
    CHECK(r->status == 200 && json_array_size(json_object_get(r->json, "next")) == 2,
          "preview a spec (a viewer may): %s", r->body);
    wt_free(r);
    r = wt_req(&w, "POST", "/api/v1/schedules/preview", "{\"spec\":\"61 * * * *\"}", "viewer", NULL);
    CHECK(r->status == 400 && !strcmp(sa_field(r->json), "spec") && strstr(sa_message(r->json), "position"),
          "preview a bad spec: the position: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "DELETE", "/api/v1/schedules/s1", NULL, "viewer", NULL), 403, "permission_denied", NULL,
              "a viewer deletes");
    wt_expect(wt_req(&w, "DELETE", "/api/v1/schedules/s1", NULL, "operator", NULL), 200, NULL, NULL, "delete");
    wt_expect(wt_req(&w, "DELETE", "/api/v1/schedules/s1", NULL, "operator", NULL), 404, "not_found", "id",
              "delete twice");
}

static long long dead_seq(const char *task)
{
    long long seq = 0;
    for (int64_t until = ts_now_ms() + 20000; !seq && ts_now_ms() < until; ts_sleep_ms(100)) {
        wt_resp *r = wt_req(&w, "GET", "/api/v1/dlq?limit=100", NULL, "viewer", NULL);
        json_t *msgs = json_object_get(r->json, "messages");
        for (size_t i = 0; i < json_array_size(msgs); i++)
            if (!strcmp(sa_str(json_array_get(msgs, i), "task_id"), task))
                seq = sa_int(json_array_get(msgs, i), "seq");
        wt_free(r);
    }
    CHECK(seq > 0, "dead letter of %s listed", task);
    return seq;
}

static void dlq(void)
{
    for (int i = 1; i <= 3; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"id\":\"dead-%d\",\"handler\":\"fail\",\"max_attempts\":1}", i);
        wt_expect(wt_req(&w, "POST", "/api/v1/tasks", body, "operator", NULL), 201, NULL, NULL, "submit failing");
    }
    long long seq = dead_seq("dead-1");
    dead_seq("dead-2");
    dead_seq("dead-3");
    char path[200];
    snprintf(path, sizeof path, "/api/v1/dlq/%lld", seq);
    wt_resp *r = wt_req(&w, "GET", path, NULL, "viewer", NULL);
    CHECK(r->status == 200 && !strcmp(sa_str(r->json, "message.task_id"), "dead-1"), "dlq.get: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "GET", "/api/v1/dlq/999999", NULL, "viewer", NULL), 404, "not_found", NULL, "unknown seq");
    wt_expect(wt_req(&w, "GET", "/api/v1/dlq/abc", NULL, "viewer", NULL), 400, "invalid_argument", "seq",
              "a seq that is not a number");
    snprintf(path, sizeof path, "/api/v1/dlq/%lld/replay", seq);
    wt_expect(wt_req(&w, "POST", path, NULL, "viewer", NULL), 403, "permission_denied", NULL, "a viewer replays");
    r = wt_req(&w, "POST", path, NULL, "operator", NULL);
    CHECK(r->status == 200 && sa_int(r->json, "replayed") == 1, "replay one: %s", r->body);
    wt_free(r);
    wait_status("dead-1", "dead");
    r = wt_req(&w, "POST", "/api/v1/dlq/replay", "{\"queue\":\"default\"}", "operator", NULL);
    CHECK(r->status == 200 && sa_int(r->json, "replayed") >= 2, "replay all: %s", r->body);
    wt_free(r);
    seq = dead_seq("dead-2");
    snprintf(path, sizeof path, "/api/v1/dlq/%lld", seq);
    wt_expect(wt_req(&w, "DELETE", path, NULL, "viewer", NULL), 403, "permission_denied", NULL, "a viewer purges");
    r = wt_req(&w, "DELETE", path, NULL, "operator", NULL);
    CHECK(r->status == 200 && sa_int(r->json, "purged") == 1, "purge one: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "DELETE", path, NULL, "operator", NULL), 404, "not_found", NULL, "purge it again");
    r = wt_req(&w, "POST", "/api/v1/dlq/purge", NULL, "operator", NULL);
    CHECK(r->status == 200 && sa_int(r->json, "purged") >= 1, "purge all: %s", r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/dlq/replay", "{\"queue\":\"Bad Queue\"}", "operator", NULL), 400,
              "invalid_argument", "queue", "replay all of a bad queue name");
}

/* The per-minute rollup: w-1 succeeded and dead-* died in queue default. */
static void stats(void)
{
    long long ok = 0, dead = 0;
    for (int64_t until = ts_now_ms() + 15000; (ok < 1 || dead < 3) && ts_now_ms() < until; ts_sleep_ms(200)) {
        wt_resp *r = wt_req(&w, "GET", "/api/v1/stats?since=1h&queue=default", NULL, "viewer", NULL);
        ok = dead = 0;
        json_t *m = json_object_get(r->json, "minutes");
        for (size_t i = 0; i < json_array_size(m); i++) {
            ok += sa_int(json_array_get(m, i), "succeeded");
            dead += sa_int(json_array_get(m, i), "dead");
        }
        CHECK(r->status == 200 && strlen(sa_str(r->json, "rolled_to")) > 10, "stats: %.200s", r->body);
        wt_free(r);
    }
    CHECK(ok >= 1 && dead >= 3, "the rollup counts the finished tasks (succeeded %lld, dead %lld)", ok, dead);
    CHECK(ts_pg_long("SELECT count(*) FROM task_minutes WHERE queue = 'default'") >= 1, "task_minutes rows");
    wt_expect(wt_req(&w, "GET", "/api/v1/stats?since=9d", NULL, "viewer", NULL), 400, "invalid_argument", "since",
              "stats beyond the rollup's retention");
}

static void cluster(void)
{
    json_t *j = ok_json(wt_req(&w, "GET", "/api/v1/leader", NULL, "viewer", NULL), 200, "leader");
    CHECK(json_object_get(j, "leader") != NULL, "leader reply");
    json_decref(j);
    j = ok_json(wt_req(&w, "GET", "/api/v1/agents", NULL, "viewer", NULL), 200, "agents");
    CHECK(json_array_size(json_object_get(j, "agents")) == 1, "one agent");
    json_decref(j);
    j = ok_json(wt_req(&w, "GET", "/api/v1/queues", NULL, "viewer", NULL), 200, "queues");
    CHECK(json_array_size(json_object_get(j, "queues")) >= 3, "queue lanes");
    json_decref(j);
    /* queue pause/resume (issue 17): path + optional body, operator only */
    wt_resp *qr = wt_req(&w, "POST", "/api/v1/queues/default/pause", "{\"priority\":\"low\",\"reason\":\"test\"}",
                         "operator", NULL);
    CHECK(qr->status == 200 && json_is_true(json_object_get(qr->json, "paused")) &&
              !strcmp(json_string_value(json_object_get(qr->json, "priority")), "low"),
          "pause lane: %s", qr->body);
    wt_free(qr);
    wt_expect(wt_req(&w, "POST", "/api/v1/queues/default/pause", NULL, "viewer", NULL), 403, "permission_denied", NULL,
              "a viewer cannot pause");
    wt_expect(wt_req(&w, "POST", "/api/v1/queues/Bad%20Q/pause", NULL, "operator", NULL), 400, "invalid_argument",
              "queue", "bad queue name");
    wt_expect(wt_req(&w, "POST", "/api/v1/queues/default/pause", "{\"colour\":1}", "operator", NULL), 400,
              "invalid_argument", "colour", "unknown field");
    j = ok_json(wt_req(&w, "GET", "/api/v1/queues", NULL, "viewer", NULL), 200, "queues");
    int paused = 0;
    for (size_t k = 0; k < json_array_size(json_object_get(j, "queues")); k++)
        paused += json_is_true(json_object_get(json_array_get(json_object_get(j, "queues"), k), "paused"));
    CHECK(paused == 1, "one lane paused (%d)", paused);
    json_decref(j);
    wt_expect(wt_req(&w, "POST", "/api/v1/queues/default/resume", NULL, "operator", NULL), 200, NULL, NULL,
              "resume with an empty body");
    /* limits (issue 17): a queue default no agent serves is always accepted;
     * a key limit only when the registered agent has the `limits` feature */
    wt_expect(wt_req(&w, "POST", "/api/v1/limits", "{\"queue\":\"nolimq\",\"concurrency\":2}", "operator", NULL),
              200, NULL, NULL, "POST /api/v1/limits (a queue default)");
    wt_expect(wt_req(&w, "POST", "/api/v1/limits", "{\"queue\":\"nolimq\",\"concurrency\":2}", "viewer", NULL),
              403, "permission_denied", NULL, "a viewer cannot set a limit");
    j = ok_json(wt_req(&w, "GET", "/api/v1/agents", NULL, "viewer", NULL), 200, "agents");
    char *feats = json_dumps(json_object_get(json_array_get(json_object_get(j, "agents"), 0), "features"),
                             JSON_COMPACT | JSON_ENCODE_ANY);
    bool has_limits = feats && strstr(feats, "\"limits\"") != NULL;
    free(feats);
    json_decref(j);
    wt_resp *lr = wt_req(&w, "PUT", "/api/v1/limits/partner:api", "{\"rate\":10,\"burst\":5}", "operator", NULL);
    CHECK(has_limits ? lr->status == 200 : lr->status == 409, "PUT /api/v1/limits/{key}: %ld %s (agent has limits: %d)",
          lr->status, lr->body, has_limits);
    wt_free(lr);
    wt_expect(wt_req(&w, "PUT", "/api/v1/limits/bad%20key", "{\"concurrency\":1}", "operator", NULL), 400,
              "invalid_argument", "key", "bad key");
    /* %00 decoded to NUL cut the key: this set a limit on key "a" */
    wt_expect(wt_req(&w, "PUT", "/api/v1/limits/a%00b", "{\"concurrency\":1}", "operator", NULL), 400,
              "invalid_argument", "key", "a key with %00");
    /* %ff (not UTF-8) was dropped silently: "give exactly one of key or queue", "status must not be an empty list" */
    const char *not_utf8[] = {"/api/v1/limits/%ff", "/api/v1/workflows?status=%ff", "/api/v1/workflows/%c3%28"};
    for (size_t i = 0; i < sizeof not_utf8 / sizeof not_utf8[0]; i++) {
        wt_resp *u = wt_req(&w, "GET", not_utf8[i], NULL, "viewer", NULL);
        CHECK(u->status == 400 && strstr(u->body, "invalid_argument") && strstr(u->body, "not valid UTF-8"),
              "GET %s: %ld %s", not_utf8[i], u->status, u->body);
        wt_free(u);
    }
    /* nodes=maybe read as false (the nodes left out without a word) */
    wt_expect(wt_req(&w, "GET", "/api/v1/workflows/w1?nodes=maybe", NULL, "viewer", NULL), 400, "invalid_argument",
              "nodes", "a boolean parameter that is neither true nor false");
    j = ok_json(wt_req(&w, "GET", "/api/v1/limits", NULL, "viewer", NULL), 200, "limits");
    CHECK(json_array_size(json_object_get(j, "limits")) == (has_limits ? 2u : 1u), "limit list");
    json_decref(j);
    wt_expect(wt_req(&w, "GET", "/api/v1/limits/none", NULL, "viewer", NULL), 404, "not_found", "key",
              "GET an unknown key");
    wt_expect(wt_req(&w, "DELETE", "/api/v1/limits/none", NULL, "operator", NULL), 404, "not_found", "key",
              "DELETE an unknown key");
    /* a queue default had no REST route to read or delete it */
    j = ok_json(wt_req(&w, "GET", "/api/v1/limits/queues/nolimq", NULL, "viewer", NULL), 200, "limit");
    CHECK(json_integer_value(json_object_get(json_object_get(j, "limit"), "concurrency")) == 2, "GET a queue default");
    json_decref(j);
    wt_expect(wt_req(&w, "DELETE", "/api/v1/limits/queues/nolimq", NULL, "viewer", NULL), 403, NULL, NULL,
              "a viewer deletes a queue default");
    wt_expect(wt_req(&w, "DELETE", "/api/v1/limits/queues/nolimq", NULL, "operator", NULL), 200, NULL, NULL,
              "DELETE a queue default");
    wt_expect(wt_req(&w, "GET", "/api/v1/limits/queues/nolimq", NULL, "viewer", NULL), 404, "not_found", "queue",
              "GET a deleted queue default");
    wt_expect(wt_req(&w, "GET", "/api/v1/limits/queues/Bad%20Q", NULL, "viewer", NULL), 400, "invalid_argument",
              "queue", "GET a queue default of a bad queue name");
    wt_expect(wt_req(&w, "GET", "/api/v1/leader?x=1", NULL, "viewer", NULL), 400, "invalid_argument", "x",
              "a query parameter a route does not take");
    wt_resp *r = wt_req(&w, "PUT", "/api/v1/tasks", "{}", "operator", NULL);
    char h[128];
    CHECK(r->status == 405 && wt_header(r, "Allow", h, sizeof h) && strstr(h, "POST") && strstr(h, "GET"),
          "PUT /api/v1/tasks: 405 with Allow (%ld)", r->status);
    wt_free(r);
    wt_expect(wt_req(&w, "GET", "/api/v1/nothing", NULL, "viewer", NULL), 404, "not_found", NULL, "no such route");
    wt_expect(wt_req(&w, "GET", "/api/v1/agents", NULL, "Bearer not-a-token-at-all", NULL), 401, "unauthenticated",
              NULL, "a bad bearer token");
    r = wt_req(&w, "GET", "/api/v1/agents", NULL, NULL, NULL);
    CHECK(r->status == 401 && wt_header(r, "WWW-Authenticate", h, sizeof h) && strstr(h, "Bearer"),
          "401 carries WWW-Authenticate: Bearer");
    wt_free(r);
    /* The event stream: a bad filter, and a stream that opens (web_sse tests the events). */
    wt_expect(wt_req(&w, "GET", "/api/v1/events?queue=Bad.Q", NULL, "viewer", NULL), 400, "invalid_argument",
              "queue", "events with a bad queue filter");
    wt_expect(wt_req(&w, "GET", "/api/v1/events", NULL, NULL, NULL), 401, "unauthenticated", NULL,
              "events without a token");
}

/* The workflow routes (docs/WORKFLOWS.md; sched_workflow tests the verbs). */
static void workflows(void)
{
    wt_resp *r = wt_req(&w, "POST", "/api/v1/workflows",
                        "{\"id\":\"wweb\",\"open\":true,\"tasks\":[{\"id\":\"a\",\"handler\":\"echo\"}]}", "operator",
                        NULL);
    char h[256];
    CHECK(r->status == 201 && wt_header(r, "Location", h, sizeof h) && !strcmp(h, "/api/v1/workflows/wweb"),
          "POST /api/v1/workflows: %ld %.200s", r->status, r->body);
    wt_free(r);
    wt_expect(wt_req(&w, "POST", "/api/v1/workflows/wweb/add",
                     "{\"close\":true,\"tasks\":[{\"id\":\"b\",\"handler\":\"echo\",\"depends_on\":[\"a\"]}]}",
                     "operator", NULL),
              200, NULL, NULL, "add and close");
    wt_expect(wt_req(&w, "POST", "/api/v1/workflows/wweb/add", "{\"tasks\":[{\"id\":\"c\",\"handler\":\"echo\"}]}",
                     "operator", NULL),
              409, "failed_precondition", "id", "add to a closed workflow");
    json_t *j = ok_json(wt_req(&w, "GET", "/api/v1/workflows/wweb?limit=1", NULL, "viewer", NULL), 200, "get");
    CHECK(json_array_size(json_object_get(j, "nodes")) == 1 && sa_str(j, "next_cursor")[0], "node page");
    json_decref(j);
    j = ok_json(wt_req(&w, "GET", "/api/v1/workflows?status=running,succeeded", NULL, "viewer", NULL), 200, "list");
    CHECK(json_array_size(json_object_get(j, "workflows")) == 1, "one workflow listed");
    json_decref(j);
    wt_expect(wt_req(&w, "POST", "/api/v1/workflows/nope/cancel", NULL, "operator", NULL), 404, "not_found", "id",
              "cancel an unknown workflow");
    wt_expect(wt_req(&w, "POST", "/api/v1/workflows/wweb/cancel", NULL, "viewer", NULL), 403, "permission_denied",
              NULL, "a viewer cannot cancel");
}

static char *cookie_of(const wt_resp *r)
{
    char h[1024];
    if (!wt_header(r, "Set-Cookie", h, sizeof h))
        return strdup("");
    char *semi = strchr(h, ';');
    if (semi)
        *semi = '\0';
    return strdup(h);
}

static void sessions(void)
{
    char body[200], h[1024], auth[1200];
    wt_expect(wt_req(&w, "POST", "/api/v1/login", "{\"token\":\"wrong-token-wrong-token\"}", NULL, NULL), 401,
              "unauthenticated", "token", "login with a wrong token");
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", w.viewer);
    wt_resp *r = wt_req(&w, "POST", "/api/v1/login", body, NULL, NULL);
    CHECK(r->status == 200 && !strcmp(sa_str(r->json, "role"), "viewer") && !strcmp(sa_str(r->json, "name"), "watcher"),
          "viewer login: %s", r->body);
    const char *sc = wt_header(r, "Set-Cookie", h, sizeof h);
    CHECK(sc && strstr(sc, "jetsched_session=") && strstr(sc, "HttpOnly") && strstr(sc, "Secure") &&
              strstr(sc, "SameSite=Strict"),
          "the session cookie is HttpOnly; Secure; SameSite=Strict: %s", sc ?: "(none)");
    CHECK(!strstr(sc ?: "", w.viewer), "the cookie does not hold the token");
    char *vcookie = cookie_of(r);
    wt_free(r);
    snprintf(auth, sizeof auth, "cookie:%s", vcookie);
    r = wt_req(&w, "GET", "/api/v1/session", NULL, auth, NULL);
    CHECK(r->status == 200 && !strcmp(sa_str(r->json, "role"), "viewer") && !strcmp(sa_str(r->json, "auth"), "cookie") &&
              strlen(sa_str(r->json, "csrf_token")) > 20,
          "session by cookie: %s", r->body);
    char vcsrf[100];
    snprintf(vcsrf, sizeof vcsrf, "X-CSRF-Token: %s", sa_str(r->json, "csrf_token"));
    wt_free(r);
    wt_expect(wt_req(&w, "GET", "/api/v1/tasks?limit=1", NULL, auth, NULL), 200, NULL, NULL, "a viewer session reads");
    const char *vh[] = {vcsrf, NULL};
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", "{\"handler\":\"echo\"}", auth, vh), 403, "permission_denied", NULL,
              "a viewer session acts");
    wt_expect(wt_req(&w, "GET", "/api/v1/session", NULL, NULL, NULL), 401, "unauthenticated", NULL,
              "session without a cookie");

    snprintf(body, sizeof body, "{\"token\":\"%s\"}", w.operator_);
    r = wt_req(&w, "POST", "/api/v1/login", body, NULL, NULL);
    char csrf[100];
    snprintf(csrf, sizeof csrf, "X-CSRF-Token: %s", sa_str(r->json, "csrf_token"));
    char *ocookie = cookie_of(r);
    CHECK(r->status == 200 && !strcmp(sa_str(r->json, "role"), "operator"), "operator login: %s", r->body);
    wt_free(r);
    snprintf(auth, sizeof auth, "cookie:%s", ocookie);
    const char *task = "{\"id\":\"cookie-1\",\"handler\":\"echo\",\"delay\":\"1h\"}";
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", task, auth, NULL), 403, "permission_denied", NULL,
              "a cookie state change without the CSRF header");
    const char *bad[] = {"X-CSRF-Token: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL};
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", task, auth, bad), 403, "permission_denied", NULL,
              "a wrong CSRF header");
    const char *cross[] = {csrf, "Sec-Fetch-Site: cross-site", NULL};
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", task, auth, cross), 403, "permission_denied", NULL,
              "a cross-site request with the right CSRF header");
    const char *other[] = {csrf, vcsrf, NULL};
    (void)other;
    const char *vswap[] = {vcsrf, NULL};
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", task, auth, vswap), 403, "permission_denied", NULL,
              "the CSRF token of another session");
    const char *good[] = {csrf, "Sec-Fetch-Site: same-origin", NULL};
    wt_expect(wt_req(&w, "POST", "/api/v1/tasks", task, auth, good), 201, NULL, NULL,
              "a cookie state change with the CSRF header");
    /* A tampered cookie: the role changed in the payload is refused. */
    char tampered[1200];
    snprintf(tampered, sizeof tampered, "cookie:%s", ocookie);
    char *dot = strrchr(tampered, '.');
    if (dot && dot[1])
        dot[1] = dot[1] == 'A' ? 'B' : 'A';
    wt_expect(wt_req(&w, "GET", "/api/v1/session", NULL, tampered, NULL), 401, "unauthenticated", NULL,
              "a tampered session cookie");
    r = wt_req(&w, "POST", "/api/v1/logout", "{}", auth, NULL);
    CHECK(r->status == 200 && wt_header(r, "Set-Cookie", h, sizeof h) && strstr(h, "Max-Age=0"),
          "logout clears the cookie");
    wt_free(r);
    free(vcookie);
    free(ocookie);
}

static void statics(const char *root)
{
    wt_resp *r = wt_req(&w, "GET", "/", NULL, NULL, NULL);
    char h[256], etag[128] = "";
    CHECK(r->status == 200 && strstr(r->body, "console-index") && wt_header(r, "Content-Type", h, sizeof h) &&
              !strncmp(h, "text/html", 9),
          "GET / is index.html as text/html (%ld)", r->status);
    CHECK(wt_header(r, "Content-Security-Policy", h, sizeof h) && strstr(h, "script-src 'self'"), "CSP header");
    CHECK(wt_header(r, "X-Content-Type-Options", h, sizeof h) && !strcmp(h, "nosniff"), "nosniff");
    wt_header(r, "ETag", etag, sizeof etag);
    wt_free(r);
    r = wt_req(&w, "GET", "/js/app.js", NULL, NULL, NULL);
    CHECK(r->status == 200 && wt_header(r, "Content-Type", h, sizeof h) && !strncmp(h, "text/javascript", 15),
          "a .js file as text/javascript");
    wt_free(r);
    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    const char *hh[] = {inm, NULL};
    r = wt_req(&w, "GET", "/", NULL, NULL, hh);
    CHECK(etag[0] && r->status == 304, "If-None-Match with the ETag: 304 (%ld)", r->status);
    wt_free(r);
    r = wt_req(&w, "HEAD", "/", NULL, NULL, NULL);
    CHECK(r->status == 200 && r->len == 0, "HEAD /");
    wt_free(r);
    const char *evil[] = {"/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/.hidden", "/js//app.js",
                          "/js/", "/nothing.html", "/..%2fsecret.txt"};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        r = wt_req(&w, "GET", evil[i], NULL, NULL, NULL);
        CHECK(r->status == 404 && !strstr(r->body, "TOP SECRET"), "GET %s: 404 (%ld)", evil[i], r->status);
        wt_free(r);
    }
    r = wt_req(&w, "POST", "/", "{}", NULL, NULL);
    CHECK(r->status == 405, "POST /: 405");
    wt_free(r);
    (void)root;
}

static void audit_and_secrets(void)
{
    CHECK(ts_log_contains(&w.s, "audit: POST /api/v1/tasks (task.submit) by ops [operator, bearer] from 127.0.0.1: 201"),
          "audit line of a submit");
    CHECK(ts_log_contains(&w.s, "audit: POST /api/v1/tasks/w-2/cancel (task.cancel) by watcher [viewer, bearer] from "
                                "127.0.0.1: 403 permission_denied"),
          "audit line of a refused viewer");
    CHECK(ts_log_contains(&w.s, "audit: POST /api/v1/tasks (task.submit) by ops [operator, session]"),
          "audit line of a cookie-authenticated action");
    CHECK(ts_log_contains(&w.s, "audit: POST /api/v1/login (login) by - [none, bearer] from 127.0.0.1: 401"),
          "audit line of a failed login");
    CHECK(!ts_log_contains(&w.s, w.operator_) && !ts_log_contains(&w.s, w.viewer) &&
              !ts_log_contains(&w.s, "0123456789abcdef0123456789abcdef"),
          "no token or session key in the log");
}

static void limiter(void)
{
    double before = wt_metric_sum(&w, "jetsched_web_auth_failures_total");
    int last = 0;
    for (int i = 0; i < 6; i++) {
        wt_resp *r = wt_req(&w, "POST", "/api/v1/login", "{\"token\":\"guess-guess-guess-guess\"}", NULL, NULL);
        last = (int)r->status;
        wt_free(r);
    }
    CHECK(last == 429, "repeated failed logins: 429 (got %d)", last);
    char body[200], h[64];
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", w.operator_);
    wt_resp *r = wt_req(&w, "POST", "/api/v1/login", body, NULL, NULL);
    CHECK(r->status == 429 && r->json && !strcmp(sa_code(r->json), "resource_exhausted") &&
              wt_header(r, "Retry-After", h, sizeof h) && atoi(h) > 0,
          "even the right token is refused while throttled, with Retry-After (%ld %s)", r->status, r->body);
    wt_free(r);
    double failures = wt_metric_sum(&w, "jetsched_web_auth_failures_total");
    CHECK(failures >= 5 && failures > before, "failed logins counted in /metrics (%.0f -> %.0f)", before, failures);
    CHECK(ss_metric(&w.s, "jetsched_web_auth_throttled_total") >= 1, "throttled requests counted");
}

int main(void)
{
    ss_env();
    ts_setup("default,parked");
    curl_global_init(CURL_GLOBAL_ALL);
    char *root = th_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/js", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/index.html", root);
    FILE *f = fopen(path, "w");
    fputs("<!doctype html><title>console-index</title>\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/js/app.js", root);
    f = fopen(path, "w");
    fputs("\"use strict\";\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/.hidden", root);
    f = fopen(path, "w");
    fputs("TOP SECRET\n", f);
    fclose(f);
    char www[600];
    snprintf(www, sizeof www, "%.500s/www", root);
    /* The served root is a subdirectory, with a secret file beside it. */
    snprintf(path, sizeof path, "mkdir -p %s && mv %s/index.html %s/js %s/.hidden %s/ && echo 'TOP SECRET' > "
                                "%s/secret.txt", www, root, root, root, www, root);
    CHECK(system(path) == 0, "web root prepared");

    ts_agent ag;
    ts_agent_start(&ag, "agent-web",
                   "queues = ( { name = \"default\"; concurrency = 4; } );\n"
                   "exec = { commands = ( { name = \"fail\"; argv = [\"/bin/false\"]; } ); };\n");
    wt_start(&w, "web-api", www, NULL,
             "api = { max_payload = \"1KiB\"; };\nrollup = { interval = \"200ms\"; grace = \"0s\"; };");

    json_t *openapi = ok_json(wt_req(&w, "GET", "/api/v1/openapi.json", NULL, NULL, NULL), 200, "openapi.json");
    CHECK(!strcmp(sa_str(openapi, "openapi"), "3.0.3"), "OpenAPI 3.0.3");
    check_verbs_routed(openapi);
    check_docs(openapi);

    tasks();
    schedules();
    dlq();
    stats();
    cluster();
    workflows();
    sessions();
    statics(www);
    {
        /* An event stream opens: its first bytes, then the client hangs up. */
        wt_resp *r = NULL;
        CURL *c = curl_easy_init();
        char url[200], auth[200];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/events?queue=default", w.port);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", w.viewer);
        struct curl_slist *hl = curl_slist_append(NULL, auth);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 700L);
        FILE *devnull = fopen("/dev/null", "w");
        curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
        curl_easy_perform(c);
        long status = 0;
        char *type = NULL;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
        CHECK(status == 200 && type && !strcmp(type, "text/event-stream"), "events: 200 text/event-stream (%ld)",
              status);
        fclose(devnull);
        curl_slist_free_all(hl);
        curl_easy_cleanup(c);
        wt_record("GET", "/api/v1/events");
        (void)r;
    }
    audit_and_secrets();
    limiter();
    wt_check_coverage(openapi);
    json_decref(openapi);

    CHECK(ts_agent_stop(&w.s, SIGTERM, 15000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    free(root);
    curl_global_cleanup();
    return ts_finish();
}
