/* Unit tests of the Lua workflow calls (ctx.workflow, ctx.workflow_add,
 * ctx.parent_results; plugin ABI 1.2) through the Lua host with a test
 * host API that records what reaches workflow_add: arguments turned into the
 * task.submit body, names and depends_on, host errors as nil + message,
 * argument errors raised, calls outside a workflow task raised, and a host
 * table of ABI 1.0 (no workflow calls). tests/lua/workflow.lua holds the cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lua_testkit.h"

#include <jansson.h>

static lua_host *th;
static const char *wf_id;         /* what workflow_id answers (NULL: not a workflow task) */
static int wf_add_rc;             /* what workflow_add answers */
static const char *wf_parents;    /* what parent_results answers */
static char add_name[8][80], add_body[8][1024], add_deps[8][256];
static int add_allow[8], n_adds;

static const char *t_workflow_id(jet_task_ctx *ctx)
{
    (void)ctx;
    return wf_id;
}

static int t_workflow_add(jet_task_ctx *ctx, const char *name, const char *task_json, const char *const *deps,
                          size_t n, int allow_failure, char *out, size_t outlen)
{
    (void)ctx;
    if (wf_add_rc) {
        snprintf(out, outlen, "workflow_add: failed_precondition: workflow w is over");
        return wf_add_rc;
    }
    int i = n_adds++;
    snprintf(add_name[i], sizeof add_name[i], "%s", name);
    snprintf(add_body[i], sizeof add_body[i], "%s", task_json);
    add_deps[i][0] = '\0';
    for (size_t j = 0; j < n; j++) {
        size_t u = strlen(add_deps[i]);
        snprintf(add_deps[i] + u, sizeof add_deps[i] - u, "%s;", deps[j]);
    }
    add_allow[i] = allow_failure;
    snprintf(out, outlen, "%s-t-%s", wf_id, name);
    return 0;
}

static const char *t_parent_results(jet_task_ctx *ctx)
{
    (void)ctx;
    return wf_parents;
}

static int setup(void **state)
{
    (void)state;
    lt_init_api();
    lt_api.workflow_id = t_workflow_id;
    lt_api.workflow_add = t_workflow_add;
    lt_api.parent_results = t_parent_results;
    wf_id = "w1";
    wf_add_rc = 0;
    wf_parents = "{}";
    n_adds = 0;
    return 0;
}

static const char *run(const char *payload, jet_outcome want, jet_task_ctx *c)
{
    jet_outcome o = lt_run(th, "workflow", payload, c);
    if (o != want)
        fail_msg("case %s: outcome %d, want %d (error: %s)", payload, o, want, c->error);
    return o == JET_SUCCESS ? th_result(c) : c->error;
}

static void workflow_field(void **state)
{
    (void)state;
    jet_task_ctx c;
    assert_string_equal(run("info", JET_SUCCESS, &c), "{\"workflow\":\"w1\"}");
    th_ctx_free(&c);
    wf_id = NULL;
    assert_string_equal(run("info", JET_SUCCESS, &c), "{\"workflow\":null}");
    th_ctx_free(&c);
}

static void add_builds_the_body(void **state)
{
    (void)state;
    jet_task_ctx c;
    assert_string_equal(run("add", JET_SUCCESS, &c), "w1-t-c1 w1-t-fan-in");
    th_ctx_free(&c);
    assert_int_equal(n_adds, 2);
    assert_string_equal(add_name[0], "c1");
    json_t *b = json_loads(add_body[0], 0, NULL);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "handler")), "echo");
    assert_string_equal(json_string_value(json_object_get(b, "payload")), "x");
    assert_string_equal(json_string_value(json_object_get(b, "priority")), "high");
    assert_string_equal(json_string_value(json_object_get(b, "timeout")), "30s");
    assert_int_equal(json_integer_value(json_object_get(b, "max_attempts")), 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "headers"), "X-A")), "1");
    assert_null(json_object_get(b, "name"));
    assert_null(json_object_get(b, "depends_on"));
    assert_int_equal(json_object_size(b), 6);
    json_decref(b);
    assert_string_equal(add_deps[0], "");
    assert_int_equal(add_allow[0], 0);
    assert_string_equal(add_name[1], "fan-in");
    assert_string_equal(add_deps[1], "c1;pre;");
    assert_int_equal(add_allow[1], 1);
    assert_string_equal(add_body[1], "{\"handler\":\"merge\"}");
}

static void host_errors_are_returned(void **state)
{
    (void)state;
    jet_task_ctx c;
    wf_add_rc = JET_WF_INVALID;
    /* Compared as JSON: a Lua table's key order varies between states. */
    json_t *got = json_loads(run("add_error", JET_SUCCESS, &c), 0, NULL);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "err")),
                        "workflow_add: failed_precondition: workflow w is over");
    assert_true(json_is_null(json_object_get(got, "id")));
    assert_int_equal(json_object_size(got), 2);
    json_decref(got);
    th_ctx_free(&c);
    wf_parents = NULL;
    assert_contains(run("parents_error", JET_SUCCESS, &c), "ctx.parent_results: the parents' results cannot be read");
    th_ctx_free(&c);
}

static void argument_errors_raise(void **state)
{
    (void)state;
    static const struct {
        const char *c, *msg;
    } cases[] = {
        {"no_name", "ctx.workflow_add: field 'name'"},
        {"no_handler", "ctx.workflow_add: 'handler' must be a handler name"},
        {"unknown_field", "ctx.workflow_add: unknown field 'delay'"},
        {"bad_dep", "ctx.workflow_add: depends_on[1] must be a string"},
        {"bad_allow", "ctx.workflow_add: 'allow_failure' must be a boolean"},
        {"binary", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jet_task_ctx c;
        const char *e = run(cases[i].c, JET_RETRY, &c);
        assert_contains(e, "workflow.lua:");
        assert_contains(e, cases[i].msg);
        th_ctx_free(&c);
    }
    assert_int_equal(n_adds, 0);
}

static void outside_a_workflow_raises(void **state)
{
    (void)state;
    wf_id = NULL;
    jet_task_ctx c;
    assert_contains(run("add", JET_RETRY, &c), "ctx.workflow_add: task task-0001 is not a task of a workflow");
    th_ctx_free(&c);
    assert_contains(run("parents", JET_RETRY, &c), "ctx.parent_results: task task-0001 is not a task of a workflow");
    th_ctx_free(&c);
    assert_int_equal(n_adds, 0);
}

static void parent_results_table(void **state)
{
    (void)state;
    jet_task_ctx c;
    wf_parents = "{\"a\":{\"task_id\":\"w1-a\",\"status\":\"succeeded\",\"result\":\"r-a\"},"
                 "\"b\":{\"task_id\":\"w1-b\",\"status\":\"dead\",\"result\":null}}";
    assert_string_equal(run("parents", JET_SUCCESS, &c), "a=succeeded:r-a:w1-a,b=dead:nil:w1-b");
    th_ctx_free(&c);
    wf_parents = "{}";
    assert_string_equal(run("parents", JET_SUCCESS, &c), "");
    th_ctx_free(&c);
}

/* A host of ABI 1.0 (struct_size without the 1.2 functions): no workflow. */
static void older_host(void **state)
{
    (void)state;
    lt_api.struct_size = offsetof(jet_host_api, workflow_id);
    jet_task_ctx c;
    assert_string_equal(run("info", JET_SUCCESS, &c), "{\"workflow\":null}");
    th_ctx_free(&c);
    assert_contains(run("add", JET_RETRY, &c), "is not a task of a workflow");
    th_ctx_free(&c);
    assert_int_equal(n_adds, 0);
    lt_api.struct_size = sizeof(jet_host_api);
}

int main(void)
{
    lt_init_api();
    th = lt_open(th_env_dir("JETSCHED_LUA_TEST_DIR"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(workflow_field, setup),
        cmocka_unit_test_setup(add_builds_the_body, setup),
        cmocka_unit_test_setup(host_errors_are_returned, setup),
        cmocka_unit_test_setup(argument_errors_raise, setup),
        cmocka_unit_test_setup(outside_a_workflow_raises, setup),
        cmocka_unit_test_setup(parent_results_table, setup),
        cmocka_unit_test_setup(older_host, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lua_host_close(th);
    return rc;
}
