/* The json module of the sandbox: json.encode, json.decode, json.array and
 * json.null, written against the Lua API only, so that every byte they
 * allocate (decoded tables and strings, the encoder's output buffer) is Lua
 * memory under the state's cap (issue 20: a jansson tree of a 10 MB text took
 * agentd from 20 to 236 MB outside the cap). Nesting is bounded to
 * JSON_MAX_DEPTH levels both ways, so the C recursion here is too.
 *
 * The text produced is jansson's, which this module used before: compact
 * ("," and ":") or indented (",\n" + n spaces per level, ": "), reals with
 * 17 significant digits and ".0" on integral ones, exponents without "+" or
 * leading zeros, "\uXXXX" (upper-case hex) for control characters, "/" and
 * non-ASCII UTF-8 as they are. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 128

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

/* ---- encoding ---- */

/* The output buffer is a Lua userdata kept in one stack slot and replaced by
 * a larger one when it fills up: counted by the allocator, and collected if
 * an error unwinds. */
typedef struct enc {
    lua_State *L;
    int slot;
    char *b;
    size_t n, cap;
    int indent;
    bool sort;
} enc;

static void enc_grow(enc *e, size_t need)
{
    size_t cap = e->cap ? e->cap : 256;
    while (cap - e->n < need) {
        if (cap > ((size_t)-1) / 2)
            luaL_error(e->L, "json.encode: text too large");
        cap *= 2;
    }
    char *nb = lua_newuserdatauv(e->L, cap, 0);
    if (e->n)
        memcpy(nb, e->b, e->n);
    lua_replace(e->L, e->slot);
    e->b = nb;
    e->cap = cap;
}

static void put(enc *e, const char *s, size_t n)
{
    if (e->cap - e->n < n)
        enc_grow(e, n);
    memcpy(e->b + e->n, s, n);
    e->n += n;
}

static void put_c(enc *e, char c) { put(e, &c, 1); }

/* jansson's dump_indent: a newline and depth*indent spaces when indenting,
 * else one space where `space` asks for it (never in compact mode, the only
 * unindented mode json.encode has). */
static void put_indent(enc *e, int depth)
{
    if (!e->indent)
        return;
    size_t n = (size_t)depth * (size_t)e->indent;
    if (e->cap - e->n < n + 1)
        enc_grow(e, n + 1);
    e->b[e->n++] = '\n';
    memset(e->b + e->n, ' ', n);
    e->n += n;
}

static void put_string(enc *e, const char *s, size_t len, const char *what)
{
    if (!utf8_valid(s, len))
        luaL_error(e->L, "%s", what);
    put_c(e, '"');
    size_t run = 0; /* bytes copied as they are, flushed in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04X", c);
                esc = u;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        put(e, s + i - run, run);
        run = 0;
        put(e, esc, strlen(esc));
    }
    put(e, s + len - run, run);
    put_c(e, '"');
}

/* jansson's jsonp_dtostr with precision 17. */
static void put_real(enc *e, double d)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof buf - 3)
        luaL_error(e->L, "json.encode: cannot format a number");
    if (!strpbrk(buf, ".e")) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    char *x = strchr(buf, 'e');
    if (x) { /* "e+05" -> "e5", "e-05" -> "e-5" */
        char *start = x + 1, *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)(buf + n - end) + 1);
            n -= (int)(end - start);
        }
    }
    put(e, buf, (size_t)n);
}

/* Key at idx as text (numbers formatted here: lua_tolstring would confuse
 * lua_next); numkey is the buffer for numbers. */
static const char *key_text(lua_State *L, int idx, char *numkey, size_t cap, size_t *len)
{
    int kt = lua_type(L, idx);
    if (kt == LUA_TSTRING)
        return lua_tolstring(L, idx, len);
    if (kt != LUA_TNUMBER) {
        luaL_error(L, "json.encode: cannot use a %s as an object key", luaL_typename(L, idx));
        return NULL;
    }
    if (lua_isinteger(L, idx))
        snprintf(numkey, cap, "%lld", (long long)lua_tointeger(L, idx));
    else
        snprintf(numkey, cap, "%.14g", (double)lua_tonumber(L, idx));
    *len = strlen(numkey);
    return numkey;
}

static void encode_value(enc *e, int idx, int depth);

static void encode_member(enc *e, int kidx, int vidx, int depth, bool first)
{
    char numkey[64];
    size_t klen;
    const char *key = key_text(e->L, kidx, numkey, sizeof numkey, &klen);
    if (!first)
        put_c(e, ',');
    put_indent(e, depth + 1);
    put_string(e, key, klen, "json.encode: object key is not valid UTF-8");
    put(e, e->indent ? ": " : ":", e->indent ? 2 : 1);
    encode_value(e, vidx, depth + 1);
}

typedef struct sort_key {
    const char *s;
    size_t len;
    lua_Integer i; /* index in the keys table */
} sort_key;

static int cmp_key(const void *a, const void *b)
{
    const sort_key *x = a, *y = b;
    int r = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return r ? r : (x->len > y->len) - (x->len < y->len);
}

/* Object members in key order (sort_keys): the keys are gathered in a Lua
 * table (anchoring them), their texts sorted in a userdata array. */
static void encode_sorted(enc *e, int t, int depth, lua_Integer count)
{
    lua_State *L = e->L;
    lua_createtable(L, (int)(count < INT32_MAX ? count : 0), 0); /* original keys */
    int keys = lua_gettop(L);
    lua_createtable(L, (int)(count < INT32_MAX ? count : 0), 0); /* their texts */
    int texts = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, n);
        char numkey[64];
        size_t klen;
        const char *k = key_text(L, -1, numkey, sizeof numkey, &klen);
        lua_pushlstring(L, k, klen);
        lua_rawseti(L, texts, n);
    }
    if ((size_t)n > ((size_t)-1) / sizeof(sort_key))
        luaL_error(L, "json.encode: object too large");
    sort_key *sk = lua_newuserdatauv(L, (size_t)n * sizeof *sk + 1, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, texts, i);
        sk[i - 1].s = lua_tolstring(L, -1, &sk[i - 1].len); /* anchored by texts */
        sk[i - 1].i = i;
        lua_pop(L, 1);
    }
    qsort(sk, (size_t)n, sizeof *sk, cmp_key);
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, keys, sk[i].i);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        encode_member(e, lua_gettop(L) - 1, lua_gettop(L), depth, i == 0);
        lua_pop(L, 2);
    }
    lua_settop(L, keys - 1);
}

static void encode_table(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > JSON_MAX_DEPTH)
        luaL_error(L, "json.encode: nesting deeper than %d levels (or a cycle)", JSON_MAX_DEPTH);
    luaL_checkstack(L, 8, "json.encode: nesting too deep");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL);
    bool is_null = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    if (is_null) {
        put(e, "null", 4);
        return;
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
        put_c(e, '[');
        for (lua_Integer i = 1; i <= max; i++) {
            if (i > 1)
                put_c(e, ',');
            put_indent(e, depth + 1);
            lua_rawgeti(L, idx, i);
            encode_value(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        if (max > 0)
            put_indent(e, depth);
        put_c(e, ']');
        return;
    }
    put_c(e, '{');
    if (e->sort) {
        encode_sorted(e, idx, depth, count);
    } else {
        bool first = true;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            encode_member(e, lua_gettop(L) - 1, lua_gettop(L), depth, first);
            first = false;
            lua_pop(L, 1);
        }
    }
    if (count > 0)
        put_indent(e, depth);
    put_c(e, '}');
}

static void encode_value(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        put(e, "null", 4);
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put(e, "true", 4);
        else
            put(e, "false", 5);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            char buf[32];
            int n = snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, idx));
            put(e, buf, (size_t)n);
        } else {
            lua_Number d = lua_tonumber(L, idx);
            if (!isfinite(d))
                luaL_error(L, "json.encode: cannot encode NaN or infinity");
            put_real(e, (double)d);
        }
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        put_string(e, s, len,
                   "json.encode: string is not valid UTF-8 (binary data must be encoded first, e.g. as hex)");
        break;
    }
    case LUA_TTABLE:
        encode_table(e, idx, depth);
        break;
    default:
        luaL_error(L, "json.encode: cannot encode a %s value", luaL_typename(L, idx));
    }
}

int lh_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    enc e = {.L = L};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "indent");
        lua_Integer indent = luaL_optinteger(L, -1, 0);
        lua_getfield(L, 2, "sort_keys");
        e.sort = lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (indent < 0 || indent > 31)
            return luaL_error(L, "json.encode: indent must be 0-31");
        e.indent = (int)indent;
    }
    lua_settop(L, 1);
    lua_pushnil(L); /* 2: the output buffer */
    e.slot = 2;
    encode_value(&e, 1, 0);
    lua_pushlstring(L, e.b ? e.b : "", e.n);
    return 1;
}

/* ---- decoding ---- */

typedef struct dec {
    lua_State *L;
    const char *s, *p, *end;
} dec;

/* Raises "json.decode: <why> (line L, column C)" for the position p. */
static int dec_error(dec *d, const char *p, const char *why)
{
    int line = 1;
    const char *ls = d->s;
    for (const char *q = d->s; q < p && q < d->end; q++)
        if (*q == '\n') {
            line++;
            ls = q + 1;
        }
    return luaL_error(d->L, "json.decode: %s (line %d, column %d)", why, line, (int)(p - ls) + 1);
}

static void skip_ws(dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string (d->p at the opening quote) -> pushed. Unescaped strings are
 * pushed straight from the text; others through a luaL_Buffer (Lua memory;
 * nothing else is pushed meanwhile). */
static void decode_string(dec *d)
{
    const char *start = ++d->p, *p = start;
    bool escaped = false;
    while (p < d->end && *p != '"') { /* validate, find the end */
        unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            dec_error(d, p, c ? "control character in string" : "NUL byte in string (use \\u0000)");
        if (c == '\\') {
            escaped = true;
            p += 2;
            continue;
        }
        size_t l = utf8_seq((const unsigned char *)p, (size_t)(d->end - p));
        if (!l)
            dec_error(d, p, "invalid UTF-8 in string");
        p += l;
    }
    if (p >= d->end)
        dec_error(d, start - 1, "unterminated string");
    d->p = p + 1;
    if (!escaped) {
        lua_pushlstring(d->L, start, (size_t)(p - start));
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    for (const char *q = start; q < p;) {
        const char *run = q;
        while (q < p && *q != '\\')
            q++;
        luaL_addlstring(&b, run, (size_t)(q - run));
        if (q >= p)
            break;
        char c = q[1], out[4];
        q += 2;
        switch (c) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            int u = p - q >= 4 ? hex4(q) : -1;
            if (u < 0)
                dec_error(d, q - 2, "invalid \\u escape");
            q += 4;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate needs its low half */
                int lo = p - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    dec_error(d, q - 6, "invalid Unicode escape (lone surrogate)");
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                q += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                dec_error(d, q - 6, "invalid Unicode escape (lone surrogate)");
            }
            luaL_addlstring(&b, out, utf8_put(out, cp));
            break;
        }
        default:
            dec_error(d, q - 2, "invalid escape");
        }
    }
    luaL_pushresult(&b);
}

static void decode_number(dec *d)
{
    const char *start = d->p, *p = start;
    bool real = false;
    if (p < d->end && *p == '-')
        p++;
    if (p < d->end && *p == '0')
        p++;
    else if (p < d->end && *p >= '1' && *p <= '9')
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    else
        dec_error(d, start, "invalid number");
    if (p < d->end && *p == '.') {
        real = true;
        if (++p >= d->end || !(*p >= '0' && *p <= '9'))
            dec_error(d, start, "invalid number");
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < d->end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < d->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= d->end || !(*p >= '0' && *p <= '9'))
            dec_error(d, start, "invalid number");
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    /* Converted from a NUL-terminated copy of the token, never from the text
     * itself: strtod may scan it to its end (ASan's interceptors do), which
     * made decoding quadratic. */
    size_t n = (size_t)(p - start);
    char small[128], *tok = small;
    if (n >= sizeof small)
        tok = lua_newuserdatauv(d->L, n + 1, 0); /* Lua memory; popped below */
    memcpy(tok, start, n);
    tok[n] = '\0';
    char *endp;
    errno = 0;
    lua_Integer iv = 0;
    lua_Number rv = 0;
    if (!real) {
        long long v = strtoll(tok, &endp, 10);
        if (errno == ERANGE)
            dec_error(d, start, "too big integer");
        iv = (lua_Integer)v;
    } else {
        double v = strtod(tok, &endp);
        if (errno == ERANGE && isinf(v))
            dec_error(d, start, "real number overflow");
        rv = (lua_Number)v;
    }
    if (endp != tok + n)
        dec_error(d, start, "invalid number");
    if (tok != small)
        lua_pop(d->L, 1);
    if (real)
        lua_pushnumber(d->L, rv);
    else
        lua_pushinteger(d->L, iv);
    d->p = p;
}

static bool match_word(dec *d, const char *w, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, w, n) != 0)
        return false;
    d->p += n;
    return true;
}

static void decode_value(dec *d, int depth)
{
    lua_State *L = d->L;
    skip_ws(d);
    if (d->p >= d->end)
        dec_error(d, d->p, "unexpected end of input");
    if (depth > JSON_MAX_DEPTH) /* the root is depth 0 */
        dec_error(d, d->p, "nesting deeper than 128 levels");
    luaL_checkstack(L, 6, "json.decode: nesting too deep");
    char c = *d->p;
    switch (c) {
    case '{': {
        d->p++;
        lua_newtable(L);
        skip_ws(d);
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            return;
        }
        for (;;) {
            skip_ws(d);
            if (d->p >= d->end || *d->p != '"')
                dec_error(d, d->p, "string or '}' expected");
            decode_string(d);
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':')
                dec_error(d, d->p, "':' expected");
            d->p++;
            decode_value(d, depth + 1);
            lua_rawset(L, -3); /* the last of duplicate keys wins */
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                return;
            }
            dec_error(d, d->p, "',' or '}' expected");
        }
    }
    case '[': {
        d->p++;
        lua_newtable(L);
        skip_ws(d);
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAYMT); /* keep [] an array when encoded again */
            lua_setmetatable(L, -2);
            return;
        }
        for (lua_Integer i = 1;; i++) {
            decode_value(d, depth + 1);
            lua_rawseti(L, -2, i);
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == ']') {
                d->p++;
                return;
            }
            dec_error(d, d->p, "',' or ']' expected");
        }
    }
    case '"':
        decode_string(d);
        return;
    case 't':
        if (match_word(d, "true", 4)) {
            lua_pushboolean(L, 1);
            return;
        }
        break;
    case 'f':
        if (match_word(d, "false", 5)) {
            lua_pushboolean(L, 0);
            return;
        }
        break;
    case 'n':
        if (match_word(d, "null", 4)) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL);
            return;
        }
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            decode_number(d);
            return;
        }
    }
    dec_error(d, d->p, "invalid token");
}

int lh_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1); /* anchors the text */
    dec d = {.L = L, .s = s, .p = s, .end = s + len};
    decode_value(&d, 0);
    skip_ws(&d);
    if (d.p < d.end)
        dec_error(&d, d.p, "end of input expected");
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
    lh_set_fn(L, "decode", lh_json_decode);
    lh_set_fn(L, "array", json_array_mark);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &K_NULL);
    lua_setfield(L, -2, "null");
    lh_make_proxy(L, "json");
    lua_setfield(L, base, "json");
}
