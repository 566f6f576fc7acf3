/* agentd's Lua 5.4 handler host (see lua_host.h and docs/LUA.md).
 *
 * DESIGN
 *
 * Scripts and catalogs. A `script` is the immutable text of one handler file
 * plus the verdict of its load check (NULL = runnable, or the message that
 * makes it unavailable) and a process-unique `version`. A `catalog` is an
 * immutable, sorted, refcounted snapshot of all scripts of the directory.
 * Reload builds a new catalog (reusing the script objects whose text did not
 * change, so they keep their version) and swaps it in under h->mu, bumping
 * h->gen. Nothing is ever modified in place, so a worker can use its catalog
 * without a lock for as long as it holds a reference.
 *
 * Workers and states. Each (host, thread) pair has a `lua_worker`, found
 * through one process-wide pthread key whose value is the thread's list of
 * workers (a thread may serve several hosts: tests do). The worker owns the
 * thread's lua_State for that host, its memory budget, the catalog reference
 * it runs with and the per-task bookkeeping that the hook, the allocator and
 * the ctx functions read (through lua_getextraspace, never through globals).
 * The worker is linked in its host's list (under g_mu) so that
 * lua_host_close() can close the states of threads that are still alive; a
 * worker struct itself is freed only by its own thread (thread exit,
 * lua_host_thread_exit(), or pruning once its host closed), so close never
 * races with a thread-exit destructor over the struct.
 *
 * A task. lua_host_run() checks the generation (switching catalogs when a
 * reload happened: compiled chunks of scripts that did not change are kept),
 * arms the count hook, and runs run_protected() under lua_pcall: it fetches
 * the compiled main chunk from the per-state cache (compiling on first use),
 * makes a fresh _ENV table whose metatable falls through to the read-only
 * sandbox base, sets it as the chunk's first upvalue, runs the chunk (so
 * file-level locals are fresh too), and calls module.handle(task, ctx) under
 * a second pcall whose message handler adds "script:line" to messages that
 * lack it. Outcomes decided by ctx.fail/ctx.retry_in/the hook are recorded in
 * the worker before any error unwinds, so a script's own pcall cannot turn
 * them into a success.
 *
 * Limits. The hook (every `interval` instructions) stops the task on its time
 * limit, on cancellation, or after the allocator refused memory; from then on
 * it re-arms itself with a count of 1 and raises on every instruction. The
 * allocator refuses growth beyond the cap and trips the worker: the task fails
 * with "memory limit exceeded" (even if the script caught the memory error)
 * and the state is recycled. After a trip a small reserve is granted so that
 * raising and unwinding still work. Freed blocks of up to 256 bytes (up to
 * 32 KiB of them) stay on per-state free lists for reuse, so that a task's
 * garbage does not go through malloc's locks, which the worker threads share.
 *
 * Sandbox (decided at state creation): base functions by allow-list, with
 * load (text only, task env by default), setmetatable (no __gc), rawset (not
 * on protected tables) and collectgarbage (count/collect/step/isrunning)
 * replaced; string, table, math, utf8, coroutine, json, time and an os subset
 * exposed as read-only proxies (their real tables are unreachable); io,
 * debug, package, require, dofile, loadfile and string.dump replaced by stubs
 * that raise a clear error; the string metatable is locked. Two holes in the
 * stock hook model are closed: Lua leaves hooks disabled after a hook error
 * until the enclosing pcall returns, so xpcall runs its message handler after
 * unwinding and coroutine.close/wrap skip __close handlers of coroutines the
 * hook killed; and C library loops that allocate nothing (string.rep of "",
 * table functions on tables faking a huge length) are answered directly or
 * run as Lua (see "C loops the hook cannot see").
 *
 * Shutdown. A worker still inside lua_host_run() when the host closes (a
 * thread agentd abandoned) keeps its state; the host is then not freed. */
#include "lua_host.h"

#include <jansson.h>
#include <jetsched/ids.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCRIPT_BYTES (8u << 20)  /* larger handler files are refused */
#define MIN_MEM_LIMIT (1u << 20)
#define MEM_RESERVE (256u << 10)     /* granted after a trip, to raise and unwind */
#define MSG_MAX 4096
#define JSON_MAX_DEPTH 128
#define HOLDER_MT "jetsched.holder"
#define SMALL_MAX 256                /* blocks up to this size are recycled per state (see lalloc) */
#define SMALL_CLASSES (SMALL_MAX / 16)
#define SMALL_KEEP_BYTES (32u << 10) /* free small blocks a state keeps for reuse */

/* Registry keys (their addresses). */
static const char K_CACHE, K_ENVMT, K_CTX, K_CURENV, K_CURFN, K_PROTECTED, K_NULL, K_ARRAYMT;

/* ---- scripts and catalogs ---- */

typedef struct script {
    atomic_int refs;
    char name[JET_NAME_MAX + 1];
    char chunkname[JET_NAME_MAX + 8]; /* "@<name>.lua": messages read "<name>.lua:LINE: ..." */
    char *src;
    size_t len;
    char *error;                      /* NULL = runnable */
    uint64_t version;
} script;

typedef struct catalog {
    atomic_int refs;
    uint64_t gen;
    size_t n;
    script **v;                       /* sorted by name */
} catalog;

static atomic_uint_fast64_t next_version = 1;

static void script_release(script *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->src);
    free(s->error);
    free(s);
}

static void catalog_release(catalog *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    for (size_t i = 0; i < c->n; i++)
        script_release(c->v[i]);
    free(c->v);
    free(c);
}

static script *catalog_find(const catalog *c, const char *name)
{
    size_t lo = 0, hi = c ? c->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(name, c->v[mid]->name);
        if (r == 0)
            return c->v[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- hosts and workers ---- */

enum { KILL_NONE = 0, KILL_TIMEOUT, KILL_CANCEL, KILL_MEMORY };
enum { DEC_NONE = 0, DEC_FAIL, DEC_RETRY, DEC_KILL };

typedef struct lua_worker lua_worker;

struct lua_host {
    char *dir;
    lua_host_options opt;
    const jet_host_api *api;
    pthread_mutex_t mu;              /* cat */
    catalog *cat;
    atomic_uint_fast64_t gen;
    pthread_mutex_t reload_mu;       /* one reload at a time */
    lua_worker *workers;             /* under g_mu */
    struct {
        atomic_uint_fast64_t tasks, errors, timeouts, cancels, memory_errors, states_created, states_recycled,
            states_live, reloads;
        atomic_int_fast64_t memory_bytes;
    } st;
};

struct lua_worker {
    _Atomic(lua_host *) host;        /* NULL once the host closed (written under g_mu) */
    lua_State *L;
    catalog *cat;                    /* the scripts this state runs */
    bool check_only;                 /* a load-check state (no task, no stats) */
    atomic_bool running;             /* inside lua_host_run (see lua_host_close) */
    bool resync;                     /* catalog switched: prune the chunk cache */
    int tasks;                       /* tasks run on this state */
    /* allocator budget (owner thread only) */
    size_t used, limit, reported;
    void *small[SMALL_CLASSES];      /* free blocks by size class (16-byte steps), linked through their first word */
    size_t small_bytes;              /* bytes held in small[] */
    bool tripped;                    /* the cap was hit during this task */
    /* the task running */
    const jet_host_api *api;
    jet_task_ctx *ctx;
    const jet_task *task;
    const script *scr;
    int64_t deadline_mono;           /* 0 = no time limit */
    int64_t time_limit_ms;
    int kill;                        /* KILL_*: the hook raises on every instruction */
    int decided;                     /* DEC_*: outcome fixed before unwinding */
    int64_t retry_ms;
    bool errored, errmem;            /* the script raised (message in err) */
    char msg[MSG_MAX];               /* message of the decided outcome */
    char killmsg[512];
    char err[MSG_MAX];               /* message of a script error */
    char trace[MSG_MAX];             /* its traceback (logged at debug) */
    lua_worker *tnext;               /* the thread's list */
    lua_worker *hnext, *hprev;       /* the host's list (g_mu) */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_key_ok;

static lua_worker *worker_of(lua_State *L) { return *(lua_worker **)lua_getextraspace(L); }

static void copy_msg(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* ---- the allocator: a hard per-state cap ---- */

/* Small blocks (most of a task's garbage: tables, closures, short strings)
 * are recycled through per-state free lists instead of going back to malloc:
 * a state belongs to one thread, so this needs no lock, while malloc's arenas
 * are shared by agentd's worker threads. Invariant: a block whose size as
 * Lua knows it is <= SMALL_MAX has the capacity of its size class. */
static size_t small_class(size_t n) { return (n + 15) / 16 - 1; }

static void *small_get(lua_worker *w, size_t n)
{
    size_t c = small_class(n);
    void *p = w->small[c];
    if (p) {
        w->small[c] = *(void **)p;
        w->small_bytes -= (c + 1) * 16;
        return p;
    }
    return malloc((c + 1) * 16);
}

static void small_put(lua_worker *w, void *p, size_t n)
{
    size_t c = small_class(n);
    if (w->small_bytes + (c + 1) * 16 > SMALL_KEEP_BYTES) {
        free(p);
        return;
    }
    *(void **)p = w->small[c];
    w->small[c] = p;
    w->small_bytes += (c + 1) * 16;
}

static void small_drain(lua_worker *w)
{
    for (size_t c = 0; c < SMALL_CLASSES; c++)
        while (w->small[c]) {
            void *p = w->small[c];
            w->small[c] = *(void **)p;
            free(p);
        }
    w->small_bytes = 0;
}

/* lua_close, then the state's free small blocks go back to malloc. */
static void state_close(lua_worker *w, lua_State *L)
{
    lua_close(L);
    small_drain(w);
}

static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lua_worker *w = ud;
    if (!ptr)
        osize = 0; /* then osize is a type tag */
    if (nsize == 0) {
        if (ptr && osize <= SMALL_MAX)
            small_put(w, ptr, osize);
        else
            free(ptr);
        w->used -= osize;
        return NULL;
    }
    if (nsize > osize) { /* shrinks never fail: Lua relies on it */
        size_t grow = nsize - osize, cap = w->limit + (w->tripped ? MEM_RESERVE : 0);
        if (grow > cap || w->used > cap - grow) {
            /* The task reached the cap: it is stopped (by the hook, so that a
             * pcall cannot swallow the memory error). Any refusal counts: Lua
             * does retry after an emergency GC, but lauxlib buffers (string.rep,
             * table.concat, gsub...) do not, and their error is catchable. */
            w->tripped = true;
            return NULL;
        }
    }
    void *p;
    if (ptr && osize > SMALL_MAX && nsize > SMALL_MAX) {
        p = realloc(ptr, nsize);
    } else if (ptr && osize <= SMALL_MAX && nsize <= SMALL_MAX && small_class(osize) == small_class(nsize)) {
        p = ptr; /* same size class: the block already fits */
    } else {
        p = nsize <= SMALL_MAX ? small_get(w, nsize) : malloc(nsize);
        if (!p && nsize < osize) {
            p = ptr; /* a shrink must not fail: the old block is big enough */
        } else if (p && ptr) {
            memcpy(p, ptr, osize < nsize ? osize : nsize);
            if (osize <= SMALL_MAX)
                small_put(w, ptr, osize);
            else
                free(ptr);
        }
    }
    if (!p)
        return NULL;
    w->used = w->used - osize + nsize;
    return p;
}

static int panic_handler(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    jet_error("lua: unprotected error (bug in agentd's Lua host): %s", m ? m : "?");
    abort();
    return 0;
}

/* ---- the count hook: time limit, cancellation, memory trip ---- */

static void hook(lua_State *L, lua_Debug *ar)
{
    lua_worker *w = worker_of(L);
    if (!w->kill) {
        int kill = KILL_NONE;
        if (w->tripped)
            kill = KILL_MEMORY;
        else if (w->deadline_mono && jet_mono_ms() >= w->deadline_mono)
            kill = KILL_TIMEOUT;
        else if (w->ctx && w->api->cancelled(w->ctx))
            kill = KILL_CANCEL;
        if (kill == KILL_NONE)
            return;
        w->kill = kill;
        /* "script.lua:LINE: ", or "script.lua: <chunk>:LINE: " in code the
         * script loaded with load(). */
        char where[200], own[JET_NAME_MAX + 8];
        snprintf(own, sizeof own, "%s.lua", w->scr ? w->scr->name : "?");
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0) {
            if (strcmp(ar->short_src, own) == 0)
                snprintf(where, sizeof where, "%s:%d: ", own, ar->currentline);
            else
                snprintf(where, sizeof where, "%s: %s:%d: ", own, ar->short_src, ar->currentline);
        } else {
            snprintf(where, sizeof where, "%s: ", own);
        }
        const char *phase = w->check_only ? " while loading" : "";
        if (kill == KILL_TIMEOUT)
            snprintf(w->killmsg, sizeof w->killmsg, "%stime limit exceeded (%" PRId64 " ms)%s", where,
                     w->time_limit_ms, phase);
        else if (kill == KILL_CANCEL)
            snprintf(w->killmsg, sizeof w->killmsg, "%stask cancelled", where);
        else
            snprintf(w->killmsg, sizeof w->killmsg, "%smemory limit exceeded (%zu bytes per Lua state)%s", where,
                     w->limit, phase);
        if (!w->decided) {
            w->decided = DEC_KILL;
            copy_msg(w->msg, sizeof w->msg, w->killmsg);
        }
    }
    /* Sticky: from now on every instruction raises, so pcall cannot swallow it. */
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, w->killmsg);
    lua_error(L);
}

static void decide(lua_worker *w, int kind, const char *msg)
{
    if (w->decided)
        return;
    w->decided = kind;
    copy_msg(w->msg, sizeof w->msg, msg);
}

/* ---- sandbox helpers ---- */

static void mark_protected(lua_State *L, int idx)
{ /* stack: ... */
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_PROTECTED);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static bool is_protected(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_PROTECTED);
    lua_pushvalue(L, idx);
    bool p = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return p;
}

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "cannot modify '%s': sandbox library tables are read-only",
                      lua_tostring(L, lua_upvalueindex(1)));
}

static int proxy_next(lua_State *L)
{ /* iterator over the real table (upvalue 1), which the script never sees */
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1)))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int proxy_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, proxy_next, 1);
    lua_pushnil(L);
    lua_pushnil(L);
    return 3;
}

/* stack: real -> proxy. A read-only view of `real` named `name`; index (an
 * __index closure over `real`) when given, else `real` itself is __index. */
static void make_proxy_index(lua_State *L, const char *name, lua_CFunction index)
{
    int real = lua_gettop(L);
    lua_newtable(L); /* proxy */
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, real);
    if (index)
        lua_pushcclosure(L, index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, ro_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, proxy_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    mark_protected(L, -1);
    lua_replace(L, real);
}

static void make_proxy(lua_State *L, const char *name) { make_proxy_index(L, name, NULL); }

static int forbidden_fn(lua_State *L)
{
    return luaL_error(L, "%s", lua_tostring(L, lua_upvalueindex(1)));
}

static void push_forbidden_fn(lua_State *L, const char *name, const char *why)
{
    lua_pushfstring(L, "%s is not available in the Lua sandbox (%s)", name, why);
    lua_pushcclosure(L, forbidden_fn, 1);
}

static int forbidden_lib_index(lua_State *L)
{
    const char *lib = lua_tostring(L, lua_upvalueindex(1));
    const char *why = lua_tostring(L, lua_upvalueindex(2));
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L, "%s.%s is not available in the Lua sandbox (%s)", lib, key, why);
}

/* stack: -> stub. A table standing for a library the sandbox does not have:
 * any access raises "<lib>.<key> is not available ...". */
static void push_forbidden_lib(lua_State *L, const char *lib, const char *why)
{
    lua_newtable(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, lib);
    lua_pushstring(L, why);
    lua_pushcclosure(L, forbidden_lib_index, 2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    mark_protected(L, -1);
}

static int os_index(lua_State *L)
{ /* __index of the os proxy: the allowed subset (upvalue 1) or an error */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L, "os.%s is not available in the Lua sandbox (only os.time, os.clock, os.date and "
                         "os.difftime; time.now() gives Unix seconds)", key);
}

/* ---- replaced base functions ---- */

static int sb_setmetatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in the Lua sandbox");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int sb_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_protected(L, 1))
        return luaL_error(L, "rawset: sandbox tables are read-only");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int sb_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") == 0) {
        int kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
        lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024);
        return 1;
    }
    if (strcmp(opt, "collect") == 0) {
        lua_gc(L, LUA_GCCOLLECT);
        lua_pushinteger(L, 0);
        return 1;
    }
    if (strcmp(opt, "step") == 0) {
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)luaL_optinteger(L, 2, 0)));
        return 1;
    }
    if (strcmp(opt, "isrunning") == 0) {
        lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING));
        return 1;
    }
    return luaL_error(L, "collectgarbage('%s') is not allowed in the Lua sandbox (only count, collect, step, "
                         "isrunning)", opt);
}

/* xpcall runs the message handler after the stack unwound, not at the error
 * point as the stock one does: when the error was raised by the count hook,
 * Lua leaves hooks disabled until the enclosing pcall returns, so a stock
 * message handler would run unstoppable (`xpcall(spin, spin)`). Without the
 * debug library a handler cannot look at the stack anyway. */
static int xpcall_k(lua_State *L, int status, lua_KContext kctx)
{ /* stack: msgh, results... | msgh, error */
    (void)kctx;
    if (status == LUA_OK || status == LUA_YIELD) {
        lua_pushboolean(L, 1);
        lua_replace(L, 1);
        return lua_gettop(L);
    }
    if (status == LUA_ERRRUN) {
        lua_pushvalue(L, 1);
        lua_insert(L, -2);
        lua_pcall(L, 1, 1, 0);
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_remove(L, 2);
    lua_insert(L, 1); /* msgh, f, args... */
    int st = lua_pcallk(L, n - 2, LUA_MULTRET, 0, 0, xpcall_k);
    return xpcall_k(L, st, 0);
}

/* coroutine.close and coroutine.wrap close the to-be-closed variables of a
 * coroutine that died in error. If the count hook killed it, Lua left hooks
 * disabled in that coroutine, so its __close handlers would run unstoppable:
 * once the task is being killed they are skipped (the task fails anyway). */
static int sb_coclose(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_worker *w = worker_of(L);
    if (w->kill) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, w->killmsg);
        return 2;
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the stock coroutine.close */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int cowrap_call(lua_State *L)
{ /* lcorolib's auxwrap + auxresume, with the rule above */
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int narg = lua_gettop(L), nres;
    if (!lua_checkstack(co, narg))
        return luaL_error(L, "too many arguments to resume");
    lua_xmove(L, co, narg);
    int st = lua_resume(co, L, narg, &nres);
    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1); /* the error */
    int cst = lua_status(co);
    if (cst != LUA_OK && cst != LUA_YIELD && !worker_of(L)->kill) {
        lua_resetthread(co); /* close its tbc variables; keeps the first error */
    }
    if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int sb_cowrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, cowrap_call, 1);
    return 1;
}

/* ---- C loops the hook cannot see ----
 *
 * The hook runs between VM instructions, so a C library function looping
 * without running Lua code cannot be stopped. Memory-bound loops are stopped
 * by the allocator; these are not:
 *   - string.rep("", huge): nothing to allocate, 2^63 empty copies;
 *   - table.insert/remove/move/sort/concat on a table whose __len, __index or
 *     __newindex make it look huge while C functions answer the accesses
 *     (e.g. __index = rawlen, __newindex = rawequal);
 *   - table.move over a huge range of nils.
 * The wrappers below answer the first directly and run the others in plain
 * Lua (the sandbox prelude) when the table has such metamethods or the range
 * is huge, so that the hook can stop them. Plain tables keep the C versions. */

static const char sandbox_prelude[] =
    "local error, select, tointeger, type, concat = ...\n"
    "local F = {}\n"
    "local function int(v, n, f)\n"
    "  local i = tointeger(v)\n"
    "  if i == nil then error(\"bad argument #\" .. n .. \" to '\" .. f .. \"' (number has no integer representation)\", 3) end\n"
    "  return i\n"
    "end\n"
    "function F.insert(t, ...)\n"
    "  local n, e = select('#', ...), #t + 1\n"
    "  if n == 1 then t[e] = ... return end\n"
    "  if n ~= 2 then error(\"wrong number of arguments to 'insert'\", 2) end\n"
    "  local pos, v = ...\n"
    "  pos = int(pos, 2, 'insert')\n"
    "  if pos < 1 or pos > e then error(\"bad argument #2 to 'insert' (position out of bounds)\", 2) end\n"
    "  for i = e, pos + 1, -1 do t[i] = t[i - 1] end\n"
    "  t[pos] = v\n"
    "end\n"
    "function F.remove(t, pos)\n"
    "  local size = #t\n"
    "  if pos == nil then pos = size else pos = int(pos, 2, 'remove') end\n"
    "  if pos ~= size and (pos < 1 or pos > size + 1) then\n"
    "    error(\"bad argument #2 to 'remove' (position out of bounds)\", 2)\n"
    "  end\n"
    "  local v = t[pos]\n"
    "  while pos < size do t[pos] = t[pos + 1] pos = pos + 1 end\n"
    "  t[pos] = nil\n"
    "  return v\n"
    "end\n"
    "function F.move(a1, f, e, t, a2)\n"
    "  if a2 == nil then a2 = a1 end\n"
    "  f, e, t = int(f, 2, 'move'), int(e, 3, 'move'), int(t, 4, 'move')\n"
    "  if e >= f then\n"
    "    if t > e or t <= f or a1 ~= a2 then\n"
    "      for i = 0, e - f do a2[t + i] = a1[f + i] end\n"
    "    else\n"
    "      for i = e - f, 0, -1 do a2[t + i] = a1[f + i] end\n"
    "    end\n"
    "  end\n"
    "  return a2\n"
    "end\n"
    "function F.concat(t, sep, i, j)\n"
    "  if sep == nil then sep = '' end\n"
    "  i = i == nil and 1 or int(i, 3, 'concat')\n"
    "  j = j == nil and #t or int(j, 4, 'concat')\n"
    "  local parts = {}\n"
    "  for k = i, j do\n"
    "    local v = t[k]\n"
    "    local ty = type(v)\n"
    "    if ty ~= 'string' and ty ~= 'number' then\n"
    "      error(\"invalid value (at index \" .. k .. \") in table for 'concat'\", 2)\n"
    "    end\n"
    "    parts[#parts + 1] = v\n"
    "  end\n"
    "  return concat(parts, sep)\n"
    "end\n"
    "function F.sort(t, lt)\n"
    "  local n = #t\n"
    "  if lt == nil then lt = function(a, b) return a < b end end\n"
    "  local function sift(root, last)\n"
    "    while true do\n"
    "      local c = 2 * root\n"
    "      if c > last then return end\n"
    "      if c < last and lt(t[c], t[c + 1]) then c = c + 1 end\n"
    "      if not lt(t[root], t[c]) then return end\n"
    "      t[root], t[c] = t[c], t[root]\n"
    "      root = c\n"
    "    end\n"
    "  end\n"
    "  for i = n // 2, 1, -1 do sift(i, n) end\n"
    "  for last = n, 2, -1 do\n"
    "    t[1], t[last] = t[last], t[1]\n"
    "    sift(1, last - 1)\n"
    "  end\n"
    "end\n"
    "return F\n";

#define MOVE_IN_C_MAX (1 << 20) /* longer table.move ranges run in Lua */

static bool has_access_metamethods(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return false;
    static const char *const mm[] = {"__index", "__newindex", "__len"};
    bool found = false;
    for (int i = 0; i < 3 && !found; i++) {
        lua_pushstring(L, mm[i]);
        found = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return found;
}

/* upvalues: 1 the stock C function, 2 the Lua version, 3 true for move */
static int sb_tablefn(lua_State *L)
{
    bool in_lua = has_access_metamethods(L, 1);
    if (!in_lua && lua_toboolean(L, lua_upvalueindex(3))) {
        int okf, oke;
        lua_Integer f = lua_tointegerx(L, 2, &okf), e = lua_tointegerx(L, 3, &oke);
        in_lua = has_access_metamethods(L, 5) ||
                 (okf && oke && e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= MOVE_IN_C_MAX);
    }
    if (!in_lua) /* called in this frame, so that argument errors name the function */
        return lua_tocfunction(L, lua_upvalueindex(1))(L);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* upvalue 1: the stock string.rep */
static int sb_strrep(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING && lua_rawlen(L, 1) == 0 &&
        (lua_isnoneornil(L, 3) || (lua_type(L, 3) == LUA_TSTRING && lua_rawlen(L, 3) == 0))) {
        luaL_checkinteger(L, 2);
        lua_pushliteral(L, "");
        return 1;
    }
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* stack: real table lib -> same. Installs the wrappers above in it. */
static void wrap_table_lib(lua_State *L)
{
    int tab = lua_gettop(L);
    if (luaL_loadbufferx(L, sandbox_prelude, sizeof sandbox_prelude - 1, "=(sandbox)", "t") != LUA_OK)
        lua_error(L);
    lua_newtable(L); /* the prelude sees only its arguments */
    lua_setupvalue(L, -2, 1);
    lua_getglobal(L, "error");
    lua_getglobal(L, "select");
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, LUA_MATHLIBNAME);
    lua_getfield(L, -1, "tointeger");
    lua_replace(L, -3);
    lua_pop(L, 1);
    lua_getglobal(L, "type");
    lua_getfield(L, tab, "concat");
    lua_call(L, 5, 1);
    int fallbacks = lua_gettop(L);
    static const char *const names[] = {"insert", "remove", "move", "sort", "concat", NULL};
    for (int i = 0; names[i]; i++) {
        lua_getfield(L, tab, names[i]);
        lua_getfield(L, fallbacks, names[i]);
        lua_pushboolean(L, strcmp(names[i], "move") == 0);
        lua_pushcclosure(L, sb_tablefn, 3);
        lua_setfield(L, tab, names[i]);
    }
    lua_settop(L, tab);
}

/* Pushes a new per-task environment: reads fall through to the sandbox base. */
static void push_new_env(lua_State *L)
{
    lua_createtable(L, 0, 4);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ENVMT);
    lua_setmetatable(L, -2);
    lua_pushliteral(L, "_G");
    lua_pushvalue(L, -2);
    lua_rawset(L, -3);
}

static int sb_load(lua_State *L)
{
    size_t len = 0;
    bool has_env = !lua_isnone(L, 4);
    bool reader = lua_type(L, 1) == LUA_TFUNCTION;
    if (reader) { /* a reader function: gather its pieces */
        luaL_Buffer b;
        lua_settop(L, 4);
        luaL_buffinit(L, &b);
        for (;;) {
            lua_pushvalue(L, 1);
            lua_call(L, 0, 1);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                break;
            }
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "load: reader function must return a string");
            if (lua_rawlen(L, -1) == 0) {
                lua_pop(L, 1);
                break;
            }
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_replace(L, 1);
    }
    const char *s = luaL_checklstring(L, 1, &len);
    const char *chunkname = luaL_optstring(L, 2, reader ? "=(load)" : s);
    const char *mode = luaL_optstring(L, 3, "t");
    if ((len > 0 && s[0] == LUA_SIGNATURE[0]) || !strchr(mode, 't')) {
        lua_pushnil(L);
        lua_pushliteral(L, "load: binary chunks (bytecode) are not allowed in the Lua sandbox");
        return 2;
    }
    if (luaL_loadbufferx(L, s, len, chunkname, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env)
        lua_pushvalue(L, 4);
    else if (lua_rawgetp(L, LUA_REGISTRYINDEX, &K_CURENV) == LUA_TNIL) {
        lua_pop(L, 1);
        push_new_env(L);
    }
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 1;
}

static int sb_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_worker *w = worker_of(L);
    if (w->ctx)
        w->api->log(w->ctx, JET_PLOG_INFO, lua_tostring(L, -1));
    else
        jet_debug("lua %s: print: %s", w->scr ? w->scr->name : "?", lua_tostring(L, -1));
    return 0;
}

/* ---- time ---- */

static int time_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int time_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* ---- json (jansson) ---- */

/* C resources that a Lua error must not leak: freed by __gc if an error
 * unwinds past their owner, or explicitly once done. */
typedef struct holder {
    json_t *json;
    char *text;
    void *buf;
} holder;

static int holder_gc(lua_State *L)
{
    holder *hd = luaL_checkudata(L, 1, HOLDER_MT);
    json_decref(hd->json);
    hd->json = NULL;
    free(hd->text);
    hd->text = NULL;
    free(hd->buf);
    hd->buf = NULL;
    return 0;
}

static holder *holder_new(lua_State *L)
{
    holder *hd = lua_newuserdatauv(L, sizeof *hd, 0);
    memset(hd, 0, sizeof *hd);
    luaL_setmetatable(L, HOLDER_MT);
    return hd;
}

static void holder_done(holder *hd)
{
    json_decref(hd->json);
    hd->json = NULL;
    free(hd->text);
    hd->text = NULL;
    free(hd->buf);
    hd->buf = NULL;
}

/* Value at idx -> a new JSON value; containers come back empty (*kind 1 =
 * array, 2 = object, 0 = scalar) and are filled by json_fill once attached,
 * so that no partially built value is ever unreferenced when a Lua error
 * unwinds. Raises for values JSON cannot hold. */
static json_t *json_shell(lua_State *L, int idx, int depth, int *kind, lua_Integer *n_out)
{
    *kind = 0;
    *n_out = 0;
    json_t *v = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        v = json_null();
        break;
    case LUA_TBOOLEAN:
        v = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            lua_Number d = lua_tonumber(L, idx);
            if (!isfinite(d))
                luaL_error(L, "json.encode: cannot encode NaN or infinity");
            v = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        v = json_stringn(s, len);
        if (!v)
            luaL_error(L, "json.encode: string is not valid UTF-8 (binary data must be encoded first, e.g. as hex)");
        break;
    }
    case LUA_TTABLE: {
        if (depth > JSON_MAX_DEPTH)
            luaL_error(L, "json.encode: nesting deeper than %d levels (or a cycle)", JSON_MAX_DEPTH);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL);
        bool is_null = lua_rawequal(L, idx, -1);
        lua_pop(L, 1);
        if (is_null) {
            v = json_null();
            break;
        }
        bool marked = false;
        if (lua_getmetatable(L, idx)) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAYMT);
            marked = lua_rawequal(L, -1, -2);
            lua_pop(L, 2);
        }
        lua_Integer count = 0, max = 0;
        bool seq = true;
        if (marked) {
            max = (lua_Integer)lua_rawlen(L, idx);
        } else {
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                lua_pop(L, 1);
                count++;
                if (seq && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
                    if (lua_tointeger(L, -1) > max)
                        max = lua_tointeger(L, -1);
                } else {
                    seq = false;
                }
            }
        }
        if (marked || (seq && count > 0 && count == max)) {
            *kind = 1;
            *n_out = max;
            v = json_array();
        } else {
            *kind = 2;
            v = json_object();
        }
        break;
    }
    default:
        luaL_error(L, "json.encode: cannot encode a %s value", luaL_typename(L, idx));
    }
    if (!v)
        luaL_error(L, "json.encode: out of memory");
    return v;
}

static void json_fill(lua_State *L, int idx, json_t *c, int kind, lua_Integer n, int depth)
{
    luaL_checkstack(L, 4, "json.encode: nesting too deep");
    if (kind == 1) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            int k;
            lua_Integer cn;
            json_t *child = json_shell(L, lua_gettop(L), depth + 1, &k, &cn);
            if (json_array_append_new(c, child) != 0)
                luaL_error(L, "json.encode: out of memory");
            if (k)
                json_fill(L, lua_gettop(L), child, k, cn, depth + 1);
            lua_pop(L, 1);
        }
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char numkey[64];
        const char *key;
        size_t klen;
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING) {
            key = lua_tolstring(L, -2, &klen);
        } else if (kt == LUA_TNUMBER) { /* formatted here: lua_tolstring would confuse lua_next */
            if (lua_isinteger(L, -2))
                snprintf(numkey, sizeof numkey, "%lld", (long long)lua_tointeger(L, -2));
            else
                snprintf(numkey, sizeof numkey, "%.14g", (double)lua_tonumber(L, -2));
            key = numkey;
            klen = strlen(numkey);
        } else {
            return (void)luaL_error(L, "json.encode: cannot use a %s as an object key", luaL_typename(L, -2));
        }
        int k;
        lua_Integer cn;
        json_t *child = json_shell(L, lua_gettop(L), depth + 1, &k, &cn);
        if (json_object_setn_new(c, key, klen, child) != 0)
            luaL_error(L, "json.encode: object key is not valid UTF-8");
        if (k)
            json_fill(L, lua_gettop(L), child, k, cn, depth + 1);
        lua_pop(L, 1);
    }
}

static int json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    size_t flags = JSON_ENCODE_ANY;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "indent");
        lua_Integer indent = luaL_optinteger(L, -1, 0);
        lua_getfield(L, 2, "sort_keys");
        bool sort = lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (indent < 0 || indent > 31)
            return luaL_error(L, "json.encode: indent must be 0-31");
        flags |= indent ? JSON_INDENT(indent) : JSON_COMPACT;
        if (sort)
            flags |= JSON_SORT_KEYS;
    } else {
        flags |= JSON_COMPACT;
    }
    lua_settop(L, 1);
    holder *hd = holder_new(L);
    int kind;
    lua_Integer n;
    hd->json = json_shell(L, 1, 0, &kind, &n);
    if (kind)
        json_fill(L, 1, hd->json, kind, n, 0);
    hd->text = json_dumps(hd->json, flags);
    if (!hd->text)
        return luaL_error(L, "json.encode: out of memory");
    lua_pushstring(L, hd->text);
    holder_done(hd);
    return 1;
}

static void json_push(lua_State *L, json_t *v, int depth)
{
    luaL_checkstack(L, 4, "json.decode: nesting too deep");
    if (depth > JSON_MAX_DEPTH)
        luaL_error(L, "json.decode: nesting deeper than %d levels", JSON_MAX_DEPTH);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *child;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_keylen_foreach(v, key, klen, child)
        {
            lua_pushlstring(L, key, klen);
            json_push(L, child, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            json_push(L, json_array_get(v, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        if (n == 0) { /* keep [] an array when encoded again */
            lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAYMT);
            lua_setmetatable(L, -2);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    case JSON_NULL:
    default:
        lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL);
        break;
    }
}

static int json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    holder *hd = holder_new(L);
    json_error_t je;
    hd->json = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!hd->json)
        return luaL_error(L, "json.decode: %s (line %d, column %d)", je.text, je.line, je.column);
    json_push(L, hd->json, 0);
    holder_done(hd);
    return 1;
}

static int json_array_mark(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAYMT);
    if (lua_getmetatable(L, 1)) {
        if (!lua_rawequal(L, -1, -2))
            return luaL_error(L, "json.array: the table already has a metatable");
        lua_pop(L, 1);
    }
    lua_setmetatable(L, 1);
    return 1;
}

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

/* ---- ctx: the host API ---- */

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

static int ctx_progress(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    lua_Number pct = luaL_checknumber(L, 1);
    const char *note = luaL_optstring(L, 2, NULL);
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

static int ctx_checkpoint(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    if (lua_gettop(L) == 0) { /* load */
        holder *hd = holder_new(L);
        size_t len = 0;
        if (w->api->checkpoint_load(w->ctx, &hd->buf, &len) < 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "checkpoint: cannot load the checkpoint");
            return 2;
        }
        if (!hd->buf)
            return 0;
        lua_pushlstring(L, hd->buf, len);
        holder_done(hd);
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
    decide(w, DEC_FAIL, lua_tostring(L, -1));
    return lua_error(L);
}

static int ctx_retry_in(lua_State *L)
{
    lua_worker *w = ctx_enter(L);
    lua_Number s = luaL_checknumber(L, 1);
    if (!(s >= 0) || s > 1e9)
        return luaL_argerror(L, 1, "seconds must be between 0 and 1e9");
    lua_settop(L, 2);
    push_where(L);
    if (lua_isnil(L, 2))
        lua_pushfstring(L, "retry requested in %f s", (double)s);
    else
        luaL_tolstring(L, 2, NULL);
    lua_concat(L, 2);
    if (!w->decided)
        w->retry_ms = (int64_t)llround(s * 1000);
    decide(w, DEC_RETRY, lua_tostring(L, -1));
    return lua_error(L);
}

/* ---- state creation ---- */

static void set_fn(lua_State *L, const char *name, lua_CFunction f)
{
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
}

static void copy_global(lua_State *L, int base, const char *name)
{
    lua_getglobal(L, name);
    lua_setfield(L, base, name);
}

/* Opens a library and leaves its (real) table on the stack. */
static void open_lib(lua_State *L, const char *name, lua_CFunction f)
{
    luaL_requiref(L, name, f, 0);
}

static int setup_state(lua_State *L)
{
    /* protected-tables set (weak keys) */
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_PROTECTED);

    luaL_requiref(L, "_G", luaopen_base, 1);
    lua_pop(L, 1);
    lua_newtable(L); /* the sandbox base */
    int base = lua_gettop(L);
    static const char *const allowed[] = {"assert", "error", "getmetatable", "ipairs", "next", "pairs",
                                          "pcall", "rawequal", "rawlen", "rawget", "select", "tonumber",
                                          "tostring", "type", "_VERSION", NULL};
    for (int i = 0; allowed[i]; i++)
        copy_global(L, base, allowed[i]);
    set_fn(L, "setmetatable", sb_setmetatable);
    set_fn(L, "xpcall", sb_xpcall);
    set_fn(L, "rawset", sb_rawset);
    set_fn(L, "collectgarbage", sb_collectgarbage);
    set_fn(L, "load", sb_load);
    set_fn(L, "print", sb_print);
    push_forbidden_fn(L, "dofile", "no file access");
    lua_setfield(L, base, "dofile");
    push_forbidden_fn(L, "loadfile", "no file access");
    lua_setfield(L, base, "loadfile");
    push_forbidden_fn(L, "require", "no package library: a handler is one self-contained file");
    lua_setfield(L, base, "require");

    /* string: without dump; its metatable locked */
    open_lib(L, LUA_MATHLIBNAME, luaopen_math); /* first: the prelude uses math.tointeger */
    lua_pop(L, 1);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    push_forbidden_fn(L, "string.dump", "no bytecode");
    lua_setfield(L, -2, "dump");
    lua_getfield(L, -1, "rep");
    lua_pushcclosure(L, sb_strrep, 1);
    lua_setfield(L, -2, "rep");
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    make_proxy(L, "string");
    lua_setfield(L, base, "string");
    open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
    lua_getfield(L, -1, "close");
    lua_pushcclosure(L, sb_coclose, 1);
    lua_setfield(L, -2, "close");
    set_fn(L, "wrap", sb_cowrap);
    make_proxy(L, LUA_COLIBNAME);
    lua_setfield(L, base, LUA_COLIBNAME);
    static const struct {
        const char *name;
        lua_CFunction open;
    } libs[] = {{LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        open_lib(L, libs[i].name, libs[i].open);
        if (libs[i].open == luaopen_table)
            wrap_table_lib(L);
        make_proxy(L, libs[i].name);
        lua_setfield(L, base, libs[i].name);
    }

    /* os: the time functions only */
    open_lib(L, LUA_OSLIBNAME, luaopen_os);
    int real_os = lua_gettop(L);
    lua_createtable(L, 0, 4);
    static const char *const os_allowed[] = {"time", "clock", "date", "difftime", NULL};
    for (int i = 0; os_allowed[i]; i++) {
        lua_getfield(L, real_os, os_allowed[i]);
        lua_setfield(L, -2, os_allowed[i]);
    }
    make_proxy_index(L, "os", os_index); /* a missing os.* names what is forbidden */
    lua_setfield(L, base, "os");
    lua_settop(L, base);

    push_forbidden_lib(L, "io", "no io library: use ctx and the task payload");
    lua_setfield(L, base, "io");
    push_forbidden_lib(L, "debug", "no debug library");
    lua_setfield(L, base, "debug");
    push_forbidden_lib(L, "package", "no package library");
    lua_setfield(L, base, "package");

    /* time */
    lua_createtable(L, 0, 2);
    set_fn(L, "now", time_now);
    set_fn(L, "monotonic", time_monotonic);
    make_proxy(L, "time");
    lua_setfield(L, base, "time");

    /* json */
    luaL_newmetatable(L, HOLDER_MT);
    set_fn(L, "__gc", holder_gc);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    lua_createtable(L, 0, 1); /* marker metatable of JSON arrays */
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_ARRAYMT);
    lua_newtable(L); /* json.null */
    lua_createtable(L, 0, 3);
    set_fn(L, "__tostring", null_tostring);
    lua_pushliteral(L, "json.null");
    lua_pushcclosure(L, ro_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    mark_protected(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_NULL);
    lua_createtable(L, 0, 4);
    set_fn(L, "encode", json_encode);
    set_fn(L, "decode", json_decode);
    set_fn(L, "array", json_array_mark);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL);
    lua_setfield(L, -2, "null");
    make_proxy(L, "json");
    lua_setfield(L, base, "json");

    /* ctx */
    lua_createtable(L, 0, 8);
    set_fn(L, "progress", ctx_progress);
    set_fn(L, "checkpoint", ctx_checkpoint);
    set_fn(L, "log", ctx_log);
    set_fn(L, "cancelled", ctx_cancelled);
    set_fn(L, "submit", ctx_submit);
    set_fn(L, "retry_in", ctx_retry_in);
    set_fn(L, "fail", ctx_fail);
    make_proxy(L, "ctx");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CTX);

    /* the metatable of every task environment */
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_ENVMT);

    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CACHE);
    return 0;
}

/* A new sandboxed state whose allocator counts into w. NULL with a message
 * in err on failure. */
static lua_State *state_new(lua_worker *w, size_t limit, char *err, size_t errlen)
{
    w->used = 0;
    w->limit = limit;
    w->tripped = false;
    lua_State *L = lua_newstate(lalloc, w);
    if (!L) {
        snprintf(err, errlen, "cannot create a Lua state within the memory limit (%zu bytes)", limit);
        return NULL;
    }
    lua_atpanic(L, panic_handler);
    *(lua_worker **)lua_getextraspace(L) = w;
    lua_pushcfunction(L, setup_state);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot set up a Lua state: %s (memory limit %zu bytes)",
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "?", limit);
        state_close(w, L);
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

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

static void push_task(lua_State *L, const jet_task *t)
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
    push_new_env(L); /* 4 */
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
    push_task(L, w->task);                        /* 7 */
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
        lua_pushcfunction(L, json_encode);
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

static void worker_reset_task(lua_worker *w)
{
    w->kill = KILL_NONE;
    w->decided = DEC_NONE;
    w->retry_ms = 0;
    w->errored = w->errmem = false;
    w->tripped = false;
    w->msg[0] = w->killmsg[0] = w->err[0] = w->trace[0] = '\0';
}

/* Runs w->scr in w->L under the hook; returns the lua_pcall status. */
static int run_in_state(lua_worker *w, int interval)
{
    lua_State *L = w->L;
    w->deadline_mono = w->time_limit_ms > 0 ? jet_mono_ms() + w->time_limit_ms : 0;
    lua_sethook(L, hook, LUA_MASKCOUNT, interval);
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
    state_close(w, w->L);
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
        catalog_release(w->cat);
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
    catalog_release(w->cat);
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
    const script *s = task->handler ? catalog_find(w->cat, task->handler) : NULL;
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
        lua_State *L = state_new(w, h->opt.mem_limit_bytes, msg, sizeof msg);
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

    worker_reset_task(w);
    w->api = api;
    w->ctx = ctx;
    w->task = task;
    w->scr = s;
    w->time_limit_ms = task->timeout_ms;
    int st = run_in_state(w, h->opt.instruction_check_interval);
    w->ctx = NULL;
    w->task = NULL;
    w->tasks++;
    atomic_fetch_add(&h->st.tasks, 1);

    jet_outcome r = JET_SUCCESS;
    bool memory = w->tripped || w->errmem || st == LUA_ERRMEM;
    if (w->decided == DEC_FAIL || w->decided == DEC_RETRY) {
        r = w->decided == DEC_FAIL ? JET_FAIL : JET_RETRY;
        if (w->decided == DEC_RETRY)
            api->retry_in(ctx, w->retry_ms);
        api->set_error(ctx, w->msg);
    } else if (w->decided == DEC_KILL) {
        r = JET_RETRY;
        api->set_error(ctx, w->msg);
        atomic_fetch_add(w->kill == KILL_TIMEOUT  ? &h->st.timeouts
                         : w->kill == KILL_CANCEL ? &h->st.cancels
                                                  : &h->st.memory_errors,
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

/* ---- scanning and checking scripts ---- */

/* Compiles s and runs its main chunk in a throwaway state: NULL when it is
 * runnable, else a malloc'd message. */
static char *check_script(const lua_host_options *opt, const script *s)
{
    char msg[MSG_MAX];
    lua_worker *w = calloc(1, sizeof *w);
    if (!w)
        return strdup("out of memory");
    w->check_only = true;
    w->L = state_new(w, opt->mem_limit_bytes, msg, sizeof msg);
    if (!w->L) {
        free(w);
        return strdup(msg);
    }
    worker_reset_task(w);
    w->scr = s;
    w->time_limit_ms = opt->load_timeout_ms;
    run_in_state(w, opt->instruction_check_interval);
    char *res = NULL;
    if (w->decided)
        res = strdup(w->msg);
    else if (w->tripped || w->errmem)
        snprintf(msg, sizeof msg, "%s.lua: memory limit exceeded while loading (%zu bytes per Lua state)", s->name,
                 w->limit),
            res = strdup(msg);
    else if (w->errored)
        res = strdup(w->err);
    state_close(w, w->L);
    free(w);
    return res;
}

static char *read_script(const char *dir, const char *file, size_t *len, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", file);
        close(fd);
        return NULL;
    }
    if ((uintmax_t)sb.st_size > MAX_SCRIPT_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", file, MAX_SCRIPT_BYTES);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap - 1) { /* the file grew while we read it */
            if (cap > MAX_SCRIPT_BYTES) {
                snprintf(err, errlen, "%s: larger than %u bytes", file, MAX_SCRIPT_BYTES);
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf && !err[0])
        snprintf(err, errlen, "%s: out of memory", file);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct scan_counts {
    size_t added, changed, removed, unavailable;
} scan_counts;

/* Builds a catalog of dir's scripts, reusing the script objects of `old`
 * whose text is unchanged. */
static jet_status scan_dir(const lua_host_options *opt, const catalog *old, catalog **out, scan_counts *cnt,
                           jet_err *err)
{
    memset(cnt, 0, sizeof *cnt);
    catalog *c = calloc(1, sizeof *c);
    if (!c)
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    atomic_init(&c->refs, 1);
    char **names = NULL;
    size_t nn = 0, capn = 0;
    DIR *d = opendir(opt->dir);
    if (!d && errno != ENOENT) {
        int e = errno;
        free(c);
        return jet_err_set(err, JET_ERR_IO, "agent.lua_dir %s: %s", opt->dir, strerror(e));
    }
    if (!d)
        jet_warn("agent.lua_dir %s does not exist: no Lua handlers", opt->dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l <= 4 || strcmp(de->d_name + l - 4, ".lua") != 0)
            continue;
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(l - 4), de->d_name);
        if (!jet_name_valid(base)) {
            jet_warn("%s/%s: skipped: \"%s\" is not a valid handler name (1-64 of [a-z0-9_-])", opt->dir,
                     de->d_name, base);
            continue;
        }
        if (nn == capn) {
            size_t ncap = capn ? capn * 2 : 16;
            char **nv = realloc(names, ncap * sizeof *nv);
            if (!nv)
                break;
            names = nv;
            capn = ncap;
        }
        if (!(names[nn] = strdup(base)))
            break;
        nn++;
    }
    if (d)
        closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_str);
    c->v = calloc(nn ? nn : 1, sizeof *c->v);
    jet_status st = c->v ? JET_OK : jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == JET_OK && i < nn; i++) {
        char file[JET_NAME_MAX + 8], rerr[512] = "";
        snprintf(file, sizeof file, "%s.lua", names[i]);
        size_t len = 0;
        char *src = read_script(opt->dir, file, &len, rerr, sizeof rerr);
        script *prev = catalog_find(old, names[i]);
        if (prev && src && prev->src && prev->len == len && memcmp(prev->src, src, len) == 0) {
            free(src);
            atomic_fetch_add(&prev->refs, 1);
            c->v[c->n++] = prev;
            cnt->unavailable += prev->error != NULL;
            continue;
        }
        script *s = calloc(1, sizeof *s);
        if (!s) {
            free(src);
            st = jet_err_set(err, JET_ERR_NOMEM, "out of memory");
            break;
        }
        atomic_init(&s->refs, 1);
        snprintf(s->name, sizeof s->name, "%s", names[i]);
        snprintf(s->chunkname, sizeof s->chunkname, "@%s.lua", names[i]);
        s->version = atomic_fetch_add(&next_version, 1);
        s->src = src;
        s->len = len;
        s->error = src ? check_script(opt, s) : strdup(rerr);
        if (s->error)
            jet_warn("Lua handler %s is unavailable: %s", s->name, s->error);
        cnt->unavailable += s->error != NULL;
        if (prev)
            cnt->changed++;
        else
            cnt->added++;
        c->v[c->n++] = s;
    }
    for (size_t i = 0; old && i < old->n; i++)
        if (!catalog_find(c, old->v[i]->name))
            cnt->removed++;
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (st != JET_OK) {
        catalog_release(c);
        return st;
    }
    c->gen = old ? old->gen + 1 : 1;
    *out = c;
    return JET_OK;
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

    /* The limit must at least hold an empty sandbox. */
    char msg[MSG_MAX];
    lua_worker probe;
    memset(&probe, 0, sizeof probe);
    lua_State *L = state_new(&probe, h->opt.mem_limit_bytes, msg, sizeof msg);
    if (!L) {
        jet_err_set(err, JET_ERR_INVALID, "lua.memory_limit: %s", msg);
        lua_host_close(h);
        return JET_ERR_INVALID;
    }
    state_close(&probe, L);

    scan_counts cnt;
    jet_status st = scan_dir(&h->opt, NULL, &h->cat, &cnt, err);
    if (st != JET_OK) {
        lua_host_close(h);
        return st;
    }
    atomic_init(&h->gen, h->cat->gen);
    jet_info("Lua handlers in %s: %zu script(s), %zu unavailable", h->dir, h->cat->n, cnt.unavailable);
    *out = h;
    return JET_OK;
}

static catalog *host_catalog(lua_host *h)
{
    pthread_mutex_lock(&h->mu);
    catalog *c = h->cat;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&h->mu);
    return c;
}

jet_status lua_host_reload(lua_host *h, jet_err *err) { return lua_host_reload_from(h, NULL, err); }

jet_status lua_host_reload_from(lua_host *h, const char *dir, jet_err *err)
{
    pthread_mutex_lock(&h->reload_mu);
    if (dir && *dir && strcmp(dir, h->dir) != 0) {
        char *nd = strdup(dir);
        if (!nd) {
            pthread_mutex_unlock(&h->reload_mu);
            return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
        }
        jet_info("Lua handlers: agent.lua_dir changed from %s to %s", h->dir, nd);
        free(h->dir);
        h->dir = nd;
        h->opt.dir = nd;
    }
    catalog *old = host_catalog(h), *c = NULL;
    scan_counts cnt;
    jet_status st = scan_dir(&h->opt, old, &c, &cnt, err);
    if (st == JET_OK) {
        pthread_mutex_lock(&h->mu);
        catalog *prev = h->cat;
        h->cat = c;
        atomic_store(&h->gen, c->gen);
        pthread_mutex_unlock(&h->mu);
        catalog_release(prev);
        atomic_fetch_add(&h->st.reloads, 1);
        jet_info("Lua handlers reloaded from %s: %zu script(s): %zu new, %zu changed, %zu removed, %zu unavailable",
                 h->dir, c->n, cnt.added, cnt.changed, cnt.removed, cnt.unavailable);
    }
    catalog_release(old);
    pthread_mutex_unlock(&h->reload_mu);
    return st;
}

bool lua_host_has(lua_host *h, const char *handler)
{
    if (!h || !handler)
        return false;
    pthread_mutex_lock(&h->mu);
    const script *s = catalog_find(h->cat, handler);
    bool ok = s && !s->error;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

bool lua_host_unavailable(lua_host *h, const char *handler, char *why, size_t len)
{
    if (!h || !handler)
        return false;
    pthread_mutex_lock(&h->mu);
    const script *s = catalog_find(h->cat, handler);
    bool bad = s && s->error;
    if (bad && why && len)
        snprintf(why, len, "%s", s->error);
    pthread_mutex_unlock(&h->mu);
    return bad;
}

size_t lua_host_count(lua_host *h)
{
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    size_t n = h->cat->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

bool lua_host_name_at(lua_host *h, size_t i, char *buf, size_t len)
{
    if (!h)
        return false;
    pthread_mutex_lock(&h->mu);
    bool ok = i < h->cat->n;
    if (ok && buf && len)
        snprintf(buf, len, "%s", h->cat->v[i]->name);
    pthread_mutex_unlock(&h->mu);
    return ok;
}

void lua_host_foreach(lua_host *h, void (*fn)(const char *name, bool available, void *closure), void *closure)
{
    if (!h || !fn)
        return;
    catalog *c = host_catalog(h);
    for (size_t i = 0; i < c->n; i++)
        fn(c->v[i]->name, c->v[i]->error == NULL, closure);
    catalog_release(c);
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
        catalog_release(w->cat);
        w->cat = NULL;
        atomic_store(&w->host, NULL); /* last touch: its thread frees it */
    }
    pthread_mutex_unlock(&g_mu);
    if (busy) {
        jet_warn("Lua host: %d task%s still running (abandoned threads); the Lua host is not freed", busy,
                 busy == 1 ? "" : "s");
        return;
    }
    catalog_release(h->cat);
    h->cat = NULL;
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->reload_mu);
    free(h->dir);
    h->dir = NULL;
    free(h);
}
