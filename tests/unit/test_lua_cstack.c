/* C-stack exhaustion through the Lua host (tests/lua/cstack.lua), on a
 * thread with agentd's 1 MiB worker stack: the Lua 5.4.4 bug of deeply
 * nested coroutine.close (and its variants through coroutine.resume, errors
 * in __close, and ~200 levels of string.gsub callbacks at every level) stops
 * the task with "C stack overflow", a task that swallows the error still
 * fails, legitimate nesting still works, and the recursion Lua bounds itself
 * (pcall, gsub, string.format, table.sort, resume chains, errors while
 * handling errors: CVE-2022-33099) ends in an error. The process surviving
 * every case is the first assertion: a crash fails the whole test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lua_testkit.h"

#include <jetsched/log.h>

#define WORKER_STACK (1 << 20) /* agentd/worker.c */
#define GUARD_MSG "C stack overflow (coroutines resumed or closed inside __close handlers nest too deeply)"

static lua_host *h;

typedef struct probe {
    const char *payload;
    jet_outcome outcome;
    char result[256], error[8192];
} probe;

static void *run_probe(void *arg)
{
    probe *p = arg;
    jet_task_ctx c;
    p->outcome = lt_run_t(h, "cstack", p->payload, 60000, &c);
    snprintf(p->result, sizeof p->result, "%.200s", th_result(&c));
    snprintf(p->error, sizeof p->error, "%s", c.error);
    th_ctx_free(&c);
    lua_host_thread_exit();
    return NULL;
}

/* Runs one payload on a fresh thread with a 1 MiB stack. */
static probe run_small_stack(const char *payload)
{
    probe p = {.payload = payload};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, &attr, run_probe, &p), 0);
    pthread_join(tid, NULL);
    pthread_attr_destroy(&attr);
    if (getenv("JETSCHED_TEST_VERBOSE"))
        printf("%s: outcome %d: %s | %s\n", payload, p.outcome, p.result, p.error);
    return p;
}

static void assert_host_healthy(void)
{
    probe p = run_small_stack("close_nest 3");
    assert_int_equal(p.outcome, JET_SUCCESS);
    assert_string_equal(p.result, "true");
}

/* The 5.4.4 bug and its variants: stopped by the host's guard. */
static void nested_close_stopped(void **state)
{
    (void)state;
    static const char *const payloads[] = {"close_nest 20000", "close_resume 5000", "close_error_nest 5000",
                                           "close_gsub_before 2000", "close_gsub_after 2000"};
    for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
        lua_host_stats before, after;
        lua_host_stats_get(h, &before);
        probe p = run_small_stack(payloads[i]);
        if (p.outcome != JET_RETRY)
            fail_msg("%s: outcome %d, result '%s'", payloads[i], p.outcome, p.result);
        assert_contains(p.error, "cstack.lua:");
        assert_contains(p.error, GUARD_MSG);
        lua_host_stats_get(h, &after);
        assert_int_equal(after.errors, before.errors + 1);
        assert_host_healthy();
    }
}

/* The scripts in close_nest ignore what coroutine.close returns, so the
 * guard's error is swallowed at every level: the task still fails (above).
 * Nesting well within the limit works as before. */
static void legitimate_nesting_runs(void **state)
{
    (void)state;
    probe p = run_small_stack("close_nest 100");
    assert_int_equal(p.outcome, JET_SUCCESS);
    assert_string_equal(p.result, "true");
    p = run_small_stack("close_gsub_before 20");
    assert_int_equal(p.outcome, JET_SUCCESS);
    assert_string_equal(p.result, "true");
}

/* Recursion Lua counts itself ends in its own (catchable) error. */
static void counted_recursion_errors(void **state)
{
    (void)state;
    static const char *const payloads[] = {"wrap_nest 20000", "error_handling", "tostring_error", "resume_nest 1000",
                                           "close_pcall 1000", "gsub_nest", "format_nest", "sort_nest 1000"};
    for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
        probe p = run_small_stack(payloads[i]);
        if (p.outcome != JET_SUCCESS && p.outcome != JET_RETRY)
            fail_msg("%s: outcome %d", payloads[i], p.outcome);
        if (p.outcome == JET_RETRY && !strstr(p.error, "C stack overflow"))
            fail_msg("%s: unexpected error %s", payloads[i], p.error);
        assert_not_contains(p.error, GUARD_MSG);
        assert_host_healthy();
    }
}

static int group_setup(void **state)
{
    (void)state;
    jet_log_init("test_lua_cstack", JET_LOG_ERROR, false);
    lt_init_api();
    h = lt_open(th_env_dir("JETSCHED_LUA_TEST_DIR"));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lua_host_close(h);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nested_close_stopped),
        cmocka_unit_test(legitimate_nesting_runs),
        cmocka_unit_test(counted_recursion_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
