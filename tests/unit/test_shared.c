/* Unit tests of small shared helpers: PostgreSQL array literals
 * (jetsched/pgarray.h), the string hash table (jetsched/strmap.h), the
 * calendar helpers (jetsched/timeutil.h), jet_xgrow (jetsched/alloc.h) and
 * typed settings (jet_cfg_bind, jetsched/config.h), the canonical base64
 * decoder (jetsched/base64.h) and log lines being valid UTF-8 (jetsched/log.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/alloc.h>
#include <jetsched/base64.h>
#include <jetsched/config.h>
#include <jetsched/log.h>
#include <jetsched/pgarray.h>
#include <jetsched/strmap.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

typedef struct elem {
    const char *name;
    int n;
    const char *mode;
} elem;

typedef struct settings {
    bool on;
    int64_t wait_ms;
    int count;
    int choice;
    const char *label;
    elem *elems;
    size_t nelems;
} settings;

static const jet_cfg_key elem_keys[] = {
    {"name", JET_CFG_STRING, NULL, 1, 0, NULL, 0, NULL, NULL, "name"},
    {"n", JET_CFG_INT, "4", 1, 100, NULL, 0, NULL, NULL, "n"},
    {"mode", JET_CFG_STRING, "exp:1s", 1, 0, NULL, 0, NULL, NULL, "mode"},
    {NULL},
};
static const jet_cfg_key test_keys[] = {
    {"t.on", JET_CFG_BOOL, "true", 1, 0, NULL, 0, NULL, NULL, "on"},
    {"t.wait", JET_CFG_DURATION, "30s", 1, 0, NULL, 0, NULL, NULL, "wait"},
    {"t.count", JET_CFG_INT, "7", 0, 1000, NULL, 0, NULL, NULL, "count"},
    {"t.choice", JET_CFG_ENUM, "b", 1, 0, "a|b|c", 0, NULL, NULL, "choice"},
    {"t.label", JET_CFG_STRING, NULL, 1, 0, NULL, 0, NULL, NULL, "label"},
    {"elems", JET_CFG_GROUPLIST, NULL, 1, 0, NULL, 0, NULL, elem_keys, "elems"},
    {NULL},
};
static const jet_cfg_key *const test_schema[] = {test_keys, NULL};

static const jet_cfg_field test_fields[] = {
    JET_CFG_FIELD("t.on", JET_CT_BOOL, settings, on),       JET_CFG_FIELD("t.wait", JET_CT_I64, settings, wait_ms),
    JET_CFG_FIELD("t.count", JET_CT_INT, settings, count),  JET_CFG_FIELD("t.choice", JET_CT_CHOICE, settings, choice),
    JET_CFG_FIELD("t.label", JET_CT_STR, settings, label),  {NULL, 0, 0},
};
static const jet_cfg_field elem_fields[] = {
    JET_CFG_FIELD("name", JET_CT_STR, elem, name),
    JET_CFG_FIELD("n", JET_CT_INT, elem, n),
    JET_CFG_FIELD("mode", JET_CT_STR, elem, mode),
    {NULL, 0, 0},
};

static void config_binding(void **state)
{
    (void)state;
    jet_config *cfg = NULL;
    jet_err err;
    /* Defaults only: the group list is empty, so the default element comes from elem_keys. */
    assert_int_equal(jet_config_load(test_schema, NULL, &cfg, &err), JET_OK);
    settings s = {0};
    jet_cfg_bind(cfg, test_fields, &s);
    s.elems = jet_cfg_bind_groups(cfg, "elems", elem_fields, sizeof *s.elems, true, &s.nelems);
    assert_true(s.on);
    assert_int_equal(s.wait_ms, 30000);
    assert_int_equal(s.count, 7);
    assert_int_equal(s.choice, 1);
    assert_null(s.label);
    assert_int_equal(s.nelems, 1);
    assert_null(s.elems[0].name);
    assert_int_equal(s.elems[0].n, 4);
    assert_string_equal(s.elems[0].mode, "exp:1s");
    free(s.elems);
    jet_config_free(cfg);

    char path[] = "/tmp/jetsched-test-bind-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "t = { on = false; wait = \"250ms\"; choice = \"c\"; label = \"x\"; };\n"
                        "elems = ( { name = \"one\"; }, { name = \"two\"; n = 9; mode = \"fixed\"; } );\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    assert_int_equal(jet_config_load(test_schema, path, &cfg, &err), JET_OK);
    unlink(path);
    jet_cfg_bind(cfg, test_fields, &s);
    s.elems = jet_cfg_bind_groups(cfg, "elems", elem_fields, sizeof *s.elems, true, &s.nelems);
    assert_false(s.on);
    assert_int_equal(s.wait_ms, 250);
    assert_int_equal(s.choice, 2);
    assert_string_equal(s.label, "x");
    assert_int_equal(s.nelems, 2);
    assert_string_equal(s.elems[0].name, "one");
    assert_int_equal(s.elems[0].n, 4);
    assert_string_equal(s.elems[1].name, "two");
    assert_int_equal(s.elems[1].n, 9);
    assert_string_equal(s.elems[1].mode, "fixed");
    free(s.elems);
    jet_config_free(cfg);
}

static bool b64_ok(const char *in, const char *want)
{
    unsigned char *out = NULL;
    size_t len = 0;
    if (!jet_base64_decode(in, strlen(in), &out, &len))
        return false;
    bool same = len == strlen(want) && !memcmp(out, want, len);
    free(out);
    return same;
}

static void base64_canonical(void **state)
{
    (void)state;
    assert_true(b64_ok("YQ==", "a"));
    assert_true(b64_ok("YQ", "a")); /* unpadded (URL-safe tokens) */
    assert_true(b64_ok("YWI=", "ab"));
    assert_true(b64_ok("YWI", "ab"));
    assert_true(b64_ok("YWJj", "abc"));
    assert_true(b64_ok("", ""));
    assert_true(b64_ok("-_8", "\xfb\xff"));
    assert_false(b64_ok("YQ=", "a"));   /* padding does not complete the group */
    assert_false(b64_ok("YQ===", "a")); /* too much padding */
    assert_false(b64_ok("YWI==", "ab"));
    assert_false(b64_ok("YWJj=", "abc"));
    assert_false(b64_ok("YWJj====", "abc"));
    assert_false(b64_ok("=", ""));
    assert_false(b64_ok("YR==", "a")); /* non-zero unused bits */
    assert_false(b64_ok("YWJ=", "ab"));
    assert_false(b64_ok("Y", ""));
    assert_false(b64_ok("Y=Q=", "a"));
    assert_false(b64_ok("!!!!", ""));
}

/* The line jet_log writes to stderr for fmt/arg, captured through a file. */
static char *log_line(bool json, const char *fmt, const char *arg)
{
    char path[] = "/tmp/jetsched-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    jet_log_init("test", JET_LOG_INFO, json);
    jet_log(JET_LOG_WARN, fmt, arg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    return buf;
}

static void log_lines_are_utf8(void **state)
{
    (void)state;
    for (int json = 0; json < 2; json++) {
        const char *l = log_line(json, "handler \"%s\" is not a valid name", "ec\xffho");
        assert_null(strstr(l, "\xff"));
        assert_non_null(strstr(l, "ec\xef\xbf\xbdho"));
        /* a character cut at the end of the 2 KiB message buffer */
        char big[2100];
        memset(big, 'a', sizeof big);
        for (size_t i = 2030; i + 1 < sizeof big; i += 2)
            big[i] = '\xc3', big[i + 1] = '\xa9';
        big[sizeof big - 1] = '\0';
        l = log_line(json, "%s", big);
        assert_null(strstr(l, "\xc3\n"));
        assert_null(strstr(l, "\xc3\""));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(array_literals),
        cmocka_unit_test(string_map),
        cmocka_unit_test(calendar),
        cmocka_unit_test(grow),
        cmocka_unit_test(config_binding),
        cmocka_unit_test(base64_canonical),
        cmocka_unit_test(log_lines_are_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
