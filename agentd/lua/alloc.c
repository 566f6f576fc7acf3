/* The memory and time limits of a Lua state: the capped allocator (with its
 * per-state free lists of small blocks) and the count hook that stops a task
 * on its time limit, on cancellation or after the allocator refused memory. */
#include "internal.h"

#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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
void lh_state_close(lua_worker *w, lua_State *L)
{
    lua_close(L);
    small_drain(w);
}

void *lh_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
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

int lh_panic(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    jet_error("lua: unprotected error (bug in agentd's Lua host): %s", m ? m : "?");
    abort();
    return 0;
}

/* ---- the count hook: time limit, cancellation, memory trip ---- */

void lh_hook(lua_State *L, lua_Debug *ar)
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
    lua_sethook(L, lh_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, w->killmsg);
    lua_error(L);
}
