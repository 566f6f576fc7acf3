/* The Lua sandbox: what a handler's globals are. Read-only proxies of the
 * libraries, the replaced base functions (load, setmetatable, rawset,
 * collectgarbage, xpcall, print), stubs naming what is forbidden, the table
 * and string wrappers for C loops the count hook cannot see, the time module,
 * and the install_* steps that build all of it into a new state. */
#include "internal.h"

#include <jetsched/log.h>

#include <stdbool.h>
#include <string.h>
#include <time.h>

/* ---- sandbox helpers ---- */

void lh_mark_protected(lua_State *L, int idx)
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

int lh_ro_newindex(lua_State *L)
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
void lh_make_proxy_index(lua_State *L, const char *name, lua_CFunction index)
{
    int real = lua_gettop(L);
    lua_newtable(L); /* proxy */
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, real);
    if (index)
        lua_pushcclosure(L, index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, lh_ro_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, proxy_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lh_mark_protected(L, -1);
    lua_replace(L, real);
}

void lh_make_proxy(lua_State *L, const char *name) { lh_make_proxy_index(L, name, NULL); }

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
    lh_mark_protected(L, -1);
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
void lh_push_new_env(lua_State *L)
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
        lh_push_new_env(L);
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

/* ---- the install_* steps (run by host.c's setup_state, in this order) ---- */

static void copy_global(lua_State *L, int base, const char *name)
{
    lua_getglobal(L, name);
    lua_setfield(L, base, name);
}

/* Opens a library and leaves its (real) table on the stack. */
static void open_lib(lua_State *L, const char *name, lua_CFunction f) { luaL_requiref(L, name, f, 0); }

/* The registry's set of protected tables (weak keys). */
void lh_install_registry(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_PROTECTED);
}

/* The real globals (for the stock functions), then the sandbox base: the
 * allowed base functions, the replaced ones and the file-access stubs. */
int lh_install_base(lua_State *L)
{
    luaL_requiref(L, "_G", luaopen_base, 1);
    lua_pop(L, 1);
    lua_newtable(L); /* the sandbox base */
    int base = lua_gettop(L);
    static const char *const allowed[] = {"assert", "error", "getmetatable", "ipairs", "next", "pairs",
                                          "pcall", "rawequal", "rawlen", "rawget", "select", "tonumber",
                                          "tostring", "type", "_VERSION", NULL};
    for (int i = 0; allowed[i]; i++)
        copy_global(L, base, allowed[i]);
    lh_set_fn(L, "setmetatable", sb_setmetatable);
    lh_set_fn(L, "xpcall", sb_xpcall);
    lh_set_fn(L, "rawset", sb_rawset);
    lh_set_fn(L, "collectgarbage", sb_collectgarbage);
    lh_set_fn(L, "load", sb_load);
    lh_set_fn(L, "print", sb_print);
    push_forbidden_fn(L, "dofile", "no file access");
    lua_setfield(L, base, "dofile");
    push_forbidden_fn(L, "loadfile", "no file access");
    lua_setfield(L, base, "loadfile");
    push_forbidden_fn(L, "require", "no package library: a handler is one self-contained file");
    lua_setfield(L, base, "require");
    return base;
}

/* string: without dump; its metatable locked. */
void lh_install_string(lua_State *L, int base)
{
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
    lh_make_proxy(L, "string");
    lua_setfield(L, base, "string");
}

/* table (with the wrappers of "C loops the hook cannot see"), math, utf8. */
void lh_install_libs(lua_State *L, int base)
{
    static const struct {
        const char *name;
        lua_CFunction open;
    } libs[] = {{LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        open_lib(L, libs[i].name, libs[i].open);
        if (libs[i].open == luaopen_table)
            wrap_table_lib(L);
        lh_make_proxy(L, libs[i].name);
        lua_setfield(L, base, libs[i].name);
    }
}

/* os: the time functions only. */
void lh_install_os(lua_State *L, int base)
{
    open_lib(L, LUA_OSLIBNAME, luaopen_os);
    int real_os = lua_gettop(L);
    lua_createtable(L, 0, 4);
    static const char *const os_allowed[] = {"time", "clock", "date", "difftime", NULL};
    for (int i = 0; os_allowed[i]; i++) {
        lua_getfield(L, real_os, os_allowed[i]);
        lua_setfield(L, -2, os_allowed[i]);
    }
    lh_make_proxy_index(L, "os", os_index); /* a missing os.* names what is forbidden */
    lua_setfield(L, base, "os");
    lua_settop(L, base);
}

/* Stubs for the libraries the sandbox does not have. */
void lh_install_forbidden(lua_State *L, int base)
{
    push_forbidden_lib(L, "io", "no io library: use ctx and the task payload");
    lua_setfield(L, base, "io");
    push_forbidden_lib(L, "debug", "no debug library");
    lua_setfield(L, base, "debug");
    push_forbidden_lib(L, "package", "no package library");
    lua_setfield(L, base, "package");
}

void lh_install_time(lua_State *L, int base)
{
    lua_createtable(L, 0, 2);
    lh_set_fn(L, "now", time_now);
    lh_set_fn(L, "monotonic", time_monotonic);
    lh_make_proxy(L, "time");
    lua_setfield(L, base, "time");
}

/* The metatable of every task environment: reads fall through to base. */
void lh_install_env_metatable(lua_State *L, int base)
{
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_ENVMT);
}
