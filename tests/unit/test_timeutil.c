/* Unit tests of durations, RFC 3339 parsing/formatting, civil dates and names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <string.h>

static int64_t dur(const char *s)
{
    int64_t ms = -1;
    jet_err err;
    if (jet_duration_parse(s, &ms, &err) != JET_OK)
        fail_msg("\"%s\": %s", s, err.msg);
    return ms;
}

static void durations_parse(void **state)
{
    (void)state;
    assert_int_equal(dur("0s"), 0);
    assert_int_equal(dur("250ms"), 250);
    assert_int_equal(dur("30s"), 30000);
    assert_int_equal(dur("5m"), 300000);
    assert_int_equal(dur("1h30m"), 5400000);
    assert_int_equal(dur("1d2h"), 93600000);
    assert_int_equal(dur("1.5s"), 1500);
    assert_int_equal(dur("2h0m5s10ms"), 7205010);
}

static void bad_durations_are_rejected(void **state)
{
    (void)state;
    const char *bad[] = {"", "30", "s", "-5s", "5 s", "5x", "1.s", "5sec", "99999999999999999999s", "1h 30m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        jet_err err;
        if (jet_duration_parse(bad[i], &ms, &err) != JET_ERR_INVALID)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_true(strlen(err.msg) > 0);
    }
}

static void durations_format_round_trip(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(jet_duration_format(5400000, buf, sizeof buf), "1h30m");
    assert_string_equal(jet_duration_format(250, buf, sizeof buf), "250ms");
    assert_string_equal(jet_duration_format(0, buf, sizeof buf), "0s");
    assert_string_equal(jet_duration_format(86400000 + 1000, buf, sizeof buf), "1d1s");
    for (int64_t ms = 0; ms < 200000000; ms = ms * 3 + 7)
        assert_int_equal(dur(jet_duration_format(ms, buf, sizeof buf)), ms);
}

static int64_t ts(const char *s)
{
    int64_t ms = 0;
    jet_err err;
    if (jet_rfc3339_parse(s, &ms, &err) != JET_OK)
        fail_msg("\"%s\": %s", s, err.msg);
    return ms;
}

static void rfc3339_parses(void **state)
{
    (void)state;
    assert_int_equal(ts("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(ts("2026-11-22T05:00:00Z"), INT64_C(1795323600000));
    assert_int_equal(ts("2026-11-22T06:00:00+01:00"), INT64_C(1795323600000));
    assert_int_equal(ts("2026-11-22T00:30:00-04:30"), INT64_C(1795323600000));
    assert_int_equal(ts("2026-11-22t05:00:00.123z"), INT64_C(1795323600123));
    assert_int_equal(ts("2026-11-22 05:00:00.1Z"), INT64_C(1795323600100));
    assert_int_equal(ts("2026-11-22T05:00:00.123456789Z"), INT64_C(1795323600123));
    assert_int_equal(ts("2024-02-29T00:00:00Z"), INT64_C(1709164800000));
    assert_int_equal(ts("1969-12-31T23:59:59Z"), -1000);
    assert_int_equal(ts("2016-12-31T23:59:60Z"), ts("2016-12-31T23:59:59.999Z"));
}

static void bad_rfc3339_is_rejected(void **state)
{
    (void)state;
    const char *bad[] = {"", "2026-11-22", "2026-11-22T05:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
                         "2026-11-31T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T05:60:00Z",
                         "2026-11-22T05:00:00+25:00", "2026-11-22T05:00:00Zjunk", "26-11-22T05:00:00Z",
                         "2026-11-22T05:00:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        jet_err err;
        if (jet_rfc3339_parse(bad[i], &ms, &err) != JET_ERR_INVALID)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_non_null(strstr(err.msg, "invalid RFC 3339 time"));
    }
}

static void rfc3339_formats_and_round_trips(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(jet_rfc3339_format(INT64_C(1795323600123), buf, sizeof buf), "2026-11-22T05:00:00.123Z");
    assert_string_equal(jet_rfc3339_format(-1, buf, sizeof buf), "1969-12-31T23:59:59.999Z");
    for (int64_t ms = -INT64_C(5000000000000); ms < INT64_C(8000000000000); ms += INT64_C(7919) * 86400 * 1000 + 1234)
        assert_int_equal(ts(jet_rfc3339_format(ms, buf, sizeof buf)), ms);
}

static void civil_dates_round_trip(void **state)
{
    (void)state;
    for (int64_t d = -800000; d < 800000; d += 37) {
        int64_t y;
        unsigned m, day;
        jet_civil_from_days(d, &y, &m, &day);
        assert_int_equal(jet_days_from_civil(y, m, day), d);
    }
    assert_int_equal(jet_days_from_civil(2000, 3, 1), 11017);
}

static void names_follow_the_contract(void **state)
{
    (void)state;
    assert_true(jet_name_valid("default"));
    assert_true(jet_name_valid("a-b_c9"));
    assert_false(jet_name_valid(""));
    assert_false(jet_name_valid("Upper"));
    assert_false(jet_name_valid("has.dot"));
    assert_false(jet_name_valid("sp ace"));
    char long_name[70];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    assert_true(jet_name_valid(long_name));
    long_name[64] = 'a';
    long_name[65] = '\0';
    assert_false(jet_name_valid(long_name));
    assert_true(jet_task_id_valid("01HXYZ-Abc_9"));
    assert_false(jet_task_id_valid("a.b"));
    assert_false(jet_task_id_valid("a>"));
    jet_priority p;
    assert_true(jet_priority_parse("low", &p));
    assert_int_equal(p, JET_PRIO_LOW);
    assert_false(jet_priority_parse("urgent", &p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations_parse),
        cmocka_unit_test(bad_durations_are_rejected),
        cmocka_unit_test(durations_format_round_trip),
        cmocka_unit_test(rfc3339_parses),
        cmocka_unit_test(bad_rfc3339_is_rejected),
        cmocka_unit_test(rfc3339_formats_and_round_trips),
        cmocka_unit_test(civil_dates_round_trip),
        cmocka_unit_test(names_follow_the_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
