/* Unit tests of small shared helpers: PostgreSQL array literals
 * (jetsched/pgarray.h), the string hash table (jetsched/strmap.h), the
 * calendar helpers (jetsched/timeutil.h) and jet_xgrow (jetsched/alloc.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/alloc.h>
#include <jetsched/pgarray.h>
#include <jetsched/strmap.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void array_literals(void **state)
{
    (void)state;
    jet_pgarr a = {0};
    assert_string_equal(jet_pgarr_lit(&a), "{}");
    jet_pgarr_add(&a, "plain");
    jet_pgarr_add(&a, NULL);
    jet_pgarr_add(&a, "q\"uote\\back");
    jet_pgarr_add_ms(&a, 1700000000123);
    jet_pgarr_add_ms(&a, -1);
    assert_string_equal(jet_pgarr_lit(&a), "{\"plain\",NULL,\"q\\\"uote\\\\back\",1700000000123,NULL}");
    for (int i = 0; i < 1000; i++)
        jet_pgarr_add(&a, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_int_equal(a.n, 1005);
    assert_int_equal(jet_pgarr_lit(&a)[a.len], '}');
    jet_pgarr_free(&a);

    char buf[64], *o = buf;
    o = jet_pgarr_put_int(o, -42, false);
    *o++ = ',';
    o = jet_pgarr_put_int(o, 0, true);
    *o++ = ',';
    o = jet_pgarr_put_bytea(o, (const unsigned char *)"\x0a\xff", 2);
    *o = '\0';
    assert_string_equal(buf, "-42,NULL,\"\\\\x0aff\"");
}

static bool drop_odd(const char *key, void *value, void *arg)
{
    (void)key, (void)arg;
    bool odd = *(int *)value % 2;
    if (odd)
        free(value);
    return odd;
}

static void string_map(void **state)
{
    (void)state;
    jet_strmap *m = jet_strmap_new();
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "task-%d", i);
        int *v = jet_xmalloc(sizeof *v);
        *v = i;
        assert_null(jet_strmap_put(m, key, v));
    }
    assert_int_equal(jet_strmap_count(m), 5000);
    assert_int_equal(*(int *)jet_strmap_get(m, "task-4321"), 4321);
    assert_null(jet_strmap_get(m, "task-5000"));
    int *nv = jet_xmalloc(sizeof *nv);
    *nv = 7;
    free(jet_strmap_put(m, "task-7", nv)); /* replaces, count unchanged */
    assert_int_equal(jet_strmap_count(m), 5000);
    assert_int_equal(jet_strmap_prune(m, drop_odd, NULL), 2500);
    assert_null(jet_strmap_get(m, "task-7"));
    free(jet_strmap_remove(m, "task-8"));
    assert_null(jet_strmap_get(m, "task-8"));
    assert_int_equal(jet_strmap_count(m), 2499);
    jet_strmap_free(m, free);
}

static void calendar(void **state)
{
    (void)state;
    assert_true(jet_leap_year(2000));
    assert_false(jet_leap_year(1900));
    assert_true(jet_leap_year(2024));
    assert_int_equal(jet_month_days(2024, 2), 29);
    assert_int_equal(jet_month_days(2023, 2), 28);
    assert_int_equal(jet_month_days(2023, 12), 31);
    assert_int_equal(jet_weekday(0), 4); /* 1970-01-01 was a Thursday */
    assert_int_equal(jet_weekday(jet_days_from_civil(2026, 12, 7)), 1);
    assert_int_equal(jet_weekday(-1), 3);
    assert_int_equal(jet_floor_div(-1, 1000), -1);
    assert_int_equal(jet_floor_div(1999, 1000), 1);
    assert_int_equal(jet_floor_div(-1000, 1000), -1);
}

static void grow(void **state)
{
    (void)state;
    size_t cap = 0;
    int *v = jet_xgrow(NULL, &cap, 1, sizeof *v, 8);
    assert_int_equal(cap, 8);
    v = jet_xgrow(v, &cap, 9, sizeof *v, 8);
    assert_int_equal(cap, 16);
    v = jet_xgrow(v, &cap, 100, sizeof *v, 8);
    assert_int_equal(cap, 128);
    v[127] = 1;
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(array_literals),
        cmocka_unit_test(string_map),
        cmocka_unit_test(calendar),
        cmocka_unit_test(grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
