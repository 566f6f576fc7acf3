/* The out-of-tree example plugin (examples/plugin), built by
 * tests/plugins/build_example.sh against the installed <jetsched/plugin.h>,
 * loads and runs through the plugin host; so do the installed built-ins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugin_host.h"
#include "test_host.h"

#include <jetsched/log.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define assert_contains(hay, needle)                                                                                  \
    do {                                                                                                              \
        if (!strstr((hay), (needle)))                                                                                 \
            fail_msg("expected \"%s\" in: %s", (needle), (hay));                                                     \
    } while (0)

static char example_dir[PATH_MAX];

static void example_plugin_runs(void **state)
{
    (void)state;
    char so[PATH_MAX + 16];
    snprintf(so, sizeof so, "%s/reverse.so", example_dir);
    json_t *configs = json_pack("{s:{s:i}}", "reverse", "max_bytes", 16);
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    if (jet_plugins_load(reg, so, configs, &err) != JET_OK)
        fail_msg("%s", err.msg);
    const jet_plugin_handler *h = jet_plugins_find(reg, "reverse");
    assert_non_null(h);
    assert_string_equal(h->plugin, "reverse");
    assert_string_equal(h->version, "1.0.0");

    jet_task_ctx ctx;
    th_ctx_init(&ctx);
    jet_task t = th_task("reverse", "stressed", 8);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_SUCCESS);
    assert_string_equal(th_result(&ctx), "desserts");
    assert_int_equal(ctx.progress, 100);
    th_ctx_free(&ctx);

    th_ctx_init(&ctx);
    t = th_task("reverse", "this payload is too long", 24);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_FAIL);
    assert_contains(ctx.error, "exceeds max_bytes 16");
    th_ctx_free(&ctx);
    jet_plugins_free(reg);
    json_decref(configs);
}

static void installed_builtins_load(void **state)
{
    (void)state;
    char path[PATH_MAX + 32], dir[PATH_MAX];
    snprintf(path, sizeof path, "%s/installed_plugin_dir", example_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(dir, sizeof dir, f));
    fclose(f);
    dir[strcspn(dir, "\n")] = '\0';
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    if (jet_plugins_load_dir(reg, dir, NULL, &err) != JET_OK)
        fail_msg("%s", err.msg);
    /* exec and http serve nothing without settings. */
    assert_int_equal(jet_plugins_count(reg), 2);
    assert_non_null(jet_plugins_find(reg, "echo"));
    assert_non_null(jet_plugins_find(reg, "noop"));
    jet_plugins_free(reg);
}

int main(void)
{
    jet_log_init("test", JET_LOG_WARN, false);
    snprintf(example_dir, sizeof example_dir, "%s", th_env_dir("JETSCHED_EXAMPLE_DIR"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_plugin_runs),
        cmocka_unit_test(installed_builtins_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
