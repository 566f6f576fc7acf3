/* What a handler gets: the task table (lh_push_task) and the ctx table, the
 * host API as Lua functions (progress, checkpoint, log, cancelled, submit,
 * retry_in, fail; the workflow calls of ABI 1.2: ctx.workflow,
 * workflow_add, parent_results). An outcome decided by ctx.fail/ctx.retry_in is recorded in
 * the worker before the error unwinds (lh_decide). */
#include "internal.h"

#include <jetsched/ids.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lh_decide(lua_worker *w, int kind, const char *msg)
{
    if (w->decided)
        return;
    w->decided = kind;
    copy_msg(w->msg, sizeof w->msg, msg);
}

/* The running task's worker; raises outside a task. Also accepts method-call
 * syntax (ctx:log(...)) by dropping ctx itself from the arguments. */
static lua_worker *ctx_enter(lua_State *L)
{
    lua_worker *w = worker_of(L);
    if (!w->ctx)
        luaL_error(L, "ctx functions can only be called while a task runs (not at load time)");
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &K_CTX);
        bool self = lua_rawequal(L, 1, -1);
        lua_pop(L, 1);
        if (self)
            lua_remove(L, 1);
    }
    return w;
}

#define PROGRESS_NOTE_MAX 1024 /* each note goes out in a live event */

static int ctx_progress(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    lua_Number pct = luaL_checknumber(L, 1);
    size_t nlen = 0;
    const char *note = luaL_optlstring(L, 2, NULL, &nlen);
    if (note && nlen > PROGRESS_NOTE_MAX)
        return luaL_argerror(L, 2, "note longer than 1024 bytes");
    int p = !(pct >= 0) ? 0 : pct > 100 ? 100 : (int)pct;
    w->api->progress(w->ctx, p, note);
    return 0;
}

static int ctx_log(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    jet_log_severity sev = JET_PLOG_INFO;
    int msg_idx = 1;
    if (lua_gettop(L) >= 2) {
        const char *lv = luaL_checkstring(L, 1);
        if (strcmp(lv, "debug") == 0)
            sev = JET_PLOG_DEBUG;
        else if (strcmp(lv, "info") == 0)
            sev = JET_PLOG_INFO;
        else if (strcmp(lv, "warn") == 0 || strcmp(lv, "warning") == 0)
            sev = JET_PLOG_WARN;
        else if (strcmp(lv, "error") == 0)
            sev = JET_PLOG_ERROR;
        else
            return luaL_argerror(L, 1, "level must be debug, info, warn or error");
        msg_idx = 2;
    }
    luaL_checkany(L, msg_idx);
    const char *msg = luaL_tolstring(L, msg_idx, NULL);
    w->api->log(w->ctx, sev, msg);
    return 0;
}

static int ctx_cancelled(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    bool c = w->kill || w->api->cancelled(w->ctx) ||
             (w->deadline_mono && jet_mono_ms() >= w->deadline_mono);
    lua_pushboolean(L, c);
    return 1;
}

/* The host's malloc'd checkpoint buffer, held by a userdata whose __gc frees
 * it if pushing it as a string raises (the memory cap). */
typedef struct holder {
    void *buf;
} holder;

static int holder_gc(lua_State *L)
{
    holder *hd = luaL_checkudata(L, 1, HOLDER_MT);
    free(hd->buf);
    hd->buf = NULL;
    return 0;
}

static int ctx_checkpoint(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    if (lua_gettop(L) == 0) { /* load */
        holder *hd = lua_newuserdatauv(L, sizeof *hd, 0);
        hd->buf = NULL;
        luaL_setmetatable(L, HOLDER_MT);
        size_t len = 0;
        if (w->api->checkpoint_load(w->ctx, &hd->buf, &len) < 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "checkpoint: cannot load the checkpoint");
            return 2;
        }
        if (!hd->buf)
            return 0;
        lua_pushlstring(L, hd->buf, len);
        free(hd->buf);
        hd->buf = NULL;
        return 1;
    }
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER)
        return luaL_argerror(L, 1, "checkpoint value must be a string (use json.encode for tables)");
    size_t len;
    const char *v = lua_tolstring(L, 1, &len);
    if (w->api->checkpoint_save(w->ctx, v, len) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "checkpoint: cannot save the checkpoint");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const char *opt_field(lua_State *L, int t, const char *name)
{ /* leaves the value on the stack (anchors the string) */
    int ty = lua_getfield(L, t, name);
    if (ty == LUA_TNIL)
        return NULL;
    if (ty != LUA_TSTRING)
        luaL_error(L, "ctx.submit: field '%s' must be a string", name);
    return lua_tostring(L, -1);
}

static bool header_name_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 127 || c == ':')
            return false;
    }
    return true;
}

static int ctx_submit(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const char *handler = opt_field(L, 1, "handler");
    const char *queue = opt_field(L, 1, "queue");
    const char *priority = opt_field(L, 1, "priority");
    const char *id = opt_field(L, 1, "id");
    size_t plen = 0;
    const char *payload = "";
    int pt = lua_getfield(L, 1, "payload");
    if (pt == LUA_TSTRING || pt == LUA_TNUMBER)
        payload = lua_tolstring(L, -1, &plen);
    else if (pt != LUA_TNIL)
        return luaL_error(L, "ctx.submit: field 'payload' must be a string (use json.encode for tables)");
    jet_priority prio;
    if (!handler || !jet_name_valid(handler))
        return luaL_error(L, "ctx.submit: 'handler' must be a handler name (1-64 of [a-z0-9_-])");
    if (queue && !jet_name_valid(queue))
        return luaL_error(L, "ctx.submit: invalid queue name '%s'", queue);
    if (priority && !jet_priority_parse(priority, &prio))
        return luaL_error(L, "ctx.submit: priority must be high, normal or low");
    if (id && !jet_task_id_valid(id))
        return luaL_error(L, "ctx.submit: invalid task id '%s' (1-128 of [A-Za-z0-9_-])", id);

    /* Headers: copied into one userdata block (GC-managed, so an error cannot leak it). */
    size_t nh = 0, bytes = 0;
    int ht = lua_getfield(L, 1, "headers");
    int hidx = lua_gettop(L);
    if (ht != LUA_TNIL && ht != LUA_TTABLE)
        return luaL_error(L, "ctx.submit: field 'headers' must be a table of name = value strings");
    if (ht == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, hidx)) {
            size_t kl, vl;
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "ctx.submit: headers must map string names to string values");
            const char *k = lua_tolstring(L, -2, &kl);
            const char *v = lua_tolstring(L, -1, &vl);
            if (!header_name_ok(k, kl) || strlen(k) != kl)
                return luaL_error(L, "ctx.submit: invalid header name");
            if (jet_header_internal(k))
                return luaL_error(L, "ctx.submit: header %s is internal to jetsched (name the task with field 'id')",
                                  k);
            if (strlen(v) != vl || strpbrk(v, "\r\n"))
                return luaL_error(L, "ctx.submit: header %s: value must not contain CR, LF or NUL", k);
            nh++;
            bytes += kl + vl + 2;
            lua_pop(L, 1);
        }
    }
    jet_header *hdrs = NULL;
    if (nh) {
        hdrs = lua_newuserdatauv(L, nh * sizeof *hdrs + bytes, 0);
        char *p = (char *)(hdrs + nh);
        size_t i = 0;
        lua_pushnil(L);
        while (lua_next(L, hidx) && i < nh) {
            size_t kl, vl;
            const char *k = lua_tolstring(L, -2, &kl);
            const char *v = lua_tolstring(L, -1, &vl);
            memcpy(p, k, kl + 1);
            hdrs[i].name = p;
            p += kl + 1;
            memcpy(p, v, vl + 1);
            hdrs[i].value = p;
            p += vl + 1;
            i++;
            lua_pop(L, 1);
        }
        nh = i;
    }
    char gen[JET_ULID_LEN + 1];
    if (!id) { /* generated here so that the script learns it */
        jet_ulid_new(gen);
        id = gen;
    }
    if (w->api->submit(w->ctx, queue, priority, handler, payload, plen, hdrs, nh, id) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "ctx.submit: task %s (handler %s) was not submitted", id, handler);
        return 2;
    }
    lua_pushstring(L, id);
    return 1;
}

/* ---- workflow calls (plugin ABI 1.2; docs/WORKFLOWS.md "Handler calls") ---- */

static const char *ctx_workflow_of(lua_worker *w)
{
    return w->ctx && w->api && JET_HOST_HAS(w->api, workflow_id) ? w->api->workflow_id(w->ctx) : NULL;
}

/* The workflow of the running task; raises outside a workflow task. */
static const char *ctx_need_workflow(lua_State *L, lua_worker *w, const char *fn)
{
    const char *wf = ctx_workflow_of(w);
    if (!wf)
        luaL_error(L, "ctx.%s: task %s is not a task of a workflow", fn, w->task ? w->task->id : "?");
    return wf;
}

/* Fields of ctx.workflow_add{} that go into the child's task.submit body. */
static const char *const WF_TASK_FIELDS[] = {"handler", "queue",   "priority", "payload", "payload_base64",
                                             "headers", "max_attempts", "timeout", "deadline", "backoff", NULL};

static bool wf_task_field(const char *k)
{
    for (int i = 0; WF_TASK_FIELDS[i]; i++)
        if (!strcmp(k, WF_TASK_FIELDS[i]))
            return true;
    return false;
}

static int ctx_workflow_add(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ctx_need_workflow(L, w, "workflow_add");
    if (!JET_HOST_HAS(w->api, workflow_add))
        return luaL_error(L, "ctx.workflow_add: this agent has no workflow calls");
    if (lua_getfield(L, 1, "name") != LUA_TSTRING) /* 2 */
        return luaL_error(L, "ctx.workflow_add: field 'name' (the child's name, 1-63 of [A-Za-z0-9_-]) is required");
    const char *name = lua_tostring(L, 2);
    lua_newtable(L); /* 3: the task.submit body */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "ctx.workflow_add: fields must have string names");
        const char *k = lua_tostring(L, -2);
        if (wf_task_field(k)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, 3);
        } else if (!strcmp(k, "name") || !strcmp(k, "depends_on") || !strcmp(k, "allow_failure")) {
            lua_pop(L, 1);
        } else {
            return luaL_error(L, "ctx.workflow_add: unknown field '%s' (accepted: name, depends_on, allow_failure, "
                              "handler, queue, priority, payload, payload_base64, headers, max_attempts, timeout, "
                              "deadline, backoff)", k);
        }
    }
    if (lua_getfield(L, 3, "handler") != LUA_TSTRING)
        return luaL_error(L, "ctx.workflow_add: 'handler' must be a handler name (1-64 of [a-z0-9_-])");
    lua_pop(L, 1);
    lua_pushcfunction(L, lh_json_encode);
    lua_pushvalue(L, 3);
    lua_call(L, 1, 1); /* 4: the body's JSON text (raises on what JSON cannot hold) */
    int at = lua_getfield(L, 1, "allow_failure"); /* 5 */
    if (at != LUA_TNIL && at != LUA_TBOOLEAN)
        return luaL_error(L, "ctx.workflow_add: 'allow_failure' must be a boolean");
    bool allow = lua_toboolean(L, 5);
    int dt = lua_getfield(L, 1, "depends_on"); /* 6 */
    if (dt != LUA_TNIL && dt != LUA_TTABLE)
        return luaL_error(L, "ctx.workflow_add: 'depends_on' must be a list of names or node ids");
    size_t n = dt == LUA_TTABLE ? (size_t)lua_rawlen(L, 6) : 0;
    const char **deps = n ? lua_newuserdatauv(L, n * sizeof *deps, 0) : NULL; /* 7 (GC-managed) */
    for (size_t i = 0; i < n; i++) {
        if (lua_rawgeti(L, 6, (lua_Integer)i + 1) != LUA_TSTRING)
            return luaL_error(L, "ctx.workflow_add: depends_on[%d] must be a string", (int)i + 1);
        deps[i] = lua_tostring(L, -1); /* anchored by the depends_on table */
        lua_pop(L, 1);
    }
    char out[JET_WF_TASK_ID_LEN];
    int rc = w->api->workflow_add(w->ctx, name, lua_tostring(L, 4), deps, n, allow ? 1 : 0, out, sizeof out);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, out);
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}

/* {[node id] = {task_id=, status=, result=}}: json.null results become nil. */
static int ctx_parent_results(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    ctx_need_workflow(L, w, "parent_results");
    const char *txt = JET_HOST_HAS(w->api, parent_results) ? w->api->parent_results(w->ctx) : NULL;
    if (!txt) {
        lua_pushnil(L);
        lua_pushliteral(L, "ctx.parent_results: the parents' results cannot be read now (see the agent's log)");
        return 2;
    }
    lua_settop(L, 0);
    lua_pushcfunction(L, lh_json_decode);
    lua_pushstring(L, txt);
    lua_call(L, 1, 1); /* 1 */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL); /* 2 */
    if (lua_type(L, 1) != LUA_TTABLE)
        return luaL_error(L, "ctx.parent_results: the host answered no JSON object");
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, "result") >= 0 && lua_rawequal(L, -1, 2)) {
            lua_pushnil(L);
            lua_setfield(L, -3, "result");
        }
        lua_settop(L, 3); /* the key */
    }
    lua_settop(L, 1);
    return 1;
}

/* __index of the ctx proxy: ctx.workflow is the running task's workflow id
 * (nil outside a workflow, and at load time); the rest is the real table. */
static int ctx_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING && !strcmp(lua_tostring(L, 2), "workflow")) {
        const char *wf = ctx_workflow_of(worker_of(L));
        if (wf)
            lua_pushstring(L, wf);
        else
            lua_pushnil(L);
        return 1;
    }
    lua_settop(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

/* Pushes "script:line: " of the innermost Lua function running (ctx.fail may
 * be called through pcall, a C function). */
static void push_where(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++)
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    lua_pushliteral(L, "");
}

static int ctx_fail(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    const char *m = lua_isnoneornil(L, 1) ? "failed" : luaL_tolstring(L, 1, NULL);
    push_where(L);
    lua_pushstring(L, m);
    lua_concat(L, 2);
    lh_decide(w, DEC_FAIL, lua_tostring(L, -1));
    return lua_error(L);
}

/* ctx.retry_in(seconds[, msg]) and ctx.rate_limited(seconds[, msg]): an
 * outcome with a delay, decided now (the script unwinds). */
static int decide_after(lua_State *L, int dec, const char *what)
{
    lua_worker *w = ctx_enter(L);
    lua_Number s = luaL_checknumber(L, 1);
    if (!(s >= 0) || s > 1e9)
        return luaL_argerror(L, 1, "seconds must be between 0 and 1e9");
    lua_settop(L, 2);
    push_where(L);
    if (lua_isnil(L, 2))
        lua_pushfstring(L, "%s %f s", what, (double)s);
    else
        luaL_tolstring(L, 2, NULL);
    lua_concat(L, 2);
    if (!w->decided)
        w->retry_ms = (int64_t)llround(s * 1000);
    lh_decide(w, dec, lua_tostring(L, -1));
    return lua_error(L);
}

static int ctx_retry_in(lua_State *L) { return decide_after(L, DEC_RETRY, "retry requested in"); }

/* ABI 1.1: the downstream said "too many requests"; the task's key is held
 * back on every agent for that long (docs/LUA.md). */
static int ctx_rate_limited(lua_State *L) { return decide_after(L, DEC_RATE_LIMITED, "rate limited: retry after"); }

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

void lh_push_task(lua_State *L, const jet_task *t)
{
    lua_createtable(L, 0, 12);
    set_str(L, "id", t->id);
    set_str(L, "handler", t->handler);
    set_str(L, "queue", t->queue);
    set_str(L, "priority", t->priority);
    lua_pushinteger(L, t->attempt);
    lua_setfield(L, -2, "attempt");
    lua_pushinteger(L, t->max_attempts);
    lua_setfield(L, -2, "max_attempts");
    lua_pushlstring(L, t->payload ? (const char *)t->payload : "", t->payload ? t->payload_len : 0);
    lua_setfield(L, -2, "payload");
    lua_createtable(L, 0, (int)(t->n_headers < 64 ? t->n_headers : 64));
    for (size_t i = t->n_headers; i-- > 0;) /* the first of duplicate names wins */
        if (t->headers[i].name && t->headers[i].value) {
            lua_pushstring(L, t->headers[i].value);
            lua_setfield(L, -2, t->headers[i].name);
        }
    lua_setfield(L, -2, "headers");
    if (t->deadline_ms > 0) {
        lua_pushnumber(L, (lua_Number)t->deadline_ms / 1000);
        lua_setfield(L, -2, "deadline");
    }
    if (t->timeout_ms > 0) {
        lua_pushnumber(L, (lua_Number)t->timeout_ms / 1000);
        lua_setfield(L, -2, "timeout");
    }
    set_str(L, "traceparent", t->traceparent);
}

void lh_install_ctx(lua_State *L)
{
    luaL_newmetatable(L, HOLDER_MT);
    lh_set_fn(L, "__gc", holder_gc);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    lua_createtable(L, 0, 10);
    lh_set_fn(L, "progress", ctx_progress);
    lh_set_fn(L, "checkpoint", ctx_checkpoint);
    lh_set_fn(L, "log", ctx_log);
    lh_set_fn(L, "cancelled", ctx_cancelled);
    lh_set_fn(L, "submit", ctx_submit);
    lh_set_fn(L, "retry_in", ctx_retry_in);
    lh_set_fn(L, "rate_limited", ctx_rate_limited);
    lh_set_fn(L, "fail", ctx_fail);
    lh_set_fn(L, "workflow_add", ctx_workflow_add);
    lh_set_fn(L, "parent_results", ctx_parent_results);
    lh_make_proxy_index(L, "ctx", ctx_index);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CTX);
}
