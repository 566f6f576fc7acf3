/* API schedule.* verbs (docs/API.md) against a real schedulerd (the
 * leader) and agentd: create of every kind, already_exists, bad specs with
 * the position, bad zones and fields; get, list with paging, update (next
 * fire recomputed only when the spec changes), pause/resume, delete,
 * trigger (runs once now), preview (spec or id), and a schedule created
 * through the API firing. */
#include "sched_api_support.h"
#include "harness.h"

#include <jetsched/timeutil.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bad_input(void)
{
    json_t *r = sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"*/0 * * * *\",\"handler\":\"echo\"}");
    CHECK(strstr(sa_message(r), "position 3") != NULL, "the position in the message: %s", sa_message(r));
    sa_expect_error(r, "invalid_argument", "spec", "bad step");
    r = sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"0 25 * * *\",\"handler\":\"echo\"}");
    CHECK(strstr(sa_message(r), "position") != NULL, "position of an out-of-range hour: %s", sa_message(r));
    sa_expect_error(r, "invalid_argument", "spec", "hour 25");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"0 3 * * *\",\"tz\":\"Mars/Olympus\","
                                              "\"handler\":\"echo\"}"),
                    "invalid_argument", "tz", "unknown zone");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"0 3 * * *\",\"kind\":\"weekly\","
                                              "\"handler\":\"echo\"}"),
                    "invalid_argument", "kind", "unknown kind");
    /* @every under an explicit kind cron was stored labelled cron. */
    r = sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"@every 5s\",\"kind\":\"cron\",\"handler\":\"echo\"}");
    CHECK(strstr(sa_message(r), "@every is kind every") != NULL, "kind cron with @every: %s", sa_message(r));
    sa_expect_error(r, "invalid_argument", "spec", "kind cron with @every");
    sa_expect_error(sa_req("schedule.preview", "{\"spec\":\"@every 5s\",\"kind\":\"cron\"}"), "invalid_argument",
                    "spec", "preview of kind cron with @every");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"0 3 * * *\"}"), "invalid_argument",
                    "handler", "missing handler");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"handler\":\"echo\"}"), "invalid_argument", "spec",
                    "missing spec");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"Bad Id\",\"spec\":\"0 3 * * *\",\"handler\":\"echo\"}"),
                    "invalid_argument", "id", "bad id");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"0 3 * * *\",\"handler\":\"echo\","
                                              "\"misfire\":\"sometimes\"}"),
                    "invalid_argument", "misfire", "bad misfire");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"0 3 * * *\",\"handler\":\"echo\","
                                              "\"overlap\":\"never\"}"),
                    "invalid_argument", "overlap", "bad overlap");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"0 3 * * *\",\"handler\":\"echo\","
                                              "\"cron\":\"x\"}"),
                    "invalid_argument", "cron", "unknown field");
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"bad\",\"spec\":\"2001-01-01T00:00:00Z\",\"handler\":\"echo\"}"),
                    "invalid_argument", "spec", "an at time in the past");
    sa_expect_error(sa_req("schedule.get", "{\"id\":\"nope\"}"), "not_found", "id", "get unknown");
    sa_expect_error(sa_req("schedule.delete", "{\"id\":\"nope\"}"), "not_found", "id", "delete unknown");
    sa_expect_error(sa_req("schedule.trigger", "{\"id\":\"nope\"}"), "not_found", "id", "trigger unknown");
    sa_expect_error(sa_req("schedule.update", "{\"id\":\"nope\",\"spec\":\"0 4 * * *\"}"), "not_found", "id",
                    "update unknown");
    sa_expect_error(sa_req("schedule.preview", "{\"spec\":\"61 * * * *\"}"), "invalid_argument", "spec",
                    "preview of a bad spec");
    sa_expect_error(sa_req("schedule.preview", "{\"spec\":\"* * * * *\",\"count\":101}"), "invalid_argument", "count",
                    "count over 100");
    sa_expect_error(sa_req("schedule.preview", "{}"), "invalid_argument", "spec", "preview without spec");
    sa_expect_error(sa_req("schedule.preview", "{\"spec\":\"* * * * *\",\"from\":\"yesterday\"}"), "invalid_argument",
                    "from", "bad from");
}

static int64_t t_ms(const json_t *r, const char *path)
{
    int64_t ms = -1;
    jet_rfc3339_parse(sa_str(r, path), &ms, NULL);
    return ms;
}

int main(void)
{
    ss_env();
    ts_setup("default");
    ts_agent ag, s1;
    ts_agent_start(&ag, "agent-api", NULL);
    ss_start(&s1, "api-s1", NULL);
    char *holder = ss_wait_holder(NULL, 15000);
    CHECK(*holder, "a leader");
    free(holder);

    bad_input();

    /* Create: cron (kind derived), with every field. */
    json_t *r = sa_req("schedule.create",
                       "{\"id\":\"nightly-report\",\"spec\":\"0 3 * * *\",\"tz\":\"Europe/Paris\",\"handler\":\"echo\","
                       "\"payload\":\"{}\",\"headers\":{\"X-Team\":\"ops\"},\"max_attempts\":2,\"misfire\":\"skip\","
                       "\"catchup_window\":\"30m\",\"overlap\":\"forbid\",\"priority\":\"high\"}");
    CHECK(!strcmp(sa_str(r, "schedule.kind"), "cron"), "kind derived: cron (%s)", sa_str(r, "schedule.kind"));
    CHECK(!strcmp(sa_str(r, "schedule.catchup_window"), "30m") && !strcmp(sa_str(r, "schedule.overlap"), "forbid") &&
              sa_int(r, "schedule.max_attempts") == 2 && !strcmp(sa_str(r, "schedule.headers.X-Team"), "ops") &&
              !strcmp(sa_str(r, "schedule.priority"), "high"),
          "fields stored");
    int64_t next = t_ms(r, "schedule.next_fire_at"), now = jet_now_ms();
    CHECK(next > now && next <= now + 25 * 3600 * 1000LL, "next fire within a day");
    CHECK((next / 1000) % 3600 == 0, "03:00 Paris is on a whole hour in UTC");
    json_decref(r);
    sa_expect_error(sa_req("schedule.create", "{\"id\":\"nightly-report\",\"spec\":\"0 4 * * *\",\"handler\":\"echo\"}"),
                    "already_exists", "id", "create twice");
    r = sa_req("schedule.create", "{\"id\":\"ticker\",\"spec\":\"@every 1s\",\"handler\":\"echo\",\"payload\":\"tick\"}");
    CHECK(!strcmp(sa_str(r, "schedule.kind"), "every"), "kind derived: every");
    json_decref(r);
    sa_expect_error(sa_req("schedule.update", "{\"id\":\"ticker\",\"kind\":\"cron\"}"), "invalid_argument", "spec",
                    "update of an @every spec to kind cron");
    /* A row stored kind cron with @every before the API refused it can
     * still be updated and previewed without giving spec or kind. */
    PQclear(PQexec(ts_pg(), "UPDATE schedules SET kind = 'cron' WHERE id = 'ticker'"));
    sa_expect_ok(sa_req("schedule.update", "{\"id\":\"ticker\",\"payload\":\"tick\"}"),
                 "update of a stored cron @every");
    sa_expect_ok(sa_req("schedule.preview", "{\"id\":\"ticker\",\"count\":1}"), "preview of a stored cron @every");
    PQclear(PQexec(ts_pg(), "UPDATE schedules SET kind = 'every' WHERE id = 'ticker'"));
    CHECK(ts_pg_long("SELECT count(*) FROM schedules WHERE id = 'ticker' AND kind = 'every'") == 1,
          "ticker is every again");
    r = sa_req("schedule.create", "{\"id\":\"once\",\"spec\":\"2099-01-01T00:00:00Z\",\"handler\":\"echo\"}");
    CHECK(!strcmp(sa_str(r, "schedule.kind"), "at"), "kind derived: at");
    CHECK(!strcmp(sa_str(r, "schedule.next_fire_at"), "2099-01-01T00:00:00.000Z"), "at: next fire");
    json_decref(r);

    /* The schedule created through the API fires (the leader) and runs. */
    long fired = ts_wait_long(2, 20000, "SELECT least(count(*), 2) FROM tasks WHERE schedule_id = 'ticker'"
                                         " AND status = 'succeeded'");
    CHECK(fired == 2, "ticker fired and ran (%ld)", fired);

    /* Pause: no more fires; resume: fires again, from now. */
    r = sa_req("schedule.pause", "{\"id\":\"ticker\"}");
    CHECK(json_is_true(json_object_get(json_object_get(r, "schedule"), "paused")), "paused");
    json_decref(r);
    ts_sleep_ms(1500);
    long before = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'ticker'");
    ts_sleep_ms(2500);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'ticker'") == before, "no fires while paused");
    r = sa_req("schedule.resume", "{\"id\":\"ticker\"}");
    CHECK(json_is_false(json_object_get(json_object_get(r, "schedule"), "paused")), "resumed");
    CHECK(t_ms(r, "schedule.next_fire_at") > jet_now_ms() - 1500, "next fire recomputed from now");
    json_decref(r);
    CHECK(ts_wait_long(before + 1, 15000, "SELECT least(count(*), %ld) FROM tasks WHERE schedule_id = 'ticker'",
                       before + 1) == before + 1,
          "fires again after resume");
    sa_expect_ok(sa_req("schedule.pause", "{\"id\":\"ticker\"}"), "pause again");

    /* Update: the handler alone keeps the next fire; a new spec recomputes it. */
    r = sa_req("schedule.get", "{\"id\":\"nightly-report\"}");
    char next_before[40];
    snprintf(next_before, sizeof next_before, "%s", sa_str(r, "schedule.next_fire_at"));
    json_decref(r);
    r = sa_req("schedule.update", "{\"id\":\"nightly-report\",\"handler\":\"noop\"}");
    CHECK(!strcmp(sa_str(r, "schedule.handler"), "noop") && !strcmp(sa_str(r, "schedule.next_fire_at"), next_before),
          "handler changed, next fire kept (%s)", sa_str(r, "schedule.next_fire_at"));
    CHECK(!strcmp(sa_str(r, "schedule.tz"), "Europe/Paris") && !strcmp(sa_str(r, "schedule.misfire"), "skip"),
          "other fields kept");
    json_decref(r);
    r = sa_req("schedule.update", "{\"id\":\"nightly-report\",\"spec\":\"*/15 * * * *\",\"tz\":\"UTC\"}");
    int64_t n2 = t_ms(r, "schedule.next_fire_at");
    CHECK(n2 > jet_now_ms() && n2 <= jet_now_ms() + 15 * 60 * 1000 && (n2 / 1000) % 900 == 0,
          "new spec: next fire recomputed (%s)", sa_str(r, "schedule.next_fire_at"));
    json_decref(r);
    sa_expect_error(sa_req("schedule.update", "{\"id\":\"nightly-report\",\"spec\":\"0 0 30 2 *\"}"),
                    "invalid_argument", "spec", "update to a spec that never fires");
    sa_expect_error(sa_req("schedule.update", "{\"id\":\"nightly-report\",\"priority\":\"max\"}"), "invalid_argument",
                    "priority", "update with a bad priority");
    /* null clears only max_attempts and catchup_window; elsewhere it is
     * refused naming the field ("field spec is required" before). */
    static const char *const nulls[] = {"spec", "handler", "queue", "kind", "tz", "paused", "payload", NULL};
    for (int i = 0; nulls[i]; i++) {
        json_t *nr = sa_reqf("schedule.update", "{\"id\":\"nightly-report\",\"%s\":null}", nulls[i]);
        CHECK(strstr(sa_message(nr), "must not be null") != NULL, "update %s null: %s", nulls[i], sa_message(nr));
        sa_expect_error(nr, "invalid_argument", nulls[i], "update with a null field");
    }
    r = sa_req("schedule.update", "{\"id\":\"nightly-report\",\"max_attempts\":null,\"catchup_window\":null}");
    CHECK(r && !json_object_get(r, "error"), "update clearing max_attempts and catchup_window: %s", sa_message(r));
    json_decref(r);

    /* Trigger: one run now, next fire unchanged. */
    r = sa_req("schedule.trigger", "{\"id\":\"nightly-report\"}");
    char tid[200];
    snprintf(tid, sizeof tid, "%s", sa_str(r, "task_id"));
    CHECK(!strncmp(tid, "nightly-report-manual-", 22) && !strcmp(sa_str(r, "status"), "queued"), "trigger: %s", tid);
    json_decref(r);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id = '%s' AND status = 'succeeded'"
                                 " AND schedule_id = 'nightly-report' AND handler = 'noop'", tid) == 1,
          "the triggered run ran");
    r = sa_req("schedule.get", "{\"id\":\"nightly-report\"}");
    CHECK(t_ms(r, "schedule.next_fire_at") == n2, "trigger leaves the next fire time");
    json_decref(r);

    /* Preview. */
    r = sa_req("schedule.preview", "{\"spec\":\"*/15 9-17 * * mon-fri\",\"tz\":\"Europe/Paris\",\"count\":5,"
                                   "\"from\":\"2026-12-04T15:50:00Z\"}");
    json_t *nx = json_object_get(r, "next");
    CHECK(json_array_size(nx) == 5 && !strcmp(sa_str(r, "kind"), "cron"), "5 times");
    static const char *const want[] = {"2026-12-04T16:00:00.000Z", "2026-12-04T16:15:00.000Z",
                                       "2026-12-04T16:30:00.000Z", "2026-12-04T16:45:00.000Z",
                                       "2026-12-07T08:00:00.000Z"};
    for (int i = 0; i < 5; i++)
        CHECK(!strcmp(sa_str(nx, (char[8]){(char)('0' + i), 0}), want[i]), "preview %d: %s (want %s)", i,
              sa_str(nx, (char[8]){(char)('0' + i), 0}), want[i]);
    json_decref(r);
    r = sa_req("schedule.preview", "{\"id\":\"nightly-report\",\"count\":3}");
    CHECK(json_array_size(json_object_get(r, "next")) == 3, "preview by id");
    json_decref(r);
    r = sa_req("schedule.preview", "{\"spec\":\"@every 90s\",\"from\":\"2026-12-02T00:00:00Z\",\"count\":2}");
    CHECK(!strcmp(sa_str(r, "kind"), "every") && !strcmp(sa_str(r, "next.0"), "2026-12-02T00:01:30.000Z"),
          "preview every: %s", sa_str(r, "next.0"));
    json_decref(r);

    /* List with paging (by id): nightly-report, once, ticker + 3 more. */
    for (int i = 0; i < 3; i++)
        json_decref(sa_reqf("schedule.create", "{\"id\":\"zz-%d\",\"spec\":\"0 0 1 1 *\",\"handler\":\"echo\","
                                               "\"paused\":true}", i));
    r = sa_req("schedule.list", "{\"limit\":4}");
    CHECK(json_array_size(json_object_get(r, "schedules")) == 4 && !strcmp(sa_str(r, "schedules.0.id"), "nightly-report"),
          "first page by id");
    char cursor[300];
    snprintf(cursor, sizeof cursor, "%s", sa_str(r, "next_cursor"));
    CHECK(cursor[0], "a next cursor");
    json_decref(r);
    r = sa_reqf("schedule.list", "{\"limit\":4,\"cursor\":\"%s\"}", cursor);
    CHECK(json_array_size(json_object_get(r, "schedules")) == 2 && !strcmp(sa_str(r, "schedules.1.id"), "zz-2") &&
              json_is_null(json_object_get(r, "next_cursor")),
          "last page");
    json_decref(r);

    /* Delete keeps the history of its fires. */
    r = sa_req("schedule.delete", "{\"id\":\"ticker\"}");
    CHECK(json_is_true(json_object_get(r, "deleted")), "deleted");
    json_decref(r);
    sa_expect_error(sa_req("schedule.get", "{\"id\":\"ticker\"}"), "not_found", "id", "gone");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'ticker'") >= 2, "its fires stay");

    double ok = ss_metric(&s1, "jetsched_api_requests_total{verb=\"schedule.create\",code=\"ok\"}");
    CHECK(ok == 6, "schedule.create ok counted: %g", ok);
    CHECK(ss_metric(&s1, "jetsched_api_requests_total{verb=\"schedule.create\",code=\"already_exists\"}") == 1,
          "already_exists counted");
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    ts_agent_stop(&ag, SIGTERM, 15000);
    return ts_finish();
}
