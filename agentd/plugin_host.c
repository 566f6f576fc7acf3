/* Native plugin host: dlopen, ABI checks, init, handler registry. See plugin_host.h. */
#include "plugin_host.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/names.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Size of a struct up to and including `field`. */
#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Handlers per plugin beyond which the list is taken as unterminated garbage. */
#define MAX_HANDLERS_PER_PLUGIN 4096

struct jet_loaded_plugin {
    char *path;
    void *dl;
    char *name;
    char *version;
    void *state;
    jet_outcome (*handle)(void *state, const jet_task *task, jet_task_ctx *ctx);
    void (*shutdown)(void *state);
    const jet_host_api *api;
    atomic_long in_flight;
    bool kept; /* still running at jet_plugins_free(): left mapped */
};

struct jet_plugin_registry {
    const jet_host_api *api;
    jet_loaded_plugin **plugins;   /* load order */
    size_t n_plugins, cap_plugins;
    jet_plugin_handler **handlers; /* sorted by name; each entry is stable in memory */
    size_t n_handlers, cap_handlers;
};

/* Size of the descriptor fields this host reads from a plugin built against
 * ABI 1.<minor>. A new minor appends fields: add a case and read the new
 * fields only when the plugin's struct_size covers them. */
static size_t descriptor_min_size(int minor)
{
    switch (minor) {
    case 0:
    case 1: /* 1.1 and 1.2 added host API functions and outcomes, no descriptor field */
    case 2:
    default:
        return END_OF(jet_plugin, handlers_after_init);
    }
}

jet_plugin_registry *jet_plugins_new(const jet_host_api *api)
{
    if (!api)
        return NULL;
    jet_plugin_registry *reg = jet_xcalloc(1, sizeof *reg);
    reg->api = api;
    return reg;
}

static jet_loaded_plugin *plugin_by_name(const jet_plugin_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n_plugins; i++)
        if (strcmp(reg->plugins[i]->name, name) == 0)
            return reg->plugins[i];
    return NULL;
}

/* Index of the first handler whose name is >= name. */
static size_t handler_lower_bound(const jet_plugin_registry *reg, const char *name)
{
    size_t lo = 0, hi = reg->n_handlers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(reg->handlers[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const jet_plugin_handler *jet_plugins_find(const jet_plugin_registry *reg, const char *handler)
{
    if (!reg || !handler)
        return NULL;
    size_t i = handler_lower_bound(reg, handler);
    if (i < reg->n_handlers && strcmp(reg->handlers[i]->name, handler) == 0)
        return reg->handlers[i];
    return NULL;
}

size_t jet_plugins_count(const jet_plugin_registry *reg) { return reg ? reg->n_handlers : 0; }

const jet_plugin_handler *jet_plugins_at(const jet_plugin_registry *reg, size_t i)
{
    return reg && i < reg->n_handlers ? reg->handlers[i] : NULL;
}

jet_outcome jet_plugin_run(const jet_plugin_handler *h, const jet_task *task, jet_task_ctx *ctx)
{
    jet_loaded_plugin *p = h->owner;
    atomic_fetch_add(&p->in_flight, 1);
    jet_outcome o = h->handle(h->state, task, ctx);
    atomic_fetch_sub(&p->in_flight, 1);
    int v = (int)o;
    if (v != JET_SUCCESS && v != JET_RETRY && v != JET_FAIL && v != JET_RATE_LIMITED) {
        char msg[256];
        snprintf(msg, sizeof msg, "plugin %s (%s): handler %s returned an invalid outcome %d", p->name, p->path,
                 h->name, v);
        jet_error("%s", msg);
        if (p->api && p->api->set_error)
            p->api->set_error(ctx, msg);
        return JET_FAIL;
    }
    return o;
}

static void plugin_unload(jet_loaded_plugin *p, bool call_shutdown)
{
    if (!p)
        return;
    if (call_shutdown && p->shutdown)
        p->shutdown(p->state);
    if (p->dl)
        dlclose(p->dl);
    free(p->path);
    free(p->name);
    free(p->version);
    free(p);
}

/* Checks a handler list returned by the plugin: names valid, no duplicates
 * inside it nor with handlers of other plugins. `what` prefixes messages. */
static jet_status check_handlers(const jet_plugin_registry *reg, const char *what, const char *const *names,
                                 size_t *count, jet_err *err)
{
    size_t n = 0;
    for (; names[n]; n++) {
        if (n >= MAX_HANDLERS_PER_PLUGIN)
            return jet_err_set(err, JET_ERR_INVALID, "%s: more than %d handlers (unterminated handler list?)", what,
                               MAX_HANDLERS_PER_PLUGIN);
        const char *h = names[n];
        if (!jet_name_valid(h))
            return jet_err_set(err, JET_ERR_INVALID,
                               "%s: invalid handler name \"%.80s\": handler names are 1-%d characters of [a-z0-9_-]",
                               what, h, JET_NAME_MAX);
        for (size_t j = 0; j < n; j++)
            if (strcmp(names[j], h) == 0)
                return jet_err_set(err, JET_ERR_INVALID, "%s: handler \"%s\" is listed twice", what, h);
        const jet_plugin_handler *other = jet_plugins_find(reg, h);
        if (other)
            return jet_err_set(err, JET_ERR_INVALID, "%s: handler \"%s\" is already served by %s (plugin \"%s\")",
                               what, h, other->path, other->plugin);
    }
    *count = n;
    return JET_OK;
}

static jet_status registry_add(jet_plugin_registry *reg, jet_loaded_plugin *p, const char *const *names, size_t n)
{
    reg->plugins = jet_xgrow(reg->plugins, &reg->cap_plugins, reg->n_plugins + 1, sizeof *reg->plugins, 8);
    reg->handlers = jet_xgrow(reg->handlers, &reg->cap_handlers, reg->n_handlers + n, sizeof *reg->handlers, 16);
    for (size_t i = 0; i < n; i++) {
        jet_plugin_handler *h = jet_xcalloc(1, sizeof *h + strlen(names[i]) + 1);
        char *name_copy = (char *)(h + 1);
        strcpy(name_copy, names[i]);
        h->name = name_copy;
        h->plugin = p->name;
        h->version = p->version;
        h->path = p->path;
        h->handle = p->handle;
        h->state = p->state;
        h->owner = p;
        size_t at = handler_lower_bound(reg, h->name);
        memmove(&reg->handlers[at + 1], &reg->handlers[at], (reg->n_handlers - at) * sizeof *reg->handlers);
        reg->handlers[at] = h;
        reg->n_handlers++;
    }
    reg->plugins[reg->n_plugins++] = p;
    return JET_OK;
}

static char *handler_list_text(const char *const *names, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 2;
    char *s = jet_xmalloc(len);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, names[i]);
    }
    return s;
}

jet_status jet_plugins_load(jet_plugin_registry *reg, const char *path, const json_t *configs, jet_err *err)
{
    if (!reg || !path || !*path)
        return jet_err_set(err, JET_ERR_INVALID, "plugin path is empty");
    if (configs && !json_is_object(configs))
        return jet_err_set(err, JET_ERR_INVALID, "plugins: plugin settings must be an object");

    /* dlopen() searches the library path for a name without '/': never do that. */
    char *dlpath = NULL;
    if (strchr(path, '/'))
        dlpath = jet_xstrdup(path);
    else if (asprintf(&dlpath, "./%s", path) < 0)
        return jet_err_set(err, JET_ERR_NOMEM, "%s: out of memory", path);

    dlerror();
    void *dl = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
    free(dlpath);
    if (!dl) {
        const char *e = dlerror();
        return jet_err_set(err, JET_ERR_INVALID, "%s: cannot load plugin: %s", path, e ? e : "dlopen failed");
    }
    for (size_t i = 0; i < reg->n_plugins; i++)
        if (reg->plugins[i]->dl == dl) {
            dlclose(dl);
            return jet_err_set(err, JET_ERR_INVALID, "%s: already loaded as plugin \"%s\" from %s", path,
                               reg->plugins[i]->name, reg->plugins[i]->path);
        }

    dlerror();
    void *sym = dlsym(dl, JET_PLUGIN_ENTRY);
    if (!sym) {
        const char *e = dlerror();
        jet_status st = jet_err_set(err, JET_ERR_INVALID, "%s: missing symbol %s: %s", path, JET_PLUGIN_ENTRY,
                                    e ? e : "symbol is NULL");
        dlclose(dl);
        return st;
    }
    jet_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object pointer -> function pointer (POSIX guarantees this works) */
    const jet_plugin *desc = entry();
    if (!desc) {
        dlclose(dl);
        return jet_err_set(err, JET_ERR_INVALID, "%s: %s() returned NULL", path, JET_PLUGIN_ENTRY);
    }
    if (desc->abi_major != JET_PLUGIN_ABI_MAJOR) {
        jet_status st = jet_err_set(err, JET_ERR_INVALID,
                                    "%s: ABI %d.%d is not supported by this agentd (ABI %d.%d); rebuild the plugin "
                                    "against jetsched/plugin.h %d.x",
                                    path, desc->abi_major, desc->abi_minor, JET_PLUGIN_ABI_MAJOR,
                                    JET_PLUGIN_ABI_MINOR, JET_PLUGIN_ABI_MAJOR);
        dlclose(dl);
        return st;
    }
    if (desc->abi_minor < 0 || desc->abi_minor > JET_PLUGIN_ABI_MINOR) {
        jet_status st = jet_err_set(err, JET_ERR_INVALID,
                                    "%s: ABI %d.%d is newer than this agentd's (ABI %d.%d); upgrade agentd or "
                                    "rebuild the plugin against jetsched/plugin.h %d.%d",
                                    path, desc->abi_major, desc->abi_minor, JET_PLUGIN_ABI_MAJOR,
                                    JET_PLUGIN_ABI_MINOR, JET_PLUGIN_ABI_MAJOR, JET_PLUGIN_ABI_MINOR);
        dlclose(dl);
        return st;
    }
    size_t need = descriptor_min_size(desc->abi_minor);
    if (desc->struct_size < need) {
        jet_status st = jet_err_set(err, JET_ERR_INVALID,
                                    "%s: plugin descriptor is %zu bytes, smaller than an ABI %d.%d descriptor (%zu "
                                    "bytes); struct_size must be sizeof(jet_plugin)",
                                    path, desc->struct_size, desc->abi_major, desc->abi_minor, need);
        dlclose(dl);
        return st;
    }
    /* Copy what we read: never more than the plugin's struct_size. Fields of a
     * later minor than the plugin's stay zero. */
    jet_plugin d;
    memset(&d, 0, sizeof d);
    memcpy(&d, desc, desc->struct_size < sizeof d ? desc->struct_size : sizeof d);

    jet_status st = JET_OK;
    if (!d.name || !jet_name_valid(d.name)) {
        st = jet_err_set(err, JET_ERR_INVALID,
                         "%s: invalid plugin name \"%.80s\": plugin names are 1-%d characters of [a-z0-9_-]", path,
                         d.name ? d.name : "(null)", JET_NAME_MAX);
        dlclose(dl);
        return st;
    }
    char what[1200];
    snprintf(what, sizeof what, "%s (plugin \"%s\")", path, d.name);
    if (!d.handle)
        st = jet_err_set(err, JET_ERR_INVALID, "%s: handle is NULL", what);
    else if (!d.init)
        st = jet_err_set(err, JET_ERR_INVALID, "%s: init is NULL", what);
    else if (!d.handlers && !d.handlers_after_init)
        st = jet_err_set(err, JET_ERR_INVALID, "%s: no handler list (handlers and handlers_after_init are NULL)",
                         what);
    else {
        jet_loaded_plugin *other = plugin_by_name(reg, d.name);
        if (other)
            st = jet_err_set(err, JET_ERR_INVALID, "%s: a plugin named \"%s\" is already loaded from %s", what,
                             d.name, other->path);
    }
    size_t n_static = 0;
    if (st == JET_OK && !d.handlers_after_init) /* check before init(): no side effects for a plugin we refuse */
        st = check_handlers(reg, what, d.handlers, &n_static, err);
    const json_t *cfg = configs ? json_object_get(configs, d.name) : NULL;
    if (st == JET_OK && cfg && !json_is_object(cfg))
        st = jet_err_set(err, JET_ERR_INVALID, "plugins.%s: the settings of plugin \"%s\" (%s) must be an object",
                         d.name, d.name, path);
    if (st != JET_OK) {
        dlclose(dl);
        return st;
    }

    char *config_text = cfg ? json_dumps(cfg, JSON_COMPACT) : jet_xstrdup("{}");
    jet_loaded_plugin *p = jet_xcalloc(1, sizeof *p);
    p->path = jet_xstrdup(path);
    p->name = jet_xstrdup(d.name);
    p->version = jet_xstrdup(d.version ? d.version : "");
    if (!config_text) {
        free(config_text);
        plugin_unload(p, false);
        dlclose(dl);
        return jet_err_set(err, JET_ERR_NOMEM, "%s: out of memory", what);
    }
    p->api = reg->api;
    p->handle = d.handle;
    p->shutdown = d.shutdown;
    atomic_init(&p->in_flight, 0);

    char ebuf[1024];
    memset(ebuf, 0, sizeof ebuf);
    void *state = NULL;
    int rc = d.init(reg->api, config_text, &state, ebuf, sizeof ebuf);
    free(config_text);
    ebuf[sizeof ebuf - 1] = '\0';
    if (rc != 0) {
        st = jet_err_set(err, JET_ERR_INVALID, "%s: init failed: %s", what, ebuf[0] ? ebuf : "(no message)");
        plugin_unload(p, false);
        dlclose(dl);
        return st;
    }
    p->state = state;
    p->dl = dl; /* from here on plugin_unload() closes it */

    const char *const *names = d.handlers;
    size_t n = n_static;
    if (d.handlers_after_init) {
        names = d.handlers_after_init(state);
        if (!names)
            st = jet_err_set(err, JET_ERR_INVALID, "%s: handlers_after_init() returned NULL", what);
        else
            st = check_handlers(reg, what, names, &n, err);
    }
    if (st == JET_OK) {
        st = registry_add(reg, p, names, n);
        if (st != JET_OK)
            jet_err_set(err, st, "%s: out of memory", what);
    }
    if (st != JET_OK) {
        plugin_unload(p, true);
        return st;
    }
    char *list = handler_list_text(names, n);
    jet_info("plugin %s %s loaded from %s; handlers: %s", p->name, p->version[0] ? p->version : "(no version)",
             p->path, n == 0 ? "(none)" : list ? list : "?");
    free(list);
    return JET_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

jet_status jet_plugins_load_dir(jet_plugin_registry *reg, const char *dir, const json_t *configs, jet_err *err)
{
    if (!reg || !dir || !*dir)
        return jet_err_set(err, JET_ERR_INVALID, "plugin directory is empty");
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        return jet_err_set(err, e == ENOENT ? JET_ERR_NOT_FOUND : JET_ERR_IO, "plugin directory %s: %s", dir,
                           strerror(e));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    jet_status st = JET_OK;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0)
            continue;
        names = jet_xgrow(names, &cap, n + 1, sizeof *names, 16);
        names[n++] = jet_xstrdup(de->d_name);
    }
    closedir(d);
    if (st == JET_OK && n > 0)
        qsort(names, n, sizeof *names, cmp_str);

    size_t failures = 0;
    jet_err first;
    jet_err_clear(&first);
    if (st != JET_OK)
        jet_err_set(&first, st, "plugin directory %s: out of memory", dir);
    for (size_t i = 0; st == JET_OK && i < n; i++) {
        char *path = NULL;
        if (asprintf(&path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]) < 0) {
            st = jet_err_set(&first, JET_ERR_NOMEM, "plugin directory %s: out of memory", dir);
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            jet_warn("plugin directory %s: skipping %s: not a regular file", dir, names[i]);
            free(path);
            continue;
        }
        jet_err e;
        jet_err_clear(&e);
        jet_status ls = jet_plugins_load(reg, path, configs, &e);
        free(path);
        if (ls != JET_OK) {
            jet_error("%s", e.msg);
            if (failures++ == 0)
                first = e;
            if (ls == JET_ERR_NOMEM)
                break;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (failures > 1)
        return jet_err_set(err, first.code, "%s (and %zu more plugin%s failed to load)", first.msg, failures - 1,
                           failures > 2 ? "s" : "");
    if (failures == 1 || st != JET_OK)
        return jet_err_set(err, first.code, "%s", first.msg);
    return JET_OK;
}

jet_status jet_plugins_check_configs(const jet_plugin_registry *reg, const json_t *configs, jet_err *err)
{
    if (!configs)
        return JET_OK;
    if (!json_is_object(configs))
        return jet_err_set(err, JET_ERR_INVALID, "plugins: plugin settings must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)configs, key, v) {
        (void)v;
        if (!reg || !plugin_by_name(reg, key)) {
            char loaded[512] = "";
            size_t used = 0;
            for (size_t i = 0; reg && i < reg->n_plugins && used < sizeof loaded; i++)
                used += (size_t)snprintf(loaded + used, sizeof loaded - used, "%s%s", i ? ", " : "",
                                         reg->plugins[i]->name);
            return jet_err_set(err, JET_ERR_INVALID, "plugins.%s: no plugin named \"%s\" is loaded (loaded: %s)",
                               key, key, loaded[0] ? loaded : "none");
        }
    }
    return JET_OK;
}

void jet_plugins_free(jet_plugin_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_plugins; i++) {
        jet_loaded_plugin *p = reg->plugins[i];
        long busy = atomic_load(&p->in_flight);
        p->kept = busy > 0;
        if (p->kept)
            jet_warn("plugin %s (%s): %ld handler call%s still running; not shutting it down nor unloading it",
                     p->name, p->path, busy, busy == 1 ? "" : "s");
    }
    /* A call still running uses its handler entry and plugin record: keep those. */
    for (size_t i = 0; i < reg->n_handlers; i++)
        if (!reg->handlers[i]->owner->kept)
            free(reg->handlers[i]);
    for (size_t i = reg->n_plugins; i-- > 0;)
        if (!reg->plugins[i]->kept)
            plugin_unload(reg->plugins[i], true);
    free(reg->handlers);
    free(reg->plugins);
    free(reg);
}
