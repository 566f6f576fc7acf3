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
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":\"fast\"}"), "invalid_argument", "rate",
                    "rate as text");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"concurrency\":2,\"burst\":3}"), "invalid_argument", "burst",
                    "burst without rate");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"rate\":1,\"burst\":0}"), "invalid_argument", "burst",
                    "burst 0");
    sa_expect_error(sa_req("limit.set", "{\"key\":\"a\",\"concurrency\":1,\"color\":\"red\"}"), "invalid_argument",
                    "color", "unknown field");
    sa_expect_error(sa_req("limit.list", "{\"key\":\"a\"}"), "invalid_argument", "key", "list takes no field");
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
    ts_setup("lq,oq");
    ts_agent s;
    ss_start(&s, "limits-s", NULL);
    verbs();
    errors();
    submit_headers();
    rolling_upgrade();
    CHECK(ts_agent_stop(&s, SIGTERM, 20000) == 0, "schedulerd exits 0");
    return ts_finish();
}
