/* Unit tests of the shared task contract (jetsched/task.h) and the backoff
 * policies (jetsched/backoff.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/backoff.h>
#include <jetsched/task.h>

#include <string.h>

static void states_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < JET_TASK_STATE_COUNT; i++) {
        jet_task_state s;
        assert_non_null(jet_task_state_names[i]);
        assert_true(jet_task_state_parse(jet_task_state_name((jet_task_state)i), &s));
        assert_int_equal(s, i);
    }
    assert_null(jet_task_state_names[JET_TASK_STATE_COUNT]);
    assert_false(jet_task_state_parse("Succeeded", NULL));
    assert_false(jet_task_state_parse("", NULL));
    assert_false(jet_task_state_parse(NULL, NULL));
    assert_string_equal(jet_task_state_name(JET_TASK_DEAD), "dead");
}

static void terminal_states(void **state)
{
    (void)state;
    const char *term[] = {"succeeded", "dead", "expired", "cancelled", "duplicate", "skipped"};
    const char *open[] = {"scheduled", "queued", "running", "retrying", "bogus"};
    for (size_t i = 0; i < sizeof term / sizeof term[0]; i++)
        assert_true(jet_task_status_terminal(term[i]));
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        assert_false(jet_task_status_terminal(open[i]));
    assert_true(jet_task_status_ok("succeeded"));
    assert_true(jet_task_status_ok("duplicate"));
    assert_false(jet_task_status_ok("dead"));
    assert_false(jet_task_status_ok(NULL));
}

static void backoff_policies(void **state)
{
    (void)state;
    jet_backoff b;
    jet_err err;
    assert_int_equal(jet_backoff_parse("exp", &b, &err), JET_OK);
    assert_int_equal(b.kind, JET_BACKOFF_EXP);
    assert_int_equal(b.base_ms, 1000);
    assert_int_equal(b.cap_ms, 600000);
    assert_int_equal(jet_backoff_parse("fixed:250ms", &b, &err), JET_OK);
    assert_int_equal(jet_backoff_delay(&b, 7, 12345), 250);
    assert_int_equal(jet_backoff_parse("linear:1s:3s", &b, &err), JET_OK);
    for (uint64_t r = 0; r < 1000; r += 7)
        assert_true(jet_backoff_delay(&b, 10, r) <= 3000);
    assert_int_equal(jet_backoff_parse("exp:2s:1s", &b, &err), JET_ERR_INVALID);
    assert_non_null(strstr(err.msg, "cap is smaller than base"));
    assert_int_equal(jet_backoff_parse("zigzag:1s", &b, &err), JET_ERR_INVALID);
    assert_int_equal(jet_backoff_parse("fixed:1s:2s", &b, &err), JET_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(states_round_trip),
        cmocka_unit_test(terminal_states),
        cmocka_unit_test(backoff_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
