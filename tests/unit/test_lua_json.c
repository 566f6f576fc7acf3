/* The Lua json module (on jansson): round trips and the documented lossy and
 * refused cases, through tests/lua/jsonmod.lua. */
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
        cmocka_unit_test(json_cases),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
