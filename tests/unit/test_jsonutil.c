/* Unit tests of the JSON helpers: field errors and the API error body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/jsonutil.h>

#include <stdlib.h>
#include <string.h>

static void getters_name_the_field(void **state)
{
    (void)state;
    json_t *o;
    jet_err err;
    const char *body = "{\"queue\":\"q\",\"n\":3,\"flag\":true,\"bad\":\"x\"}";
    assert_int_equal(jet_json_parse_object(body, strlen(body), &o, &err), JET_OK);
    const char *s;
    int64_t n;
    bool b;
    assert_int_equal(jet_json_get_str(o, "queue", true, &s, &err), JET_OK);
    assert_string_equal(s, "q");
    assert_int_equal(jet_json_get_int(o, "n", true, &n, &err), JET_OK);
    assert_int_equal(n, 3);
    assert_int_equal(jet_json_get_bool(o, "flag", true, &b, &err), JET_OK);
    assert_true(b);
    assert_int_equal(jet_json_get_int(o, "bad", true, &n, &err), JET_ERR_INVALID);
    assert_string_equal(err.msg, "field \"bad\" must be an integer");
    assert_int_equal(jet_json_get_str(o, "handler", true, &s, &err), JET_ERR_INVALID);
    assert_string_equal(err.msg, "field \"handler\" is required");
    assert_int_equal(jet_json_get_str(o, "handler", false, &s, &err), JET_ERR_NOT_FOUND);
    json_decref(o);
}

static void bad_json_reports_position(void **state)
{
    (void)state;
    json_t *o;
    jet_err err;
    assert_int_equal(jet_json_parse_object("{\"a\":", 5, &o, &err), JET_ERR_INVALID);
    assert_non_null(strstr(err.msg, "invalid JSON at line 1"));
    assert_int_equal(jet_json_parse_object("[1]", 3, &o, &err), JET_ERR_INVALID);
    assert_string_equal(err.msg, "request body must be a JSON object");
}

static void error_body_has_stable_shape(void **state)
{
    (void)state;
    json_t *e = jet_json_error(JET_ERR_INVALID, "field \"queue\" is required");
    char *s = jet_json_dumps(e);
    assert_string_equal(s, "{\"error\":{\"code\":\"invalid_argument\",\"message\":\"field \\\"queue\\\" is required\"}}");
    free(s);
    json_decref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(getters_name_the_field),
        cmocka_unit_test(bad_json_reports_position),
        cmocka_unit_test(error_body_has_stable_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
