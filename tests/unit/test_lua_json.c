/* The Lua json module: round trips and the documented lossy and refused
 * cases, through tests/lua/jsonmod.lua, and its memory under the state's cap
 * (tests/lua/membomb.lua). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lua_testkit.h"

#include <jetsched/log.h>

static lua_host *h;

#define B10 "[[[[[[[[[["
#define E10 "]]]]]]]]]]"
#define DEEP_100 B10 B10 B10 B10 B10 B10 B10 B10 B10 B10 E10 E10 E10 E10 E10 E10 E10 E10 E10 E10

static void json_cases(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *result; /* NULL: an error containing `error` */
        const char *error;
    } cases[] = {
        {"roundtrip", "{\"a\":[1,2.5,\"x\",true,false,null],\"b\":{},\"c\":[]}", NULL},
        {"empty_table", "{}", NULL},
        {"empty_array", "[]", NULL},
        {"decoded_empty_array", "[]", NULL},
        {"null", "true null null", NULL},
        {"sparse", "{\"1\":1,\"3\":3}", NULL},
        {"mixed", "{\"1\":1,\"2\":2,\"x\":1}", NULL},
        {"numbers", "[1,1.0,1.5,9223372036854775807,-0.25]", NULL},
        {"number_types", "integer float float", NULL},
        {"float_key", "{\"1.5\":\"x\"}", NULL},
        {"nan", NULL, "jsonmod.lua:22: json.encode: cannot encode NaN or infinity"},
        {"inf", NULL, "json.encode: cannot encode NaN or infinity"},
        {"func", NULL, "json.encode: cannot encode a function value"},
        {"bad_key", NULL, "json.encode: cannot use a boolean as an object key"},
        {"cycle", NULL, "json.encode: nesting deeper than 128 levels (or a cycle)"},
        {"bad_utf8", NULL, "json.encode: string is not valid UTF-8"},
        {"bad_utf8_key", NULL, "json.encode: object key is not valid UTF-8"},
        {"nul", "\"a\\u0000b\" 3", NULL},
        {"decode_error", NULL, "json.decode: "},
        {"big_int", NULL, "json.decode: too big integer"},
        {"scalars", "s 1.5 true", NULL},
        {"indent", "{\n  \"a\": 1\n}", NULL},
        {"deep", NULL, "json.decode: nesting deeper than 128 levels"},
        {"deep_ok", DEEP_100, NULL},
        {"unicode", "true \"\xc3\xa9\"", NULL},
        {"array_has_mt", NULL, "json.array: the table already has a metatable"},
        {"array_marked_holes", "[1]", NULL},
        {"escapes", "\"q\\\"\\\\/\\n\\t\"", NULL},
        {"floats", "[0.10000000000000001,1.0000000000000001e300,9007199254740992.0]", NULL},
        {"proxy", "{}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jet_task_ctx c;
        jet_outcome o = lt_run(h, "jsonmod", cases[i].name, &c);
        if (cases[i].result) {
            if (o != JET_SUCCESS)
                fail_msg("%s: outcome %d, error %s", cases[i].name, o, c.error);
            if (strcmp(th_result(&c), cases[i].result) != 0)
                fail_msg("%s: got %s, want %s", cases[i].name, th_result(&c), cases[i].result);
        } else {
            if (o != JET_RETRY)
                fail_msg("%s: outcome %d, result %s", cases[i].name, o, th_result(&c));
            assert_contains(c.error, cases[i].error);
            assert_contains(c.error, "jsonmod.lua:");
        }
        th_ctx_free(&c);
    }
}

static void peak_rss_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w"); /* "5": reset the peak */
    assert_non_null(f);
    fputs("5", f);
    fclose(f);
}

/* A field of /proc/self/status in kB (VmRSS: now, VmHWM: the peak since the
 * last reset). */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = atol(line + strlen(field) + 1);
    fclose(f);
    return kb;
}

/* json.decode/encode allocate Lua memory only, under the state's cap: a 10 MB
 * text whose tables need far more than the cap fails with "memory limit
 * exceeded" (also when the script catches the error) while the process grows
 * by little more than the cap. Measured in the ASan build (its quarantine
 * keeps freed blocks resident): +79 MB peak RSS with a 32 MiB cap, +669 MB
 * when json.decode built a jansson tree first. */
static void memory_is_capped(void **state)
{
    (void)state;
    lua_host_options opt;
    lua_host_options_init(&opt);
    opt.dir = th_env_dir("JETSCHED_LUA_TEST_DIR");
    opt.mem_limit_bytes = 32u << 20;
    lua_host *capped = lt_open_opts(&opt);
    static const char *const modes[] = {"json_text", "json_text_pcall", "json_encode_big"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        long before = status_kb("VmRSS:");
        peak_rss_reset();
        jet_task_ctx c;
        jet_outcome o = lt_run(capped, "membomb", modes[i], &c);
        long grew_mb = (status_kb("VmHWM:") - before) / 1024;
        if (getenv("JETSCHED_TEST_VERBOSE"))
            printf("%s: outcome %d, %s, peak RSS +%ld MB\n", modes[i], o, c.error, grew_mb);
        assert_int_equal(o, JET_RETRY);
        assert_contains(c.error, "membomb.lua:");
        assert_contains(c.error, "memory limit exceeded (33554432 bytes per Lua state)");
        if (grew_mb > 200)
            fail_msg("%s: the process grew by %ld MB with a 32 MiB cap", modes[i], grew_mb);
        th_ctx_free(&c);
    }
    lua_host_thread_exit();
    lua_host_close(capped);
}

static int group_setup(void **state)
{
    (void)state;
    jet_log_init("test_lua_json", JET_LOG_ERROR, false);
    lt_init_api();
    h = lt_open(th_env_dir("JETSCHED_LUA_TEST_DIR"));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lua_host_thread_exit();
    lua_host_close(h);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_is_capped), /* first: before other tests raise the peak */
        cmocka_unit_test(json_cases),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
