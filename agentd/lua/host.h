/* agentd's Lua 5.4 handler host: the public API (DESIGN §7, docs/LUA.md).
 *
 * Every file `<handler>.lua` of one directory is a handler (the name must be
 * a valid handler name: 1-64 of [a-z0-9_-]; other files are skipped with a
 * warning). A handler file returns `{ handle = function(task, ctx) ... end }`.
 *
 * Lifecycle:
 *
 *     lua_host_options opt;
 *     lua_host_options_init(&opt);            // defaults, see below
 *     opt.dir = "/usr/share/jetsched/lua";
 *     lua_host *h;
 *     if (lua_host_open(&opt, &host_api, &h, &err) != JET_OK) ...;
 *     ... worker threads, per task:
 *         if (lua_host_has(h, name))            outcome = lua_host_run(h, task, ctx);
 *         else if (lua_host_unavailable(h, name, why, sizeof why)) -> retry later with `why`
 *     ... SIGHUP: lua_host_reload(h, &err);
 *     ... after the workers stopped: lua_host_close(h);
 *
 * State topology: one lua_State per (host, worker thread), created lazily by
 * the first lua_host_run() on that thread and freed when the thread exits
 * (a pthread key destructor), by lua_host_thread_exit(), or by
 * lua_host_close(). No state is ever shared between threads, so
 * lua_host_run() needs no lock around Lua. Each task gets a fresh global
 * environment (_ENV) whose reads fall through to a read-only sandbox base;
 * the script's main chunk is run again for each task (it is compiled once per
 * state), so neither globals nor file-level locals survive a task.
 *
 * Limits: a count hook every `instruction_check_interval` VM instructions
 * stops the task once its time limit (task->timeout_ms from the start of
 * lua_host_run) passed or api->cancelled(ctx) is true, and then keeps raising
 * on every instruction so that pcall cannot swallow it. A custom allocator
 * caps each state at `mem_limit_bytes`; a task that hits the cap fails
 * ("memory limit") and its state is recycled. Work done inside a single C
 * library call (e.g. a pathological string.find pattern) cannot be
 * interrupted by the hook: see docs/LUA.md "Limits".
 *
 * Threading: lua_host_run(), lua_host_has(), lua_host_unavailable(),
 * lua_host_count(), lua_host_name_at(), lua_host_foreach() and
 * lua_host_stats() may be called from any number of threads at once, also
 * while lua_host_reload() runs on another thread. lua_host_reload() calls are
 * serialized internally. lua_host_open() and lua_host_close() are not
 * thread-safe: close only once no thread is inside lua_host_run() and none
 * will call it again. */
#ifndef AGENTD_LUA_HOST_H
#define AGENTD_LUA_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jetsched/plugin.h>
#include <jetsched/status.h>

typedef struct lua_host lua_host;

typedef struct lua_host_options {
    /* Directory of the handler scripts (agent.lua_dir). Copied by open. A
     * missing directory is not an error: the host starts empty (a warning is
     * logged) and a later reload picks the scripts up. */
    const char *dir;
    /* Hard cap on the memory of one lua_State (lua.memory_limit; default
     * 64 MiB, minimum 1 MiB). */
    size_t mem_limit_bytes;
    /* Recycle (close and recreate) a state after this many tasks
     * (lua.recycle_after_tasks; default 10000; 0 = never). */
    int recycle_after_tasks;
    /* Recycle a state when its memory after a task, after a full garbage
     * collection, still exceeds this (lua.recycle_after_memory; default
     * 16 MiB; 0 = never). */
    size_t recycle_after_bytes;
    /* VM instructions between two checks of the time limit and of
     * cancellation (lua.instruction_check_interval; default 1000; 1-1000000). */
    int instruction_check_interval;
    /* Time budget for running a script's main chunk when it is checked at
     * open/reload (default 1000 ms). */
    int load_timeout_ms;
} lua_host_options;

/* Snapshot of the host's counters (all since open). */
typedef struct lua_host_stats {
    uint64_t tasks;             /* lua_host_run() calls that ran a script */
    uint64_t errors;            /* tasks that ended in error() or a runtime error */
    uint64_t timeouts;          /* tasks stopped by the hook at their time limit */
    uint64_t cancels;           /* tasks stopped by the hook after cancellation */
    uint64_t memory_errors;     /* tasks stopped by the memory cap */
    uint64_t states_created;    /* lua_States created for tasks (not the load checks) */
    uint64_t states_recycled;   /* ... closed by the recycling rules or after a memory error */
    uint64_t states_live;       /* ... currently open */
    uint64_t reloads;           /* successful lua_host_reload() calls */
    uint64_t memory_bytes;      /* bytes held by the open states, as of their last task */
} lua_host_stats;

/* Fills *opt with the defaults (dir = NULL). */
void lua_host_options_init(lua_host_options *opt);

/* Scans opt->dir and compiles every handler script once, in a throwaway
 * sandboxed state, running its main chunk (within load_timeout_ms) to check
 * that it returns a table with a `handle` function. A script that fails
 * (syntax error, error at load, wrong return value, unreadable file) is kept
 * as *unavailable* with its message, e.g. "hello.lua:3: '=' expected near
 * 'x'"; it never makes open fail. `api` must outlive the host. On success
 * *out is set; on failure (invalid options: JET_ERR_INVALID; out of memory:
 * JET_ERR_NOMEM; an unreadable directory: JET_ERR_IO) nothing is kept. */
jet_status lua_host_open(const lua_host_options *opt, const jet_host_api *api, lua_host **out, jet_err *err);

/* True when `handler` has a script that loaded fine and can run now. */
bool lua_host_has(lua_host *h, const char *handler);

/* True when `handler` has a script that cannot run (syntax error, error at
 * load, unreadable): writes the reason ("script.lua:LINE: ...") into why
 * (len bytes, NUL-terminated; why may be NULL). False for a handler without a
 * script and for a runnable one. */
bool lua_host_unavailable(lua_host *h, const char *handler, char *why, size_t len);

/* Runs one task in the calling thread's state (created on first use) and
 * returns its outcome, having reported through the host API given to open:
 *   - return value: string/number -> set_result; table -> set_result(JSON);
 *     nil, true or nothing -> no result; false -> JET_RETRY;
 *   - error(...) or a runtime error -> set_error("script.lua:LINE: msg"), JET_RETRY;
 *   - ctx.fail(msg) -> set_error, JET_FAIL;
 *   - ctx.retry_in(s[, msg]) -> retry_in(s*1000), set_error, JET_RETRY;
 *   - time limit / cancellation / memory cap -> set_error, JET_RETRY.
 * A handler without a runnable script: set_error(reason), JET_RETRY. */
jet_outcome lua_host_run(lua_host *h, const jet_task *task, jet_task_ctx *ctx);

/* Rescans the directory: new scripts are added, changed ones (content
 * differs) recompiled and checked, removed ones dropped. Tasks running keep
 * the code they started with; every thread's state switches to the new set at
 * its next task. Fails (JET_ERR_IO, nothing changed) only when the directory
 * exists but cannot be read; a missing directory empties the host (with a
 * warning). Logs a summary line. */
jet_status lua_host_reload(lua_host *h, jet_err *err);

/* The same, switching to directory `dir` first when it differs (agent.lua_dir
 * is reloadable); dir NULL = the current one. Scripts of the new directory
 * whose text equals a script of the same name in the old one keep their
 * compiled code. */
jet_status lua_host_reload_from(lua_host *h, const char *dir, jet_err *err);

/* Number of handler scripts, runnable or not. */
size_t lua_host_count(lua_host *h);

/* Copies the name of script i (0 <= i < count, in strcmp order) into buf
 * (len >= JET_NAME_MAX + 1 recommended); false when i is out of range (the
 * set may have changed by a concurrent reload). */
bool lua_host_name_at(lua_host *h, size_t i, char *buf, size_t len);

/* Calls fn(name, available, closure) for every script, in name order, on a
 * consistent snapshot. `name` is valid during the call only. */
void lua_host_foreach(lua_host *h, void (*fn)(const char *name, bool available, void *closure), void *closure);

void lua_host_stats_get(lua_host *h, lua_host_stats *out);

/* Frees the calling thread's states (of every host). Optional: a thread's
 * states are also freed when it exits. Must not be called from inside a
 * task. */
void lua_host_thread_exit(void);

/* Frees the host, its scripts and every thread's state of this host. No
 * thread may be inside lua_host_run(h), or call it afterwards. NULL is a
 * no-op. */
void lua_host_close(lua_host *h);

#endif
