/* The coroutine library of the sandbox: the stock functions behind a
 * read-only proxy, with coroutine.close, coroutine.wrap and coroutine.resume
 * replaced so that the __close handlers of a coroutine the hook killed do not
 * run unstoppable, and so that nesting them cannot overflow the C stack.
 *
 * The C stack guard. Lua 5.4.4 bounds C recursion by counting C calls
 * (LUAI_MAXCCALLS, 200) per thread, but lua_resetthread (coroutine.close, and
 * wrap's error path) runs the closed coroutine's __close handlers on that
 * coroutine's own count, which is small: a __close that closes another
 * coroutine whose __close closes another ... recurses in C without limit and
 * overflows the stack (lua.org/bugs.html, 5.4.4: "C-stack overflow with deep
 * nesting of coroutine.close"; 20,000 levels crash a 1 MiB worker thread).
 * So each of these entry points first checks how much of the calling thread's
 * stack is left (the worker records the stack's bounds when it is created)
 * and stops the task ("C stack overflow") when less than CSTACK_RESERVE is
 * left: between two
 * such entries Lua's own count allows at most ~200 more C levels, which take
 * up to ~450 KiB (measured: 200 nested string.gsub callbacks, the largest
 * frames in the standard library, on liblua5.4 5.4.4 amd64, with or without
 * ASan). A nesting counter (CO_NEST_MAX) is the fallback when the stack
 * bounds are unknown. */
#include "internal.h"

#include <stdint.h>
#include <stdio.h>

#define CSTACK_RESERVE (576u << 10)
#define CO_NEST_MAX 200

void lh_cstack_init(lua_worker *w)
{
    w->cstack_floor = 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr && size) {
        /* a stack too small for the reserve keeps half of itself for the rest */
        size_t reserve = size > 2 * (size_t)CSTACK_RESERVE ? CSTACK_RESERVE : size / 2;
        w->cstack_floor = (uintptr_t)addr + reserve;
    }
    pthread_attr_destroy(&attr);
}

/* Raises when the calling thread's stack is too far used (or nesting too deep)
 * for one more level of coroutine calls; else counts the level in. */
static lua_worker *nest_enter(lua_State *L, const char *fn)
{
    lua_worker *w = worker_of(L);
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if ((w->cstack_floor && here < w->cstack_floor) || w->co_nest >= CO_NEST_MAX) {
        /* A limit of the host, like the memory cap: the task is stopped (the
         * hook raises on every instruction from now on, so pcall cannot
         * swallow it) and fails with this message. */
        if (!w->kill) {
            luaL_where(L, 1);
            snprintf(w->killmsg, sizeof w->killmsg,
                     "%s%s: C stack overflow (coroutines resumed or closed inside __close handlers nest too deeply)",
                     lua_tostring(L, -1), fn);
            w->kill = KILL_CSTACK;
            lh_decide(w, DEC_KILL, w->killmsg);
        }
        lua_sethook(L, lh_hook, LUA_MASKCOUNT, 1);
        lua_pushstring(L, w->killmsg);
        lua_error(L);
    }
    w->co_nest++;
    return w;
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
    nest_enter(L, "coroutine.close");
    lua_pushvalue(L, lua_upvalueindex(1)); /* the stock coroutine.close */
    lua_insert(L, 1);
    /* protected, so that the count is right also when it raises ("cannot
     * close a running coroutine"); the error goes on unchanged */
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    w->co_nest--;
    if (st != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

/* coroutine.resume, counted like close: a __close handler that resumes a
 * coroutine that closes another one nests the same way. */
static int sb_coresume(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD); /* the stock one cannot raise after this */
    lua_worker *w = nest_enter(L, "coroutine.resume");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    w->co_nest--;
    return lua_gettop(L);
}

static int cowrap_call(lua_State *L)
{ /* lcorolib's auxwrap + auxresume, with the rule above */
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int narg = lua_gettop(L), nres;
    if (!lua_checkstack(co, narg))
        return luaL_error(L, "too many arguments to resume");
    lua_worker *w = nest_enter(L, "coroutine.wrap");
    lua_xmove(L, co, narg);
    int st = lua_resume(co, L, narg, &nres);
    if (st != LUA_OK && st != LUA_YIELD) {
        lua_xmove(co, L, 1); /* the error */
        int cst = lua_status(co);
        if (cst != LUA_OK && cst != LUA_YIELD && !w->kill)
            lua_resetthread(co); /* close its tbc variables; keeps the first error */
    }
    w->co_nest--; /* nothing below runs Lua code */
    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
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

void lh_install_coroutine(lua_State *L, int base)
{
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 0);
    lua_getfield(L, -1, "close");
    lua_pushcclosure(L, sb_coclose, 1);
    lua_setfield(L, -2, "close");
    lua_getfield(L, -1, "resume");
    lua_pushcclosure(L, sb_coresume, 1);
    lua_setfield(L, -2, "resume");
    lh_set_fn(L, "wrap", sb_cowrap);
    lh_make_proxy(L, LUA_COLIBNAME);
    lua_setfield(L, base, LUA_COLIBNAME);
}
