/* The Lua host itself: creating a sandboxed state (setup_state runs the
 * install_* steps of sandbox.c, coro.c, json.c and ctx.c), running a task in
 * it, the per-thread workers that own the states, and the public API of
 * host.h that is not about scripts (catalog.c). */
#include "internal.h"

#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <stdlib.h>
#include <string.h>

const lh_keys LH_KEYS;

/* The only process-wide state (see internal.h): workers of every host are
 * linked and unlinked under g_mu; g_key finds the calling thread's workers. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_key_ok;

/* ---- state creation ---- */

void lh_set_fn(lua_State *L, const char *name, lua_CFunction f)
{
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
}

static int setup_state(lua_State *L)
{
    lh_install_registry(L);
    int base = lh_install_base(L);
    lh_install_string(L, base);
    lh_install_coroutine(L, base);
    lh_install_libs(L, base);
    lh_install_os(L, base);
    lh_install_forbidden(L, base);
    lh_install_time(L, base);
    lh_install_json(L, base);
    lh_install_ctx(L);
    lh_install_env_metatable(L, base);
    lua_newtable(L); /* the per-state cache of compiled main chunks */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CACHE);
    return 0;
}

/* A new sandboxed state whose allocator counts into w. NULL with a message
 * in err on failure. */
lua_State *lh_state_new(lua_worker *w, size_t limit, char *err, size_t errlen)
{
    w->used = 0;
    w->limit = limit;
    w->tripped = false;
    lua_State *L = lua_newstate(lh_alloc, w);
    if (!L) {
        snprintf(err, errlen, "cannot create a Lua state within the memory limit (%zu bytes)", limit);
        return NULL;
    }
    lua_atpanic(L, lh_panic);
    *(lua_worker **)lua_getextraspace(L) = w;
    lua_pushcfunction(L, setup_state);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot set up a Lua state: %s (memory limit %zu bytes)",
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "?", limit);
        lh_state_close(w, L);
        return NULL;
    }
    return L;
}

/* ---- running a task ---- */

/* Does `msg` start with "<something>:<digits>:"? */
static bool has_position(const char *msg)
{
    const char *c = strchr(msg, ':');
    if (!c || c == msg || !(c[1] >= '0' && c[1] <= '9'))
        return false;
    c++;
    while (*c >= '0' && *c <= '9')
        c++;
    return *c == ':';
}

/* Message handler: the error as a string with the script position, and its
 * traceback kept in the worker for the debug log. */
static int msg_handler(lua_State *L)
{
    lua_worker *w = worker_of(L);
    const char *msg;
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
        msg = lua_tostring(L, 1);
    else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
        msg = lua_tostring(L, -1);
    else
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    if (!has_position(msg)) {
        lua_Debug ar;
        for (int level = 1; lua_getstack(L, level, &ar); level++) {
            if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
                msg = lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
                break;
            }
        }
    }
    int m = lua_gettop(L);
    luaL_traceback(L, L, msg, 1);
    copy_msg(w->trace, sizeof w->trace, lua_tostring(L, -1));
    lua_settop(L, m);
    return 1;
}

static void script_error(lua_worker *w, lua_State *L, int status, const char *prefix)
{
    w->errored = true;
    if (status == LUA_ERRMEM)
        w->errmem = true;
    const char *m = lua_tostring(L, -1);
    snprintf(w->err, sizeof w->err, "%s%s", prefix ? prefix : "", m ? m : "(error without a message)");
}

/* After a catalog switch: keep the compiled chunks of scripts still present. */
static void prune_cache(lua_State *L, const catalog *c)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_CACHE);
    lua_createtable(L, 0, (int)(c && c->n < 1024 ? c->n : 0));
    for (size_t i = 0; c && i < c->n; i++) {
        lua_Integer v = (lua_Integer)c->v[i]->version;
        if (lua_rawgeti(L, -2, v) == LUA_TFUNCTION)
            lua_rawseti(L, -2, v);
        else
            lua_pop(L, 1);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CACHE);
    lua_pop(L, 1);
}

/* The body of a task (or of a load check when w->check_only), under
 * lua_pcall. Script errors are caught by inner pcalls and recorded in w. */
static int run_protected(lua_State *L)
{
    lua_worker *w = worker_of(L);
    const script *s = w->scr;
    char prefix[JET_NAME_MAX + 8];
    snprintf(prefix, sizeof prefix, "%s.lua: ", s->name);
    if (w->resync) {
        prune_cache(L, w->cat);
        w->resync = false;
    }
    lua_settop(L, 0);
    lua_pushcfunction(L, msg_handler); /* 1 */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_CACHE); /* 2 */
    if (lua_rawgeti(L, 2, (lua_Integer)s->version) != LUA_TFUNCTION) { /* 3: the main chunk */
        lua_pop(L, 1);
        int st = luaL_loadbufferx(L, s->src, s->len, s->chunkname, "t");
        if (st != LUA_OK) {
            script_error(w, L, st, NULL);
            return 0;
        }
        if (!w->check_only) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, 2, (lua_Integer)s->version);
        }
    }
    lh_push_new_env(L); /* 4 */
    lua_pushvalue(L, 4);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CURENV);
    lua_pushvalue(L, 4);
    if (!lua_setupvalue(L, 3, 1))
        lua_pop(L, 1);
    lua_pushvalue(L, 3);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CURFN);
    lua_pushvalue(L, 3);
    int st = lua_pcall(L, 0, 1, 1);
    if (st != LUA_OK) {
        script_error(w, L, st, NULL);
        return 0;
    }
    /* 5: the module */
    if (lua_type(L, 5) != LUA_TTABLE) {
        lua_pushfstring(L, "must return a table with a handle function (it returned a %s value)",
                        luaL_typename(L, 5));
        script_error(w, L, LUA_ERRRUN, prefix);
        return 0;
    }
    lua_pushliteral(L, "handle");
    if (lua_rawget(L, 5) != LUA_TFUNCTION) { /* 6 */
        lua_pushliteral(L, "must return a table with a handle function (handle is missing or not a function)");
        script_error(w, L, LUA_ERRRUN, prefix);
        return 0;
    }
    if (w->check_only)
        return 0;
    lh_push_task(L, w->task);                        /* 7 */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_CTX);    /* 8 */
    st = lua_pcall(L, 2, 1, 1);                   /* 6: the result */
    if (st != LUA_OK) {
        script_error(w, L, st, NULL);
        return 0;
    }
    if (w->decided || w->tripped) /* a memory error the script swallowed still fails it */
        return 0;
    switch (lua_type(L, 6)) {
    case LUA_TNIL:
        break;
    case LUA_TBOOLEAN:
        if (!lua_toboolean(L, 6)) {
            lua_pushliteral(L, "handle returned false");
            script_error(w, L, LUA_ERRRUN, prefix);
        }
        break;
    case LUA_TSTRING:
    case LUA_TNUMBER: {
        size_t len;
        const char *r = lua_tolstring(L, 6, &len);
        w->api->set_result(w->ctx, r, len);
        break;
    }
    case LUA_TTABLE:
        lua_pushcfunction(L, lh_json_encode);
        lua_pushvalue(L, 6);
        if ((st = lua_pcall(L, 1, 1, 1)) != LUA_OK) {
            script_error(w, L, st, NULL);
            snprintf(w->err + strlen(w->err), sizeof w->err - strlen(w->err), " (encoding the returned table)");
        } else {
            size_t len;
            const char *r = lua_tolstring(L, -1, &len);
            w->api->set_result(w->ctx, r, len);
        }
        break;
    default:
        lua_pushfstring(L, "handle returned a %s value (return a string, a table, or nothing)",
                        luaL_typename(L, 6));
        script_error(w, L, LUA_ERRRUN, prefix);
        break;
    }
    return 0;
}

/* After a task: nothing of it stays reachable (the cached chunk would keep
 * the task's environment, and all it references, alive until the next task). */
static int forget_env(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &K_CURFN) == LUA_TFUNCTION) {
        lua_pushnil(L);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CURFN);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CURENV);
    return 0;
}

void lh_worker_reset_task(lua_worker *w)
{
    w->kill = KILL_NONE;
    w->decided = DEC_NONE;
    w->retry_ms = 0;
    w->errored = w->errmem = false;
    w->tripped = false;
    w->co_nest = 0;
    w->msg[0] = w->killmsg[0] = w->err[0] = w->trace[0] = '\0';
}

/* Runs w->scr in w->L under the hook; returns the lua_pcall status. */
int lh_run_in_state(lua_worker *w, int interval)
{
    lua_State *L = w->L;
    w->deadline_mono = w->time_limit_ms > 0 ? jet_mono_ms() + w->time_limit_ms : 0;
    lua_sethook(L, lh_hook, LUA_MASKCOUNT, interval);
    lua_settop(L, 0);
    lua_pushcfunction(L, run_protected);
    int st = lua_pcall(L, 0, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    if (st != LUA_OK && !w->errored)
        script_error(w, L, st, NULL);
    lua_settop(L, 0);
    lua_pushcfunction(L, forget_env);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
        lua_settop(L, 0);
    return st;
}

/* ---- per-thread workers ---- */

static void worker_close_state(lua_host *h, lua_worker *w, bool recycled)
{ /* g_mu held */
    if (!w->L)
        return;
    lh_state_close(w, w->L);
    w->L = NULL;
    if (h) {
        atomic_fetch_sub(&h->st.states_live, 1);
        atomic_fetch_sub(&h->st.memory_bytes, (int_fast64_t)w->reported);
        if (recycled)
            atomic_fetch_add(&h->st.states_recycled, 1);
    }
    w->reported = 0;
    w->used = 0;
}

static void worker_unlink(lua_host *h, lua_worker *w)
{ /* g_mu held */
    if (w->hprev)
        w->hprev->hnext = w->hnext;
    else if (h->workers == w)
        h->workers = w->hnext;
    if (w->hnext)
        w->hnext->hprev = w->hprev;
    w->hnext = w->hprev = NULL;
}

static void free_thread_workers(lua_worker *w)
{
    pthread_mutex_lock(&g_mu);
    while (w) {
        lua_worker *next = w->tnext;
        lua_host *h = atomic_load(&w->host);
        if (h) {
            worker_unlink(h, w);
            worker_close_state(h, w, false);
        }
        lh_catalog_release(w->cat);
        free(w);
        w = next;
    }
    pthread_mutex_unlock(&g_mu);
}

static void thread_exit_destructor(void *p) { free_thread_workers(p); }

static void key_init(void) { g_key_ok = pthread_key_create(&g_key, thread_exit_destructor) == 0; }

void lua_host_thread_exit(void)
{
    pthread_once(&g_once, key_init);
    if (!g_key_ok)
        return;
    lua_worker *head = pthread_getspecific(g_key);
    pthread_setspecific(g_key, NULL);
    free_thread_workers(head);
}

static lua_worker *worker_get(lua_host *h)
{
    pthread_once(&g_once, key_init);
    if (!g_key_ok)
        return NULL;
    lua_worker *head = pthread_getspecific(g_key), **pp = &head, *w;
    bool changed = false;
    while ((w = *pp) != NULL) {
        lua_host *wh = atomic_load(&w->host);
        if (wh == h)
            break;
        if (!wh) { /* its host closed (and closed its state): drop it */
            *pp = w->tnext;
            free(w);
            changed = true;
            continue;
        }
        pp = &w->tnext;
    }
    if (!w) {
        w = calloc(1, sizeof *w);
        if (w) {
            atomic_init(&w->host, h);
            lh_cstack_init(w);
            pthread_mutex_lock(&g_mu);
            w->hnext = h->workers;
            if (h->workers)
                h->workers->hprev = w;
            h->workers = w;
            pthread_mutex_unlock(&g_mu);
            w->tnext = head;
            head = w;
            changed = true;
        }
    }
    if (changed)
        pthread_setspecific(g_key, head);
    return w;
}

static void worker_sync_catalog(lua_host *h, lua_worker *w)
{
    if (w->cat && w->cat->gen == atomic_load(&h->gen))
        return;
    pthread_mutex_lock(&h->mu);
    catalog *c = h->cat;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&h->mu);
    lh_catalog_release(w->cat);
    w->cat = c;
    w->resync = true;
}

static jet_outcome run_task(lua_host *h, lua_worker *w, const jet_task *task, jet_task_ctx *ctx);

jet_outcome lua_host_run(lua_host *h, const jet_task *task, jet_task_ctx *ctx)
{
    lua_worker *w = worker_get(h);
    if (!w) {
        h->api->set_error(ctx, "Lua host: out of memory");
        return JET_RETRY;
    }
    atomic_store(&w->running, true);
    jet_outcome r = run_task(h, w, task, ctx);
    atomic_store(&w->running, false);
    return r;
}

static jet_outcome run_task(lua_host *h, lua_worker *w, const jet_task *task, jet_task_ctx *ctx)
{
    const jet_host_api *api = h->api;
    char msg[MSG_MAX];
    worker_sync_catalog(h, w);
    const script *s = task->handler ? lh_catalog_find(w->cat, task->handler) : NULL;
    if (!s) {
        snprintf(msg, sizeof msg, "no Lua script serves handler %s", task->handler ? task->handler : "(null)");
        api->set_error(ctx, msg);
        return JET_RETRY;
    }
    if (s->error) {
        api->set_error(ctx, s->error);
        return JET_RETRY;
    }
    if (!w->L) {
        lua_State *L = lh_state_new(w, h->opt.mem_limit_bytes, msg, sizeof msg);
        if (!L) {
            api->set_error(ctx, msg);
            return JET_RETRY;
        }
        pthread_mutex_lock(&g_mu);
        w->L = L;
        pthread_mutex_unlock(&g_mu);
        w->tasks = 0;
        w->resync = false; /* a new state has an empty cache */
        atomic_fetch_add(&h->st.states_created, 1);
        atomic_fetch_add(&h->st.states_live, 1);
    }

    lh_worker_reset_task(w);
    w->api = api;
    w->ctx = ctx;
    w->task = task;
    w->scr = s;
    w->time_limit_ms = task->timeout_ms;
    int st = lh_run_in_state(w, h->opt.instruction_check_interval);
    w->ctx = NULL;
    w->task = NULL;
    w->tasks++;
    atomic_fetch_add(&h->st.tasks, 1);

    jet_outcome r = JET_SUCCESS;
    bool memory = w->tripped || w->errmem || st == LUA_ERRMEM;
    if (w->decided == DEC_FAIL || w->decided == DEC_RETRY || w->decided == DEC_RATE_LIMITED) {
        r = w->decided == DEC_FAIL ? JET_FAIL : JET_RETRY;
        if (w->decided == DEC_RETRY)
            api->retry_in(ctx, w->retry_ms);
        if (w->decided == DEC_RATE_LIMITED)
            r = jet_ctx_rate_limited(api, ctx, w->retry_ms);
        api->set_error(ctx, w->msg);
    } else if (w->decided == DEC_KILL) {
        r = JET_RETRY;
        api->set_error(ctx, w->msg);
        atomic_fetch_add(w->kill == KILL_TIMEOUT   ? &h->st.timeouts
                         : w->kill == KILL_CANCEL  ? &h->st.cancels
                         : w->kill == KILL_MEMORY  ? &h->st.memory_errors
                                                   : &h->st.errors,
                         1);
    } else if (memory) {
        r = JET_RETRY;
        snprintf(msg, sizeof msg, "%s.lua: memory limit exceeded (%zu bytes per Lua state)", s->name, w->limit);
        api->set_error(ctx, msg);
        atomic_fetch_add(&h->st.memory_errors, 1);
    } else if (w->errored) {
        r = JET_RETRY;
        api->set_error(ctx, w->err);
        atomic_fetch_add(&h->st.errors, 1);
    }
    if (r != JET_SUCCESS && w->trace[0])
        api->log(ctx, JET_PLOG_DEBUG, w->trace);

    /* Recycling. */
    bool recycle = memory || (w->decided == DEC_KILL && w->kill == KILL_MEMORY) ||
                   (h->opt.recycle_after_tasks > 0 && w->tasks >= h->opt.recycle_after_tasks);
    if (!recycle && h->opt.recycle_after_bytes > 0 && w->used > h->opt.recycle_after_bytes) {
        lua_gc(w->L, LUA_GCCOLLECT);
        recycle = w->used > h->opt.recycle_after_bytes;
    }
    if (recycle) {
        pthread_mutex_lock(&g_mu);
        worker_close_state(h, w, true);
        pthread_mutex_unlock(&g_mu);
    } else {
        atomic_fetch_add(&h->st.memory_bytes, (int_fast64_t)w->used - (int_fast64_t)w->reported);
        w->reported = w->used;
    }
    return r;
}

/* ---- public API ---- */

void lua_host_options_init(lua_host_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->mem_limit_bytes = 64u << 20;
    opt->recycle_after_tasks = 10000;
    opt->recycle_after_bytes = 16u << 20;
    opt->instruction_check_interval = 1000;
    opt->load_timeout_ms = 1000;
}

jet_status lua_host_open(const lua_host_options *opt, const jet_host_api *api, lua_host **out, jet_err *err)
{
    if (!opt || !api || !out || !opt->dir || !*opt->dir)
        return jet_err_set(err, JET_ERR_INVALID, "Lua host: a directory and a host API are required");
    if (opt->mem_limit_bytes < MIN_MEM_LIMIT)
        return jet_err_set(err, JET_ERR_INVALID, "lua.memory_limit: %zu bytes is below the minimum of %u",
                           opt->mem_limit_bytes, MIN_MEM_LIMIT);
    if (opt->instruction_check_interval < 1 || opt->instruction_check_interval > 1000000)
        return jet_err_set(err, JET_ERR_INVALID, "lua.instruction_check_interval: %d is not in 1-1000000",
                           opt->instruction_check_interval);
    if (opt->recycle_after_tasks < 0)
        return jet_err_set(err, JET_ERR_INVALID, "lua.recycle_after_tasks must not be negative");
    lua_host *h = calloc(1, sizeof *h);
    if (!h || !(h->dir = strdup(opt->dir))) {
        free(h);
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    }
    h->opt = *opt;
    h->opt.dir = h->dir;
    if (h->opt.load_timeout_ms <= 0)
        h->opt.load_timeout_ms = 1000;
    h->api = api;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->reload_mu, NULL);
    atomic_init(&h->next_version, 1);

    /* The limit must at least hold an empty sandbox. */
    char msg[MSG_MAX];
    lua_worker probe;
    memset(&probe, 0, sizeof probe);
    lua_State *L = lh_state_new(&probe, h->opt.mem_limit_bytes, msg, sizeof msg);
    if (!L) {
        jet_err_set(err, JET_ERR_INVALID, "lua.memory_limit: %s", msg);
        lua_host_close(h);
        return JET_ERR_INVALID;
    }
    lh_state_close(&probe, L);

    lh_scan_counts cnt;
    jet_status st = lh_scan_dir(h, NULL, &h->cat, &cnt, err);
    if (st != JET_OK) {
        lua_host_close(h);
        return st;
    }
    atomic_init(&h->gen, h->cat->gen);
    jet_info("Lua handlers in %s: %zu script(s), %zu unavailable", h->dir, h->cat->n, cnt.unavailable);
    *out = h;
    return JET_OK;
}

void lua_host_stats_get(lua_host *h, lua_host_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!h)
        return;
    out->tasks = atomic_load(&h->st.tasks);
    out->errors = atomic_load(&h->st.errors);
    out->timeouts = atomic_load(&h->st.timeouts);
    out->cancels = atomic_load(&h->st.cancels);
    out->memory_errors = atomic_load(&h->st.memory_errors);
    out->states_created = atomic_load(&h->st.states_created);
    out->states_recycled = atomic_load(&h->st.states_recycled);
    out->states_live = atomic_load(&h->st.states_live);
    out->reloads = atomic_load(&h->st.reloads);
    int_fast64_t b = atomic_load(&h->st.memory_bytes);
    out->memory_bytes = b > 0 ? (uint64_t)b : 0;
}

void lua_host_close(lua_host *h)
{
    if (!h)
        return;
    int busy = 0;
    pthread_mutex_lock(&g_mu);
    for (lua_worker *w = h->workers, *next; w; w = next) {
        next = w->hnext;
        if (atomic_load(&w->running)) { /* a thread abandoned in a task: keep what it uses */
            busy++;
            continue;
        }
        worker_unlink(h, w);
        worker_close_state(h, w, false);
        lh_catalog_release(w->cat);
        w->cat = NULL;
        atomic_store(&w->host, NULL); /* last touch: its thread frees it */
    }
    pthread_mutex_unlock(&g_mu);
    if (busy) {
        jet_warn("Lua host: %d task%s still running (abandoned threads); the Lua host is not freed", busy,
                 busy == 1 ? "" : "s");
        return;
    }
    lh_catalog_release(h->cat);
    h->cat = NULL;
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->reload_mu);
    free(h->dir);
    h->dir = NULL;
    free(h);
}
