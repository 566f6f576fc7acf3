/* Handler dispatch (native plugins and Lua scripts side by side: a native
 * handler wins a name clash), the host API given to both, and SIGHUP reload
 * of the Lua scripts. */
#include "handlers.h"
#include "events.h"
#include "lua/host.h"
#include "plugin_host.h"
#include "workflow.h"

#include <jansson.h>
#include <jetsched/alloc.h>
#include <jetsched/ids.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/natsconn.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct handlers {
    jet_plugin_registry *plugins;
    lua_host *lua;
    kvStore *checkpoints;
    jet_host_api lua_api;          /* host_api with the Lua cancelled() */
};

/* A handler's context is its in-flight task; the agent is reached through it. */
static inflight *ctx_inflight(jet_task_ctx *ctx) { return (inflight *)ctx; }
static agent *ctx_agent(jet_task_ctx *ctx) { return ctx_inflight(ctx)->queue->a; }

/* ---- host API ---- */

static void host_progress(jet_task_ctx *ctx, int percent, const char *note)
{
    event_progress(ctx_agent(ctx), ctx_inflight(ctx)->task, percent, note);
}

static int host_checkpoint_save(jet_task_ctx *ctx, const void *data, size_t len)
{
    inflight *f = ctx_inflight(ctx);
    uint64_t rev = 0;
    natsStatus s = kvStore_Put(&rev, ctx_agent(ctx)->handlers->checkpoints, f->task->id, data, (int)len);
    if (s != NATS_OK)
        jet_warn("task %s: checkpoint not saved: %s", f->task->id, natsStatus_GetText(s));
    return s == NATS_OK ? 0 : -1;
}

static int host_checkpoint_load(jet_task_ctx *ctx, void **data, size_t *len)
{
    inflight *f = ctx_inflight(ctx);
    *data = NULL;
    *len = 0;
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, ctx_agent(ctx)->handlers->checkpoints, f->task->id);
    if (s == NATS_NOT_FOUND)
        return 0;
    if (s != NATS_OK)
        return -1;
    int n = kvEntry_ValueLen(e);
    if (kvEntry_Operation(e) == kvOp_Put && n > 0) {
        *data = jet_xmalloc((size_t)n);
        memcpy(*data, kvEntry_Value(e), (size_t)n);
        *len = (size_t)n;
    }
    kvEntry_Destroy(e);
    return 0;
}

static void host_log(jet_task_ctx *ctx, jet_log_severity sev, const char *msg)
{
    jet_log_level l = sev == JET_PLOG_DEBUG ? JET_LOG_DEBUG : sev == JET_PLOG_WARN ? JET_LOG_WARN
                    : sev == JET_PLOG_ERROR ? JET_LOG_ERROR : JET_LOG_INFO;
    if (!ctx) { /* from a plugin's init() or shutdown() */
        jet_log(l, "plugin: %s", msg ? msg : "");
        return;
    }
    inflight *f = ctx_inflight(ctx);
    jet_log(l, "task %s [%s]: %s", f->task->id, f->task->handler, msg ? msg : "");
}

static int host_cancelled(jet_task_ctx *ctx) { return atomic_load(&ctx_inflight(ctx)->cancel) ? 1 : 0; }

static int host_submit(jet_task_ctx *ctx, const char *queue, const char *priority, const char *handler,
                       const void *payload, size_t payload_len, const jet_header *headers, size_t n_headers,
                       const char *id)
{
    inflight *f = ctx_inflight(ctx);
    jet_priority p = JET_PRIO_NORMAL;
    if (!queue)
        queue = f->task->queue;
    if (!jet_name_valid(queue) || !jet_name_valid(handler) || (priority && !jet_priority_parse(priority, &p)) ||
        (id && !jet_task_id_valid(id))) {
        jet_warn("task %s: submit refused: invalid queue, handler, priority or id", f->task->id);
        return -1;
    }
    for (size_t i = 0; i < n_headers; i++)
        if (headers[i].name && jet_header_internal(headers[i].name)) {
            /* DESIGN §12: a handler cannot name or re-run another task through internal headers. */
            jet_warn("task %s: submit refused: header %.64s is internal (the id is the submit's own)", f->task->id,
                     headers[i].name);
            return -1;
        }
    char subject[256], gen[JET_ULID_LEN + 1];
    jet_js_task_subject(&ctx_agent(ctx)->names, queue, p, subject, sizeof subject);
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subject, NULL, payload, (int)payload_len) != NATS_OK)
        return -1;
    for (size_t i = 0; i < n_headers; i++)
        if (headers[i].name && headers[i].value)
            natsMsgHeader_Add(m, headers[i].name, headers[i].value);
    if (!id) {
        jet_ulid_new(gen);
        id = gen;
    }
    natsMsgHeader_Set(m, JET_HDR_HANDLER, handler);
    natsMsgHeader_Set(m, JET_HDR_MSG_ID, id);
    const char *tp = NULL;
    if (f->task->traceparent && natsMsgHeader_Get(m, JET_HDR_TRACEPARENT, &tp) != NATS_OK)
        natsMsgHeader_Set(m, JET_HDR_TRACEPARENT, f->task->traceparent); /* follow-ups join the trace */
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_PublishMsg(&pa, ctx_agent(ctx)->js, m, NULL, &jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    if (s != NATS_OK)
        jet_warn("task %s: submit to %s failed: %s", f->task->id, subject, natsStatus_GetText(s));
    return s == NATS_OK ? 0 : -1;
}

static void set_text(inflight *f, char **slot, const char *text, size_t len)
{
    pthread_mutex_lock(&f->mu);
    free(*slot);
    *slot = NULL;
    if (text)
        *slot = jet_xstrndup(text, len);
    pthread_mutex_unlock(&f->mu);
}

/* A result is bytes: kept whole (NULs included) with its length, not cut
 * at the first NUL as a C string would be. */
static void set_bytes(inflight *f, char **slot, size_t *slot_len, const char *data, size_t len)
{
    char *copy = NULL;
    if (data) {
        copy = jet_xmalloc(len + 1);
        memcpy(copy, data, len);
        copy[len] = '\0';
    }
    pthread_mutex_lock(&f->mu);
    free(*slot);
    *slot = copy;
    *slot_len = data ? len : 0;
    pthread_mutex_unlock(&f->mu);
}

static void host_set_result(jet_task_ctx *ctx, const char *result, size_t len)
{
    set_bytes(ctx_inflight(ctx), &ctx_inflight(ctx)->result, &ctx_inflight(ctx)->result_len, result, len);
}

static void host_set_error(jet_task_ctx *ctx, const char *message)
{
    set_text(ctx_inflight(ctx), &ctx_inflight(ctx)->error, message, message ? strlen(message) : 0);
}

static void host_retry_in(jet_task_ctx *ctx, int64_t delay_ms)
{
    inflight *f = ctx_inflight(ctx);
    pthread_mutex_lock(&f->mu);
    f->retry_in_ms = delay_ms < 0 ? 0 : delay_ms;
    pthread_mutex_unlock(&f->mu);
}

/* ABI 1.1: the retry-after of a JET_RATE_LIMITED outcome (outcome.c). */
static void host_rate_limited(jet_task_ctx *ctx, int64_t retry_after_ms)
{
    inflight *f = ctx_inflight(ctx);
    pthread_mutex_lock(&f->mu);
    f->retry_in_ms = retry_after_ms < 1 ? 1 : retry_after_ms > 3600000 ? 3600000 : retry_after_ms;
    pthread_mutex_unlock(&f->mu);
}

static const jet_host_api host_api = {
    .struct_size = sizeof(jet_host_api),
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .progress = host_progress,
    .checkpoint_save = host_checkpoint_save,
    .checkpoint_load = host_checkpoint_load,
    .log = host_log,
    .cancelled = host_cancelled,
    .submit = host_submit,
    .set_result = host_set_result,
    .set_error = host_set_error,
    .retry_in = host_retry_in,
    .rate_limited = host_rate_limited,
    .workflow_id = wf_host_workflow_id,
    .workflow_add = wf_host_add,
    .parent_results = wf_host_parent_results,
};

/* Lua scripts get the same API, except that cancelled() leaves the time
 * limit to the Lua host's own hook, so that a script stopped at its limit
 * reads "time limit exceeded" rather than "task cancelled". */
static int host_lua_cancelled(jet_task_ctx *ctx)
{
    inflight *f = ctx_inflight(ctx);
    return atomic_load(&f->cancel) && !atomic_load(&f->timed_out) ? 1 : 0;
}

/* ---- plugin configuration from agentd.conf ---- */

static json_t *plugin_configs(agent *a, jet_err *err)
{
    json_t *all = json_object();
    const char *file = jet_cfg_str(a->cfg, "plugins.config_file");
    if (file) {
        json_error_t je;
        json_t *f = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
        if (!f || !json_is_object(f)) {
            jet_err_set(err, JET_ERR_INVALID, "plugins.config_file %s:%d: %s", file, je.line,
                        f ? "must hold a JSON object {\"<plugin>\": {...}}" : je.text);
            json_decref(f);
            json_decref(all);
            return NULL;
        }
        json_object_update(all, f);
        json_decref(f);
    }
    json_t *cmds = json_array();
    for (size_t i = 0; i < jet_cfg_groups(a->cfg, "exec.commands"); i++) {
        const jet_config *c = jet_cfg_group_at(a->cfg, "exec.commands", i);
        json_t *argv = json_array(), *env = json_array();
        for (size_t j = 0; j < jet_cfg_list_len(c, "argv"); j++)
            json_array_append_new(argv, json_string(jet_cfg_list_at(c, "argv", j)));
        for (size_t j = 0; j < jet_cfg_list_len(c, "env"); j++)
            json_array_append_new(env, json_string(jet_cfg_list_at(c, "env", j)));
        json_t *o = json_pack("{s:s,s:o,s:o,s:I}", "name", jet_cfg_str(c, "name"), "argv", argv, "env", env,
                              "timeout_ms", (json_int_t)jet_cfg_int(c, "timeout"));
        if (jet_cfg_str(c, "cwd"))
            json_object_set_new(o, "cwd", json_string(jet_cfg_str(c, "cwd")));
        if (jet_cfg_is_set(c, "rlimit_cpu"))
            json_object_set_new(o, "rlimit_cpu_s", json_integer(jet_cfg_int(c, "rlimit_cpu") / 1000));
        if (jet_cfg_is_set(c, "rlimit_as"))
            json_object_set_new(o, "rlimit_as_bytes", json_integer(jet_cfg_int(c, "rlimit_as")));
        if (jet_cfg_is_set(c, "rlimit_nofile"))
            json_object_set_new(o, "rlimit_nofile", json_integer(jet_cfg_int(c, "rlimit_nofile")));
        json_array_append_new(cmds, o);
    }
    if (json_array_size(cmds) && !json_object_get(all, "exec"))
        json_object_set_new(all, "exec", json_pack("{s:o}", "commands", cmds));
    else
        json_decref(cmds);
    json_t *eps = json_array();
    for (size_t i = 0; i < jet_cfg_groups(a->cfg, "webhooks"); i++) {
        const jet_config *c = jet_cfg_group_at(a->cfg, "webhooks", i);
        json_t *hdrs = json_array();
        for (size_t j = 0; j < jet_cfg_list_len(c, "headers"); j++)
            json_array_append_new(hdrs, json_string(jet_cfg_list_at(c, "headers", j)));
        json_array_append_new(eps, json_pack("{s:s,s:s,s:I,s:o}", "name", jet_cfg_str(c, "name"), "url",
                                             jet_cfg_str(c, "url"), "timeout_ms",
                                             (json_int_t)jet_cfg_int(c, "timeout"), "headers", hdrs));
    }
    if (json_array_size(eps) && !json_object_get(all, "http"))
        json_object_set_new(all, "http", json_pack("{s:o}", "endpoints", eps));
    else
        json_decref(eps);
    return all;
}

/* ---- Lua ---- */

static void lua_options(const jet_config *cfg, lua_host_options *opt)
{
    lua_host_options_init(opt);
    opt->dir = jet_cfg_str(cfg, "agent.lua_dir");
    opt->mem_limit_bytes = (size_t)jet_cfg_int(cfg, "lua.memory_limit");
    opt->recycle_after_tasks = (int)jet_cfg_int(cfg, "lua.recycle_after_tasks");
    opt->recycle_after_bytes = (size_t)jet_cfg_int(cfg, "lua.recycle_after_memory");
    opt->instruction_check_interval = (int)jet_cfg_int(cfg, "lua.instruction_check_interval");
}

typedef struct lua_report_ctx {
    agent *a;
    const char *dir;
} lua_report_ctx;

/* One line per script; a name clash with a native handler is a warning. */
static void lua_report_one(const char *name, bool available, void *closure)
{
    lua_report_ctx *rc = closure;
    const jet_plugin_handler *ph = jet_plugins_find(rc->a->handlers->plugins, name);
    if (ph) {
        jet_warn("handler %s: both the native plugin %s (%s) and %s/%s.lua serve it; the native plugin wins and "
                 "the Lua script is not used", name, ph->plugin, ph->path, rc->dir, name);
        return;
    }
    if (available) /* unavailable ones were logged with their error by the Lua host */
        jet_info("handler %s: Lua script %s/%s.lua", name, rc->dir, name);
}

static void lua_report(agent *a, const char *dir)
{
    lua_report_ctx rc = {.a = a, .dir = dir};
    lua_host_foreach(a->handlers->lua, lua_report_one, &rc);
}

static double lua_stat(void *arg, size_t offset)
{
    struct handlers *h = ((agent *)arg)->handlers;
    lua_host_stats st;
    lua_host_stats_get(h ? h->lua : NULL, &st); /* zeros once shut down */
    return (double)*(const uint64_t *)((const char *)&st + offset);
}
#define LUA_GAUGE(field)                                                              \
    static double gauge_lua_##field(void *arg) { return lua_stat(arg, offsetof(lua_host_stats, field)); }
LUA_GAUGE(tasks)
LUA_GAUGE(timeouts)
LUA_GAUGE(memory_errors)
LUA_GAUGE(states_live)
LUA_GAUGE(states_recycled)
LUA_GAUGE(reloads)
LUA_GAUGE(memory_bytes)

static void lua_metrics(agent *a)
{
    jet_metric_gauge_fn("jetsched_agent_lua_tasks", "Tasks run by Lua scripts since start.", gauge_lua_tasks, a);
    jet_metric_gauge_fn("jetsched_agent_lua_timeouts", "Lua tasks stopped at their time limit since start.",
                        gauge_lua_timeouts, a);
    jet_metric_gauge_fn("jetsched_agent_lua_memory_errors", "Lua tasks stopped by the memory cap since start.",
                        gauge_lua_memory_errors, a);
    jet_metric_gauge_fn("jetsched_agent_lua_states", "Lua states open (at most one per worker thread).",
                        gauge_lua_states_live, a);
    jet_metric_gauge_fn("jetsched_agent_lua_states_recycled", "Lua states closed by the recycling rules since start.",
                        gauge_lua_states_recycled, a);
    jet_metric_gauge_fn("jetsched_agent_lua_reloads", "Successful reloads of the Lua scripts since start.",
                        gauge_lua_reloads, a);
    jet_metric_gauge_fn("jetsched_agent_lua_memory_bytes", "Memory held by the open Lua states after their last task.",
                        gauge_lua_memory_bytes, a);
}

void handlers_reload(agent *a, const char *lua_dir)
{
    struct handlers *h = a->handlers;
    if (!h || !h->lua)
        return;
    jet_err err;
    if (lua_host_reload_from(h->lua, lua_dir, &err) != JET_OK) {
        jet_error("SIGHUP: Lua scripts not reloaded (the loaded ones stay): %s", err.msg);
        return;
    }
    lua_report(a, lua_dir ? lua_dir : jet_cfg_str(a->cfg, "agent.lua_dir"));
}

/* ---- dispatch ---- */

jet_status handlers_init(agent *a, jet_err *err)
{
    struct handlers *h = jet_xcalloc(1, sizeof *h);
    a->handlers = h;
    natsStatus s;
    if ((s = js_KeyValue(&h->checkpoints, a->js, a->names.kv_checkpoints)) != NATS_OK)
        return jet_nats_err(err, s, a->names.kv_checkpoints);

    json_t *configs = plugin_configs(a, err);
    if (!configs)
        return JET_ERR_INVALID;
    h->plugins = jet_plugins_new(&host_api);
    jet_status st = jet_plugins_load_dir(h->plugins, jet_cfg_str(a->cfg, "agent.plugin_dir"), configs, err);
    if (st == JET_ERR_NOT_FOUND) {
        jet_warn("%s; no native plugins loaded", err->msg);
        st = JET_OK;
    }
    for (size_t i = 0; st == JET_OK && i < jet_cfg_list_len(a->cfg, "plugins.load"); i++)
        st = jet_plugins_load(h->plugins, jet_cfg_list_at(a->cfg, "plugins.load", i), configs, err);
    if (st == JET_OK)
        st = jet_plugins_check_configs(h->plugins, configs, err);
    json_decref(configs);
    if (st)
        return st;
    for (size_t i = 0; i < jet_plugins_count(h->plugins); i++) {
        const jet_plugin_handler *ph = jet_plugins_at(h->plugins, i);
        jet_info("handler %s: plugin %s %s (%s)", ph->name, ph->plugin, ph->version, ph->path);
    }
    lua_host_options opt;
    lua_options(a->cfg, &opt);
    h->lua_api = host_api;
    h->lua_api.cancelled = host_lua_cancelled;
    if ((st = lua_host_open(&opt, &h->lua_api, &h->lua, err)) != JET_OK)
        return st;
    lua_report(a, opt.dir);
    lua_metrics(a);
    return JET_OK;
}

void handlers_shutdown(agent *a)
{
    struct handlers *h = a->handlers;
    if (!h)
        return;
    kvStore_Destroy(h->checkpoints);
    lua_host_close(h->lua); /* worker threads still alive free their states at exit */
    jet_plugins_free(h->plugins);
    wf_calls_shutdown();
    free(h);
    a->handlers = NULL;
}

bool handlers_is_native(agent *a, const char *handler)
{
    return a->handlers && a->handlers->plugins && jet_plugins_find(a->handlers->plugins, handler) != NULL;
}

bool handlers_exists(agent *a, const char *handler)
{
    return handlers_is_native(a, handler) || (a->handlers && lua_host_has(a->handlers->lua, handler));
}

bool handlers_unavailable_reason(agent *a, const char *handler, inflight *f)
{
    char why[2048];
    if (!a->handlers || handlers_is_native(a, handler) ||
        !lua_host_unavailable(a->handlers->lua, handler, why, sizeof why))
        return false;
    host_set_error((jet_task_ctx *)f, why);
    return true;
}

jet_outcome handlers_run(agent *a, inflight *f)
{
    const jet_plugin_handler *ph = jet_plugins_find(a->handlers->plugins, f->task->handler);
    if (ph)
        return jet_plugin_run(ph, &f->task->pub, (jet_task_ctx *)f);
    /* A script removed or broken by a reload since the checks: lua_host_run
     * records why and asks for a retry. */
    return lua_host_run(a->handlers->lua, &f->task->pub, (jet_task_ctx *)f);
}

typedef struct list_ctx {
    agent *a;
    json_t *arr, *unavailable;
} list_ctx;

static void list_lua(const char *name, bool available, void *closure)
{
    list_ctx *lc = closure;
    if (handlers_is_native(lc->a, name))
        return; /* listed once, as native (it wins) */
    if (available)
        json_array_append_new(lc->arr, json_string(name));
    else
        json_array_append_new(lc->unavailable, json_string(name));
}

char *handlers_list_json(agent *a, char **unavailable)
{
    list_ctx lc = {.a = a, .arr = json_array(), .unavailable = json_array()};
    if (a->handlers && a->handlers->plugins)
        for (size_t i = 0; i < jet_plugins_count(a->handlers->plugins); i++)
            json_array_append_new(lc.arr, json_string(jet_plugins_at(a->handlers->plugins, i)->name));
    if (a->handlers)
        lua_host_foreach(a->handlers->lua, list_lua, &lc);
    char *s = json_dumps(lc.arr, JSON_COMPACT);
    if (unavailable)
        *unavailable = json_dumps(lc.unavailable, JSON_COMPACT);
    json_decref(lc.arr);
    json_decref(lc.unavailable);
    return s;
}
