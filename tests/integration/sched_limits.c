/* limit.set|get|list|delete (issue 17, docs/API.md "Limits") through a real
 * schedulerd and PostgreSQL: set, replace, get, list and delete key limits
 * and queue defaults; bad requests refused naming the field; the rolling
 * upgrade rule (DESIGN §12): while a registry entry of an agent without the
 * `limits` feature serves a queue, limit.set refuses with
 * failed_precondition (a key limit: any such agent; a queue default: an
 * agent of that queue), and accepts again once it is gone. */
#include "sched_api_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_agent(kvStore *kv, const char *id, const char *json)
{
    uint64_t rev = 0;
    CHECK(kvStore_PutString(&rev, kv, id, json) == NATS_OK, "registry entry %s written", id);
}

static void verbs(void)
{
    json_t *r = sa_req("limit.set", "{\"key\":\"partner:api\",\"rate\":10,\"burst\":5}");
    CHECK(!strcmp(sa_str(r, "limit.key"), "partner:api") && json_real_value(json_object_get(
                                                                    json_object_get(r, "limit"), "rate")) == 10.0 &&
              sa_int(r, "limit.burst") == 5 && json_is_null(json_object_get(json_object_get(r, "limit"), "concurrency")) &&
              sa_int(r, "limit.in_use") == 0 && sa_int(r, "limit.waiting") == 0,
          "limit.set rate reply");
    sa_expect_ok(r, "limit.set rate");
    r = sa_req("limit.set", "{\"key\":\"customer-42\",\"concurrency\":3}");
    CHECK(sa_int(r, "limit.concurrency") == 3 && sa_int(r, "limit.burst") == 1, "limit.set concurrency reply");
    sa_expect_ok(r, "limit.set concurrency");
    /* set replaces the whole limit */
    r = sa_req("limit.set", "{\"key\":\"customer-42\",\"concurrency\":2,\"rate\":0.5}");
    CHECK(sa_int(r, "limit.concurrency") == 2 &&
              json_real_value(json_object_get(json_object_get(r, "limit"), "rate")) == 0.5,
          "limit.set replaces");
    sa_expect_ok(r, "limit.set replace");
    r = sa_req("limit.set", "{\"queue\":\"lq\",\"concurrency\":4}");
    CHECK(!strcmp(sa_str(r, "limit.queue"), "lq") && sa_int(r, "limit.concurrency") == 4 &&
              !json_object_get(json_object_get(r, "limit"), "key"),
          "limit.set queue default");
    sa_expect_ok(r, "limit.set queue");
    r = sa_req("limit.get", "{\"key\":\"customer-42\"}");
    CHECK(sa_int(r, "limit.concurrency") == 2 && strlen(sa_str(r, "limit.updated_at")) >= 20, "limit.get");
    sa_expect_ok(r, "limit.get");
    r = sa_req("limit.list", "{}");
    json_t *l = json_object_get(r, "limits");
    CHECK(json_array_size(l) == 3, "limit.list: 3 limits (%zu)", json_array_size(l));
    CHECK(!strcmp(sa_str(json_array_get(l, 0), "queue"), "lq") &&
              !strcmp(sa_str(json_array_get(l, 1), "key"), "customer-42") &&
              !strcmp(sa_str(json_array_get(l, 2), "key"), "partner:api"),
          "limit.list order: queue defaults, then keys by name");
    sa_expect_ok(r, "limit.list");
    /* pages: limit 2 gives the queue default and the first key, then a
     * cursor to the last key; a forged cursor is refused naming it */
    r = sa_req("limit.list", "{\"limit\":2}");
    l = json_object_get(r, "limits");
    const char *next = sa_str(r, "next_cursor");
    CHECK(json_array_size(l) == 2 && next && *next, "limit.list limit 2: 2 limits and a next_cursor (%zu)",
          json_array_size(l));
    char page2[600];
    snprintf(page2, sizeof page2, "{\"limit\":2,\"cursor\":\"%s\"}", next ? next : "");
    sa_expect_ok(r, "limit.list page 1");
    r = sa_req("limit.list", page2);
    l = json_object_get(r, "limits");
    CHECK(json_array_size(l) == 1 && !strcmp(sa_str(json_array_get(l, 0), "key"), "partner:api") &&
              json_is_null(json_object_get(r, "next_cursor")),
          "limit.list page 2: the last key, no next_cursor (%zu)", json_array_size(l));
    sa_expect_ok(r, "limit.list page 2");
    sa_expect_error(sa_req("limit.list", "{\"cursor\":\"bm9wZQ\"}"), "invalid_argument", "cursor",
                    "forged cursor");
    sa_expect_error(sa_req("limit.list", "{\"limit\":0}"), "invalid_argument", "limit", "limit 0");
    r = sa_req("limit.delete", "{\"key\":\"customer-42\"}");
    CHECK(json_is_true(json_object_get(r, "deleted")), "limit.delete");
    sa_expect_ok(r, "limit.delete");
    sa_expect_error(sa_req("limit.get", "{\"key\":\"customer-42\"}"), "not_found", "key", "deleted key");
    sa_expect_error(sa_req("limit.delete", "{\"key\":\"customer-42\"}"), "not_found", "key", "delete twice");
    sa_expect_ok(sa_req("limit.delete", "{\"queue\":\"lq\"}"), "delete the queue default");
    CHECK(ts_pg_long("SELECT count(*) FROM limits") == 1, "one limit left in PostgreSQL");
}

static void errors(void)
{
    sa_expect_error(sa_req("limit.set", "{\"concurrency\":1}"), "invalid_argument", "key", "no key nor queue");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"queue\":\"lq\",\"concurrency\":1}"), "invalid_argument",
                    "queue", "both key and queue");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"bad key!\",\"concurrency\":1}"), "invalid_argument", "key",
                    "key with a space");
    char big[200];
    memset(big, 'k', 129);
    big[129] = '\0';
    sa_expect_error(sa_reqf("limit.set", "{\"key\":\"%s\",\"concurrency\":1}", big), "invalid_argument", "key",
                    "key of 129 characters");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"\",\"concurrency\":1}"), "invalid_argument", "key", "empty key");
    sa_expect_error(sa_req("limit.set", "{\"queue\":\"Bad\",\"concurrency\":1}"), "invalid_argument", "queue",
                    "bad queue");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\"}"), "invalid_argument", "concurrency", "nothing to set");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"concurrency\":0}"), "invalid_argument", "concurrency",
                    "concurrency 0");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"concurrency\":\"3\"}"), "invalid_argument", "concurrency",
                    "concurrency as a string");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":0}"), "invalid_argument", "rate", "rate 0");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":-1}"), "invalid_argument", "rate", "negative rate");
    /* below 1e-6 a token's time overflowed PostgreSQL's interval in jetsched_limit_acquire (tasks parked forever) */
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":1e-300}"), "invalid_argument", "rate", "rate 1e-300");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":9e-7}"), "invalid_argument", "rate", "rate 9e-7");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":1e308}"), "invalid_argument", "rate", "rate 1e308");
    sa_expect_ok(sa_req("limit.set", "{\"key\":\"tiny-rate\",\"rate\":0.000001,\"burst\":1000000}"), "rate 1e-6");
    sa_expect_ok(sa_req("limit.delete", "{\"key\":\"tiny-rate\"}"), "delete tiny-rate");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":\"fast\"}"), "invalid_argument", "rate",
                    "rate as text");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"concurrency\":2,\"burst\":3}"), "invalid_argument", "burst",
                    "burst without rate");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":1,\"burst\":0}"), "invalid_argument", "burst",
                    "burst 0");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"concurrency\":1,\"color\":\"red\"}"), "invalid_argument",
                    "color", "unknown field");
    sa_expect_error(sa_req("limit.list", "{\"key\":\"a\"}"), "invalid_argument", "key", "list takes no key");
    sa_expect_error(sa_req("limit.get", "{}"), "invalid_argument", "key", "get without key");
    sa_expect_error(sa_req("limit.delete", "{\"key\":7}"), "invalid_argument", "key", "key not a string");
    CHECK(ts_pg_long("SELECT count(*) FROM limits WHERE name = 'a'") == 0, "refused requests stored nothing");
}

/* task.submit takes the two limit headers (and checks their values); other Jetsched-* stay refused. */
static void submit_headers(void)
{
    json_t *r = sa_req("task.submit", "{\"queue\":\"lq\",\"handler\":\"echo\",\"validate_only\":true,\"headers\":"
                                      "{\"Jetsched-Concurrency-Key\":\"cust:1\",\"Jetsched-Rate-Key\":\"partner.api\"}}");
    CHECK(json_is_true(json_object_get(r, "valid")), "task.submit accepts the limit headers");
    sa_expect_ok(r, "submit with limit headers");
    sa_expect_error(sa_req("task.submit", "{\"queue\":\"lq\",\"handler\":\"echo\",\"headers\":"
                                          "{\"Jetsched-Rate-Key\":\"no spaces\"}}"),
                    "invalid_argument", "headers.Jetsched-Rate-Key", "an invalid rate key");
    sa_expect_error(sa_req("task.submit", "{\"queue\":\"lq\",\"handler\":\"echo\",\"headers\":"
                                          "{\"Jetsched-Task-Id\":\"x\"}}"),
                    "invalid_argument", "headers.Jetsched-Task-Id", "other Jetsched-* headers stay refused");
}

/* The leader's releaser without agents: a task parked under a saturated
 * key (a slot leased to a dead agent) is published again as <id>.p<parks>
 * once that lease ends; one parked longer than limits.max_hold (2 s here)
 * ends expired. The rows are written as agentd parks them. */
static void park_row(const char *id, const char *key, int parks)
{
    CHECK(ts_pg_long("WITH t AS (INSERT INTO tasks (id, queue, handler, status) VALUES ('%s', 'rq', 'echo', "
                     "'throttled') RETURNING 1), w AS (INSERT INTO limit_waiting (task_id, key, kind, queue, parks, "
                     "subject, headers, payload) VALUES ('%s', '%s', 'concurrency', 'rq', %d, 'jetsched.task.rq.normal', "
                     "'[[\"Jetsched-Handler\",\"echo\"],[\"Jetsched-Concurrency-Key\",\"%s\"]]', 'hi') RETURNING 1) "
                     "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM w)",
                     id, id, key, parks, key) == 2,
          "parked %s", id);
}

static void releaser(void)
{
    sa_expect_ok(sa_req("limit.set", "{\"key\":\"rel-key\",\"concurrency\":1}"), "limit rel-key");
    ts_pg_long("WITH l AS (INSERT INTO limit_leases (key, agent, until) VALUES ('rel-key', 'gone-agent', "
               "clock_timestamp() + interval '1500 milliseconds') RETURNING 1) SELECT count(*) FROM l");
    park_row("rel-1", "rel-key", 3);
    ts_sleep_ms(700);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id = 'rel-1' AND status = 'throttled'") == 1,
          "held while the dead agent's lease lasts");
    CHECK(ts_wait_long(1, 5000, "SELECT count(*) FROM tasks WHERE id = 'rel-1' AND status = 'queued'") == 1,
          "published again once the lease ended");
    /* the message: rq lane, Nats-Msg-Id rel-1.p3, Jetsched-Task-Id rel-1, the parked headers and payload */
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    CHECK(js_GetLastMsg(&m, ts_js(), "JETSCHED_TASKS", "jetsched.task.rq.normal", NULL, &jerr) == NATS_OK,
          "the released message is in the stream (%d)", (int)jerr);
    const char *v = NULL;
    CHECK(m && natsMsgHeader_Get(m, "Nats-Msg-Id", &v) == NATS_OK && !strcmp(v, "rel-1.p3"), "Nats-Msg-Id %s",
          v ? v : "-");
    CHECK(m && natsMsgHeader_Get(m, "Jetsched-Task-Id", &v) == NATS_OK && !strcmp(v, "rel-1"), "Jetsched-Task-Id");
    CHECK(m && natsMsgHeader_Get(m, "Jetsched-Concurrency-Key", &v) == NATS_OK && !strcmp(v, "rel-key"),
          "the parked headers are kept");
    CHECK(m && natsMsg_GetDataLength(m) == 2 && !memcmp(natsMsg_GetData(m), "hi", 2), "the payload is kept");
    natsMsg_Destroy(m);

    /* a key held by a rate_limited outcome far longer than limits.max_hold */
    ts_pg_long("WITH h AS (INSERT INTO limit_holds (key, until) VALUES ('held-key', clock_timestamp() + interval '1 hour') "
               "RETURNING 1) SELECT count(*) FROM h");
    park_row("exp-1", "held-key", 1);
    CHECK(ts_wait_long(1, 8000, "SELECT count(*) FROM tasks WHERE id = 'exp-1' AND status = 'expired'") == 1,
          "a task parked longer than limits.max_hold ends expired");
    char *err = ts_pg_text("SELECT error FROM tasks WHERE id = 'exp-1'");
    CHECK(strstr(err, "limits.max_hold") != NULL, "expired error names limits.max_hold: %s", err);
    free(err);
    CHECK(ts_pg_long("SELECT count(*) FROM limit_waiting WHERE task_id = 'exp-1'") == 0, "its waiting row is gone");
}

static void rolling_upgrade(void)
{
    kvStore *kv = NULL;
    CHECK(js_KeyValue(&kv, ts_js(), "jetsched_agents") == NATS_OK, "registry bucket");
    /* an agentd of before the feature: no "features" in its entry */
    put_agent(kv, "old-agent", "{\"host\":\"h\",\"pid\":1,\"version\":\"0.9\",\"queues\":[\"oq\"],\"handlers\":[]}");
    put_agent(kv, "new-agent",
              "{\"host\":\"h\",\"pid\":2,\"version\":\"1.0\",\"queues\":[\"lq\"],\"handlers\":[],\"features\":[\"limits\"]}");
    json_t *r = sa_req("limit.set", "{\"key\":\"k1\",\"concurrency\":1}");
    CHECK(strstr(sa_message(r), "old-agent") != NULL, "the refusal names the old agent: %s", sa_message(r));
    sa_expect_error(r, "failed_precondition", NULL, "a key limit while an old agent serves a queue");
    sa_expect_error(sa_req("limit.set", "{\"queue\":\"oq\",\"concurrency\":1}"), "failed_precondition", NULL,
                    "the default of the old agent's queue");
    sa_expect_ok(sa_req("limit.set", "{\"queue\":\"lq\",\"concurrency\":1}"),
                 "the default of a queue only upgraded agents serve");
    CHECK(ts_pg_long("SELECT count(*) FROM limits WHERE name IN ('k1', 'oq')") == 0, "nothing stored when refused");
    sa_expect_ok(sa_req("limit.get", "{\"queue\":\"lq\"}"), "reads are not refused");
    CHECK(kvStore_Delete(kv, "old-agent") == NATS_OK, "the old agent leaves (upgraded)");
    sa_expect_ok(sa_req("limit.set", "{\"key\":\"k1\",\"concurrency\":1}"), "accepted once every agent has it");
    kvStore_Delete(kv, "new-agent");
    kvStore_Destroy(kv);
}

int main(void)
{
    ss_env();
    ts_setup("lq,oq,rq");
    ts_agent s;
    ss_start(&s, "limits-s", "limits = { max_hold = \"2s\"; };\n");
    verbs();
    errors();
    submit_headers();
    releaser();
    rolling_upgrade();
    CHECK(ts_agent_stop(&s, SIGTERM, 20000) == 0, "schedulerd exits 0");
    return ts_finish();
}
