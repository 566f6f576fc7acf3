/* Unit tests of the Lua handler host (agentd/lua/) with the test host
 * API: the examples of scripts/lua/ (hello, webhook, batch_report resumed on
 * "another agent", fanout, noop), the task table and ctx functions, the
 * outcome mapping, unavailable scripts, reload (changed, new, removed, and a
 * task in flight keeping its code), recycling, concurrency, and a noop
 * throughput report for the benchmark notes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lua_testkit.h"

#include <jansson.h>
#include <jetsched/log.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *lua_dir, *test_dir;
static lua_host *ex; /* scripts/lua */
static lua_host *th; /* tests/lua */

static int setup(void **state)
{
    (void)state;
    lt_init_api();
    lt_cp_reset();
    lt_subs_reset();
    return 0;
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, s);
    return j;
}

/* ---- the examples ---- */

static void hello_greets(void **state)
{
    (void)state;
    jet_task_ctx c;
    assert_int_equal(lt_run(ex, "hello", "Ada", &c), JET_SUCCESS);
    assert_string_equal(th_result(&c), "hello, Ada");
    assert_contains(c.log, "info: greeting Ada (attempt 1)");
    th_ctx_free(&c);
    assert_int_equal(lt_run(ex, "hello", "", &c), JET_SUCCESS);
    assert_string_equal(th_result(&c), "hello, world");
    th_ctx_free(&c);
}

static void noop_succeeds_without_result(void **state)
{
    (void)state;
    jet_task_ctx c;
    assert_int_equal(lt_run(ex, "noop", "", &c), JET_SUCCESS);
    assert_false(c.has_result);
    assert_false(c.has_error);
    th_ctx_free(&c);
}

static void webhook_builds_body_and_submits(void **state)
{
    (void)state;
    jet_task_ctx c;
    assert_int_equal(lt_run(ex, "webhook", "{\"event\":\"order.paid\",\"data\":{\"order\":17,\"total\":9.5}}", &c),
                     JET_SUCCESS);
    json_t *b = parse(th_result(&c));
    assert_string_equal(json_string_value(json_object_get(b, "event")), "order.paid");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "data"), "order")), 17);
    assert_true(json_real_value(json_object_get(json_object_get(b, "data"), "total")) == 9.5);
    assert_string_equal(json_string_value(json_object_get(b, "id")), "task-0001");
    assert_int_equal(json_integer_value(json_object_get(b, "attempt")), 1);
    assert_true(json_real_value(json_object_get(b, "sent_at")) > 1.6e9);
    json_decref(b);
    assert_int_equal(lt_n_subs, 0);
    th_ctx_free(&c);

    /* With an endpoint: the body goes to that handler as an idempotent follow-up. */
    assert_int_equal(lt_run(ex, "webhook", "{\"event\":\"user.created\",\"endpoint\":\"crm\"}", &c), JET_SUCCESS);
    assert_int_equal(lt_n_subs, 1);
    assert_string_equal(lt_subs[0].handler, "crm");
    assert_string_equal(lt_subs[0].id, "task-0001-webhook");
    assert_string_equal(lt_subs[0].payload, th_result(&c));
    assert_contains(lt_subs[0].headers, "Content-Type=application/json;");
    assert_contains(lt_subs[0].headers, "X-Event=user.created;");
    b = parse(th_result(&c));
    assert_true(json_is_null(json_object_get(b, "data")));
    json_decref(b);
    th_ctx_free(&c);

    /* A failed submit is retried. */
    lt_submit_fail = 1;
    assert_int_equal(lt_run(ex, "webhook", "{\"event\":\"user.created\",\"endpoint\":\"crm\"}", &c), JET_RETRY);
    assert_contains(c.error, "webhook.lua:");
    assert_contains(c.error, "was not submitted");
    th_ctx_free(&c);
    lt_submit_fail = 0;

    /* Bad payloads fail permanently, with script:line. */
    assert_int_equal(lt_run(ex, "webhook", "not json", &c), JET_FAIL);
    assert_contains(c.error, "webhook.lua:");
    assert_contains(c.error, "payload must be a JSON object: json.decode:");
    th_ctx_free(&c);
    assert_int_equal(lt_run(ex, "webhook", "{\"data\":1}", &c), JET_FAIL);
    assert_contains(c.error, "payload has no \"event\" string");
    th_ctx_free(&c);
}

static int64_t expected_sum_squares(int64_t n) { return n * (n + 1) * (2 * n + 1) / 6; }

static void batch_report_resumes_on_another_agent(void **state)
{
    (void)state;
    const char *payload = "{\"items\":1000,\"step\":100,\"fail_after_step\":3}";
    /* Attempt 1 on agent A: fails (retryable) right after step 3. */
    jet_task_ctx c;
    th_ctx_init(&c);
    jet_task t = th_task("batch_report", payload, strlen(payload));
    t.id = "report-42";
    assert_int_equal(lua_host_run(ex, &t, &c), JET_RETRY);
    assert_contains(c.error, "batch_report.lua:");
    assert_contains(c.error, "forced failure after step 3");
    assert_contains(c.log, "step 3 done");
    assert_int_equal(c.progress, 30);
    assert_int_equal(lt_cp_saves, 3);
    json_t *cp = parse(lt_cp);
    assert_int_equal(json_integer_value(json_object_get(cp, "next_step")), 4);
    json_decref(cp);
    th_ctx_free(&c);

    /* Attempt 2 on agent B (another host, same checkpoint store): resumes at step 4. */
    lua_host *b = lt_open(lua_dir);
    th_ctx_init(&c);
    t.attempt = 2;
    assert_int_equal(lua_host_run(b, &t, &c), JET_SUCCESS);
    json_t *r = parse(th_result(&c));
    assert_int_equal(json_integer_value(json_object_get(r, "resumed_from")), 4);
    assert_int_equal(json_integer_value(json_object_get(r, "steps")), 10);
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "sum_squares")), expected_sum_squares(1000));
    json_decref(r);
    assert_contains(c.log, "resuming at step 4 of 10");
    assert_not_contains(c.log, "step 3 done");
    assert_contains(c.log, "step 4 done");
    assert_contains(c.log, "step 10 done");
    assert_int_equal(c.progress, 100);
    assert_int_equal(lt_cp_saves, 10);
    th_ctx_free(&c);
    lua_host_thread_exit();
    lua_host_close(b);

    /* Without a checkpoint the whole report runs in one attempt. */
    lt_cp_reset();
    assert_int_equal(lt_run(ex, "batch_report", "{\"items\":7,\"step\":3}", &c), JET_SUCCESS);
    r = parse(th_result(&c));
    assert_int_equal(json_integer_value(json_object_get(r, "sum_squares")), expected_sum_squares(7));
    assert_int_equal(json_integer_value(json_object_get(r, "resumed_from")), 1);
    json_decref(r);
    th_ctx_free(&c);
    assert_int_equal(lt_run(ex, "batch_report", "{\"items\":0,\"step\":3}", &c), JET_FAIL);
    th_ctx_free(&c);
}

static void fanout_submits_follow_ups(void **state)
{
    (void)state;
    jet_task_ctx c;
    assert_int_equal(lt_run(ex, "fanout", "{\"handler\":\"hello\",\"count\":5,\"priority\":\"low\"}", &c),
                     JET_SUCCESS);
    assert_string_equal(th_result(&c), "{\"submitted\":5}");
    assert_int_equal(lt_n_subs, 5);
    for (int i = 0; i < 5; i++) {
        char id[64], pl[32];
        snprintf(id, sizeof id, "task-0001-%d", i + 1);
        snprintf(pl, sizeof pl, "item %d", i + 1);
        assert_string_equal(lt_subs[i].id, id);
        assert_string_equal(lt_subs[i].payload, pl);
        assert_string_equal(lt_subs[i].handler, "hello");
        assert_string_equal(lt_subs[i].priority, "low");
        assert_string_equal(lt_subs[i].queue, "(null)"); /* the host's default: this task's queue */
        assert_string_equal(lt_subs[i].headers, "X-Parent=task-0001;");
    }
    assert_int_equal(c.progress, 100);
    th_ctx_free(&c);
    assert_int_equal(lt_run(ex, "fanout", "{\"handler\":\"hello\",\"count\":0}", &c), JET_FAIL);
    assert_contains(c.error, "fanout.lua:");
    th_ctx_free(&c);
}

/* ---- task table, ctx, outcomes (tests/lua/api.lua) ---- */

static void task_table(void **state)
{
    (void)state;
    jet_task_ctx c;
    th_ctx_init(&c);
    jet_header hdrs[] = {{"X-Test", "first"}, {"X-Test", "second"}, {"Other", "v"}};
    jet_task t = th_task("api", "task", 4);
    t.headers = hdrs;
    t.n_headers = 3;
    t.priority = "high";
    t.attempt = 2;
    t.deadline_ms = 1700000000500;
    t.timeout_ms = 2500;
    assert_int_equal(lua_host_run(th, &t, &c), JET_SUCCESS);
    json_t *r = parse(th_result(&c));
    assert_string_equal(json_string_value(json_object_get(r, "id")), "task-0001");
    assert_string_equal(json_string_value(json_object_get(r, "handler")), "api");
    assert_string_equal(json_string_value(json_object_get(r, "queue")), "default");
    assert_string_equal(json_string_value(json_object_get(r, "priority")), "high");
    assert_string_equal(json_string_value(json_object_get(r, "payload")), "task");
    assert_string_equal(json_string_value(json_object_get(r, "header")), "first");
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "max_attempts")), 5);
    assert_true(json_real_value(json_object_get(r, "deadline")) == 1700000000.5);
    assert_true(json_real_value(json_object_get(r, "timeout")) == 2.5);
    json_decref(r);
    th_ctx_free(&c);
}

static void ctx_functions(void **state)
{
    (void)state;
    jet_task_ctx c;
    assert_int_equal(lt_run(th, "api", "ctx", &c), JET_SUCCESS);
    assert_string_equal(th_result(&c), "ok");
    assert_int_equal(c.progress, 50);
    assert_contains(c.log, "almost half\n");
    assert_contains(c.log, "debug: d-msg\n");
    assert_contains(c.log, "warn: w-msg\n");
    assert_contains(c.log, "error: e-msg\n");
    assert_contains(c.log, "info: plain info\n");
    assert_contains(c.log, "info: printed\t1\ttrue\n");
    assert_string_equal(lt_cp, "cp-1");
    assert_int_equal(lt_n_subs, 2);
    assert_string_equal(lt_subs[0].handler, "hello");
    assert_string_equal(lt_subs[0].queue, "other");
    assert_string_equal(lt_subs[0].priority, "high");
    assert_string_equal(lt_subs[0].payload, "sub");
    assert_string_equal(lt_subs[0].id, "child-1");
    assert_string_equal(lt_subs[0].headers, "X-A=1;");
    assert_string_equal(lt_subs[1].queue, "(null)");
    assert_string_equal(lt_subs[1].priority, "(null)");
    assert_int_equal(strlen(lt_subs[1].id), 26);
    th_ctx_free(&c);

    assert_int_equal(lt_run(th, "api", "submit_bad", &c), JET_RETRY);
    assert_contains(c.error, "api.lua:");
    assert_contains(c.error, "ctx.submit: 'handler' must be a handler name");
    th_ctx_free(&c);
    assert_int_equal(lt_run(th, "api", "log_bad", &c), JET_RETRY);
    assert_contains(c.error, "level must be debug, info, warn or error");
    th_ctx_free(&c);
    assert_int_equal(lt_run(th, "api", "progress_long_note", &c), JET_RETRY); /* each note is a live event */
    assert_contains(c.error, "api.lua:");
    assert_contains(c.error, "note longer than 1024 bytes");
    th_ctx_free(&c);
}

static void outcome_mapping(void **state)
{
    (void)state;
    static const struct {
        const char *mode;
        jet_outcome want;
        const char *error;  /* expected in the error message (NULL: no error) */
        const char *result; /* expected result (NULL: none) */
    } cases[] = {
        {"fail", JET_FAIL, "api.lua:35: bad input", NULL},
        {"fail_caught", JET_FAIL, "api.lua:36: bad input, caught", NULL},
        {"retry_in", JET_RETRY, "api.lua:37: rate limited", NULL},
        {"error", JET_RETRY, "api.lua:39: boom", NULL},
        {"error_table", JET_RETRY, "api.lua:40: (error object is a table value)", NULL},
        {"error_tostring", JET_RETRY, "api.lua:41: custom", NULL},
        {"error_level2", JET_RETRY, "api.lua:42: x is required", NULL},
        {"runtime", JET_RETRY, "api.lua:43: attempt to index a nil value (local 't')", NULL},
        {"bad_arg", JET_RETRY, "api.lua:44: bad argument #1 to 'rep'", NULL},
        {"return_false", JET_RETRY, "api.lua: handle returned false", NULL},
        {"return_true", JET_SUCCESS, NULL, NULL},
        {"return_number", JET_SUCCESS, NULL, "42"},
        {"return_table", JET_SUCCESS, NULL, NULL},
        {"return_bad_table", JET_RETRY, "json.encode: cannot encode a function value (encoding the returned table)",
         NULL},
        {"return_function", JET_RETRY, "api.lua: handle returned a function value", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jet_task_ctx c;
        jet_outcome o = lt_run(th, "api", cases[i].mode, &c);
        if (o != cases[i].want)
            fail_msg("%s: outcome %d, want %d (error: %s)", cases[i].mode, o, cases[i].want, c.error);
        if (cases[i].error)
            assert_contains(c.error, cases[i].error);
        else
            assert_false(c.has_error);
        if (cases[i].result)
            assert_string_equal(th_result(&c), cases[i].result);
        if (strcmp(cases[i].mode, "retry_in") == 0)
            assert_int_equal(c.retry_in_ms, 30000);
        else
            assert_int_equal(c.retry_in_ms, -1);
        if (strcmp(cases[i].mode, "return_table") == 0) {
            json_t *r = parse(th_result(&c));
            assert_int_equal(json_integer_value(json_object_get(r, "a")), 1);
            assert_int_equal(json_array_size(json_object_get(r, "list")), 3);
            json_decref(r);
        }
        if (cases[i].want != JET_SUCCESS && strcmp(cases[i].mode, "fail") == 0)
            assert_contains(c.log, "stack traceback"); /* the traceback goes to the debug log */
        th_ctx_free(&c);
    }
    jet_task_ctx c;
    assert_int_equal(lt_run(th, "api", "retry_in_default", &c), JET_RETRY);
    assert_int_equal(c.retry_in_ms, 2500);
    assert_contains(c.error, "retry requested in 2.5 s");
    th_ctx_free(&c);
}

static void *cancel_later(void *arg)
{
    jet_task_ctx *c = arg;
    usleep(100 * 1000);
    atomic_store(&c->cancel_now, 1);
    return NULL;
}

static void cancellation(void **state)
{
    (void)state;
    /* A script polling ctx.cancelled() stops by itself ... */
    jet_task_ctx c;
    th_ctx_init(&c);
    c.cancel_after_ms = 100;
    jet_task t = th_task("api", "cancel_cooperative", strlen("cancel_cooperative"));
    jet_outcome o = lua_host_run(th, &t, &c);
    /* ... unless the hook noticed first: both end the task promptly. */
    assert_true(o == JET_SUCCESS || o == JET_RETRY);
    if (o == JET_SUCCESS)
        assert_string_equal(th_result(&c), "stopped");
    else
        assert_contains(c.error, "task cancelled");
    th_ctx_free(&c);

    /* A script that never looks is stopped by the hook. */
    lua_host *h = lt_open(test_dir);
    th_ctx_init(&c);
    t = th_task("spin", "plain", 5);
    pthread_t tid;
    pthread_create(&tid, NULL, cancel_later, &c);
    int64_t t0 = th_now_ms();
    assert_int_equal(lua_host_run(h, &t, &c), JET_RETRY);
    assert_true(th_now_ms() - t0 < 5000);
    pthread_join(tid, NULL);
    assert_contains(c.error, "spin.lua:");
    assert_contains(c.error, "task cancelled");
    lua_host_stats st;
    lua_host_stats_get(h, &st);
    assert_int_equal(st.cancels, 1);
    th_ctx_free(&c);
    lua_host_thread_exit();
    lua_host_close(h);
}

/* ---- unavailable scripts ---- */

static void unavailable_scripts(void **state)
{
    (void)state;
    char why[1024];
    assert_true(lua_host_has(th, "api"));
    assert_false(lua_host_unavailable(th, "api", why, sizeof why));
    assert_false(lua_host_has(th, "nonexistent"));
    assert_false(lua_host_unavailable(th, "nonexistent", why, sizeof why));

    static const struct {
        const char *name, *why;
    } bad[] = {
        {"syntax_error", "syntax_error.lua:3: unexpected symbol near '='"},
        {"no_handle", "no_handle.lua: must return a table with a handle function"},
        {"load_error", "load_error.lua:2: cannot start without configuration"},
        {"load_spin", "load_spin.lua:2: time limit exceeded (1000 ms) while loading"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(lua_host_has(th, bad[i].name));
        assert_true(lua_host_unavailable(th, bad[i].name, why, sizeof why));
        assert_contains(why, bad[i].why);
        /* Running it anyway: a retry with that reason, never a crash. */
        jet_task_ctx c;
        assert_int_equal(lt_run(th, bad[i].name, "", &c), JET_RETRY);
        assert_contains(c.error, bad[i].why);
        th_ctx_free(&c);
    }
    /* Every file of tests/lua is listed (helpers excluded: not *.lua). */
    char name[80];
    size_t n = lua_host_count(th);
    assert_true(n >= 10);
    bool seen_api = false;
    for (size_t i = 0; i < n; i++) {
        assert_true(lua_host_name_at(th, i, name, sizeof name));
        seen_api |= strcmp(name, "api") == 0;
    }
    assert_true(seen_api);
    assert_false(lua_host_name_at(th, n, name, sizeof name));
    jet_task_ctx c;
    assert_int_equal(lt_run(th, "nonexistent", "", &c), JET_RETRY);
    assert_contains(c.error, "no Lua script serves handler nonexistent");
    th_ctx_free(&c);
}

/* ---- reload ---- */

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0); /* like a deploy: atomic replace */
}

static void remove_file(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
}

static const char *svc_v1 =
    "return { handle = function(task, ctx)\n"
    "  if task.payload == 'wait' then\n"
    "    ctx.progress(1)\n"
    "    while ctx.checkpoint() ~= 'go' do end\n"
    "  end\n"
    "  return 'v1'\n"
    "end }\n";

typedef struct inflight_run {
    lua_host *h;
    jet_task_ctx c;
    jet_outcome o;
    char after[64]; /* the result of a second task on the same thread */
} inflight_run;

static void *run_waiting(void *arg)
{
    inflight_run *r = arg; /* r->c initialised by the caller */
    jet_task t = th_task("svc", "wait", 4);
    r->o = lua_host_run(r->h, &t, &r->c);
    jet_task_ctx c2;
    assert_int_equal(lt_run(r->h, "svc", "", &c2), JET_SUCCESS);
    snprintf(r->after, sizeof r->after, "%s", th_result(&c2));
    th_ctx_free(&c2);
    return NULL;
}

static void reload_changes(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/jetsched-lua-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    write_file("svc.lua", svc_v1);
    write_file("old.lua", "return { handle = function() return 'old' end }\n");
    write_file("Bad.Name.lua", "return { handle = function() end }\n");
    write_file(".hidden.lua", "return { handle = function() end }\n");
    write_file("notes.txt", "not a script\n");
    lua_host *h = lt_open(tmpdir);
    assert_int_equal(lua_host_count(h), 2); /* old, svc */
    assert_false(lua_host_has(h, "Bad.Name"));

    /* A task of v1 in flight on another thread. */
    inflight_run r = {.h = h};
    th_ctx_init(&r.c);
    pthread_t tid;
    pthread_create(&tid, NULL, run_waiting, &r);
    int progress = 0;
    for (int i = 0; i < 500 && progress != 1; i++) {
        usleep(10 * 1000);
        pthread_mutex_lock(&r.c.mu);
        progress = r.c.progress;
        pthread_mutex_unlock(&r.c.mu);
    }
    assert_int_equal(progress, 1);

    /* Change svc, add new, remove old, break broken; reload. */
    write_file("svc.lua", "return { handle = function() return 'v2' end }\n");
    write_file("new.lua", "return { handle = function(task) return 'new ' .. task.payload end }\n");
    write_file("broken.lua", "return { handle = function() return 'fine' end }\n");
    remove_file("old.lua");
    jet_err err = {0};
    assert_int_equal(lua_host_reload(h, &err), JET_OK);
    assert_true(lua_host_has(h, "svc"));
    assert_true(lua_host_has(h, "new"));
    assert_true(lua_host_has(h, "broken"));
    assert_false(lua_host_has(h, "old"));
    assert_int_equal(lua_host_count(h), 3);

    /* This thread sees the new code at once. */
    jet_task_ctx c;
    assert_int_equal(lt_run(h, "svc", "", &c), JET_SUCCESS);
    assert_string_equal(th_result(&c), "v2");
    th_ctx_free(&c);
    assert_int_equal(lt_run(h, "new", "x", &c), JET_SUCCESS);
    assert_string_equal(th_result(&c), "new x");
    th_ctx_free(&c);
    assert_int_equal(lt_run(h, "old", "", &c), JET_RETRY);
    assert_contains(c.error, "no Lua script serves handler old");
    th_ctx_free(&c);

    /* The task in flight finishes with its old code, its thread's next task runs v2. */
    lt_cp_set("go");
    pthread_join(tid, NULL);
    assert_int_equal(r.o, JET_SUCCESS);
    assert_string_equal(th_result(&r.c), "v1");
    assert_string_equal(r.after, "v2");
    th_ctx_free(&r.c);

    /* A reload that breaks a script makes it unavailable, with script:line. */
    write_file("broken.lua", "return { handle = function() return 'fine' end\n");
    assert_int_equal(lua_host_reload(h, &err), JET_OK);
    assert_false(lua_host_has(h, "broken"));
    char why[512];
    assert_true(lua_host_unavailable(h, "broken", why, sizeof why));
    assert_contains(why, "broken.lua:2: '}' expected (to close '{' at line 1) near <eof>");
    assert_int_equal(lt_run(h, "broken", "", &c), JET_RETRY);
    assert_contains(c.error, "broken.lua:2:");
    th_ctx_free(&c);
    /* ... and fixing it brings it back; unchanged scripts keep their compiled code. */
    write_file("broken.lua", "return { handle = function() return 'fixed' end }\n");
    assert_int_equal(lua_host_reload(h, &err), JET_OK);
    assert_int_equal(lt_run(h, "broken", "", &c), JET_SUCCESS);
    assert_string_equal(th_result(&c), "fixed");
    th_ctx_free(&c);
    lua_host_stats st;
    lua_host_stats_get(h, &st);
    assert_int_equal(st.reloads, 3);

    /* The directory disappearing empties the host. */
    remove_file("svc.lua");
    remove_file("new.lua");
    remove_file("broken.lua");
    remove_file("Bad.Name.lua");
    remove_file(".hidden.lua");
    remove_file("notes.txt");
    assert_int_equal(rmdir(tmpdir), 0);
    assert_int_equal(lua_host_reload(h, &err), JET_OK);
    assert_int_equal(lua_host_count(h), 0);
    lua_host_thread_exit();
    lua_host_close(h);
}

static void reload_from_other_dir(void **state)
{
    (void)state;
    lua_host *h = lt_open(lua_dir);
    jet_err err = {0};
    assert_true(lua_host_has(h, "hello"));
    assert_int_equal(lua_host_reload_from(h, test_dir, &err), JET_OK);
    assert_false(lua_host_has(h, "hello"));
    assert_true(lua_host_has(h, "api"));
    assert_int_equal(lua_host_reload_from(h, NULL, &err), JET_OK); /* stays in test_dir */
    assert_true(lua_host_has(h, "api"));
    jet_task_ctx c;
    assert_int_equal(lt_run(h, "api", "return_number", &c), JET_SUCCESS);
    th_ctx_free(&c);
    assert_int_equal(lua_host_reload_from(h, lua_dir, &err), JET_OK);
    assert_true(lua_host_has(h, "hello"));
    assert_int_equal(lt_run(h, "api", "return_number", &c), JET_RETRY);
    th_ctx_free(&c);
    lua_host_thread_exit();
    lua_host_close(h);
}

static void open_errors(void **state)
{
    (void)state;
    lua_host_options opt;
    lua_host_options_init(&opt);
    lua_host *h = NULL;
    jet_err err = {0};
    opt.dir = "/nonexistent/jetsched-lua";
    assert_int_equal(lua_host_open(&opt, &lt_api, &h, &err), JET_OK); /* missing dir: empty, warned */
    assert_int_equal(lua_host_count(h), 0);
    lua_host_close(h);
    h = NULL;
    opt.dir = lua_dir;
    opt.mem_limit_bytes = 1000;
    assert_int_equal(lua_host_open(&opt, &lt_api, &h, &err), JET_ERR_INVALID);
    assert_null(h);
    assert_contains(err.msg, "lua.memory_limit");
    lua_host_options_init(&opt);
    opt.dir = lua_dir;
    opt.instruction_check_interval = 0;
    assert_int_equal(lua_host_open(&opt, &lt_api, &h, &err), JET_ERR_INVALID);
    assert_contains(err.msg, "lua.instruction_check_interval");
    opt.dir = NULL;
    assert_int_equal(lua_host_open(&opt, &lt_api, &h, &err), JET_ERR_INVALID);
}

/* ---- recycling ---- */

static void recycle_after_tasks(void **state)
{
    (void)state;
    lua_host_options opt;
    lua_host_options_init(&opt);
    opt.dir = lua_dir;
    opt.recycle_after_tasks = 5;
    lua_host *h = lt_open_opts(&opt);
    for (int i = 0; i < 12; i++) {
        jet_task_ctx c;
        assert_int_equal(lt_run(h, "hello", "x", &c), JET_SUCCESS);
        th_ctx_free(&c);
    }
    lua_host_stats st;
    lua_host_stats_get(h, &st);
    assert_int_equal(st.tasks, 12);
    assert_int_equal(st.states_created, 3); /* tasks 1-5, 6-10, 11-12 */
    assert_int_equal(st.states_recycled, 2);
    assert_int_equal(st.states_live, 1);
    assert_true(st.memory_bytes > 0);
    lua_host_thread_exit();
    lua_host_stats_get(h, &st);
    assert_int_equal(st.states_live, 0);
    assert_int_equal(st.memory_bytes, 0);
    /* The next task on this thread gets a new state. */
    jet_task_ctx c;
    assert_int_equal(lt_run(h, "hello", "again", &c), JET_SUCCESS);
    th_ctx_free(&c);
    lua_host_stats_get(h, &st);
    assert_int_equal(st.states_created, 4);
    lua_host_close(h); /* closes this thread's state; the worker struct goes at thread exit */
    lua_host_thread_exit();
}

static void recycle_after_memory(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/jetsched-lua-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    /* A script whose compiled code holds ~2 MiB of constants: the state stays big after GC. */
    size_t n = 2u << 20;
    char *big = malloc(n + 200);
    strcpy(big, "local blob = '");
    memset(big + strlen(big), 'b', n);
    strcpy(big + 14 + n, "'\nreturn { handle = function() return #blob end }\n");
    write_file("big.lua", big);
    free(big);
    write_file("small.lua", "return { handle = function() local t = {} for i = 1, 1e5 do t[i] = i end end }\n");
    /* A task's globals are garbage once it ended: not a reason to recycle. */
    write_file("globalbig.lua", "return { handle = function() big = string.rep('x', 4 << 20) end }\n");
    lua_host_options opt;
    lua_host_options_init(&opt);
    opt.dir = tmpdir;
    opt.recycle_after_bytes = 1536u << 10;
    lua_host *h = lt_open_opts(&opt);
    jet_task_ctx c;
    for (int i = 0; i < 3; i++) { /* garbage alone does not recycle: a full GC reclaims it */
        assert_int_equal(lt_run(h, "small", "", &c), JET_SUCCESS);
        th_ctx_free(&c);
        assert_int_equal(lt_run(h, "globalbig", "", &c), JET_SUCCESS);
        th_ctx_free(&c);
    }
    lua_host_stats st;
    lua_host_stats_get(h, &st);
    assert_int_equal(st.states_created, 1);
    assert_int_equal(st.states_recycled, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lt_run(h, "big", "", &c), JET_SUCCESS);
        assert_int_equal(atoi(th_result(&c)), (int)n);
        th_ctx_free(&c);
    }
    lua_host_stats_get(h, &st);
    assert_int_equal(st.states_recycled, 3);
    assert_int_equal(st.states_created, 3);
    lua_host_thread_exit();
    lua_host_close(h);
    remove_file("big.lua");
    remove_file("small.lua");
    remove_file("globalbig.lua");
    rmdir(tmpdir);
}

/* ---- concurrency ---- */

#define N_THREADS 4
#define N_TASKS 300

typedef struct conc_arg {
    lua_host *h;
    int idx;
    int failures;
    char first_failure[512];
} conc_arg;

static void *concurrent_worker(void *arg)
{
    conc_arg *a = arg;
    for (int j = 0; j < N_TASKS; j++) {
        jet_task_ctx c;
        char payload[64], want[96];
        const char *handler = j % 3 == 0 ? "globals" : j % 3 == 1 ? "hello" : "json_echo";
        jet_outcome o;
        if (j % 3 == 0) {
            o = lt_run(a->h, "globals", "", &c);
            snprintf(want, sizeof want, "1 1 1 1 1 1 1 nil nil");
        } else if (j % 3 == 1) {
            snprintf(payload, sizeof payload, "t%d-%d", a->idx, j);
            o = lt_run(a->h, "hello", payload, &c);
            snprintf(want, sizeof want, "hello, %s", payload);
        } else {
            o = lt_run(a->h, "json_echo", "{\"k\":[1,2,{\"x\":\"y\"}]}", &c);
            snprintf(want, sizeof want, "{\"k\":[1,2,{\"x\":\"y\"}]}");
        }
        if (o != JET_SUCCESS || strcmp(th_result(&c), want) != 0) {
            if (!a->failures++)
                snprintf(a->first_failure, sizeof a->first_failure, "%s #%d: outcome %d result '%.100s' error '%.300s'",
                         handler, j, o, th_result(&c), c.error);
        }
        th_ctx_free(&c);
    }
    return NULL; /* the thread-exit destructor frees this thread's state */
}

static void concurrency(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/jetsched-lua-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char src[4096], path[300];
    const char *copy[] = {"globals", NULL};
    for (int i = 0; copy[i]; i++) {
        snprintf(path, sizeof path, "%s/%s.lua", test_dir, copy[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        size_t n = fread(src, 1, sizeof src - 1, f);
        fclose(f);
        src[n] = '\0';
        snprintf(path, sizeof path, "%s.lua", copy[i]);
        write_file(path, src);
    }
    write_file("hello.lua", "return { handle = function(task) return 'hello, ' .. task.payload end }\n");
    write_file("json_echo.lua", "return { handle = function(task) return json.encode(json.decode(task.payload)) end }\n");
    lua_host_options opt;
    lua_host_options_init(&opt);
    opt.dir = tmpdir;
    opt.recycle_after_tasks = 50;
    lua_host *h = lt_open_opts(&opt);
    pthread_t tids[N_THREADS];
    conc_arg args[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        args[i] = (conc_arg){.h = h, .idx = i};
        pthread_create(&tids[i], NULL, concurrent_worker, &args[i]);
    }
    /* Reloads while they run. */
    jet_err err;
    for (int i = 0; i < 5; i++) {
        usleep(20 * 1000);
        assert_int_equal(lua_host_reload(h, &err), JET_OK);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(tids[i], NULL);
        if (args[i].failures)
            fail_msg("thread %d: %d failures; first: %s", i, args[i].failures, args[i].first_failure);
    }
    lua_host_stats st;
    lua_host_stats_get(h, &st);
    assert_int_equal(st.tasks, N_THREADS * N_TASKS);
    assert_int_equal(st.states_live, 0); /* freed by the thread-exit destructors */
    assert_true(st.states_created >= N_THREADS * (N_TASKS / 50));
    lua_host_close(h);
    remove_file("globals.lua");
    remove_file("hello.lua");
    remove_file("json_echo.lua");
    rmdir(tmpdir);
}

/* Threads still alive when the host closes: their states are closed by
 * lua_host_close and their worker structs freed at their exit. */
static pthread_barrier_t bar;

static void *run_then_wait(void *arg)
{
    jet_task_ctx c;
    assert_int_equal(lt_run(arg, "noop", "", &c), JET_SUCCESS);
    th_ctx_free(&c);
    pthread_barrier_wait(&bar); /* ran */
    pthread_barrier_wait(&bar); /* host closed */
    return NULL;
}

static void close_with_live_threads(void **state)
{
    (void)state;
    lua_host *h = lt_open(lua_dir);
    pthread_barrier_init(&bar, NULL, 3);
    pthread_t a, b;
    pthread_create(&a, NULL, run_then_wait, h);
    pthread_create(&b, NULL, run_then_wait, h);
    pthread_barrier_wait(&bar);
    lua_host_stats st;
    lua_host_stats_get(h, &st);
    assert_int_equal(st.states_live, 2);
    lua_host_close(h);
    pthread_barrier_wait(&bar);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&bar);
}

/* ---- throughput (reported, for docs/PERFORMANCE and the benchmark) ---- */

static jet_outcome native_noop(const jet_task *t, jet_task_ctx *c)
{
    (void)t, (void)c;
    return JET_SUCCESS;
}

static void noop_throughput(void **state)
{
    (void)state;
    const int n = 20000;
    jet_task_ctx c;
    th_ctx_init(&c);
    jet_task t = th_task("noop", "", 0);
    jet_outcome (*volatile native)(const jet_task *, jet_task_ctx *) = native_noop;
    int64_t t0 = th_now_ms();
    for (int i = 0; i < n; i++)
        assert_int_equal(native(&t, &c), JET_SUCCESS);
    int64_t t1 = th_now_ms();
    for (int i = 0; i < n; i++)
        assert_int_equal(lua_host_run(ex, &t, &c), JET_SUCCESS);
    int64_t t2 = th_now_ms();
    double lua_us = (double)(t2 - t1) * 1000.0 / n;
    printf("lua noop: %d tasks in %lld ms: %.2f us/task (%.0f tasks/s per thread); native call: %lld ms\n", n,
           (long long)(t2 - t1), lua_us, lua_us > 0 ? 1e6 / lua_us : 0.0, (long long)(t1 - t0));
    assert_true(lua_us < 2000); /* sanity only: sanitizer builds are slow */
    th_ctx_free(&c);
}

static int group_setup(void **state)
{
    (void)state;
    jet_log_init("test_lua_host", JET_LOG_WARN, false);
    lua_dir = th_env_dir("JETSCHED_LUA_DIR");
    test_dir = th_env_dir("JETSCHED_LUA_TEST_DIR");
    lt_init_api();
    ex = lt_open(lua_dir);
    th = lt_open(test_dir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lua_host_thread_exit();
    lua_host_close(ex);
    lua_host_close(th);
    lt_cp_reset();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(hello_greets, setup),
        cmocka_unit_test_setup(noop_succeeds_without_result, setup),
        cmocka_unit_test_setup(webhook_builds_body_and_submits, setup),
        cmocka_unit_test_setup(batch_report_resumes_on_another_agent, setup),
        cmocka_unit_test_setup(fanout_submits_follow_ups, setup),
        cmocka_unit_test_setup(task_table, setup),
        cmocka_unit_test_setup(ctx_functions, setup),
        cmocka_unit_test_setup(outcome_mapping, setup),
        cmocka_unit_test_setup(cancellation, setup),
        cmocka_unit_test_setup(unavailable_scripts, setup),
        cmocka_unit_test_setup(reload_changes, setup),
        cmocka_unit_test_setup(reload_from_other_dir, setup),
        cmocka_unit_test_setup(open_errors, setup),
        cmocka_unit_test_setup(recycle_after_tasks, setup),
        cmocka_unit_test_setup(recycle_after_memory, setup),
        cmocka_unit_test_setup(concurrency, setup),
        cmocka_unit_test_setup(close_with_live_threads, setup),
        cmocka_unit_test_setup(noop_throughput, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
