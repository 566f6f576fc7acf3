/* Unit tests of the configuration loader: every error class (syntax,
 * unknown key, wrong type, out of range, bad enum, bad list element, bad
 * group element, missing required key, bad environment value), defaults,
 * environment overrides, printing and reload checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/config.h>
#include <jetsched/redact.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOBOUND 1, 0
static const jet_cfg_key elem_keys[] = {
    {"name", JET_CFG_STRING, NULL, NOBOUND, "name", JET_CFG_REQUIRED, NULL, NULL, "name"},
    {"concurrency", JET_CFG_INT, "4", 1, 64, NULL, 0, NULL, NULL, "threads"},
    {NULL},
};
static const jet_cfg_key test_keys[] = {
    {"a.flag", JET_CFG_BOOL, "false", NOBOUND, NULL, 0, NULL, NULL, "a flag"},
    {"a.count", JET_CFG_INT, "10", 1, 100, NULL, JET_CFG_RELOADABLE, NULL, NULL, "a count"},
    {"a.wait", JET_CFG_DURATION, "30s", 1000, 3600000, NULL, 0, NULL, NULL, "a wait"},
    {"a.size", JET_CFG_SIZE, "1MiB", 1024, INT64_C(1) << 32, NULL, 0, NULL, NULL, "a size"},
    {"a.mode", JET_CFG_ENUM, "fast", NOBOUND, "fast|safe", JET_CFG_RELOADABLE, NULL, NULL, "a mode"},
    {"a.secret", JET_CFG_STRING, NULL, NOBOUND, NULL, JET_CFG_SECRET, NULL, NULL, "a secret"},
    {"a.dsn", JET_CFG_STRING, "x", NOBOUND, NULL, 0, "JETSCHED_TEST_ALIAS", NULL, "a dsn"},
    {"a.names", JET_CFG_STRLIST, "one,two", NOBOUND, "name", 0, NULL, NULL, "names"},
    {"top", JET_CFG_STRING, "t", NOBOUND, NULL, 0, NULL, NULL, "top level"},
    {"a.listen", JET_CFG_STRING, "127.0.0.1:1", NOBOUND, "listen", 0, NULL, NULL, "a listen address"},
    {"items", JET_CFG_GROUPLIST, NULL, NOBOUND, NULL, 0, NULL, elem_keys, "items"},
    {NULL},
};
static const jet_cfg_key *const test_schema[] = {test_keys, NULL};

static char path[64];

static const char *write_file(const char *text)
{
    snprintf(path, sizeof path, "/tmp/jetsched-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads text; expects failure and returns the error message. */
static const char *load_fails(const char *text)
{
    static jet_err err;
    jet_config *cfg = NULL;
    jet_status st = jet_config_load(test_schema, write_file(text), &cfg, &err);
    unlink(path);
    assert_int_equal(st, JET_ERR_INVALID);
    assert_null(cfg);
    return err.msg;
}

static jet_config *load_ok(const char *text)
{
    jet_err err = {0};
    jet_config *cfg = NULL;
    jet_status st = jet_config_load(test_schema, text ? write_file(text) : NULL, &cfg, &err);
    if (text)
        unlink(path);
    if (st != JET_OK)
        fail_msg("unexpected config error: %s", err.msg);
    return cfg;
}

/* Asserts msg contains "<path>:<line>: <key>: " followed by want. */
static void assert_error(const char *msg, int line, const char *key, const char *want)
{
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s:%d: %s: ", path, line, key);
    if (!strstr(msg, prefix) || !strstr(msg, want))
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", msg, prefix, want);
}

static void defaults_apply(void **state)
{
    (void)state;
    jet_config *cfg = load_ok(NULL);
    assert_false(jet_cfg_bool(cfg, "a.flag"));
    assert_int_equal(jet_cfg_int(cfg, "a.count"), 10);
    assert_int_equal(jet_cfg_int(cfg, "a.wait"), 30000);
    assert_int_equal(jet_cfg_int(cfg, "a.size"), 1048576);
    assert_string_equal(jet_cfg_str(cfg, "a.mode"), "fast");
    assert_null(jet_cfg_str(cfg, "a.secret"));
    assert_int_equal(jet_cfg_list_len(cfg, "a.names"), 2);
    assert_string_equal(jet_cfg_list_at(cfg, "a.names", 1), "two");
    assert_int_equal(jet_cfg_groups(cfg, "items"), 0);
    assert_false(jet_cfg_is_set(cfg, "a.count"));
    jet_config_free(cfg);
}

static void file_values_apply(void **state)
{
    (void)state;
    jet_config *cfg = load_ok("a = { flag = true; count = 42; wait = \"1m30s\"; size = \"2MB\"; mode = \"safe\"; "
                              "names = [\"x\", \"y-z\", \"w_1\"]; };\n"
                              "top = \"hello\";\n"
                              "items = ( { name = \"q1\"; }, { name = \"q2\"; concurrency = 8; } );\n");
    assert_true(jet_cfg_bool(cfg, "a.flag"));
    assert_int_equal(jet_cfg_int(cfg, "a.count"), 42);
    assert_int_equal(jet_cfg_int(cfg, "a.wait"), 90000);
    assert_int_equal(jet_cfg_int(cfg, "a.size"), 2000000);
    assert_string_equal(jet_cfg_str(cfg, "a.mode"), "safe");
    assert_int_equal(jet_cfg_list_len(cfg, "a.names"), 3);
    assert_string_equal(jet_cfg_str(cfg, "top"), "hello");
    assert_int_equal(jet_cfg_groups(cfg, "items"), 2);
    const jet_config *q2 = jet_cfg_group_at(cfg, "items", 1);
    assert_string_equal(jet_cfg_str(q2, "name"), "q2");
    assert_int_equal(jet_cfg_int(q2, "concurrency"), 8);
    assert_int_equal(jet_cfg_int(jet_cfg_group_at(cfg, "items", 0), "concurrency"), 4);
    assert_true(jet_cfg_is_set(cfg, "a.count"));
    jet_config_free(cfg);
}

static void syntax_error_names_line(void **state)
{
    (void)state;
    const char *msg = load_fails("a = { count = 3; };\ntop = \"x\"\nbroken = ;\n");
    char want[96];
    snprintf(want, sizeof want, "%s:3: syntax error", path);
    if (!strstr(msg, want))
        fail_msg("got \"%s\"", msg);
}

static void unknown_key_is_rejected_with_hint(void **state)
{
    (void)state;
    const char *msg = load_fails("a = {\n  count = 3;\n  cuont = 4;\n};\n");
    assert_error(msg, 3, "a.cuont", "unknown key");
    assert_non_null(strstr(msg, "did you mean \"a.count\""));
    msg = load_fails("\nzzz = { q = 1; };\n");
    assert_error(msg, 2, "zzz", "unknown key");
}

static void wrong_types_are_rejected(void **state)
{
    (void)state;
    assert_error(load_fails("a = { flag = \"yes\"; };"), 1, "a.flag", "expected a boolean");
    assert_error(load_fails("a = { count = \"3\"; };"), 1, "a.count", "expected an integer");
    assert_error(load_fails("a = { wait = 30; };"), 1, "a.wait", "expected a duration");
    assert_error(load_fails("top = 5;"), 1, "top", "expected a string");
    assert_error(load_fails("a = { names = \"x\"; };"), 1, "a.names", "expected a list of strings");
    assert_error(load_fails("items = 3;"), 1, "items", "expected a list of groups");
}

static void out_of_range_is_rejected(void **state)
{
    (void)state;
    assert_error(load_fails("a = { count = 101; };"), 1, "a.count", "101 is out of range [1, 100]");
    assert_error(load_fails("a = { count = 0; };"), 1, "a.count", "out of range");
    assert_error(load_fails("a = { wait = \"2h\"; };"), 1, "a.wait", "2h is out of range [1s, 1h]");
    assert_error(load_fails("a = { size = 10; };"), 1, "a.size", "out of range");
    /* libconfig wraps a literal past 32 bits: 4294967297 was read as 1, in range. */
    assert_non_null(strstr(load_fails("a = { flag = true;\n count = 4294967297; };"),
                           ":2: integer 4294967297 does not fit in 32 bits"));
    assert_non_null(strstr(load_fails("items = ( { name = \"x\"; concurrency = -4294967295; } );"),
                           ":1: integer -4294967295 does not fit"));
    assert_non_null(strstr(load_fails("a = { size = 0x100000001; };"), ":1: integer 0x100000001 does not fit"));
    assert_non_null(strstr(load_fails("a = { count = 99999999999999999999999; };"), "does not fit in 32 bits"));
    jet_config *cfg = load_ok("# 4294967297 in a comment\n/* 99999999999 */ a = { size = 4294967296L; count = 2; "
                              "dsn = \"4294967297\"; };\ntop = \"x\\\" 9999999999\"; // 9999999999\n");
    assert_int_equal(jet_cfg_int(cfg, "a.size"), INT64_C(4294967296));
    assert_int_equal(jet_cfg_int(cfg, "a.count"), 2);
    jet_config_free(cfg);
}

static void bad_values_are_rejected(void **state)
{
    (void)state;
    assert_error(load_fails("a = { wait = \"10 parsecs\"; };"), 1, "a.wait", "invalid duration");
    assert_error(load_fails("a = { mode = \"turbo\"; };"), 1, "a.mode", "\"turbo\" is not one of: fast, safe");
    assert_error(load_fails("a = { size = \"12 furlongs\"; };"), 1, "a.size", "invalid size unit");
    assert_error(load_fails("a = { names = [\"ok\", \"Not Valid\"]; };"), 1, "a.names", "not a valid name");
    /* A string key checked as a name (agentd's queue and handler names were refused only at start, without a line). */
    assert_non_null(strstr(load_fails("items = (\n { name = \"BAD NAME\"; } );"), ":2: items[0].name: \"BAD NAME\" is not a valid name"));
    /* A listen address (web.listen \"127.0.0.1:99999\" passed --check-config and failed at start without a line). */
    assert_error(load_fails("a = { listen = \"127.0.0.1:99999\"; };"), 1, "a.listen", "invalid port");
    assert_error(load_fails("a = { listen = \"nohost\"; };"), 1, "a.listen", "expected host:port");
    assert_error(load_fails("a = { listen = \"[::1:80\"; };"), 1, "a.listen", "bad IPv6 address");
    jet_config_free(load_ok("a = { listen = \"\"; };"));
    jet_config_free(load_ok("a = { listen = \"[::1]:0\"; };"));
}

static void group_list_errors_name_the_element(void **state)
{
    (void)state;
    const char *msg = load_fails("items = (\n  { name = \"a\"; },\n  { concurrency = 999; }\n);\n");
    assert_error(msg, 3, "items[1].concurrency", "out of range");
    assert_non_null(strstr(msg, "items[1].name: required key is missing"));
    msg = load_fails("items = ( { name = \"a\"; color = \"red\"; } );");
    assert_error(msg, 1, "items[0].color", "unknown key");
    /* A name given twice (agentd's queues: caught only at start, without a line). */
    msg = load_fails("items = (\n  { name = \"a\"; },\n  { name = \"b\"; },\n  { name = \"a\"; }\n);\n");
    assert_error(msg, 4, "items[2].name", "\"a\" is given twice (also at line 2)");
}

static void all_errors_are_reported(void **state)
{
    (void)state;
    const char *msg = load_fails("a = { count = 0; mode = \"x\"; };\nnope = 1;\n");
    assert_non_null(strstr(msg, "a.count"));
    assert_non_null(strstr(msg, "a.mode"));
    assert_non_null(strstr(msg, "nope"));
}

static void missing_file_is_an_io_error(void **state)
{
    (void)state;
    jet_err err;
    jet_config *cfg;
    assert_int_equal(jet_config_load(test_schema, "/nonexistent/jetsched.conf", &cfg, &err), JET_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/jetsched.conf: cannot open"));
}

static void environment_overrides_file(void **state)
{
    (void)state;
    setenv("JETSCHED_A_COUNT", "77", 1);
    setenv("JETSCHED_A_NAMES", "p, q", 1);
    setenv("JETSCHED_TEST_ALIAS", "host=db", 1);
    jet_config *cfg = load_ok("a = { count = 5; };\n");
    assert_int_equal(jet_cfg_int(cfg, "a.count"), 77);
    assert_int_equal(jet_cfg_list_len(cfg, "a.names"), 2);
    assert_string_equal(jet_cfg_list_at(cfg, "a.names", 1), "q");
    assert_string_equal(jet_cfg_str(cfg, "a.dsn"), "host=db");
    jet_config_free(cfg);

    setenv("JETSCHED_A_COUNT", "lots", 1);
    jet_err err;
    assert_int_equal(jet_config_load(test_schema, NULL, &cfg, &err), JET_ERR_INVALID);
    assert_non_null(strstr(err.msg, "env JETSCHED_A_COUNT: a.count: expected an integer"));
    unsetenv("JETSCHED_A_COUNT");
    unsetenv("JETSCHED_A_NAMES");
    unsetenv("JETSCHED_TEST_ALIAS");
}

/* Found by fuzz_config: libconfig exits the process on an @include of a
 * directory and on some NUL bytes; the loader refuses both, naming the line. */
static void hostile_files_are_refused(void **state)
{
    (void)state;
    assert_non_null(strstr(load_fails("a = { count = 1; };\n  @include \"/etc\"\n"), ":2: @include is not supported"));
    static const char nul[] = "a = { count = 1; };\nb\0c\n";
    snprintf(path, sizeof path, "/tmp/jetsched-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_int_equal(write(fd, nul, sizeof nul - 1), (ssize_t)(sizeof nul - 1));
    close(fd);
    jet_err err;
    jet_config *cfg = NULL;
    assert_int_equal(jet_config_load(test_schema, path, &cfg, &err), JET_ERR_INVALID);
    unlink(path);
    assert_non_null(strstr(err.msg, ":2: a NUL byte"));
    assert_int_equal(jet_config_load(test_schema, "/tmp", &cfg, &err), JET_ERR_IO);
    assert_non_null(strstr(err.msg, "not a regular file"));
}

/* Issue 20 item 5: the one redaction helper used for URLs and DSNs. */
static void redact_urls_and_dsns(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } cases[] = {
        {"nats://user:pass@host:4222", "nats://user:<redacted>@host:4222"},
        {"nats://token@host:4222", "nats://<redacted>@host:4222"},
        {"nats://a:b@h1:1,tls://c:d@h2:2", "nats://a:<redacted>@h1:1,tls://c:<redacted>@h2:2"},
        {"nats://h:4222", "nats://h:4222"},
        {"host=db password=s3cret dbname=j", "host=db password=<redacted> dbname=j"},
        {"host=db password = 'a b' user=x", "host=db password =<redacted> user=x"},
        {"host=db PASSWORD='a\\' b' user=x", "host=db PASSWORD=<redacted> user=x"},
        {"postgresql://u:pw@db:5432/j?sslmode=require&password=x", "postgresql://u:<redacted>@db:5432/j?sslmode=require&password=<redacted>"},
        {"host=db passfile=/x dbname=j", "host=db passfile=/x dbname=j"},
        {"", ""},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(jet_redact(cases[i].in, buf, sizeof buf), cases[i].out);
    char tiny[8];
    assert_string_equal(jet_redact("nats://u:p@h", tiny, sizeof tiny), "nats://");
    assert_string_equal(jet_redact(NULL, buf, sizeof buf), "");
}

static void print_redacts_secrets_and_shows_sources(void **state)
{
    (void)state;
    setenv("JETSCHED_A_MODE", "safe", 1);
    jet_config *cfg = load_ok("a = {\n secret = \"hunter2\";\n count = 9;\n};\n");
    unsetenv("JETSCHED_A_MODE");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    jet_config_print(cfg, f);
    fclose(f);
    assert_null(strstr(buf, "hunter2"));
    assert_non_null(strstr(buf, "secret = \"<redacted>\""));
    assert_non_null(strstr(buf, "count = 9;"));
    assert_non_null(strstr(buf, ":3"));  /* count came from line 3 */
    assert_non_null(strstr(buf, "# env JETSCHED_A_MODE"));
    assert_non_null(strstr(buf, "wait = \"30s\";  # default"));
    free(buf);
    jet_config_free(cfg);
}

static void printed_config_loads_back(void **state)
{
    (void)state;
    jet_config *cfg = load_ok("a = { count = 12; wait = \"1h\"; names = [\"k\"]; };\n"
                              "items = ( { name = \"q\"; concurrency = 2; } );\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    jet_config_print(cfg, f);
    fclose(f);
    jet_config *again = load_ok(buf);
    assert_int_equal(jet_cfg_int(again, "a.count"), 12);
    assert_int_equal(jet_cfg_int(again, "a.wait"), 3600000);
    assert_int_equal(jet_cfg_int(jet_cfg_group_at(again, "items", 0), "concurrency"), 2);
    free(buf);
    jet_config_free(cfg);
    jet_config_free(again);
}

static void reload_reports_nonreloadable_changes(void **state)
{
    (void)state;
    jet_config *a = load_ok("a = { count = 1; wait = \"1m\"; };");
    jet_config *b = load_ok("a = { count = 2; wait = \"2m\"; };");
    jet_err err = {0};
    assert_int_equal(jet_config_nonreloadable_changes(a, b, &err), 1); /* count is reloadable, wait is not */
    assert_non_null(strstr(err.msg, "a.wait: changed but not reloadable"));
    jet_config_free(a);
    jet_config_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_apply),
        cmocka_unit_test(file_values_apply),
        cmocka_unit_test(syntax_error_names_line),
        cmocka_unit_test(unknown_key_is_rejected_with_hint),
        cmocka_unit_test(wrong_types_are_rejected),
        cmocka_unit_test(out_of_range_is_rejected),
        cmocka_unit_test(bad_values_are_rejected),
        cmocka_unit_test(group_list_errors_name_the_element),
        cmocka_unit_test(all_errors_are_reported),
        cmocka_unit_test(missing_file_is_an_io_error),
        cmocka_unit_test(environment_overrides_file),
        cmocka_unit_test(print_redacts_secrets_and_shows_sources),
        cmocka_unit_test(redact_urls_and_dsns),
        cmocka_unit_test(hostile_files_are_refused),
        cmocka_unit_test(printed_config_loads_back),
        cmocka_unit_test(reload_reports_nonreloadable_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
