/* Unit tests of the exec plugin (agentd/plugins/exec.so) through the plugin
 * host: allow-listed commands, stdin/stdout, exit-code mapping, timeouts and
 * cancellation that kill the whole process group, rlimits, environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugin_host.h"
#include "procstat.h"
#include "test_host.h"

#include <jetsched/log.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define assert_contains(hay, needle)                                                                                  \
    do {                                                                                                              \
        if (!strstr((hay), (needle)))                                                                                 \
            fail_msg("expected \"%s\" in: %s", (needle), (hay));                                                     \
    } while (0)

static char exec_so[PATH_MAX + 16];
static char tmpdir[64];
static jet_plugin_registry *reg;

static const char *tmp_path(const char *name)
{
    static char p[4][PATH_MAX];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", tmpdir, name);
    return p[i];
}

/* A process group's members, from /proc: how many, and how many are not zombies. */
struct group_scan {
    pid_t pgid;
    int total, alive;
    char *desc;
    size_t desclen;
};

static int scan_group_member(const th_procstat *p, void *arg)
{
    struct group_scan *g = arg;
    if (p->pgrp != g->pgid)
        return 0;
    g->total++;
    if (p->state != 'Z')
        g->alive++;
    size_t used = strlen(g->desc);
    snprintf(g->desc + used, g->desclen - used, " [pid %d (%s) %c]", p->pid, p->comm, p->state);
    return 0;
}

static void group_members(pid_t pgid, int *total, int *alive, char *desc, size_t desclen)
{
    desc[0] = '\0';
    struct group_scan g = {pgid, 0, 0, desc, desclen};
    assert_int_equal(th_procstat_each(scan_group_member, &g), 0);
    *total = g.total;
    *alive = g.alive;
}

/* Nothing of the group may still run; once reaped it must be gone entirely. */
static void assert_group_gone(pid_t pgid)
{
    int total, alive;
    char desc[2048];
    group_members(pgid, &total, &alive, desc, sizeof desc);
    if (alive) {
        kill(-pgid, SIGKILL); /* do not leave them behind */
        fail_msg("process group %d still has %d live member(s):%s", (int)pgid, alive, desc);
    }
    /* This test process is a child subreaper (as agentd may be): the killed
     * grandchildren were re-parented to it; the plugin reaps them, and any
     * straggling zombie is reaped here. Without that they would stay zombies
     * of a non-reaping PID 1 (containers), which kill() still counts. */
    int64_t end = th_now_ms() + 3000;
    while (kill(-pgid, 0) == 0 && th_now_ms() < end) {
        while (waitpid(-pgid, NULL, WNOHANG) > 0)
            ;
        usleep(10000);
    }
    errno = 0;
    assert_int_equal(kill(-pgid, 0), -1);
    assert_int_equal(errno, ESRCH);
    group_members(pgid, &total, &alive, desc, sizeof desc);
    if (total)
        fail_msg("process group %d still has %d member(s):%s", (int)pgid, total, desc);
}

static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s was not written by the command", path);
    int pid = 0;
    int ok = fscanf(f, "%d", &pid);
    fclose(f);
    assert_int_equal(ok, 1);
    assert_true(pid > 1);
    return (pid_t)pid;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/jetsched-exec-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    char treecmd[512], ignorecmd[512], stragglercmd[512];
    snprintf(treecmd, sizeof treecmd, "echo $$ > \"$PGID_FILE\"; echo started >&2; sleep 300 & sleep 300");
    snprintf(ignorecmd, sizeof ignorecmd, "trap '' TERM; echo $$ > \"$PGID_FILE\"; sleep 300");
    snprintf(stragglercmd, sizeof stragglercmd,
             "echo $$ > \"$PGID_FILE\"; sleep 300 > /dev/null 2>&1 < /dev/null & echo done");
    char envtree[PATH_MAX + 16], envlong[PATH_MAX + 16], envcancel[PATH_MAX + 16], envign[PATH_MAX + 16],
        envstrag[PATH_MAX + 16];
    snprintf(envtree, sizeof envtree, "PGID_FILE=%s", tmp_path("tree.pgid"));
    snprintf(envlong, sizeof envlong, "PGID_FILE=%s", tmp_path("long.pgid"));
    snprintf(envcancel, sizeof envcancel, "PGID_FILE=%s", tmp_path("cancel.pgid"));
    snprintf(envign, sizeof envign, "PGID_FILE=%s", tmp_path("ignore.pgid"));
    snprintf(envstrag, sizeof envstrag, "PGID_FILE=%s", tmp_path("straggler.pgid"));
    json_t *cmds = json_array();
    json_array_append_new(cmds, json_pack("{s:s,s:[s],s:i}", "name", "cat", "argv", "/bin/cat", "timeout_ms", 20000));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s]}", "name", "upper", "argv", "/usr/bin/tr", "a-z", "A-Z"));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s]}", "name", "head10", "argv", "/usr/bin/head", "-c10"));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s]}", "name", "fail3", "argv", "/bin/sh", "-c",
                                          "echo partial; echo 'first line' >&2; echo 'disk full' >&2; exit 3"));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:[i,i]}", "name", "perm4", "argv", "/bin/sh", "-c",
                                          "echo 'bad input' >&2; exit 4", "permanent_exit_codes", 4, 9));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:[i]}", "name", "tempfail", "argv", "/bin/sh", "-c",
                                          "exit 75", "permanent_exit_codes", 4));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:i,s:i,s:[s]}", "name", "tree", "argv", "/bin/sh", "-c",
                                          treecmd, "timeout_ms", 1500, "kill_grace_ms", 2000, "env", envtree));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:[s]}", "name", "tree-long", "argv", "/bin/sh", "-c",
                                          treecmd, "env", envlong));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:[s]}", "name", "tree-cancel", "argv", "/bin/sh", "-c",
                                          treecmd, "env", envcancel));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:i,s:i,s:[s]}", "name", "ignore-term", "argv", "/bin/sh",
                                          "-c", ignorecmd, "timeout_ms", 1000, "kill_grace_ms", 300, "env", envign));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:[s]}", "name", "straggler", "argv", "/bin/sh", "-c",
                                          stragglercmd, "env", envstrag));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:i,s:i,s:I}", "name", "limits", "argv", "/bin/sh", "-c",
                                          "ulimit -n; ulimit -t; ulimit -v", "rlimit_nofile", 17, "rlimit_cpu_s", 7,
                                          "rlimit_as_bytes", (json_int_t)1 << 30));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:[s],s:s}", "name", "envcwd", "argv", "/bin/sh", "-c",
                                          "pwd; echo \"$FOO\"; echo $JETSCHED_TASK_ID $JETSCHED_QUEUE "
                                          "$JETSCHED_ATTEMPT; echo $PATH; echo $TRACEPARENT; echo ${HOME:-nohome}",
                                          "env", "FOO=bar baz", "cwd", "/tmp"));
    json_array_append_new(cmds, json_pack("{s:s,s:[s]}", "name", "missing", "argv", "/nonexistent/bin/tool"));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s]}", "name", "selfkill", "argv", "/bin/sh", "-c",
                                          "kill -USR1 $$"));
    json_array_append_new(cmds, json_pack("{s:s,s:[s,s,s],s:i}", "name", "small-output", "argv", "/bin/sh", "-c",
                                          "echo 0123456789abcdef", "max_output_bytes", 8));
    json_t *configs = json_pack("{s:{s:o}}", "exec", "commands", cmds);
    reg = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    jet_status st = jet_plugins_load(reg, exec_so, configs, &err);
    json_decref(configs);
    if (st != JET_OK) {
        fprintf(stderr, "loading exec.so: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jet_plugins_free(reg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct run_result {
    jet_outcome outcome;
    jet_task_ctx ctx;
    int64_t elapsed_ms;
} run_result;

static void run_task(run_result *r, const char *handler, const void *payload, size_t len, int64_t task_timeout_ms,
                     int64_t cancel_after_ms)
{
    const jet_plugin_handler *h = jet_plugins_find(reg, handler);
    if (!h)
        fail_msg("handler %s is not registered", handler);
    th_ctx_init(&r->ctx);
    r->ctx.cancel_after_ms = cancel_after_ms;
    jet_task t = th_task(handler, payload, len);
    t.timeout_ms = task_timeout_ms;
    int64_t start = th_now_ms();
    r->outcome = jet_plugin_run(h, &t, &r->ctx);
    r->elapsed_ms = th_now_ms() - start;
}

static void stdin_to_stdout(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "upper", "hello, exec", 11, 10000, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_true(r.ctx.has_result);
    assert_string_equal(th_result(&r.ctx), "HELLO, EXEC");
    th_ctx_free(&r.ctx);

    run_task(&r, "cat", NULL, 0, 10000, -1); /* empty payload: stdin closed at once */
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_int_equal(r.ctx.result_len, 0);
    th_ctx_free(&r.ctx);
}

/* 4 MiB through cat: stdin must be written while stdout is read, or both
 * sides block on full pipes. stdout is capped at 64 KiB. */
static void large_payload_no_deadlock(void **state)
{
    (void)state;
    size_t n = 4u << 20;
    char *payload = malloc(n);
    assert_non_null(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (char)('a' + i % 26);
    run_result r;
    run_task(&r, "cat", payload, n, 20000, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_int_equal(r.ctx.result_len, 64 * 1024);
    assert_memory_equal(r.ctx.result, payload, 64 * 1024);
    assert_true(r.elapsed_ms < 15000);
    th_ctx_free(&r.ctx);

    /* head exits after 10 bytes: our writes hit EPIPE, which must not kill us. */
    run_task(&r, "head10", payload, n, 20000, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_string_equal(th_result(&r.ctx), "abcdefghij");
    th_ctx_free(&r.ctx);
    free(payload);

    run_task(&r, "small-output", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_string_equal(th_result(&r.ctx), "01234567");
    th_ctx_free(&r.ctx);
}

static void nonzero_exit_is_retry_with_stderr(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "fail3", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "exited with code 3");
    assert_contains(r.ctx.error, "first line\ndisk full");
    assert_false(r.ctx.has_result);
    th_ctx_free(&r.ctx);

    run_task(&r, "tempfail", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "exited with code 75");
    th_ctx_free(&r.ctx);

    run_task(&r, "perm4", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_FAIL);
    assert_contains(r.ctx.error, "exited with code 4: bad input");
    th_ctx_free(&r.ctx);

    run_task(&r, "selfkill", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "killed by signal 10 (SIGUSR1)");
    th_ctx_free(&r.ctx);

    run_task(&r, "missing", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "cannot execute /nonexistent/bin/tool: execve: No such file or directory");
    th_ctx_free(&r.ctx);
}

/* Timeouts and cancels here are >= 1 s: the shell must have written its
 * process group id before it is stopped, and starting it took over 400 ms
 * on a loaded 2-core machine (the file was missing).
 *
 * sh starts a background sleep and a foreground sleep: on timeout the whole
 * group (sh and both sleeps) must be killed, not just sh. */
static void timeout_kills_process_group(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "tree", NULL, 0, 30000, -1); /* command timeout 1500 ms < task's */
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "timed out after 1500 ms");
    assert_contains(r.ctx.error, "process group");
    assert_contains(r.ctx.error, "started"); /* stderr tail */
    assert_true(r.elapsed_ms >= 1450);
    assert_true(r.elapsed_ms < 8000);
    assert_group_gone(read_pid(tmp_path("tree.pgid")));
    th_ctx_free(&r.ctx);

    /* The task's timeout applies when it is the smaller one. */
    run_task(&r, "tree-long", NULL, 0, 1200, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "timed out after 1200 ms");
    assert_true(r.elapsed_ms < 8000);
    assert_group_gone(read_pid(tmp_path("long.pgid")));
    th_ctx_free(&r.ctx);
}

/* A group that ignores SIGTERM gets SIGKILL after the grace period. */
static void sigterm_ignored_then_sigkill(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "ignore-term", NULL, 0, 30000, -1);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "timed out after 1000 ms");
    assert_true(r.elapsed_ms >= 1250); /* timeout + grace */
    assert_true(r.elapsed_ms < 8000);
    assert_group_gone(read_pid(tmp_path("ignore.pgid")));
    th_ctx_free(&r.ctx);
}

static void cancellation_kills_process_group(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "tree-cancel", NULL, 0, 60000, 1200);
    assert_int_equal(r.outcome, JET_RETRY);
    assert_contains(r.ctx.error, "cancelled");
    assert_true(r.elapsed_ms >= 1150);
    assert_true(r.elapsed_ms < 8000);
    assert_true(atomic_load(&r.ctx.cancelled_calls) > 0);
    assert_group_gone(read_pid(tmp_path("cancel.pgid")));
    th_ctx_free(&r.ctx);
}

/* The command exits 0 but leaves a background process in its group: the
 * group is swept when the command ends. */
static void leftovers_killed_after_exit(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "straggler", NULL, 0, 30000, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_string_equal(th_result(&r.ctx), "done\n");
    assert_true(r.elapsed_ms < 5000);
    assert_group_gone(read_pid(tmp_path("straggler.pgid")));
    th_ctx_free(&r.ctx);
}

static void rlimits_applied(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "limits", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_string_equal(th_result(&r.ctx), "17\n7\n1048576\n");
    th_ctx_free(&r.ctx);
}

static void environment_and_cwd(void **state)
{
    (void)state;
    run_result r;
    run_task(&r, "envcwd", NULL, 0, 10000, -1);
    assert_int_equal(r.outcome, JET_SUCCESS);
    assert_string_equal(th_result(&r.ctx), "/tmp\nbar baz\ntask-0001 default 1\n"
                                           "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                                           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\nnohome\n");
    th_ctx_free(&r.ctx);
}

static void only_allow_listed_commands(void **state)
{
    (void)state;
    assert_null(jet_plugins_find(reg, "rm"));
    assert_null(jet_plugins_find(reg, "/bin/sh"));
    assert_null(jet_plugins_find(reg, "exec"));
    assert_int_equal(jet_plugins_count(reg), 16);
    for (size_t i = 0; i < jet_plugins_count(reg); i++)
        assert_string_equal(jet_plugins_at(reg, i)->plugin, "exec");
    /* A task naming another command through a registered handler is refused. */
    const jet_plugin_handler *h = jet_plugins_find(reg, "cat");
    jet_task_ctx ctx;
    th_ctx_init(&ctx);
    jet_task t = th_task("rm", "-rf /", 6);
    assert_int_equal(jet_plugin_run(h, &t, &ctx), JET_FAIL);
    assert_contains(ctx.error, "no command named \"rm\"");
    th_ctx_free(&ctx);
}

typedef struct par {
    char payload[64];
    run_result r;
} par;

static void *par_run(void *arg)
{
    par *p = arg;
    run_task(&p->r, "upper", p->payload, strlen(p->payload), 10000, -1);
    return NULL;
}

static void concurrent_calls(void **state)
{
    (void)state;
    enum { N = 6 };
    par ps[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        snprintf(ps[i].payload, sizeof ps[i].payload, "task number %d", i);
        assert_int_equal(pthread_create(&th[i], NULL, par_run, &ps[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        char want[64];
        snprintf(want, sizeof want, "TASK NUMBER %d", i);
        assert_int_equal(ps[i].r.outcome, JET_SUCCESS);
        assert_string_equal(th_result(&ps[i].r.ctx), want);
        th_ctx_free(&ps[i].r.ctx);
    }
}

static void expect_config_error(const char *config, const char *needle)
{
    json_error_t je;
    json_t *cfg = json_loads(config, 0, &je);
    assert_non_null(cfg);
    json_t *configs = json_pack("{s:o}", "exec", cfg);
    jet_plugin_registry *r = jet_plugins_new(&th_api);
    jet_err err;
    jet_err_clear(&err);
    assert_int_equal(jet_plugins_load(r, exec_so, configs, &err), JET_ERR_INVALID);
    if (strstr(needle, "invalid handler name") == NULL) /* refused by the host, not by the plugin */
        assert_contains(err.msg, "init failed: ");
    assert_contains(err.msg, needle);
    jet_plugins_free(r);
    json_decref(configs);
}

static void config_errors(void **state)
{
    (void)state;
    expect_config_error("{\"commands\":[{\"name\":\"x\",\"argv\":[\"ls\"]}]}", "must be an absolute path");
    expect_config_error("{\"commands\":[{\"name\":\"x\",\"argv\":[\"/bin/ls\"],\"timout_ms\":5}]}",
                        "commands[0] (x): unknown key \"timout_ms\"");
    expect_config_error("{\"commands\":[{\"name\":\"x\",\"argv\":[]}]}", "argv: must not be empty");
    expect_config_error("{\"commands\":[{\"name\":\"x\",\"argv\":[\"/bin/ls\"],\"permanent_exit_codes\":[75]}]}",
                        "75 (EX_TEMPFAIL)");
    expect_config_error("{\"commands\":[{\"name\":\"x\",\"argv\":[\"/bin/ls\"],\"env\":[\"NOEQUALS\"]}]}",
                        "not of the form NAME=value");
    expect_config_error("{\"commands\":[{\"name\":\"x\",\"argv\":[\"/bin/ls\"]},{\"name\":\"x\",\"argv\":[\"/bin/ls\"]}]}",
                        "already used");
    expect_config_error("{\"cmds\":[]}", "unknown key \"cmds\"");
    /* Invalid handler names are refused by the host. */
    expect_config_error("{\"commands\":[{\"name\":\"Backup Now\",\"argv\":[\"/bin/ls\"]}]}",
                        "invalid handler name \"Backup Now\"");

    /* No settings at all: loads, serves nothing. */
    jet_plugin_registry *r = jet_plugins_new(&th_api);
    jet_err err;
    assert_int_equal(jet_plugins_load(r, exec_so, NULL, &err), JET_OK);
    assert_int_equal(jet_plugins_count(r), 0);
    jet_plugins_free(r);
}

int main(void)
{
    jet_log_init("test", JET_LOG_WARN, false);
    snprintf(exec_so, sizeof exec_so, "%s/exec.so", th_env_dir("JETSCHED_PLUGIN_DIR"));
    /* Like an agent that adopts orphans: lets us (and the plugin) reap the
     * killed grandchildren even when PID 1 does not reap zombies. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stdin_to_stdout),
        cmocka_unit_test(large_payload_no_deadlock),
        cmocka_unit_test(nonzero_exit_is_retry_with_stderr),
        cmocka_unit_test(timeout_kills_process_group),
        cmocka_unit_test(sigterm_ignored_then_sigkill),
        cmocka_unit_test(cancellation_kills_process_group),
        cmocka_unit_test(leftovers_killed_after_exit),
        cmocka_unit_test(rlimits_applied),
        cmocka_unit_test(environment_and_cwd),
        cmocka_unit_test(only_allow_listed_commands),
        cmocka_unit_test(concurrent_calls),
        cmocka_unit_test(config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
