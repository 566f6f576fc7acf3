/* agentd's native plugin host: loads plugin shared objects (jetsched/plugin.h),
 * checks their ABI, calls init(), and maps handler names to loaded plugins.
 *
 * Lifecycle (all of it on one thread, before workers start / after they stop):
 *
 *     jet_plugin_registry *reg = jet_plugins_new(&host_api);
 *     jet_plugins_load_dir(reg, "/usr/lib/jetsched/plugins", configs, &err);
 *     jet_plugins_load(reg, "/opt/x/extra.so", configs, &err);   // explicit ones
 *     jet_plugins_check_configs(reg, configs, &err);             // settings for no plugin (typos)
 *     ... workers: h = jet_plugins_find(reg, task->handler);
 *                  outcome = h ? jet_plugin_run(h, task, ctx) : <unknown handler>;
 *     jet_plugins_free(reg);                                      // shutdown() + dlclose
 *
 * `configs` is a JSON object {"<plugin name>": {...settings...}}: the file
 * named by agentd.conf's plugins.config_file, plus {"exec": {"commands": ...}}
 * and {"http": {"endpoints": ...}} built from the exec.commands and webhooks
 * groups (agentd/handlers.c); a plugin without an entry gets "{}". NULL = no
 * settings. Errors name an entry as `plugins.<name>` (the member <name> of
 * that object).
 *
 * Threading: loading and jet_plugins_free() are not thread-safe. Once loading
 * is over the registry is read-only: jet_plugins_find(), jet_plugins_count(),
 * jet_plugins_at() and jet_plugin_run() may be called from any number of
 * threads. A handler call still running when jet_plugins_free() is called
 * (a worker thread abandoned after a timeout) keeps its plugin mapped: that
 * plugin is neither shut down nor unloaded, and a warning is logged.
 *
 * Errors name the file and the problem, e.g.
 *   /x/foo.so: ABI 2.0 is not supported by this agentd (ABI 1.0); rebuild the plugin against jetsched/plugin.h 1.x
 *   /x/bar.so: missing symbol jetsched_plugin_entry: /x/bar.so: undefined symbol: jetsched_plugin_entry
 *   /x/b.so (plugin "b"): handler "echo" is already served by /x/echo.so (plugin "echo") */
#ifndef AGENTD_PLUGIN_HOST_H
#define AGENTD_PLUGIN_HOST_H

#include <stddef.h>

#include <jansson.h>
#include <jetsched/plugin.h>
#include <jetsched/status.h>

typedef struct jet_plugin_registry jet_plugin_registry;
typedef struct jet_loaded_plugin jet_loaded_plugin;

/* One handler served by a loaded plugin. Valid until jet_plugins_free(). */
typedef struct jet_plugin_handler {
    const char *name;           /* handler name ([a-z0-9_-], 1-64) */
    const char *plugin;         /* plugin name (descriptor `name`) */
    const char *version;        /* plugin version ("" when the plugin gives none) */
    const char *path;           /* file the plugin was loaded from */
    /* The plugin's handle() and its state: callers should prefer
     * jet_plugin_run(), which also checks the returned outcome and counts
     * calls in flight (see jet_plugins_free()). */
    jet_outcome (*handle)(void *state, const jet_task *task, jet_task_ctx *ctx);
    void *state;
    jet_loaded_plugin *owner;   /* internal */
} jet_plugin_handler;

/* A new, empty registry. `api` is what plugins receive in init(); it must
 * outlive the registry (and calls abandoned at exit). NULL on out-of-memory
 * or when api is NULL. */
jet_plugin_registry *jet_plugins_new(const jet_host_api *api);

/* Loads one plugin file. A path without '/' is taken relative to the current
 * directory (never searched in the library path). Refused, with nothing kept
 * loaded, on: a dlopen failure, a missing entry symbol, an unsupported ABI,
 * an invalid descriptor, a plugin name or file already loaded, init()
 * failure (the plugin's message is included), an invalid or duplicate handler
 * name. Returns JET_ERR_INVALID for all of these, JET_ERR_NOMEM on OOM. */
jet_status jet_plugins_load(jet_plugin_registry *reg, const char *path, const json_t *configs, jet_err *err);

/* Loads every "*.so" (not starting with '.') of `dir`, in strcmp order of
 * the file names. Every file is attempted; failures are logged one by one
 * and the first is returned (with "(and N more)" when there were several),
 * while the plugins that did load stay in the registry. A missing directory
 * is JET_ERR_NOT_FOUND; an unreadable one JET_ERR_IO. */
jet_status jet_plugins_load_dir(jet_plugin_registry *reg, const char *dir, const json_t *configs, jet_err *err);

/* JET_ERR_INVALID naming `plugins.<name>` (the entry <name> of configs) when
 * `configs` (an object, or NULL) has an entry for which no plugin is loaded;
 * JET_OK otherwise. */
jet_status jet_plugins_check_configs(const jet_plugin_registry *reg, const json_t *configs, jet_err *err);

/* The handler of that name, or NULL when no loaded plugin serves it. */
const jet_plugin_handler *jet_plugins_find(const jet_plugin_registry *reg, const char *handler);

/* Every handler, sorted by name: index 0 .. jet_plugins_count()-1. */
size_t jet_plugins_count(const jet_plugin_registry *reg);
const jet_plugin_handler *jet_plugins_at(const jet_plugin_registry *reg, size_t i);

/* Runs one task through the handler's plugin. A return value outside
 * jet_outcome is turned into JET_FAIL with an error set through the host API
 * (a plugin bug must not be retried forever). */
jet_outcome jet_plugin_run(const jet_plugin_handler *h, const jet_task *task, jet_task_ctx *ctx);

/* Shuts the plugins down (in reverse load order: shutdown(state), then
 * dlclose) and frees the registry. NULL is a no-op. Call after the last
 * handler call returned; see the threading note above for abandoned calls. */
void jet_plugins_free(jet_plugin_registry *reg);

#endif
