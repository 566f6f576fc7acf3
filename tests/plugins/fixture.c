/* Deliberately broken (or odd) plugins for the loader tests: one source,
 * one variant per FIXTURE_<name> definition (see tests/unit/plugins.cmake). */
#include <jetsched/plugin.h>

#include <stdio.h>
#include <string.h>

static int fx_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    (void)host, (void)config_json;
    *state = NULL;
#ifdef FIXTURE_INIT_FAIL
    snprintf(err, errlen, "settings: \"dsn\" is required (got %s)", config_json);
    return -1;
#else
    (void)err, (void)errlen;
    return 0;
#endif
}

__attribute__((unused)) static jet_outcome fx_handle(void *state, const jet_task *task, jet_task_ctx *ctx)
{
    (void)state, (void)task, (void)ctx;
#ifdef FIXTURE_BAD_OUTCOME
    return (jet_outcome)7;
#else
    return JET_SUCCESS;
#endif
}

#if defined(FIXTURE_BAD_HANDLER)
#define FX_NAME "bad_handler"
static const char *const fx_handlers[] = {"fine", "Bad Name!", NULL};
#elif defined(FIXTURE_DUP_ECHO)
#define FX_NAME "dup_echo"
static const char *const fx_handlers[] = {"dup-only", "echo", NULL}; /* "echo" is the built-in's */
#elif defined(FIXTURE_DUP_SELF)
#define FX_NAME "dup_self"
static const char *const fx_handlers[] = {"twice", "twice", NULL};
#elif defined(FIXTURE_BAD_OUTCOME)
#define FX_NAME "bad_outcome"
static const char *const fx_handlers[] = {"bad_outcome_h", NULL};
#elif defined(FIXTURE_ECHO_NAME)
#define FX_NAME "echo" /* same plugin name as the built-in */
static const char *const fx_handlers[] = {"echo_impostor", NULL};
#else
static const char *const fx_handlers[] = {"fixture_handler", NULL};
#if defined(FIXTURE_BAD_MAJOR)
#define FX_NAME "bad_major"
#elif defined(FIXTURE_BAD_MINOR)
#define FX_NAME "bad_minor"
#elif defined(FIXTURE_NO_ENTRY)
#define FX_NAME "no_entry"
#elif defined(FIXTURE_NULL_ENTRY)
#define FX_NAME "null_entry"
#elif defined(FIXTURE_SMALL_STRUCT)
#define FX_NAME "small_struct"
#elif defined(FIXTURE_NULL_HANDLE)
#define FX_NAME "null_handle"
#elif defined(FIXTURE_INIT_FAIL)
#define FX_NAME "init_fail"
#elif defined(FIXTURE_BAD_NAME)
#define FX_NAME "Not Valid"
#elif defined(FIXTURE_OLD_MINOR)
#define FX_NAME "old_minor" /* built against the 1.0 header: loads on a newer host */
#else
#error "define FIXTURE_<variant>"
#endif
#endif

static const jet_plugin fx_plugin = {
#ifdef FIXTURE_BAD_MAJOR
    .abi_major = JET_PLUGIN_ABI_MAJOR + 1,
#else
    .abi_major = JET_PLUGIN_ABI_MAJOR,
#endif
#ifdef FIXTURE_BAD_MINOR
    .abi_minor = JET_PLUGIN_ABI_MINOR + 1,
#elif defined(FIXTURE_OLD_MINOR)
    .abi_minor = 0,
#else
    .abi_minor = JET_PLUGIN_ABI_MINOR,
#endif
#ifdef FIXTURE_SMALL_STRUCT
    .struct_size = offsetof(jet_plugin, init), /* as if built against a truncated header */
#elif defined(FIXTURE_OLD_MINOR)
    .struct_size = offsetof(jet_plugin, handlers_after_init) + sizeof(void *), /* the 1.0 descriptor */
#else
    .struct_size = sizeof(jet_plugin),
#endif
    .name = FX_NAME,
    .version = "0.0.1",
    .handlers = fx_handlers,
    .init = fx_init,
#ifndef FIXTURE_NULL_HANDLE
    .handle = fx_handle,
#endif
};

#if defined(FIXTURE_NO_ENTRY)
/* Exports something, but not the entry symbol. */
__attribute__((visibility("default"))) const jet_plugin *jetsched_plugin_entry_v0(void) { return &fx_plugin; }
#elif defined(FIXTURE_NULL_ENTRY)
__attribute__((visibility("default"))) const jet_plugin *jetsched_plugin_entry(void)
{
    (void)fx_plugin;
    return NULL;
}
#else
JET_PLUGIN_DEFINE(fx_plugin)
#endif
