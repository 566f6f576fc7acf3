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
#define JET_PLUGIN_ABI_MINOR 2
#define JET_PLUGIN_ENTRY "jetsched_plugin_entry"

/* What a handler returns. */
typedef enum jet_outcome {
    JET_SUCCESS = 0,     /* done; an optional result was set with host->set_result */
    JET_RETRY = 1,       /* transient failure: retried with backoff while attempts remain */
    JET_FAIL = 2,        /* permanent failure: dead-lettered now, no more attempts */
    JET_RATE_LIMITED = 3, /* ABI 1.1: the downstream said "too many requests": call host->rate_limited
                             first. The task's Jetsched-Rate-Key (else its Concurrency-Key) is held back on
                             every agent for the retry-after; the task is parked (throttled) and runs again
                             after it. The attempt is recorded as rate_limited and does not count against
                             max_attempts. A task without a key is retried after the retry-after like
                             JET_RETRY (and that attempt counts). */
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

    /* ---- ABI 1.1 (flow control, `rate_limited`). Check host->struct_size
     * (or abi_minor >= 1) before calling. ---- */

    /* With JET_RATE_LIMITED: hold the task's key back for retry_after_ms
     * (clamped to 1 ms .. 1 h; the default when not called is 1 s). */
    void (*rate_limited)(jet_task_ctx *ctx, int64_t retry_after_ms);

    /* ---- ABI 1.2: workflow calls (docs/WORKFLOWS.md, "Handler calls").
     * Check host->struct_size before calling (or use the jet_ctx_* helpers
     * below, which do). ---- */

    /* The workflow of the running task, or NULL when it is not a task of a
     * workflow. Valid until handle() returns. */
    const char *(*workflow_id)(jet_task_ctx *ctx);
    /* Adds a child node to the running node's workflow. Its node id is
     * derived from this node and `name` (1-63 of [A-Za-z0-9_-]), so the same
     * name added again (a retried attempt) gives the same task id and adds
     * nothing. task_json: a task.submit body as JSON object text (handler
     * required; queue defaults to this task's; no id, run_at, delay).
     * depends_on: n_depends_on names, each a sibling added by this run (its
     * name) or a node id of the workflow (NULL when n is 0); allow_failure
     * (0/1) applies to each of these edges. Returns 0 with the child's task
     * id in task_id_out (JET_WF_TASK_ID_LEN bytes are enough), or
     * JET_WF_INVALID / JET_WF_UNAVAILABLE with the reason in task_id_out. */
    int (*workflow_add)(jet_task_ctx *ctx, const char *name, const char *task_json, const char *const *depends_on,
                        size_t n_depends_on, int allow_failure, char *task_id_out, size_t task_id_len);
    /* The running node's parents as JSON object text:
     * {"<parent node id>": {"task_id": "...", "status": "succeeded", "result": "..." | null}, ...}
     * ("{}" for a node without parents). Owned by the host, valid until
     * handle() returns. NULL outside a workflow or when PostgreSQL cannot be
     * read (logged). */
    const char *(*parent_results)(jet_task_ctx *ctx);
} jet_host_api;

/* workflow_add results besides 0. */
#define JET_WF_INVALID (-1)      /* bad arguments, not a workflow node, or refused by the API: do not retry as is */
#define JET_WF_UNAVAILABLE (-2)  /* the API or PostgreSQL did not answer: transient, retry the task */
#define JET_WF_TASK_ID_LEN 256   /* a task id (at most 128) or a message cut to fit */

/* True when the host table has function `fn` (its minor added it). */
#define JET_HOST_HAS(host, fn)                                                                   \
    ((host)->struct_size >= offsetof(jet_host_api, fn) + sizeof((host)->fn) && (host)->fn != NULL)

/* ABI 1.1 helper: returns JET_RATE_LIMITED after holding the key for
 * retry_after_ms, or on a 1.0 host JET_RETRY after host->retry_in (the task
 * is retried after that delay; the attempt counts). Use it as
 * `return jet_ctx_rate_limited(host, ctx, ms);`. */
static inline jet_outcome jet_ctx_rate_limited(const jet_host_api *host, jet_task_ctx *ctx, int64_t retry_after_ms)
{
    if (JET_HOST_HAS(host, rate_limited)) {
        host->rate_limited(ctx, retry_after_ms);
        return JET_RATE_LIMITED;
    }
    host->retry_in(ctx, retry_after_ms);
    return JET_RETRY;
}

/* ABI 1.2 helpers: safe on an older host (NULL / JET_WF_UNAVAILABLE). */
static inline const char *jet_ctx_workflow_id(const jet_host_api *host, jet_task_ctx *ctx)
{
    return JET_HOST_HAS(host, workflow_id) ? host->workflow_id(ctx) : NULL;
}

static inline int jet_ctx_workflow_add(const jet_host_api *host, jet_task_ctx *ctx, const char *name,
                                       const char *task_json, const char *const *depends_on, size_t n_depends_on,
                                       int allow_failure, char *task_id_out, size_t task_id_len)
{
    if (JET_HOST_HAS(host, workflow_add))
        return host->workflow_add(ctx, name, task_json, depends_on, n_depends_on, allow_failure, task_id_out,
                                  task_id_len);
    static const char msg[] = "this agentd has no workflow calls (plugin ABI 1.2): upgrade agentd";
    for (size_t i = 0; task_id_out && i < task_id_len; i++)
        if ((task_id_out[i] = i + 1 < task_id_len && i < sizeof msg - 1 ? msg[i] : '\0') == '\0')
            break;
    return JET_WF_UNAVAILABLE;
}

static inline const char *jet_ctx_parent_results(const jet_host_api *host, jet_task_ctx *ctx)
{
    return JET_HOST_HAS(host, parent_results) ? host->parent_results(ctx) : NULL;
}

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
