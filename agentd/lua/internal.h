/* agentd's Lua host: the private header shared by the files of agentd/lua/
 * (the public API is host.h; docs/LUA.md is the script writer's view).
 *
 * Files: host.c (states and their setup, running a task, the per-thread
 * workers, the public API), catalog.c (scripts, directory scans, reload),
 * alloc.c (the capped allocator and the count hook), sandbox.c (the sandboxed
 * globals and their install_* steps), coro.c (the coroutine library and the C
 * stack guard), json.c (the json module), ctx.c (the ctx table and the task
 * table a handler gets).
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
 * Process-wide state: only g_mu and the pthread key of host.c. A thread's
 * exit destructor must reach workers of hosts that may be closing at that
 * moment, so that lock cannot live in a host. Everything else hangs off the
 * host (catalog, script versions, stats) or the worker (state, budget, task).
 *
 * Shutdown. A worker still inside lua_host_run() when the host closes (a
 * thread agentd abandoned) keeps its state; the host is then not freed. */
#ifndef AGENTD_LUA_INTERNAL_H
#define AGENTD_LUA_INTERNAL_H

#include "host.h"

#include <jetsched/names.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_SCRIPT_BYTES (8u << 20)  /* larger handler files are refused */
#define MIN_MEM_LIMIT (1u << 20)
#define MEM_RESERVE (256u << 10)     /* granted after a trip, to raise and unwind */
#define MSG_MAX 4096
#define HOLDER_MT "jetsched.holder"
#define SMALL_MAX 256                /* blocks up to this size are recycled per state (see lh_alloc) */
#define SMALL_CLASSES (SMALL_MAX / 16)
#define SMALL_KEEP_BYTES (32u << 10) /* free small blocks a state keeps for reuse */

/* Registry keys: the addresses of these (constant) bytes. */
typedef struct lh_keys {
    char cache, envmt, ctx, curenv, curfn, protected_set, null, arraymt;
} lh_keys;
extern const lh_keys LH_KEYS;
#define K_CACHE (LH_KEYS.cache)
#define K_ENVMT (LH_KEYS.envmt)
#define K_CTX (LH_KEYS.ctx)
#define K_CURENV (LH_KEYS.curenv)
#define K_CURFN (LH_KEYS.curfn)
#define K_PROTECTED (LH_KEYS.protected_set)
#define K_NULL (LH_KEYS.null)
#define K_ARRAYMT (LH_KEYS.arraymt)

/* ---- scripts and catalogs (catalog.c) ---- */

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

typedef struct lh_scan_counts {
    size_t added, changed, removed, unavailable;
} lh_scan_counts;

/* ---- hosts and workers (host.c) ---- */

enum { KILL_NONE = 0, KILL_TIMEOUT, KILL_CANCEL, KILL_MEMORY, KILL_CSTACK };
enum { DEC_NONE = 0, DEC_FAIL, DEC_RETRY, DEC_KILL, DEC_RATE_LIMITED };

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
    atomic_uint_fast64_t next_version; /* of scripts: unique per host (they key a state's chunk cache) */
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
    uintptr_t cstack_floor;          /* C stack guard of coro.c (0 = bounds unknown) */
    int co_nest;                     /* coroutine calls nested now (coro.c) */
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

static inline lua_worker *worker_of(lua_State *L) { return *(lua_worker **)lua_getextraspace(L); }

static inline void copy_msg(char *dst, size_t len, const char *src) { snprintf(dst, len, "%s", src ? src : ""); }

/* host.c */
lua_State *lh_state_new(lua_worker *w, size_t limit, char *err, size_t errlen);
void lh_worker_reset_task(lua_worker *w);
int lh_run_in_state(lua_worker *w, int interval);
void lh_set_fn(lua_State *L, const char *name, lua_CFunction f);

/* catalog.c */
void lh_catalog_release(catalog *c);
script *lh_catalog_find(const catalog *c, const char *name);
catalog *lh_host_catalog(lua_host *h);
jet_status lh_scan_dir(lua_host *h, const catalog *old, catalog **out, lh_scan_counts *cnt, jet_err *err);

/* alloc.c */
void *lh_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void lh_state_close(lua_worker *w, lua_State *L);
int lh_panic(lua_State *L);
void lh_hook(lua_State *L, lua_Debug *ar);

/* sandbox.c: the install_* steps of a new state, in the order host.c runs them */
void lh_install_registry(lua_State *L);
int lh_install_base(lua_State *L); /* pushes the sandbox base table, returns its index */
void lh_install_string(lua_State *L, int base);
void lh_install_libs(lua_State *L, int base);
void lh_install_os(lua_State *L, int base);
void lh_install_forbidden(lua_State *L, int base);
void lh_install_time(lua_State *L, int base);
void lh_install_env_metatable(lua_State *L, int base);
void lh_mark_protected(lua_State *L, int idx);
void lh_make_proxy(lua_State *L, const char *name);
/* stack: real -> proxy, whose __index is a closure of `index` over real. */
void lh_make_proxy_index(lua_State *L, const char *name, lua_CFunction index);
int lh_ro_newindex(lua_State *L);
void lh_push_new_env(lua_State *L);

/* coro.c */
void lh_install_coroutine(lua_State *L, int base);
void lh_cstack_init(lua_worker *w); /* records the calling thread's stack bounds in w */

/* json.c */
void lh_install_json(lua_State *L, int base);
int lh_json_encode(lua_State *L);
int lh_json_decode(lua_State *L);

/* ctx.c */
void lh_install_ctx(lua_State *L);
void lh_decide(lua_worker *w, int kind, const char *msg);
void lh_push_task(lua_State *L, const jet_task *t);

#endif
