/* task.submit_many (docs/API.md, issue 15): bad tasks among good ones
 * (atomic: nothing stored, the error names tasks[i].field; partial: the good
 * ones stored, each bad one with its error; also when PostgreSQL itself
 * refuses one task: atomic fails whole, partial stores the others);
 * resubmission is idempotent;
 * bulk submits across a PostgreSQL restart: each task is reported accepted,
 * rejected, or unavailable (outcome unknown); every task not reported
 * accepted is submitted again under the same id, and each runs exactly
 * once. */
#include "sched_api_support.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 200
#define NBATCH 6

static char logf[600];

static json_t *batch_body(int first, int n)
{
    json_t *tasks = json_array();
    for (int i = first; i < first + n; i++) {
        char id[32];
        snprintf(id, sizeof id, "bulk-%d", i);
        json_array_append_new(tasks, json_pack("{s:s,s:s,s:s}", "id", id, "handler", "log", "payload", id));
    }
    return json_pack("{s:o}", "tasks", tasks);
}

int main(void)
{
    ss_env();
    ts_setup("default");
    char *dir = th_tmpdir();
    snprintf(logf, sizeof logf, "%s/side-effects.log", dir);
    free(dir);
    ts_agent ag, s1;
    ss_agent_with_log(&ag, "agent-bulk", logf);
    ss_start(&s1, "bulk-1", NULL);

    /* atomic (default): one bad task, nothing stored */
    json_t *r = sa_req("task.submit_many", "{\"tasks\": [{\"id\": \"ok-1\", \"handler\": \"log\"},"
                                           " {\"id\": \"bad-2\", \"handler\": \"NO SUCH\"},"
                                           " {\"id\": \"ok-3\", \"handler\": \"log\"}]}");
    CHECK(!strcmp(sa_code(r), "invalid_argument") && !strcmp(sa_field(r), "tasks[1].handler"),
          "atomic: the bad task is named (%s %s: %s)", sa_code(r), sa_field(r), sa_message(r));
    json_decref(r);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id IN ('ok-1', 'bad-2', 'ok-3')") == 0,
          "atomic: nothing was stored");
    sa_expect_error(sa_req("task.submit_many", "{\"tasks\": []}"), "invalid_argument", "tasks", "empty tasks");
    sa_expect_error(sa_req("task.submit_many", "{\"tasks\": [{\"handler\": \"log\", \"validate_only\": true}]}"),
                    "invalid_argument", "tasks[0].validate_only", "validate_only inside");

    /* partial: the good ones */
    const char *mixed = "{\"partial\": true, \"tasks\": [{\"id\": \"ok-1\", \"handler\": \"log\"},"
                        " {\"id\": \"bad-2\", \"handler\": \"NO SUCH\"}, {\"id\": \"ok-3\", \"handler\": \"log\","
                        " \"delay\": \"1s\"}, 7]}";
    r = sa_req("task.submit_many", mixed);
    CHECK(!*sa_code(r), "partial: a reply, not an error (%s)", sa_message(r));
    CHECK(sa_int(r, "submitted") == 2 && sa_int(r, "failed") == 2 && sa_int(r, "existing") == 0,
          "partial: 2 submitted, 2 failed (%lld, %lld)", sa_int(r, "submitted"), sa_int(r, "failed"));
    json_t *res = json_object_get(r, "results");
    CHECK(json_array_size(res) == 4, "one result per task");
    CHECK(json_is_true(json_object_get(json_array_get(res, 0), "created")) &&
              !strcmp(json_string_value(json_object_get(json_array_get(res, 2), "status")), "scheduled"),
          "partial: ok-1 created, ok-3 scheduled");
    json_t *e1 = json_object_get(json_array_get(res, 1), "error");
    CHECK(e1 && !strcmp(json_string_value(json_object_get(e1, "field")), "handler"), "partial: bad-2's error");
    CHECK(json_object_get(json_array_get(res, 3), "error") != NULL, "partial: a non-object is an error");
    json_decref(r);
    r = sa_req("task.submit_many", mixed);
    CHECK(sa_int(r, "submitted") == 0 && sa_int(r, "existing") == 2, "resubmission: nothing new (%lld existing)",
          sa_int(r, "existing"));
    json_decref(r);
    CHECK(ts_wait_long(2, 15000, "SELECT count(*) FROM tasks WHERE id IN ('ok-1', 'ok-3') AND status = 'succeeded'")
              == 2,
          "the good ones ran");

    /* PostgreSQL refuses one task (a constraint the API's checks cannot
     * know): atomic stores none, partial stores the others and reports the
     * refused one alone */
    ts_pg_long("ALTER TABLE tasks ADD CONSTRAINT bulk_test_refuse CHECK (id NOT LIKE 'pgbad%%') NOT VALID");
    for (int partial = 0; partial < 2; partial++) {
        json_t *tasks = json_array();
        for (int i = 0; i < 11; i++) {
            char id[32];
            snprintf(id, sizeof id, i == 5 ? "pgbad-%d-%d" : "pgok-%d-%d", partial, i);
            json_array_append_new(tasks, json_pack("{s:s,s:s,s:s}", "id", id, "handler", "log", "payload", id));
        }
        json_t *body = json_pack("{s:o,s:b}", "tasks", tasks, "partial", partial);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        r = sa_req("task.submit_many", text);
        free(text);
        if (!partial) {
            CHECK(!strcmp(sa_code(r), "internal"), "refused row, atomic: the request fails (%s: %s)", sa_code(r),
                  sa_message(r));
            CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'pgok-0-%%'") == 0,
                  "refused row, atomic: nothing stored");
        } else {
            CHECK(!*sa_code(r), "refused row, partial: a reply, not an error (%s: %s)", sa_code(r), sa_message(r));
            CHECK(sa_int(r, "submitted") == 10 && sa_int(r, "failed") == 1 && sa_int(r, "existing") == 0,
                  "refused row, partial: 10 submitted, 1 failed (%lld, %lld)", sa_int(r, "submitted"),
                  sa_int(r, "failed"));
            json_t *rs = json_object_get(r, "results");
            int created = 0;
            for (size_t k = 0; k < json_array_size(rs); k++)
                created += json_is_true(json_object_get(json_array_get(rs, k), "created"));
            json_t *e5 = json_object_get(json_array_get(rs, 5), "error");
            CHECK(created == 10 && e5 && !strcmp(json_string_value(json_object_get(e5, "code")), "internal"),
                  "refused row, partial: the 10 good ones created, the refused one's error (%d created)", created);
        }
        json_decref(r);
    }
    ts_pg_long("ALTER TABLE tasks DROP CONSTRAINT bulk_test_refuse");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'pgbad-%%'") == 0, "the refused ones not stored");
    CHECK(ts_wait_long(10, 15000, "SELECT count(*) FROM tasks WHERE id LIKE 'pgok-1-%%' AND status = 'succeeded'")
              == 10,
          "refused row, partial: the good ones ran");

    /* across a PostgreSQL restart */
    int accepted[NBATCH * BATCH] = {0};
    int n_unavail = 0;
    for (int b = 0; b < NBATCH; b++) {
        if (b == 2) {
            CHECK(th_ctl("pg stop") == 0, "PostgreSQL stopped");
        }
        if (b == 4) {
            CHECK(th_ctl("pg start") == 0, "PostgreSQL started");
            PQfinish(ts_pg()); /* ts_reconnect_pg replaces it */
            ts_reconnect_pg();
        }
        json_t *body = batch_body(b * BATCH, BATCH);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        r = sa_req("task.submit_many", text);
        free(text);
        if (!*sa_code(r)) {
            json_t *rs = json_object_get(r, "results");
            for (int i = 0; i < BATCH; i++)
                accepted[b * BATCH + i] = json_object_get(json_array_get(rs, (size_t)i), "id") != NULL;
        } else {
            CHECK(!strcmp(sa_code(r), "unavailable"), "a batch while PostgreSQL is down: unavailable (%s: %s)",
                  sa_code(r), sa_message(r));
            n_unavail++;
        }
        json_decref(r);
    }
    CHECK(n_unavail >= 2, "batches were refused while PostgreSQL was down (%d)", n_unavail);
    for (int round = 0; round < 40; round++) {
        int left = 0;
        json_t *tasks = json_array();
        for (int i = 0; i < NBATCH * BATCH && left < BATCH; i++)
            if (!accepted[i]) {
                char id[32];
                snprintf(id, sizeof id, "bulk-%d", i);
                json_array_append_new(tasks, json_pack("{s:s,s:s,s:s}", "id", id, "handler", "log", "payload", id));
                left++;
            }
        if (!left) {
            json_decref(tasks);
            break;
        }
        json_t *body = json_pack("{s:o}", "tasks", tasks);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        r = sa_req("task.submit_many", text);
        free(text);
        if (!*sa_code(r)) {
            json_t *rs = json_object_get(r, "results");
            for (size_t k = 0; k < json_array_size(rs); k++) {
                const char *id = json_string_value(json_object_get(json_array_get(rs, k), "id"));
                if (id)
                    accepted[atoi(id + 5)] = 1;
            }
        }
        json_decref(r);
        ts_sleep_ms(500);
    }
    long done = ts_wait_long(NBATCH * BATCH, 60000,
                             "SELECT count(*) FROM tasks WHERE id LIKE 'bulk-%%' AND status = 'succeeded'");
    CHECK(done == NBATCH * BATCH, "every bulk task ran (%ld of %d)", done, NBATCH * BATCH);
    int once = 0;
    for (int i = 0; i < NBATCH * BATCH; i++) {
        char id[32];
        snprintf(id, sizeof id, "bulk-%d", i);
        once += ss_count_lines(logf, id) == 1;
    }
    CHECK(once == NBATCH * BATCH, "each exactly once (%d of %d)", once, NBATCH * BATCH);

    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
