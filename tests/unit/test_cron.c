/* Unit tests of the schedule-spec parser and next-fire computation
 * (scheduler/cron.c) and of the TZif time-zone reader (scheduler/tz.c).
 * Expected fire times are written as local times with their UTC offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cron.h"
#include "tz.h"

#include <jetsched/timeutil.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static int64_t ts(const char *rfc3339)
{
    int64_t ms;
    jet_err err;
    if (jet_rfc3339_parse(rfc3339, &ms, &err) != JET_OK)
        fail_msg("%s", err.msg);
    return ms;
}

/* "2024-03-10T03:00:00-04:00" (seconds only; ".mmm" appended when not whole). */
static char *fmt_local(const char *tzname, int64_t ms, char *buf, size_t len)
{
    if (ms < 0) {
        snprintf(buf, len, "-1");
        return buf;
    }
    const jet_tz *tz;
    jet_err err;
    if (jet_tz_get(tzname, &tz, &err) != JET_OK)
        fail_msg("%s", err.msg);
    int64_t s = ms / 1000;
    int32_t off = jet_tz_offset(tz, s);
    int64_t w = s + off, days = w / 86400, sod = w % 86400;
    int64_t y;
    unsigned m, d;
    jet_civil_from_days(days, &y, &m, &d);
    int aoff = off < 0 ? -off : off;
    int n = snprintf(buf, len, "%04lld-%02u-%02uT%02lld:%02lld:%02lld", (long long)y, m, d, (long long)(sod / 3600),
                     (long long)(sod / 60 % 60), (long long)(sod % 60));
    if (ms % 1000)
        n += snprintf(buf + n, len - (size_t)n, ".%03lld", (long long)(ms % 1000));
    snprintf(buf + n, len - (size_t)n, "%c%02d:%02d", off < 0 ? '-' : '+', aoff / 3600, aoff / 60 % 60);
    return buf;
}

static jet_sched *parse_ok(const char *kind, const char *spec, const char *tz, const char *id)
{
    jet_sched *s = NULL;
    jet_err err;
    jet_err_clear(&err);
    if (jet_sched_parse(kind, spec, tz, id, &s, &err) != JET_OK)
        fail_msg("%s \"%s\" (%s): unexpected error: %s", kind, spec, tz ? tz : "UTC", err.msg);
    return s;
}

/* Checks the fire times after `after` (RFC 3339) against local-time strings. */
static void expect_fires_v(const char *kind, const char *spec, const char *tz, const char *id, const char *after,
                           const char *const *want, size_t n)
{
    jet_sched *s = parse_ok(kind, spec, tz, id);
    int64_t got[32];
    size_t k = jet_sched_preview(s, ts(after), got, n);
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        const char *g = i < k ? fmt_local(tz, got[i], buf, sizeof buf) : "(none)";
        if (strcmp(g, want[i]) != 0)
            fail_msg("%s \"%s\" in %s after %s: fire #%zu is %s, expected %s", kind, spec, tz ? tz : "UTC", after,
                     i + 1, g, want[i]);
    }
    jet_sched_free(s);
}

#define FIRES(spec, tz, after, ...)                                                                              \
    do {                                                                                                         \
        const char *const want_[] = {__VA_ARGS__};                                                               \
        expect_fires_v("cron", spec, tz, "test-id", after, want_, sizeof want_ / sizeof want_[0]);              \
    } while (0)

#define FIRES_ID(spec, id, after, ...)                                                                           \
    do {                                                                                                         \
        const char *const want_[] = {__VA_ARGS__};                                                               \
        expect_fires_v("cron", spec, "UTC", id, after, want_, sizeof want_ / sizeof want_[0]);                  \
    } while (0)

/* The parse must fail and the message must contain every given fragment. */
static void expect_error_v(const char *kind, const char *spec, const char *tz, const char *id,
                           const char *const *frags, size_t n)
{
    jet_sched *s = NULL;
    jet_err err;
    jet_err_clear(&err);
    jet_status st = jet_sched_parse(kind, spec, tz, id, &s, &err);
    if (st == JET_OK) {
        jet_sched_free(s);
        fail_msg("%s \"%s\": accepted, expected an error", kind, spec);
    }
    assert_int_equal(st, JET_ERR_INVALID);
    assert_int_equal(err.code, JET_ERR_INVALID);
    assert_null(s);
    for (size_t i = 0; i < n; i++)
        if (!strstr(err.msg, frags[i]))
            fail_msg("%s \"%s\": error \"%s\" lacks \"%s\"", kind, spec, err.msg, frags[i]);
}

#define REJECTS(kind, spec, tz, id, ...)                                                                         \
    do {                                                                                                         \
        const char *const frags_[] = {__VA_ARGS__};                                                              \
        expect_error_v(kind, spec, tz, id, frags_, sizeof frags_ / sizeof frags_[0]);                           \
    } while (0)

static void expect_message(const char *kind, const char *spec, const char *tz, const char *id, const char *msg)
{
    jet_sched *s = NULL;
    jet_err err;
    assert_int_equal(jet_sched_parse(kind, spec, tz, id, &s, &err), JET_ERR_INVALID);
    assert_string_equal(err.msg, msg);
}

/* ------------------------------------------------------------------ syntax */

static void basic_fields(void **state)
{
    (void)state;
    FIRES("* * * * *", "UTC", "2024-01-01T00:00:30Z", "2024-01-01T00:01:00+00:00", "2024-01-01T00:02:00+00:00");
    /* strictly after: a fire time itself is not returned again */
    FIRES("* * * * *", "UTC", "2024-01-01T00:01:00Z", "2024-01-01T00:02:00+00:00");
    FIRES("* * * * *", "UTC", "2024-01-01T00:00:59.999Z", "2024-01-01T00:01:00+00:00");
    FIRES("0,15,30 * * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T00:15:00+00:00",
          "2024-01-01T00:30:00+00:00", "2024-01-01T01:00:00+00:00");
    FIRES("10-12 3 * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T03:10:00+00:00", "2024-01-01T03:11:00+00:00",
          "2024-01-01T03:12:00+00:00", "2024-01-02T03:10:00+00:00");
    FIRES("*/20 * * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T00:20:00+00:00", "2024-01-01T00:40:00+00:00",
          "2024-01-01T01:00:00+00:00");
    FIRES("1-30/10 0 * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00+00:00",
          "2024-01-01T00:11:00+00:00", "2024-01-01T00:21:00+00:00", "2024-01-02T00:01:00+00:00");
    FIRES("5/15 0 * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T00:05:00+00:00", "2024-01-01T00:20:00+00:00",
          "2024-01-01T00:35:00+00:00", "2024-01-01T00:50:00+00:00", "2024-01-02T00:05:00+00:00");
}

static void names_and_weekdays(void **state)
{
    (void)state;
    FIRES("0 0 1 jan,Jul *", "UTC", "2024-01-01T00:00:00Z", "2024-07-01T00:00:00+00:00",
          "2025-01-01T00:00:00+00:00");
    FIRES("0 0 1 FEB-apr/2 *", "UTC", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00+00:00",
          "2024-04-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00");
    /* 2024-01-05 is a Friday */
    FIRES("0 9 * * mon-FRI", "UTC", "2024-01-05T10:00:00Z", "2024-01-08T09:00:00+00:00",
          "2024-01-09T09:00:00+00:00");
    FIRES("0 0 * * 7", "UTC", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00");
    FIRES("0 0 * * 0", "UTC", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00");
    FIRES("0 0 * * Sun", "UTC", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00+00:00");
    /* ranges ending at Sunday: FRI-SUN, 5-0, 5-7 */
    FIRES("0 0 * * FRI-SUN", "UTC", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00+00:00",
          "2024-01-06T00:00:00+00:00", "2024-01-07T00:00:00+00:00", "2024-01-12T00:00:00+00:00");
    FIRES("0 0 * * 5-0", "UTC", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00+00:00", "2024-01-06T00:00:00+00:00",
          "2024-01-07T00:00:00+00:00");
    FIRES("0 0 * * 5-7", "UTC", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00+00:00", "2024-01-06T00:00:00+00:00",
          "2024-01-07T00:00:00+00:00");
    /* a/step in day-of-week runs to 7 (= Sunday): 1/3 = MON,THU,SUN */
    FIRES("0 0 * * 1/3", "UTC", "2024-01-01T00:00:00Z", "2024-01-04T00:00:00+00:00", "2024-01-07T00:00:00+00:00",
          "2024-01-08T00:00:00+00:00");
    FIRES("0 0 * * */2", "UTC", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00+00:00", "2024-01-04T00:00:00+00:00",
          "2024-01-06T00:00:00+00:00", "2024-01-07T00:00:00+00:00");
    /* day 31 only in months that have it */
    FIRES("0 0 31 * *", "UTC", "2024-01-31T00:00:00Z", "2024-03-31T00:00:00+00:00", "2024-05-31T00:00:00+00:00");
}

static void macros(void **state)
{
    (void)state;
    FIRES("@yearly", "UTC", "2024-05-05T00:00:00Z", "2025-01-01T00:00:00+00:00");
    FIRES("@annually", "UTC", "2024-05-05T00:00:00Z", "2025-01-01T00:00:00+00:00");
    FIRES("@monthly", "UTC", "2024-05-05T00:00:00Z", "2024-06-01T00:00:00+00:00");
    FIRES("@weekly", "UTC", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00+00:00");
    FIRES("@daily", "UTC", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00+00:00");
    FIRES("@midnight", "UTC", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00+00:00");
    FIRES("  @Hourly ", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00+00:00");
    FIRES("@daily", "Asia/Kathmandu", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00+05:45");
}

static void seconds_field(void **state)
{
    (void)state;
    FIRES("*/20 * * * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T00:00:20+00:00", "2024-01-01T00:00:40+00:00",
          "2024-01-01T00:01:00+00:00");
    FIRES("30 0 12 * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T12:00:30+00:00", "2024-01-02T12:00:30+00:00");
    FIRES("15,45 * * * * *", "UTC", "2024-01-01T00:00:15.500Z", "2024-01-01T00:00:45+00:00",
          "2024-01-01T00:01:15+00:00");
    FIRES("0 0 0 1 1 *", "UTC", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00+00:00");
}

static void vixie_day_rule(void **state)
{
    (void)state;
    /* both restricted: the 13th OR any Friday (2024-09-06 and 09-13 are Fridays) */
    FIRES("0 0 13 * 5", "UTC", "2024-09-01T00:00:00Z", "2024-09-06T00:00:00+00:00", "2024-09-13T00:00:00+00:00",
          "2024-09-20T00:00:00+00:00", "2024-09-27T00:00:00+00:00", "2024-10-04T00:00:00+00:00",
          "2024-10-11T00:00:00+00:00", "2024-10-13T00:00:00+00:00");
    /* day-of-month starts with '*': AND (odd days that are Fridays) */
    FIRES("0 0 */2 * 5", "UTC", "2024-09-01T00:00:00Z", "2024-09-13T00:00:00+00:00", "2024-09-27T00:00:00+00:00",
          "2024-10-11T00:00:00+00:00");
    /* day-of-week starts with '*': AND (the 1st when it is a Sunday/Tuesday/Thursday/Saturday) */
    FIRES("0 0 1 * */2", "UTC", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00+00:00", "2024-06-01T00:00:00+00:00",
          "2024-08-01T00:00:00+00:00");
    /* a full range written without '*' still counts as restricted: OR => every day */
    FIRES("0 0 1-31 * 1", "UTC", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00");
    /* '?' is '*' (Quartz): Mondays only */
    FIRES("0 0 ? * MON", "UTC", "2024-01-01T00:00:00Z", "2024-01-08T00:00:00+00:00", "2024-01-15T00:00:00+00:00");
    /* OR makes an impossible day-of-month harmless: Mondays in February */
    FIRES("0 0 30 2 MON", "UTC", "2024-01-01T00:00:00Z", "2024-02-05T00:00:00+00:00", "2024-02-12T00:00:00+00:00",
          "2024-02-19T00:00:00+00:00", "2024-02-26T00:00:00+00:00", "2025-02-03T00:00:00+00:00");
}

static void leap_years(void **state)
{
    (void)state;
    FIRES("0 0 29 2 *", "UTC", "2023-01-01T00:00:00Z", "2024-02-29T00:00:00+00:00", "2028-02-29T00:00:00+00:00");
    /* 2100 is not a leap year */
    FIRES("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00+00:00");
    FIRES("0 0 29 2 *", "Europe/London", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00+00:00");
    /* AND with a weekday (*\/7 = Sunday): Feb 29 on a Sunday, 2004, 2032, 2060, 2088, then 2128 */
    FIRES("0 0 29 2 */7", "UTC", "2004-03-01T00:00:00Z", "2032-02-29T00:00:00+00:00", "2060-02-29T00:00:00+00:00");
    FIRES("0 0 29 2 */7", "America/New_York", "2088-03-01T00:00:00Z", "2128-02-29T00:00:00-05:00");
    /* nothing left before year 10000 */
    FIRES("0 0 29 2 *", "UTC", "9996-03-01T00:00:00Z", "(none)");
}

/* ----------------------------------------------------------------------- H */

static int hashed_minute(const char *id)
{
    jet_sched *s = parse_ok("cron", "H * * * *", "UTC", id);
    int64_t t = jet_sched_next(s, ts("2024-01-01T00:00:00Z") - 1);
    jet_sched_free(s);
    return (int)(t / 60000 % 60);
}

static void hash_values(void **state)
{
    (void)state;
    /* stable: same id, same value, every time and in every process */
    assert_int_equal(hashed_minute("nightly-backup"), hashed_minute("nightly-backup"));
    /* golden values (docs/CRON.md formula, computed independently in Python):
     * changing the hash would move every H schedule */
    FIRES_ID("H H * * *", "nightly-backup", "2024-01-01T00:00:00Z", "2024-01-01T12:37:00+00:00");
    FIRES_ID("H H * * *", "report-7", "2024-01-01T00:00:00Z", "2024-01-01T12:04:00+00:00");
    FIRES_ID("H/15 * * * *", "nightly-backup", "2024-01-01T00:00:00Z", "2024-01-01T00:07:00+00:00",
             "2024-01-01T00:22:00+00:00", "2024-01-01T00:37:00+00:00", "2024-01-01T00:52:00+00:00");
    /* the same field gets the same value in 5- and 6-field forms */
    FIRES_ID("0 H H * * *", "nightly-backup", "2024-01-01T00:00:00Z", "2024-01-01T12:37:00+00:00");
    /* spread: 300 ids hit most minutes, each in range */
    int seen[60] = {0}, distinct = 0;
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "sched-%d", i);
        int m = hashed_minute(id);
        assert_in_range(m, 0, 59);
        distinct += !seen[m]++;
    }
    assert_true(distinct >= 50);
    for (int i = 0; i < 60; i++)
        assert_true(seen[i] <= 15);
}

static void hash_forms(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof id, "job-%d", i);
        int64_t t[8];
        jet_sched *s = parse_ok("cron", "H/15 * * * *", "UTC", id);
        assert_int_equal(jet_sched_preview(s, ts("2024-01-01T00:00:00Z") - 1, t, 5), 5);
        int first = (int)(t[0] / 60000 % 60);
        assert_true(first < 15);
        for (int k = 1; k < 5; k++)
            assert_int_equal(t[k] - t[k - 1], 15 * 60000);
        jet_sched_free(s);

        s = parse_ok("cron", "H(0-29) H(8-10) * * *", "UTC", id);
        int64_t n = jet_sched_next(s, ts("2024-01-01T00:00:00Z") - 1);
        assert_in_range(n / 60000 % 60, 0, 29);
        assert_in_range(n / 3600000 % 24, 8, 10);
        jet_sched_free(s);

        s = parse_ok("cron", "H(0-29)/10 0 * * *", "UTC", id);
        assert_int_equal(jet_sched_preview(s, ts("2024-01-01T00:00:00Z") - 1, t, 4), 4);
        assert_true(t[0] / 60000 % 60 < 10);
        assert_int_equal(t[1] - t[0], 10 * 60000);
        assert_int_equal(t[2] - t[1], 10 * 60000);
        assert_true(t[2] / 60000 % 60 <= 29);
        assert_true(t[3] - t[0] >= 86400000 - 30 * 60000); /* next day */
        jet_sched_free(s);

        /* H in day-of-month is within 1-28, in day-of-week within 0-6 */
        s = parse_ok("cron", "0 0 H * *", "UTC", id);
        assert_int_equal(jet_sched_preview(s, ts("2024-01-31T00:00:00Z"), t, 2), 2);
        int64_t y;
        unsigned mo, d;
        jet_civil_from_days(t[0] / 86400000, &y, &mo, &d);
        assert_in_range(d, 1, 28);
        assert_int_equal(mo, 2); /* always exists, even in February */
        jet_sched_free(s);
        s = parse_ok("cron", "0 0 * * H", "UTC", id);
        assert_int_equal(jet_sched_preview(s, ts("2024-01-01T00:00:00Z"), t, 2), 2);
        assert_int_equal(t[1] - t[0], 7 * 86400000);
        jet_sched_free(s);
    }
    /* H also works in a list, and lowercase */
    jet_sched *s = parse_ok("cron", "h,30 * * * *", "UTC", "x");
    jet_sched_free(s);
}

/* ------------------------------------------------------------- every / at */

static void every_schedules(void **state)
{
    (void)state;
    jet_sched *s = parse_ok("every", "90s", "UTC", NULL);
    assert_int_equal(jet_sched_get_kind(s), JET_SCHED_EVERY);
    assert_int_equal(jet_sched_interval_ms(s), 90000);
    /* anchored at the Unix epoch by default: multiples of 90 s */
    assert_int_equal(jet_sched_next(s, 0), 90000);
    assert_int_equal(jet_sched_next(s, 100000), 180000);
    assert_int_equal(jet_sched_next(s, 179999), 180000);
    assert_int_equal(jet_sched_next(s, 180000), 270000);
    assert_int_equal(jet_sched_next(s, -1), 0);
    assert_int_equal(jet_sched_next(s, -90001), -90000);
    jet_sched_set_anchor(s, 1000);
    assert_int_equal(jet_sched_next(s, 1000), 91000);
    assert_int_equal(jet_sched_next(s, 0), 1000);
    int64_t t[3];
    assert_int_equal(jet_sched_preview(s, 1000, t, 3), 3);
    assert_int_equal(t[2], 1000 + 3 * 90000);
    jet_sched_free(s);

    s = parse_ok("every", "@every 1h30m", "Europe/Berlin", NULL);
    assert_int_equal(jet_sched_interval_ms(s), 5400000);
    assert_int_equal(jet_sched_next(s, ts("2024-01-01T00:00:00Z")), ts("2024-01-01T01:30:00Z"));
    jet_sched_free(s);
    /* the zone does not matter for an interval, even across DST */
    s = parse_ok("every", "1h", "America/New_York", NULL);
    assert_int_equal(jet_sched_next(s, ts("2024-03-10T06:30:00Z")), ts("2024-03-10T07:00:00Z"));
    assert_int_equal(jet_sched_next(s, ts("2024-03-10T07:00:00Z")), ts("2024-03-10T08:00:00Z"));
    jet_sched_free(s);
    /* accepted with kind cron too */
    s = parse_ok("cron", "@every 5m", "UTC", NULL);
    assert_int_equal(jet_sched_get_kind(s), JET_SCHED_EVERY);
    assert_int_equal(jet_sched_next(s, 1), 300000);
    jet_sched_free(s);
    s = parse_ok("every", "1s", NULL, NULL);
    assert_int_equal(jet_sched_next(s, 1500), 2000);
    jet_sched_free(s);
}

static void at_schedules(void **state)
{
    (void)state;
    jet_sched *s = parse_ok("at", "2026-03-08T02:30:00Z", "UTC", NULL);
    assert_int_equal(jet_sched_get_kind(s), JET_SCHED_AT);
    int64_t t = ts("2026-03-08T02:30:00Z");
    assert_int_equal(jet_sched_next(s, t - 1), t);
    assert_int_equal(jet_sched_next(s, t), -1);
    assert_int_equal(jet_sched_next(s, t + 1), -1);
    int64_t out[3];
    assert_int_equal(jet_sched_preview(s, 0, out, 3), 1);
    assert_int_equal(out[0], t);
    jet_sched_free(s);

    s = parse_ok("at", " 2026-03-08T02:30:00.250+01:00 ", "America/New_York", NULL);
    assert_int_equal(jet_sched_next(s, 0), ts("2026-03-08T01:30:00.250Z"));
    jet_sched_free(s);
    /* without an offset: local time in the schedule's zone */
    s = parse_ok("at", "2024-07-01T09:00:00", "Europe/Berlin", NULL);
    assert_int_equal(jet_sched_next(s, 0), ts("2024-07-01T07:00:00Z"));
    jet_sched_free(s);
    /* ... skipped by DST: the end of the gap; repeated: the first occurrence */
    s = parse_ok("at", "2024-03-10T02:30:00", "America/New_York", NULL);
    assert_int_equal(jet_sched_next(s, 0), ts("2024-03-10T07:00:00Z"));
    jet_sched_free(s);
    s = parse_ok("at", "2024-11-03T01:30:00", "America/New_York", NULL);
    assert_int_equal(jet_sched_next(s, 0), ts("2024-11-03T05:30:00Z"));
    jet_sched_free(s);
}

/* --------------------------------------------------------------------- DST */

static void dst_new_york(void **state)
{
    (void)state;
    const char *ny = "America/New_York";
    /* spring forward 2024-03-10 02:00 EST -> 03:00 EDT: 02:30 is skipped and fires once at 03:00 */
    FIRES("30 2 * * *", ny, "2024-03-08T12:00:00Z", "2024-03-09T02:30:00-05:00", "2024-03-10T03:00:00-04:00",
          "2024-03-11T02:30:00-04:00");
    /* every skipped time of the hour collapses into one fire */
    FIRES("*/15 2 * * *", ny, "2024-03-10T06:50:00Z", "2024-03-10T03:00:00-04:00", "2024-03-11T02:00:00-04:00");
    FIRES("0 12 * * *", ny, "2024-03-09T12:00:00-05:00", "2024-03-10T12:00:00-04:00");
    FIRES("*/30 * * * *", ny, "2024-03-10T00:50:00-05:00", "2024-03-10T01:00:00-05:00", "2024-03-10T01:30:00-05:00",
          "2024-03-10T03:00:00-04:00", "2024-03-10T03:30:00-04:00");
    FIRES("30 * * * *", ny, "2024-03-10T00:50:00-05:00", "2024-03-10T01:30:00-05:00", "2024-03-10T03:00:00-04:00",
          "2024-03-10T03:30:00-04:00");
    /* fall back 2024-11-03 02:00 EDT -> 01:00 EST: a fixed time fires once, at its first occurrence */
    FIRES("30 1 * * *", ny, "2024-11-01T12:00:00Z", "2024-11-02T01:30:00-04:00", "2024-11-03T01:30:00-04:00",
          "2024-11-04T01:30:00-05:00");
    /* ... also when asked from inside the repeated hour */
    FIRES("30 1 * * *", ny, "2024-11-03T01:10:00-05:00", "2024-11-04T01:30:00-05:00");
    FIRES("30 1 * * *", ny, "2024-11-03T01:10:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00");
    FIRES("15,45 1 * * *", ny, "2024-11-03T01:20:00-04:00", "2024-11-03T01:45:00-04:00",
          "2024-11-04T01:15:00-05:00");
    /* wildcard schedules (minute or hour starting with '*') fire in both repeated hours */
    FIRES("*/30 * * * *", ny, "2024-11-03T00:50:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:30:00-04:00",
          "2024-11-03T01:00:00-05:00", "2024-11-03T01:30:00-05:00", "2024-11-03T02:00:00-05:00");
    FIRES("0 * * * *", ny, "2024-11-03T00:30:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00",
          "2024-11-03T02:00:00-05:00");
    FIRES("*/20 1 * * *", ny, "2024-11-03T01:30:00-04:00", "2024-11-03T01:40:00-04:00", "2024-11-03T01:00:00-05:00",
          "2024-11-03T01:20:00-05:00", "2024-11-03T01:40:00-05:00", "2024-11-04T01:00:00-05:00");
    FIRES("0 */1 * * *", ny, "2024-11-03T01:30:00-05:00", "2024-11-03T02:00:00-05:00");
    /* seconds: a wildcard seconds field also fires twice; a fixed one once */
    FIRES("* 59 1 * * *", ny, "2024-11-03T01:59:58-04:00", "2024-11-03T01:59:59-04:00", "2024-11-03T01:59:00-05:00");
    FIRES("0 59 1 * * *", ny, "2024-11-03T01:59:58-04:00", "2024-11-04T01:59:00-05:00");
    /* weekly at 02:30 on Sundays, the spring-forward day */
    FIRES("30 2 * * SUN", ny, "2024-03-03T12:00:00Z", "2024-03-10T03:00:00-04:00", "2024-03-17T02:30:00-04:00");
    /* far future: past the TZif table the POSIX rule EST5EDT,M3.2.0,M11.1.0 applies (2100-03-14, 2100-11-07) */
    FIRES("0 12 1 1,7 *", ny, "2100-01-01T00:00:00Z", "2100-01-01T12:00:00-05:00", "2100-07-01T12:00:00-04:00");
    FIRES("30 2 * 3 SUN", ny, "2100-03-01T00:00:00Z", "2100-03-07T02:30:00-05:00", "2100-03-14T03:00:00-04:00",
          "2100-03-21T02:30:00-04:00");
    FIRES("30 1 7 11 *", ny, "2100-01-01T00:00:00Z", "2100-11-07T01:30:00-04:00", "2101-11-07T01:30:00-05:00");
}

static void dst_london(void **state)
{
    (void)state;
    const char *l = "Europe/London";
    /* 2024-03-31 01:00 GMT -> 02:00 BST */
    FIRES("30 1 * * *", l, "2024-03-30T12:00:00Z", "2024-03-31T02:00:00+01:00", "2024-04-01T01:30:00+01:00");
    /* 2024-10-27 02:00 BST -> 01:00 GMT */
    FIRES("30 1 * * *", l, "2024-10-26T12:00:00Z", "2024-10-27T01:30:00+01:00", "2024-10-28T01:30:00+00:00");
    FIRES("0 1,2 * * *", l, "2024-10-26T12:00:00Z", "2024-10-27T01:00:00+01:00", "2024-10-27T02:00:00+00:00",
          "2024-10-28T01:00:00+00:00");
    /* past the TZif table: GMT0BST,M3.5.0/1,M10.5.0 ("last Sunday") in 2100 */
    FIRES("30 1 * * *", l, "2100-03-27T12:00:00Z", "2100-03-28T02:00:00+01:00", "2100-03-29T01:30:00+01:00");
    FIRES("30 1 * * *", l, "2100-10-30T12:00:00Z", "2100-10-31T01:30:00+01:00", "2100-11-01T01:30:00+00:00");
    FIRES("@hourly", l, "2024-10-26T23:30:00Z", "2024-10-27T01:00:00+01:00", "2024-10-27T01:00:00+00:00",
          "2024-10-27T02:00:00+00:00");
}

static void dst_lord_howe(void **state)
{
    (void)state;
    const char *lh = "Australia/Lord_Howe";
    /* 30-minute DST. Spring 2024-10-06 02:00 +10:30 -> 02:30 +11:00 */
    FIRES("15 2 * * *", lh, "2024-10-05T00:00:00+10:30", "2024-10-05T02:15:00+10:30", "2024-10-06T02:30:00+11:00",
          "2024-10-07T02:15:00+11:00");
    FIRES("*/10 2 * * *", lh, "2024-10-06T01:55:00+10:30", "2024-10-06T02:30:00+11:00", "2024-10-06T02:40:00+11:00",
          "2024-10-06T02:50:00+11:00", "2024-10-07T02:00:00+11:00");
    /* fall 2024-04-07 02:00 +11:00 -> 01:30 +10:30: 01:30-01:59 repeats */
    FIRES("45 1 * * *", lh, "2024-04-06T12:00:00+11:00", "2024-04-07T01:45:00+11:00", "2024-04-08T01:45:00+10:30");
    FIRES("15 1 * * *", lh, "2024-04-06T12:00:00+11:00", "2024-04-07T01:15:00+11:00", "2024-04-08T01:15:00+10:30");
    FIRES("*/20 1 * * *", lh, "2024-04-07T01:30:00+11:00", "2024-04-07T01:40:00+11:00", "2024-04-07T01:40:00+10:30",
          "2024-04-08T01:00:00+10:30");
}

static void kathmandu_and_utc_offsets(void **state)
{
    (void)state;
    FIRES("0 9 * * *", "Asia/Kathmandu", "2024-01-01T00:00:00Z", "2024-01-01T09:00:00+05:45");
    jet_sched *s = parse_ok("cron", "0 9 * * *", "Asia/Kathmandu", NULL);
    assert_int_equal(jet_sched_next(s, ts("2024-01-01T00:00:00Z")), ts("2024-01-01T03:15:00Z"));
    assert_string_equal(jet_sched_tz(s), "Asia/Kathmandu");
    jet_sched_free(s);
    FIRES("*/30 * * * *", "Asia/Kathmandu", "2024-01-01T00:00:00Z", "2024-01-01T06:00:00+05:45");
    FIRES("0 0 * * *", "Asia/Kolkata", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00+05:30");
    s = parse_ok("cron", "0 0 * * *", NULL, NULL);
    assert_string_equal(jet_sched_tz(s), "UTC");
    jet_sched_free(s);
    s = parse_ok("cron", "0 0 * * *", "Etc/UTC", NULL);
    assert_int_equal(jet_sched_next(s, 0), 86400000);
    jet_sched_free(s);
}

/* ------------------------------------------------------------------ errors */

static void error_messages(void **state)
{
    (void)state;
    expect_message("cron", "*/0 * * * *", "UTC", NULL,
                   "cron \"*/0 * * * *\": field 1 (minute) at position 3: step must be >= 1");
    expect_message("cron", "0 0 30 2 *", "UTC", NULL,
                   "cron \"0 0 30 2 *\": field 3 (day-of-month) at position 5: no selected day-of-month exists in "
                   "the selected month(s), so the schedule would never fire");
    expect_message("cron", "0 60 * * * *", "UTC", NULL,
                   "cron \"0 60 * * * *\": field 2 (minute) at position 3: value 60 is out of range (0-59)");

    REJECTS("cron", "", "UTC", NULL, "empty cron expression");
    REJECTS("cron", "   ", "UTC", NULL, "empty cron expression");
    REJECTS("cron", "* * * *", "UTC", NULL, "expected 5 fields", "got 4");
    REJECTS("cron", "* * * * * * *", "UTC", NULL, "at position 13", "too many fields");
    REJECTS("cron", "60 * * * *", "UTC", NULL, "field 1 (minute) at position 1", "out of range (0-59)");
    REJECTS("cron", "* 24 * * *", "UTC", NULL, "field 2 (hour) at position 3", "out of range (0-23)");
    REJECTS("cron", "* * 0 * *", "UTC", NULL, "field 3 (day-of-month) at position 5", "(1-31)");
    REJECTS("cron", "* * 32 * *", "UTC", NULL, "field 3 (day-of-month) at position 5");
    REJECTS("cron", "* * * 13 *", "UTC", NULL, "field 4 (month) at position 7", "(1-12)");
    REJECTS("cron", "* * * 0 *", "UTC", NULL, "field 4 (month) at position 7");
    REJECTS("cron", "* * * * 8", "UTC", NULL, "field 5 (day-of-week) at position 9", "(0-7)");
    REJECTS("cron", "99999999999 * * * *", "UTC", NULL, "position 1", "out of range");
    REJECTS("cron", "*/61 * * * *", "UTC", NULL, "position 3", "step 61 is larger");
    REJECTS("cron", "0 */25 * * *", "UTC", NULL, "field 2 (hour) at position 5", "step 25");
    REJECTS("cron", "*/ * * * *", "UTC", NULL, "position 3", "a number is expected after '/'");
    REJECTS("cron", "30-10 * * * *", "UTC", NULL, "position 1", "range 30-10 is reversed");
    REJECTS("cron", "0 22-2 * * *", "UTC", NULL, "field 2 (hour) at position 3", "reversed");
    REJECTS("cron", "0 0 * * SAT-MON", "UTC", NULL, "field 5 (day-of-week) at position 9", "reversed");
    REJECTS("cron", "1,,2 * * * *", "UTC", NULL, "position 3", "empty list element");
    REJECTS("cron", "1, * * * *", "UTC", NULL, "position 3", "empty list element");
    REJECTS("cron", ",1 * * * *", "UTC", NULL, "position 1", "empty list element");
    REJECTS("cron", "* * * JANUARY *", "UTC", NULL, "field 4 (month) at position 7", "unknown month name",
            "JAN-DEC");
    REJECTS("cron", "* * * * FUNDAY", "UTC", NULL, "field 5 (day-of-week) at position 9", "unknown day name");
    REJECTS("cron", "* * * * Mo", "UTC", NULL, "unknown day name \"Mo\"");
    REJECTS("cron", "MON * * * *", "UTC", NULL, "field 1 (minute) at position 1",
            "names are allowed only in the month and day-of-week fields");
    REJECTS("cron", "* * * MON *", "UTC", NULL, "unknown month name");
    REJECTS("cron", "5x * * * *", "UTC", NULL, "position 2", "unexpected character 'x'");
    REJECTS("cron", "1-2-3 * * * *", "UTC", NULL, "position 4", "only one range");
    REJECTS("cron", "*/5/2 * * * *", "UTC", NULL, "position 4", "only one step");
    REJECTS("cron", "1-* * * * *", "UTC", NULL, "position 3", "unexpected character '*'");
    REJECTS("cron", "% * * * *", "UTC", NULL, "position 1", "unexpected character '%'");
    REJECTS("cron", "@fortnightly", "UTC", NULL, "at position 1", "unknown macro \"@fortnightly\"");
    REJECTS("cron", "@reboot", "UTC", NULL, "unknown macro");
    REJECTS("cron", "@daily 5", "UTC", NULL, "at position 8", "unexpected text after @daily");
    REJECTS("cron", "H * * * *", "UTC", NULL, "position 1", "H needs a schedule id");
    REJECTS("cron", "H * * * *", "UTC", "", "H needs a schedule id");
    REJECTS("cron", "H(30-10) * * * *", "UTC", "x", "position 3", "reversed");
    REJECTS("cron", "H(0-70) * * * *", "UTC", "x", "position 5", "out of range");
    REJECTS("cron", "H(0-10 * * * *", "UTC", "x", "expected ')'");
    REJECTS("cron", "H(5) * * * *", "UTC", "x", "expected '-'");
    REJECTS("cron", "H/0 * * * *", "UTC", "x", "position 3", "step must be >= 1");
    REJECTS("cron", "H(0-9)/11 * * * *", "UTC", "x", "step 11 is larger");
    REJECTS("cron", "0 0 L * *", "UTC", NULL, "field 3 (day-of-month) at position 5", "Quartz 'L'");
    REJECTS("cron", "0 0 15W * *", "UTC", NULL, "position 7", "Quartz 'W'");
    REJECTS("cron", "0 0 * * 5#3", "UTC", NULL, "position 10", "Quartz '#'");
    REJECTS("cron", "0 0 * * 5L", "UTC", NULL, "position 10", "Quartz 'L'");
    REJECTS("cron", "? * * * *", "UTC", NULL, "position 1", "'?' is allowed only");
    REJECTS("cron", "0 0 ?/2 * *", "UTC", NULL, "position 6", "'?' takes no step");
    REJECTS("cron", "0 0 31 4,6,9,11 *", "UTC", NULL, "field 3 (day-of-month)", "never fire");
    REJECTS("cron", "0 0 30,31 FEB *", "UTC", NULL, "never fire");
    REJECTS("cron", "0 0 0 30 2 ?", "UTC", NULL, "field 4 (day-of-month) at position 7", "never fire");
    REJECTS("weekly", "* * * * *", "UTC", NULL, "unknown schedule kind \"weekly\"");
    /* long specs are cut in the message */
    char longspec[600];
    memset(longspec, '1', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = '\0';
    REJECTS("cron", longspec, "UTC", NULL, "too long");
}

static void every_and_at_errors(void **state)
{
    (void)state;
    REJECTS("every", "", "UTC", NULL, "every \"\"", "a duration is expected");
    REJECTS("every", "@every", "UTC", NULL, "a duration is expected");
    REJECTS("every", "0s", "UTC", NULL, "at least 1s");
    REJECTS("every", "500ms", "UTC", NULL, "at least 1s");
    REJECTS("every", "90", "UTC", NULL, "missing unit");
    REJECTS("every", "ten minutes", "UTC", NULL, "expected a number");
    REJECTS("cron", "@every 0.5s", "UTC", NULL, "cron \"@every 0.5s\"", "at least 1s");
    REJECTS("cron", "@every", "UTC", NULL, "a duration is expected");
    REJECTS("at", "tomorrow", "UTC", NULL, "at \"tomorrow\"", "invalid RFC 3339 time");
    REJECTS("at", "2026-13-01T00:00:00Z", "UTC", NULL, "date out of range");
    REJECTS("at", "2026-02-30T00:00:00", "Europe/Berlin", NULL, "out of range");
    REJECTS("at", "", "UTC", NULL, "invalid RFC 3339");
}

static void zone_errors(void **state)
{
    (void)state;
    REJECTS("cron", "* * * * *", "Mars/Olympus_Mons", NULL, "time zone \"Mars/Olympus_Mons\"", "unknown time zone");
    REJECTS("cron", "* * * * *", "america/new_york", NULL, "unknown time zone");
    REJECTS("cron", "* * * * *", "../../etc/passwd", NULL, "invalid name");
    REJECTS("cron", "* * * * *", "America/../../../etc/passwd", NULL, "invalid name");
    REJECTS("cron", "* * * * *", "/etc/localtime", NULL, "invalid name");
    REJECTS("cron", "* * * * *", "America//New_York", NULL, "invalid name", "empty path component");
    REJECTS("cron", "* * * * *", "America/New_York/", NULL, "invalid name");
    REJECTS("cron", "* * * * *", "America/New York", NULL, "invalid name", "invalid character");
    REJECTS("cron", "* * * * *", "localtime", NULL, "not an IANA time zone name");
    REJECTS("cron", "* * * * *", "zone.tab", NULL, "unknown time zone", "not a TZif file");
    REJECTS("cron", "* * * * *", "America", NULL, "unknown time zone");
    REJECTS("cron", "* * * * *", "right/UTC", NULL, "leap seconds");
    REJECTS("every", "1m", "Nowhere/City", NULL, "unknown time zone");
    char longname[300];
    memset(longname, 'A', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    REJECTS("cron", "* * * * *", longname, NULL, "name too long");
}

/* --------------------------------------------------------------- tz module */

static void tz_module(void **state)
{
    (void)state;
    const jet_tz *a, *b;
    jet_err err;
    assert_int_equal(jet_tz_get("America/New_York", &a, &err), JET_OK);
    assert_int_equal(jet_tz_get("America/New_York", &b, &err), JET_OK);
    assert_ptr_equal(a, b); /* cached */
    assert_string_equal(jet_tz_name(a), "America/New_York");
    assert_int_equal(jet_tz_get(NULL, &b, &err), JET_OK);
    assert_ptr_equal(b, jet_tz_utc());
    assert_int_equal(jet_tz_offset(b, 1700000000), 0);

    assert_int_equal(jet_tz_offset(a, ts("2024-01-15T12:00:00Z") / 1000), -5 * 3600);
    assert_int_equal(jet_tz_offset(a, ts("2024-07-15T12:00:00Z") / 1000), -4 * 3600);
    assert_int_equal(jet_tz_offset(a, ts("2024-03-10T06:59:59Z") / 1000), -5 * 3600);
    assert_int_equal(jet_tz_offset(a, ts("2024-03-10T07:00:00Z") / 1000), -4 * 3600);
    /* footer rule far beyond the table, and before 1883 (LMT) */
    assert_int_equal(jet_tz_offset(a, ts("2400-07-01T00:00:00Z") / 1000), -4 * 3600);
    assert_int_equal(jet_tz_offset(a, ts("2400-12-01T00:00:00Z") / 1000), -5 * 3600);
    assert_int_equal(jet_tz_offset(a, ts("1850-01-01T00:00:00Z") / 1000), -(4 * 3600 + 56 * 60 + 2));

    jet_tz_span sp;
    jet_tz_span_at(a, ts("2024-06-01T00:00:00Z") / 1000, &sp);
    assert_int_equal(sp.start, ts("2024-03-10T07:00:00Z") / 1000);
    assert_int_equal(sp.end, ts("2024-11-03T06:00:00Z") / 1000);
    assert_int_equal(sp.off, -4 * 3600);
    assert_int_equal(sp.prev_off, -5 * 3600);

    int64_t u[2], gap = 0;
    /* wall times are seconds since 1970-01-01T00:00 local */
    int64_t w = ts("2024-03-10T02:30:00Z") / 1000;
    assert_int_equal(jet_tz_wall_to_utc(a, w, u, &gap), 0);
    assert_int_equal(gap, ts("2024-03-10T07:00:00Z") / 1000);
    w = ts("2024-11-03T01:30:00Z") / 1000;
    assert_int_equal(jet_tz_wall_to_utc(a, w, u, &gap), 2);
    assert_int_equal(u[0], ts("2024-11-03T05:30:00Z") / 1000);
    assert_int_equal(u[1], ts("2024-11-03T06:30:00Z") / 1000);
    w = ts("2024-07-01T12:00:00Z") / 1000;
    assert_int_equal(jet_tz_wall_to_utc(a, w, u, NULL), 1);
    assert_int_equal(u[0], ts("2024-07-01T16:00:00Z") / 1000);

    assert_int_equal(jet_tz_get("Australia/Lord_Howe", &b, &err), JET_OK);
    assert_int_equal(jet_tz_offset(b, ts("2024-01-01T00:00:00Z") / 1000), 11 * 3600);
    assert_int_equal(jet_tz_offset(b, ts("2024-07-01T00:00:00Z") / 1000), 10 * 3600 + 1800);
    assert_int_equal(jet_tz_get("Asia/Kathmandu", &b, &err), JET_OK);
    assert_int_equal(jet_tz_offset(b, ts("2024-01-01T00:00:00Z") / 1000), 5 * 3600 + 45 * 60);
    jet_tz_span_at(b, ts("2024-01-01T00:00:00Z") / 1000, &sp); /* no change nearby: pseudo-boundaries */
    assert_int_equal(sp.off, sp.prev_off);
    assert_true(sp.end > ts("2024-12-01T00:00:00Z") / 1000);
    /* southern hemisphere footer (Sydney: AEST-10AEDT,M10.1.0,M4.1.0/3) in 2200 */
    assert_int_equal(jet_tz_get("Australia/Sydney", &b, &err), JET_OK);
    assert_int_equal(jet_tz_offset(b, ts("2200-01-15T00:00:00Z") / 1000), 11 * 3600);
    assert_int_equal(jet_tz_offset(b, ts("2200-06-15T00:00:00Z") / 1000), 10 * 3600);
}

/* ---------------------------------------------------------------- threads */

typedef struct tjob {
    const jet_sched *s;
    int64_t after, want;
    int ok;
} tjob;

static void *thread_main(void *arg)
{
    tjob *j = arg;
    static const char *const zones[] = {"Europe/Paris", "Asia/Tokyo", "America/Chicago", "Africa/Cairo"};
    j->ok = 1;
    for (int i = 0; i < 20000; i++) {
        if (jet_sched_next(j->s, j->after) != j->want)
            j->ok = 0;
        if (i % 5000 == 0) {
            const jet_tz *tz;
            jet_err err;
            if (jet_tz_get(zones[i / 5000], &tz, &err) != JET_OK)
                j->ok = 0;
        }
    }
    return NULL;
}

static void concurrent_use(void **state)
{
    (void)state;
    jet_sched *s = parse_ok("cron", "30 2 * * *", "America/New_York", NULL);
    tjob jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (tjob){.s = s, .after = ts("2024-03-09T12:00:00Z"), .want = ts("2024-03-10T07:00:00Z")};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
    }
    jet_sched_free(s);
}

static int teardown_all(void **state)
{
    (void)state;
    jet_tz_cache_clear();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basic_fields),
        cmocka_unit_test(names_and_weekdays),
        cmocka_unit_test(macros),
        cmocka_unit_test(seconds_field),
        cmocka_unit_test(vixie_day_rule),
        cmocka_unit_test(leap_years),
        cmocka_unit_test(hash_values),
        cmocka_unit_test(hash_forms),
        cmocka_unit_test(every_schedules),
        cmocka_unit_test(at_schedules),
        cmocka_unit_test(dst_new_york),
        cmocka_unit_test(dst_london),
        cmocka_unit_test(dst_lord_howe),
        cmocka_unit_test(kathmandu_and_utc_offsets),
        cmocka_unit_test(error_messages),
        cmocka_unit_test(every_and_at_errors),
        cmocka_unit_test(zone_errors),
        cmocka_unit_test(tz_module),
        cmocka_unit_test(concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
