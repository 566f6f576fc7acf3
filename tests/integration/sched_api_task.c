/* API task.* verbs (docs/API.md) against a real schedulerd and agentd:
 * submit (immediate, delayed, idempotent), get, list with paging and
 * filters, cancel (delayed, queued, finished, unknown), and bad input of
 * every kind answered with the stable code and the field at fault. */
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bad_input(void)
{
    sa_expect_error(sa_req("task.submit", "{\"payload\":\"x\"}"), "invalid_argument", "handler", "missing handler");
    sa_expect_error(sa_req("task.submit", "{\"hanlder\":\"echo\"}"), "invalid_argument", "hanlder", "unknown field");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"queue\":\"Bad.Queue\"}"), "invalid_argument",
                    "queue", "queue breaking the naming rule");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"priority\":\"urgent\"}"), "invalid_argument",
                    "priority", "unknown priority");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"priority\":1}"), "invalid_argument", "priority",
                    "priority of the wrong type");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"id\":\"has space\"}"), "invalid_argument", "id",
                    "bad task id");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"max_attempts\":0}"), "invalid_argument",
                    "max_attempts", "max_attempts 0");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"timeout\":\"10x\"}"), "invalid_argument", "timeout",
                    "bad timeout");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"deadline\":\"tomorrow\"}"), "invalid_argument",
                    "deadline", "bad deadline");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"backoff\":\"zigzag:1s\"}"), "invalid_argument",
                    "backoff", "bad backoff");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"run_at\":\"2030-01-01T00:00:00Z\",\"delay\":\"1m\"}"),
                    "invalid_argument", "delay", "run_at and delay");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"headers\":{\"Nats-Msg-Id\":\"x\"}}"),
                    "invalid_argument", "headers.Nats-Msg-Id", "reserved header");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"headers\":{\"X-A\":1}}"), "invalid_argument",
                    "headers.X-A", "header of the wrong type");
    char hbig[6000];
    memset(hbig, 'h', 5000);
    hbig[5000] = '\0';
    sa_expect_error(sa_reqf("task.submit", "{\"handler\":\"echo\",\"headers\":{\"X-1\":\"%s\",\"X-2\":\"%s\"}}", hbig, hbig),
                    "invalid_argument", "headers", "headers too large");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"payload\":\"a\",\"payload_base64\":\"YQ==\"}"),
                    "invalid_argument", "payload_base64", "both payloads");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"payload_base64\":\"!!!\"}"), "invalid_argument",
                    "payload_base64", "bad base64");
    /* Only canonical base64: "YQ=" (padding that does not complete the
     * group) and "YR==" (non-zero unused bits) were accepted as "a". */
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"payload_base64\":\"YQ=\"}"), "invalid_argument",
                    "payload_base64", "bad base64 padding");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"payload_base64\":\"YR==\"}"), "invalid_argument",
                    "payload_base64", "bad base64 unused bits");
    /* api.max_payload is 1KiB in this test. */
    char big[3000];
    memset(big, 'x', 2000);
    big[2000] = '\0';
    json_t *r = sa_reqf("task.submit", "{\"handler\":\"echo\",\"payload\":\"%s\"}", big);
    CHECK(strstr(sa_message(r), "1024") != NULL, "the limit is in the message: %s", sa_message(r));
    sa_expect_error(r, "payload_too_large", "payload", "payload over api.max_payload");
    sa_expect_error(sa_req("task.submit", "{\"handler\":"), "invalid_argument", NULL, "malformed JSON");
    sa_expect_error(sa_req("task.submit", "[1,2]"), "invalid_argument", NULL, "a JSON array body");
    sa_expect_error(sa_req("task.submit", "{\"handler\":\"echo\",\"handler\":\"noop\"}"), "invalid_argument", NULL,
                    "duplicate key");
    sa_expect_error(sa_req("task.frobnicate", "{}"), "invalid_argument", NULL, "unknown verb");
    sa_expect_error(sa_req("task.get", "{}"), "invalid_argument", "id", "get without id");
    sa_expect_error(sa_req("task.get", "{\"id\":\"nope-404\"}"), "not_found", "id", "get of an unknown id");
    sa_expect_error(sa_req("task.cancel", "{\"id\":\"nope-404\"}"), "not_found", "id", "cancel of an unknown id");
    sa_expect_error(sa_req("task.list", "{\"status\":\"sleeping\"}"), "invalid_argument", "status", "bad status");
    sa_expect_error(sa_req("task.list", "{\"limit\":0}"), "invalid_argument", "limit", "limit 0");
    sa_expect_error(sa_req("task.list", "{\"cursor\":\"@@@\"}"), "invalid_argument", "cursor", "bad cursor");
}

/* Every page of task.list for req (a JSON object of filters with "limit"),
 * following next_cursor: the ids must be want_sql's (a string_agg of ids in
 * listing order). */
static void list_all(const char *req, const char *want_sql)
{
    char got[4096] = "", cursor[512] = "", body[1024];
    for (int pages = 0; pages < 100; pages++) {
        if (cursor[0])
            snprintf(body, sizeof body, "%.*s,\"cursor\":\"%s\"}", (int)strlen(req) - 1, req, cursor);
        else
            snprintf(body, sizeof body, "%s", req);
        json_t *r = sa_req("task.list", body), *tasks = json_object_get(r, "tasks");
        CHECK(json_is_array(tasks), "%s: a tasks array", body);
        for (size_t i = 0; i < json_array_size(tasks); i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", got[0] ? "," : "",
                     json_string_value(json_object_get(json_array_get(tasks, i), "id")));
        json_t *next = json_object_get(r, "next_cursor");
        cursor[0] = '\0';
        if (json_is_string(next))
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(r);
        if (!cursor[0])
            break;
    }
    char *want = ts_pg_text("%s", want_sql);
    CHECK(!strcmp(got, want), "task.list %s:\n got  %s\n want %s", req, got, want);
    free(want);
}

int main(void)
{
    ss_env();
    ts_setup("default,parked");
    ts_agent ag, s1;
    ts_agent_start(&ag, "agent-api", NULL);
    ss_start(&s1, "api-1", "api = { max_payload = \"1KiB\"; };");

    bad_input();

    /* Immediate submit: committed, published, run by agentd. */
    json_t *r = sa_req("task.submit", "{\"handler\":\"echo\",\"payload\":\"{\\\"n\\\":1}\",\"headers\":{\"X-Trace\":\"t1\"}}");
    CHECK(sa_int(r, "created") == -1 && json_is_true(json_object_get(r, "created")), "created");
    CHECK(!strcmp(sa_str(r, "status"), "queued"), "status queued: %s", sa_str(r, "status"));
    char id[64];
    snprintf(id, sizeof id, "%s", sa_str(r, "id"));
    CHECK(strlen(id) == 26, "a generated ULID: %s", id);
    json_decref(r);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = '%s' AND status = 'succeeded'", id) == 1,
          "the submitted task ran");
    r = sa_reqf("task.get", "{\"id\":\"%s\"}", id);
    CHECK(!strcmp(sa_str(r, "task.status"), "succeeded"), "get: succeeded (%s)", sa_str(r, "task.status"));
    CHECK(!strcmp(sa_str(r, "task.payload"), "{\"n\":1}"), "get: payload (%s)", sa_str(r, "task.payload"));
    CHECK(!strcmp(sa_str(r, "task.handler"), "echo") && !strcmp(sa_str(r, "task.queue"), "default"), "get: fields");
    CHECK(strlen(sa_str(r, "task.created_at")) == 24 && strlen(sa_str(r, "task.finished_at")) == 24,
          "RFC 3339 times with ms: %s", sa_str(r, "task.created_at"));
    CHECK(json_array_size(json_object_get(r, "attempts")) == 1, "one attempt");
    CHECK(!strcmp(sa_str(r, "attempts.0.status"), "succeeded") && sa_int(r, "attempts.0.attempt") == 1,
          "the attempt record");
    json_decref(r);

    /* Idempotent submit: same id => created false, nothing published. */
    r = sa_req("task.submit", "{\"id\":\"fixed-1\",\"handler\":\"echo\",\"payload\":\"a\"}");
    CHECK(json_is_true(json_object_get(r, "created")), "fixed-1 created");
    json_decref(r);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = 'fixed-1' AND status = 'succeeded'") == 1,
          "fixed-1 ran");
    r = sa_req("task.submit", "{\"id\":\"fixed-1\",\"handler\":\"echo\",\"payload\":\"b\"}");
    CHECK(json_is_false(json_object_get(r, "created")), "resubmit: created false");
    CHECK(!strcmp(sa_str(r, "status"), "succeeded"), "resubmit: the existing status (%s)", sa_str(r, "status"));
    json_decref(r);
    ts_sleep_ms(1500);
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id = 'fixed-1'") == 1, "it did not run again");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'fixed-1' AND payload = 'a'::bytea") == 1,
          "the first payload stays");
    sa_expect_error(sa_req("task.cancel", "{\"id\":\"fixed-1\"}"), "failed_precondition", "id",
                    "cancel of a finished task");

    /* Binary payload comes back as payload_base64. */
    r = sa_req("task.submit", "{\"id\":\"bin-1\",\"queue\":\"parked\",\"handler\":\"noop\",\"payload_base64\":\"AP8=\"}");
    json_decref(r);
    r = sa_req("task.get", "{\"id\":\"bin-1\"}");
    CHECK(!strcmp(sa_str(r, "task.payload_base64"), "AP8="), "binary payload as base64 (%s)",
          sa_str(r, "task.payload_base64"));
    json_decref(r);

    /* traceparent fills trace_id. */
    json_decref(sa_req("task.submit", "{\"id\":\"traced-1\",\"queue\":\"parked\",\"handler\":\"noop\",\"headers\":"
                                      "{\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}}"));
    r = sa_req("task.get", "{\"id\":\"traced-1\"}");
    CHECK(!strcmp(sa_str(r, "task.trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736"), "trace_id (%s)",
          sa_str(r, "task.trace_id"));
    json_decref(r);

    /* Delayed submit, then cancel (in PostgreSQL at once). */
    r = sa_req("task.submit", "{\"id\":\"later-1\",\"handler\":\"echo\",\"delay\":\"1h\",\"timeout\":\"30s\","
                              "\"backoff\":\"fixed:1s\",\"max_attempts\":3}");
    CHECK(!strcmp(sa_str(r, "status"), "scheduled"), "delayed: scheduled (%s)", sa_str(r, "status"));
    json_decref(r);
    r = sa_req("task.get", "{\"id\":\"later-1\"}");
    CHECK(strlen(sa_str(r, "task.scheduled_for")) == 24 && sa_int(r, "task.max_attempts") == 3, "scheduled_for set");
    json_decref(r);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'later-1' AND headers->>'Jetsched-Timeout' = '30s'"
                     " AND headers->>'Jetsched-Backoff' = 'fixed:1s'") == 1, "timeout and backoff kept as headers");
    r = sa_req("task.cancel", "{\"id\":\"later-1\"}");
    CHECK(!strcmp(sa_str(r, "status"), "cancelled"), "cancel of a delayed task: cancelled (%s)", sa_str(r, "status"));
    json_decref(r);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'later-1' AND status = 'cancelled'") == 1,
          "cancelled in PostgreSQL");
    sa_expect_error(sa_req("task.cancel", "{\"id\":\"later-1\"}"), "failed_precondition", "id", "cancel twice");

    /* Cancel of a queued task (queue "parked" has no agent): a cancel key. */
    r = sa_req("task.submit", "{\"id\":\"parked-1\",\"queue\":\"parked\",\"handler\":\"echo\"}");
    json_decref(r);
    r = sa_req("task.cancel", "{\"id\":\"parked-1\"}");
    CHECK(!strcmp(sa_str(r, "status"), "cancelling"), "cancel of a queued task: cancelling (%s)", sa_str(r, "status"));
    json_decref(r);
    kvStore *kv = NULL;
    kvEntry *ke = NULL;
    CHECK(js_KeyValue(&kv, ts_js(), "jetsched_cancel") == NATS_OK && kvStore_Get(&ke, kv, "parked-1") == NATS_OK,
          "the key is in jetsched_cancel");
    kvEntry_Destroy(ke);
    kvStore_Destroy(kv);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'parked-1' AND dispatched_at IS NOT NULL") == 1,
          "parked-1 was published (dispatched_at)");

    /* Paging: 7 tasks, pages of 3, newest first. */
    for (int i = 0; i < 7; i++)
        json_decref(sa_reqf("task.submit", "{\"id\":\"page-%d\",\"queue\":\"parked\",\"handler\":\"listme\"}", i));
    char seen[1024] = "", cursor[512] = "";
    int pages = 0, total = 0;
    bool ordered = true;
    for (;;) {
        r = cursor[0] ? sa_reqf("task.list", "{\"handler\":\"listme\",\"limit\":3,\"cursor\":\"%s\"}", cursor)
                      : sa_req("task.list", "{\"handler\":\"listme\",\"limit\":3}");
        json_t *tasks = json_object_get(r, "tasks");
        CHECK(json_is_array(tasks), "a tasks array");
        pages++;
        for (size_t i = 0; i < json_array_size(tasks); i++) {
            const char *tid = json_string_value(json_object_get(json_array_get(tasks, i), "id"));
            char want[32];
            snprintf(want, sizeof want, "page-%d", 6 - total);
            ordered = ordered && tid && !strcmp(tid, want);
            CHECK(json_object_get(json_array_get(tasks, i), "payload") == NULL, "no payload in list entries");
            strcat(seen, tid ? tid : "?");
            total++;
        }
        json_t *next = json_object_get(r, "next_cursor");
        if (!json_is_string(next)) {
            CHECK(json_array_size(tasks) == 1, "the last page holds the rest (%zu)", json_array_size(tasks));
            json_decref(r);
            break;
        }
        CHECK(json_array_size(tasks) == 3, "a full page");
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(r);
        if (pages > 5)
            break;
    }
    CHECK(pages == 3 && total == 7, "7 tasks in 3 pages (%d tasks, %d pages: %s)", total, pages, seen);
    CHECK(ordered, "newest first: %s", seen);
    r = sa_req("task.list", "{\"queue\":\"parked\",\"status\":[\"queued\",\"scheduled\"],\"limit\":100}");
    CHECK(json_array_size(json_object_get(r, "tasks")) == 10, "status list filter: %zu (7 + bin-1 + traced-1 + parked-1)",
          json_array_size(json_object_get(r, "tasks")));
    json_decref(r);
    r = sa_req("task.list", "{\"status\":\"cancelled\"}");
    CHECK(json_array_size(json_object_get(r, "tasks")) == 1 && !strcmp(sa_str(r, "tasks.0.id"), "later-1"),
          "status filter");
    json_decref(r);
    r = sa_req("task.list", "{\"since\":\"2000-01-01T00:00:00Z\",\"until\":\"2001-01-01T00:00:00Z\"}");
    CHECK(json_array_size(json_object_get(r, "tasks")) == 0, "time window filter");
    json_decref(r);
    /* No state and no queue, or several states, without a handler or
     * schedule: one branch per state merged in (created_at, id) order (sql/0019 dropped the index of
     * all rows by created_at): every row, in order, ties on created_at
     * included, across pages. */
    CHECK(ts_pg_long("WITH i AS (INSERT INTO tasks (id, queue, status, created_at) SELECT 'mix-' || g, 'mixq',"
                     " (ARRAY['succeeded', 'dead', 'queued', 'running', 'retrying', 'expired'])[g %% 6 + 1],"
                     " timestamptz '2030-01-01' + (g / 3) * interval '1 second' FROM generate_series(1, 20) g"
                     " RETURNING 1) SELECT count(*) FROM i") == 20,
          "20 rows of mixed states");
    list_all("{\"limit\":4}", "SELECT string_agg(id, ',' ORDER BY created_at DESC, id DESC) FROM tasks");
    list_all("{\"status\":[\"dead\",\"succeeded\",\"running\"],\"limit\":3}",
             "SELECT string_agg(id, ',' ORDER BY created_at DESC, id DESC) FROM tasks"
             " WHERE status IN ('dead', 'succeeded', 'running')");
    list_all("{\"queue\":\"mixq\",\"status\":[\"dead\",\"succeeded\"],\"limit\":2}",
             "SELECT string_agg(id, ',' ORDER BY created_at DESC, id DESC) FROM tasks"
             " WHERE queue = 'mixq' AND status IN ('dead', 'succeeded')");
    list_all("{\"queue\":\"mixq\",\"limit\":3}",
             "SELECT string_agg(id, ',' ORDER BY created_at DESC, id DESC) FROM tasks WHERE queue = 'mixq'");
    list_all("{\"until\":\"2030-01-01T00:00:03Z\",\"limit\":2}",
             "SELECT string_agg(id, ',' ORDER BY created_at DESC, id DESC) FROM tasks"
             " WHERE created_at < '2030-01-01T00:00:03Z'");

    /* api.max_payload is reloadable: 4KiB after SIGHUP. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sed -i 's/1KiB/4KiB/' %s", s1.conf);
    CHECK(system(cmd) == 0, "conf edited");
    kill(s1.pid, SIGHUP);
    char big2[2100];
    memset(big2, 'y', 2000);
    big2[2000] = '\0';
    bool accepted = false;
    for (int i = 0; i < 50 && !accepted; i++) {
        r = sa_reqf("task.submit", "{\"queue\":\"parked\",\"handler\":\"echo\",\"payload\":\"%s\"}", big2);
        accepted = json_object_get(r, "error") == NULL;
        json_decref(r);
        if (!accepted)
            ts_sleep_ms(100);
    }
    CHECK(accepted, "2000 bytes accepted after the reload");

    double ok = ss_metric(&s1, "jetsched_api_requests_total{verb=\"task.submit\",code=\"ok\"}");
    double bad = ss_metric(&s1, "jetsched_api_requests_total{verb=\"task.submit\",code=\"invalid_argument\"}");
    double big = ss_metric(&s1, "jetsched_api_requests_total{verb=\"task.submit\",code=\"payload_too_large\"}");
    CHECK(ok >= 12 && bad >= 15 && big >= 1, "requests by verb and code: ok %g, invalid %g, too large %g", ok, bad, big);

    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
