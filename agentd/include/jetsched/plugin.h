/* jetsched native plugin ABI (installed as <jetsched/plugin.h>).
 *
 * A plugin is a shared object that exports one symbol:
 *
 *     const jet_plugin *jetsched_plugin_entry(void);
 *
 * returning a static descriptor. agentd loads it with dlopen(RTLD_NOW |
 * RTLD_LOCAL), checks abi_major == JET_PLUGIN_ABI_MAJOR, abi_minor <= the
 * host's, and struct_size >= the size of the fields it reads, then calls
 * init() once, handle() for each task (concurrently from several worker
 * threads: handle() must be thread-safe), and shutdown() once at exit.
 *
 * Compatibility rules: a new minor version only appends fields to the end of
 * jet_plugin and jet_host_api; the major version changes when anything else
 * changes. A plugin built against minor N runs on hosts with minor >= N.
 *
 * Everything a handler needs from the agent goes through the jet_host_api
 * table passed to init() and the per-task jet_task_ctx handle. Strings passed
 * in are valid only during the call; copy what you keep. */
#ifndef JETSCHED_PLUGIN_H
#define JETSCHED_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JET_PLUGIN_ABI_MAJOR 1
#define JET_PLUGIN_ABI_MINOR 0
#define JET_PLUGIN_ENTRY "jetsched_plugin_entry"

/* What a handler returns. */
typedef enum jet_outcome {
    JET_SUCCESS = 0,     /* done; an optional result was set with host->set_result */
    JET_RETRY = 1,       /* transient failure: retried with backoff while attempts remain */
    JET_FAIL = 2,        /* permanent failure: dead-lettered now, no more attempts */
} jet_outcome;

typedef enum jet_log_severity { JET_PLOG_DEBUG = 0, JET_PLOG_INFO, JET_PLOG_WARN, JET_PLOG_ERROR } jet_log_severity;

/* One header of a task message. */
typedef struct jet_header {
    const char *name;
    const char *value;
} jet_header;

/* The task as the handler sees it. */
typedef struct jet_task {
    size_t struct_size;        /* sizeof(jet_task) of the host */
    const char *id;            /* idempotency key */
    const char *handler;
    const char *queue;
    const char *priority;      /* "high" | "normal" | "low" */
    int attempt;               /* 1-based */
    int max_attempts;
    const void *payload;       /* opaque bytes, not NUL-terminated in general */
    size_t payload_len;
    const jet_header *headers;
    size_t n_headers;
    int64_t deadline_ms;       /* Unix ms, 0 = none */
    int64_t timeout_ms;        /* run-time limit of this attempt */
    const char *traceparent;   /* W3C trace context or NULL */
} jet_task;

/* Opaque per-task handle for the host API. */
typedef struct jet_task_ctx jet_task_ctx;

/* Functions the host offers. Every function is safe to call from handle(). */
typedef struct jet_host_api {
    size_t struct_size;
    int abi_major, abi_minor;
    /* Reports progress 0..100 with an optional note (live event + metrics). */
    void (*progress)(jet_task_ctx *ctx, int percent, const char *note);
    /* Saves a checkpoint blob; it survives retries and moves with the task to
     * other agents. Returns 0 on success. */
    int (*checkpoint_save)(jet_task_ctx *ctx, const void *data, size_t len);
    /* Loads the last checkpoint into a malloc'd buffer (*data, caller frees).
     * Returns 0 and sets *data = NULL, *len = 0 when there is none; < 0 on error. */
    int (*checkpoint_load)(jet_task_ctx *ctx, void **data, size_t *len);
    /* Logs a line tagged with the task id. */
    void (*log)(jet_task_ctx *ctx, jet_log_severity sev, const char *msg);
    /* Non-zero once the task was cancelled or timed out: stop soon. */
    int (*cancelled)(jet_task_ctx *ctx);
    /* Submits a follow-up task. priority: "high"|"normal"|"low" (NULL = normal);
     * id may be NULL (one is generated). Returns 0 on success. */
    int (*submit)(jet_task_ctx *ctx, const char *queue, const char *priority, const char *handler,
                  const void *payload, size_t payload_len, const jet_header *headers, size_t n_headers,
                  const char *id);
    /* Stores a result (text) recorded in history; the last call wins. */
    void (*set_result)(jet_task_ctx *ctx, const char *result, size_t len);
    /* Sets the error message recorded for a JET_RETRY/JET_FAIL outcome. */
    void (*set_error)(jet_task_ctx *ctx, const char *message);
    /* With JET_RETRY: retry after this delay instead of the backoff policy. */
    void (*retry_in)(jet_task_ctx *ctx, int64_t delay_ms);
} jet_host_api;

/* The plugin descriptor. */
typedef struct jet_plugin {
    int abi_major;             /* JET_PLUGIN_ABI_MAJOR */
    int abi_minor;             /* JET_PLUGIN_ABI_MINOR */
    size_t struct_size;        /* sizeof(jet_plugin) */
    const char *name;          /* plugin name, e.g. "echo" */
    const char *version;       /* plugin version string */
    const char *const *handlers; /* NULL-terminated handler names this plugin serves */
    /* Called once before any task. config: the plugin's settings as a JSON
     * object text (the "<name>" member of agentd.conf's plugins.config_file;
     * exec and http get exec.commands / webhooks), or "{}". Returns 0 on
     * success; on failure writes a message into err (errlen bytes) and the
     * plugin is not used. *state is passed back to handle() and shutdown(). */
    int (*init)(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen);
    /* Runs one task. */
    jet_outcome (*handle)(void *state, const jet_task *task, jet_task_ctx *ctx);
    /* Called once at exit, after the last handle() returned. May be NULL. */
    void (*shutdown)(void *state);
    /* Optional (may be NULL): handler names known only after init(), e.g. the
     * commands configured for the exec plugin. When set, it replaces `handlers`.
     * The array must stay valid until shutdown(). */
    const char *const *(*handlers_after_init)(void *state);
} jet_plugin;

typedef const jet_plugin *(*jet_plugin_entry_fn)(void);

/* The entry symbol every plugin exports (declared here so that C++ plugins
 * get C linkage and C plugins a prototype). */
const jet_plugin *jetsched_plugin_entry(void);

/* Convenience for plugin authors: declares the entry symbol. */
#define JET_PLUGIN_DEFINE(descriptor)                                                        \
    __attribute__((visibility("default"))) const jet_plugin *jetsched_plugin_entry(void)    \
    {                                                                                        \
        return &(descriptor);                                                                \
    }

#ifdef __cplusplus
}
#endif
#endif
