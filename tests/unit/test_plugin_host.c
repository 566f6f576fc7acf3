/* Unit tests of the native plugin loader (agentd/plugin_host.c): what it
 * accepts (built-ins, a directory, configured handlers) and every refusal,
 * each with a message that names the file and the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugin_host.h"
#include "test_host.h"

#include <jetsched/log.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char builtin_dir[PATH_MAX], fixture_dir[PATH_MAX];

static const char *builtin(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.so", builtin_dir, name);
    return path;
}

static const char *fixture(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.so", fixture_dir, name);
    return path;
}

#define assert_contains(hay, needle)                                                                                  \
    do {                                                                                                              \
        if (!strstr((hay), (needle)))                                                                                 \
            fail_msg("expected \"%s\" in: %s", (needle), (hay));                                                     \
    } while (0)

/* Loads one fixture into a fresh registry and expects it refused. */
static void expect_refused(const char *path, const json_t *configs, const char *needle)
{
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    assert_int_equal(jet_plugins_load(reg, path, configs, &err), JET_ERR_INVALID);
    assert_contains(err.msg, path);
    assert_contains(err.msg, needle);
    assert_int_equal(jet_plugins_count(reg), 0);
    jet_plugins_free(reg);
}

static void builtins_load_and_run(void **state)
{
    (void)state;
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    assert_int_equal(jet_plugins_load(reg, builtin("noop"), NULL, &err), JET_OK);
    assert_int_equal(jet_plugins_load(reg, builtin("echo"), NULL, &err), JET_OK);
    assert_int_equal(jet_plugins_count(reg), 2);
    assert_string_equal(jet_plugins_at(reg, 0)->name, "echo"); /* sorted */
    assert_string_equal(jet_plugins_at(reg, 1)->name, "noop");
    assert_null(jet_plugins_find(reg, "nope"));

    const jet_plugin_handler *h = jet_plugins_find(reg, "noop");
    assert_non_null(h);
    assert_string_equal(h->plugin, "noop");
    assert_string_equal(h->path, builtin("noop"));
    jet_task_ctx ctx;
    th_ctx_init(&ctx);
    jet_task t = th_task("noop", "x", 1);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_SUCCESS);
    assert_false(ctx.has_result);
    th_ctx_free(&ctx);

    h = jet_plugins_find(reg, "echo");
    assert_non_null(h);
    static const char payload[] = {'h', 'i', 0, 'x', '\n'};
    th_ctx_init(&ctx);
    t = th_task("echo", payload, sizeof payload);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_SUCCESS);
    assert_true(ctx.has_result);
    assert_int_equal(ctx.result_len, sizeof payload);
    assert_memory_equal(ctx.result, payload, sizeof payload);
    th_ctx_free(&ctx);
    th_ctx_init(&ctx);
    t = th_task("echo", NULL, 0);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_SUCCESS);
    assert_true(ctx.has_result);
    assert_int_equal(ctx.result_len, 0);
    th_ctx_free(&ctx);
    jet_plugins_free(reg);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/jetsched-plugin-host-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void link_into(const char *target, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    assert_int_equal(symlink(target, p), 0);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void directory_with_configs(void **state)
{
    (void)state;
    make_tmpdir();
    link_into(builtin("echo"), "echo.so");
    link_into(builtin("noop"), "noop.so");
    link_into(fixture("cfg"), "cfg.so");
    link_into(fixture("bad_major"), ".hidden.so"); /* hidden: ignored */
    link_into(fixture("bad_major"), "bad_major.so.disabled"); /* not *.so: ignored */
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/subdir.so", tmpdir); /* not a regular file: skipped */
    assert_int_equal(mkdir(sub, 0700), 0);
    char marker[PATH_MAX];
    snprintf(marker, sizeof marker, "%s/marker", tmpdir);

    json_t *configs = json_pack("{s:{s:[s,s],s:s}}", "cfg", "handlers", "alpha", "beta", "marker", marker);
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    assert_int_equal(jet_plugins_load_dir(reg, tmpdir, configs, &err), JET_OK);
    assert_int_equal(jet_plugins_count(reg), 4);
    const char *want[] = {"alpha", "beta", "echo", "noop"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(jet_plugins_at(reg, i)->name, want[i]);

    const jet_plugin_handler *h = jet_plugins_find(reg, "beta");
    assert_non_null(h);
    assert_string_equal(h->plugin, "cfg");
    assert_string_equal(h->version, "2.3.4");
    jet_task_ctx ctx;
    th_ctx_init(&ctx);
    jet_task t = th_task("beta", NULL, 0);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_SUCCESS);
    assert_contains(th_result(&ctx), "beta:{\"handlers\":[\"alpha\",\"beta\"],\"marker\":");
    th_ctx_free(&ctx);

    /* A settings entry for a plugin that is not loaded is reported. */
    assert_int_equal(jet_plugins_check_configs(reg, configs, &err), JET_OK);
    json_object_set_new(configs, "nosuch", json_object());
    assert_int_equal(jet_plugins_check_configs(reg, configs, &err), JET_ERR_INVALID);
    assert_contains(err.msg, "plugins.nosuch");
    json_decref(configs);

    assert_null(read_file(marker));
    jet_plugins_free(reg); /* shutdown() runs */
    const char *m = read_file(marker);
    assert_non_null(m);
    assert_string_equal(m, "shutdown\n");
    rm_tmpdir();
}

/* Files load in name order: of two plugins claiming "echo", the first by
 * name wins, the other is refused naming both files; loading goes on. */
static void directory_order_and_duplicates(void **state)
{
    (void)state;
    make_tmpdir();
    link_into(fixture("dup_echo"), "a_dup_echo.so");
    link_into(builtin("echo"), "b_echo.so");
    link_into(fixture("bad_major"), "c_bad_major.so");
    link_into(builtin("noop"), "d_noop.so");
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    assert_int_equal(jet_plugins_load_dir(reg, tmpdir, NULL, &err), JET_ERR_INVALID);
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s/a_dup_echo.so", tmpdir);
    snprintf(b, sizeof b, "%s/b_echo.so", tmpdir);
    assert_contains(err.msg, b);
    assert_contains(err.msg, "handler \"echo\" is already served by");
    assert_contains(err.msg, a);
    assert_contains(err.msg, "(and 1 more plugin failed to load)");
    /* What did load is usable. */
    const jet_plugin_handler *h = jet_plugins_find(reg, "echo");
    assert_non_null(h);
    assert_string_equal(h->plugin, "dup_echo");
    assert_non_null(jet_plugins_find(reg, "noop"));
    assert_int_equal(jet_plugins_count(reg), 3); /* dup-only, echo, noop */
    jet_plugins_free(reg);
    rm_tmpdir();
}

static void directory_missing(void **state)
{
    (void)state;
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    assert_int_equal(jet_plugins_load_dir(reg, "/nonexistent/jetsched/plugins", NULL, &err), JET_ERR_NOT_FOUND);
    assert_contains(err.msg, "/nonexistent/jetsched/plugins");
    jet_plugins_free(reg);
}

static void refuses_abi_major_mismatch(void **state)
{
    (void)state;
    char needle[256];
    snprintf(needle, sizeof needle,
             ": ABI %d.%d is not supported by this agentd (ABI %d.%d); rebuild the plugin against jetsched/plugin.h "
             "%d.x",
             JET_PLUGIN_ABI_MAJOR + 1, JET_PLUGIN_ABI_MINOR, JET_PLUGIN_ABI_MAJOR, JET_PLUGIN_ABI_MINOR,
             JET_PLUGIN_ABI_MAJOR);
    expect_refused(fixture("bad_major"), NULL, needle);
}

static void refuses_newer_minor(void **state)
{
    (void)state;
    char needle[128];
    snprintf(needle, sizeof needle, ": ABI %d.%d is newer than this agentd's (ABI %d.%d)", JET_PLUGIN_ABI_MAJOR,
             JET_PLUGIN_ABI_MINOR + 1, JET_PLUGIN_ABI_MAJOR, JET_PLUGIN_ABI_MINOR);
    expect_refused(fixture("bad_minor"), NULL, needle);
}

/* A plugin built against an older minor (1.0) loads and runs on this host. */
static void loads_older_minor(void **state)
{
    (void)state;
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err = {0};
    assert_int_equal(jet_plugins_load(reg, fixture("old_minor"), NULL, &err), JET_OK);
    const jet_plugin_handler *h = jet_plugins_find(reg, "fixture_handler");
    assert_non_null(h);
    jet_task_ctx c;
    th_ctx_init(&c);
    jet_task t = th_task("fixture_handler", "", 0);
    assert_int_equal(jet_plugin_run(h, &t, &c), JET_SUCCESS);
    th_ctx_free(&c);
    jet_plugins_free(reg);
}

static void refuses_missing_entry_symbol(void **state)
{
    (void)state;
    expect_refused(fixture("no_entry"), NULL, ": missing symbol jetsched_plugin_entry: ");
    expect_refused(fixture("null_entry"), NULL, ": jetsched_plugin_entry() returned NULL");
}

static void refuses_small_descriptor(void **state)
{
    (void)state;
    char needle[128];
    snprintf(needle, sizeof needle, "smaller than an ABI %d.%d descriptor", JET_PLUGIN_ABI_MAJOR, JET_PLUGIN_ABI_MINOR);
    expect_refused(fixture("small_struct"), NULL, needle);
}

static void refuses_null_handle(void **state)
{
    (void)state;
    expect_refused(fixture("null_handle"), NULL, "(plugin \"null_handle\"): handle is NULL");
}

static void refuses_init_failure_with_message(void **state)
{
    (void)state;
    expect_refused(fixture("init_fail"), NULL, "(plugin \"init_fail\"): init failed: settings: \"dsn\" is required (got {})");
    json_t *configs = json_pack("{s:{s:i}}", "init_fail", "port", 5);
    expect_refused(fixture("init_fail"), configs, "init failed: settings: \"dsn\" is required (got {\"port\":5})");
    json_decref(configs);
}

static void refuses_invalid_names(void **state)
{
    (void)state;
    expect_refused(fixture("bad_handler"), NULL, "invalid handler name \"Bad Name!\"");
    expect_refused(fixture("dup_self"), NULL, "handler \"twice\" is listed twice");
    expect_refused(fixture("bad_name"), NULL, "invalid plugin name \"Not Valid\"");
    /* cfg takes its handlers from its settings: checked after init (and shut down). */
    json_t *configs = json_pack("{s:{s:[s]}}", "cfg", "handlers", "UPPER");
    expect_refused(fixture("cfg"), configs, "invalid handler name \"UPPER\"");
    json_decref(configs);
    configs = json_pack("{s:[]}", "cfg");
    expect_refused(fixture("cfg"), configs, "plugins.cfg: the settings of plugin \"cfg\"");
    json_decref(configs);
}

static void refuses_duplicates_across_plugins(void **state)
{
    (void)state;
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    assert_int_equal(jet_plugins_load(reg, builtin("echo"), NULL, &err), JET_OK);
    assert_int_equal(jet_plugins_load(reg, fixture("dup_echo"), NULL, &err), JET_ERR_INVALID);
    assert_contains(err.msg, fixture("dup_echo"));
    assert_contains(err.msg, "handler \"echo\" is already served by");
    assert_contains(err.msg, builtin("echo"));
    assert_null(jet_plugins_find(reg, "dup-only")); /* nothing of the refused plugin stays */
    assert_string_equal(jet_plugins_find(reg, "echo")->plugin, "echo");

    /* Handlers from handlers_after_init() are checked the same way. */
    json_t *configs = json_pack("{s:{s:[s,s]}}", "cfg", "handlers", "fresh", "echo");
    assert_int_equal(jet_plugins_load(reg, fixture("cfg"), configs, &err), JET_ERR_INVALID);
    assert_contains(err.msg, "handler \"echo\" is already served by");
    assert_null(jet_plugins_find(reg, "fresh"));
    json_decref(configs);

    /* Same plugin name, and the same file twice. */
    assert_int_equal(jet_plugins_load(reg, fixture("echo_name"), NULL, &err), JET_ERR_INVALID);
    assert_contains(err.msg, "a plugin named \"echo\" is already loaded from");
    assert_int_equal(jet_plugins_load(reg, builtin("echo"), NULL, &err), JET_ERR_INVALID);
    assert_contains(err.msg, "already loaded");
    assert_int_equal(jet_plugins_count(reg), 1);
    jet_plugins_free(reg);
}

static void refuses_unloadable_files(void **state)
{
    (void)state;
    expect_refused("/nonexistent/x.so", NULL, ": cannot load plugin: ");
    make_tmpdir();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/garbage.so", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an ELF file\n", f);
    fclose(f);
    expect_refused(path, NULL, ": cannot load plugin: ");
    rm_tmpdir();
}

static void invalid_outcome_becomes_fail(void **state)
{
    (void)state;
    jet_plugin_registry *reg = jet_plugins_new(&th_api);
    jet_err err;
    assert_int_equal(jet_plugins_load(reg, fixture("bad_outcome"), NULL, &err), JET_OK);
    const jet_plugin_handler *h = jet_plugins_find(reg, "bad_outcome_h");
    assert_non_null(h);
    jet_task_ctx ctx;
    th_ctx_init(&ctx);
    jet_task t = th_task("bad_outcome_h", NULL, 0);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_FAIL);
    assert_contains(ctx.error, "invalid outcome 7");
    th_ctx_free(&ctx);
    jet_plugins_free(reg);
}

int main(void)
{
    jet_log_init("test", JET_LOG_WARN, false);
    snprintf(builtin_dir, sizeof builtin_dir, "%s", th_env_dir("JETSCHED_PLUGIN_DIR"));
    snprintf(fixture_dir, sizeof fixture_dir, "%s", th_env_dir("JETSCHED_TEST_PLUGIN_DIR"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtins_load_and_run),
        cmocka_unit_test(directory_with_configs),
        cmocka_unit_test(directory_order_and_duplicates),
        cmocka_unit_test(directory_missing),
        cmocka_unit_test(refuses_abi_major_mismatch),
        cmocka_unit_test(refuses_newer_minor),
        cmocka_unit_test(loads_older_minor),
        cmocka_unit_test(refuses_missing_entry_symbol),
        cmocka_unit_test(refuses_small_descriptor),
        cmocka_unit_test(refuses_null_handle),
        cmocka_unit_test(refuses_init_failure_with_message),
        cmocka_unit_test(refuses_invalid_names),
        cmocka_unit_test(refuses_duplicates_across_plugins),
        cmocka_unit_test(refuses_unloadable_files),
        cmocka_unit_test(invalid_outcome_becomes_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
