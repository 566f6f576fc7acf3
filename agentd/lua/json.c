/* The json module of the sandbox (json.encode, json.decode, json.array,
 * json.null) on jansson, and the holder userdata that frees C resources a Lua
 * error would otherwise leak. */
#include "internal.h"

#include <jansson.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 128

holder *lh_holder_new(lua_State *L)
{
    holder *hd = lua_newuserdatauv(L, sizeof *hd, 0);
    memset(hd, 0, sizeof *hd);
    luaL_setmetatable(L, HOLDER_MT);
    return hd;
}

void lh_holder_done(holder *hd)
{
    json_decref(hd->json);
    hd->json = NULL;
    free(hd->text);
    hd->text = NULL;
    free(hd->buf);
    hd->buf = NULL;
}

static int holder_gc(lua_State *L)
{
    lh_holder_done(luaL_checkudata(L, 1, HOLDER_MT));
    return 0;
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

int lh_json_encode(lua_State *L)
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
    holder *hd = lh_holder_new(L);
    int kind;
    lua_Integer n;
    hd->json = json_shell(L, 1, 0, &kind, &n);
    if (kind)
        json_fill(L, 1, hd->json, kind, n, 0);
    hd->text = json_dumps(hd->json, flags);
    if (!hd->text)
        return luaL_error(L, "json.encode: out of memory");
    lua_pushstring(L, hd->text);
    lh_holder_done(hd);
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
    holder *hd = lh_holder_new(L);
    json_error_t je;
    hd->json = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!hd->json)
        return luaL_error(L, "json.decode: %s (line %d, column %d)", je.text, je.line, je.column);
    json_push(L, hd->json, 0);
    lh_holder_done(hd);
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

void lh_install_json(lua_State *L, int base)
{
    luaL_newmetatable(L, HOLDER_MT);
    lh_set_fn(L, "__gc", holder_gc);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    lua_createtable(L, 0, 1); /* marker metatable of JSON arrays */
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_ARRAYMT);
    lua_newtable(L); /* json.null */
    lua_createtable(L, 0, 3);
    lh_set_fn(L, "__tostring", null_tostring);
    lua_pushliteral(L, "json.null");
    lua_pushcclosure(L, lh_ro_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lh_mark_protected(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &K_NULL);
    lua_createtable(L, 0, 4);
    lh_set_fn(L, "encode", lh_json_encode);
    lh_set_fn(L, "decode", json_decode);
    lh_set_fn(L, "array", json_array_mark);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL);
    lua_setfield(L, -2, "null");
    lh_make_proxy(L, "json");
    lua_setfield(L, base, "json");
}
