/* The coroutine library of the sandbox: the stock functions behind a
 * read-only proxy, with coroutine.close and coroutine.wrap replaced so that
 * the __close handlers of a coroutine the hook killed do not run unstoppable. */
#include "internal.h"

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

void lh_install_coroutine(lua_State *L, int base)
{
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 0);
    lua_getfield(L, -1, "close");
    lua_pushcclosure(L, sb_coclose, 1);
    lua_setfield(L, -2, "close");
    lh_set_fn(L, "wrap", sb_cowrap);
    lh_make_proxy(L, LUA_COLIBNAME);
    lua_setfield(L, base, LUA_COLIBNAME);
}
