/* Example jetsched plugin, built out of tree against the installed header.
 *
 * Handler "reverse": the result is the payload with its bytes in reverse
 * order. Settings (agentd.conf `plugins.reverse`): {"max_bytes": N} limits
 * the payload size (default 1 MiB); a larger payload fails permanently.
 *
 * Build:  make JETSCHED_PREFIX=/usr/local      (see Makefile)
 * Install: copy reverse.so into agentd's plugin_dir and restart agentd. */
#include <jetsched/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reverse_state {
    const jet_host_api *host;
    size_t max_bytes;
} reverse_state;

/* init: runs once, on agentd's main thread, before any task. The settings
 * come as JSON object text; a real plugin would use a JSON library (e.g.
 * jansson) -- this one only looks for one number, to stay dependency-free. */
static int reverse_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    /* The host API table only grows within a major version: check that the
     * functions we call exist in this agent's table. */
    if (host->abi_major != JET_PLUGIN_ABI_MAJOR ||
        host->struct_size < offsetof(jet_host_api, set_error) + sizeof host->set_error) {
        snprintf(err, errlen, "host API too old");
        return -1;
    }
    reverse_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->host = host;
    s->max_bytes = 1024 * 1024;
    const char *m = strstr(config_json, "\"max_bytes\"");
    if (m) {
        m = strchr(m, ':');
        char *end = NULL;
        long long v = m ? strtoll(m + 1, &end, 10) : -1;
        if (!m || end == m + 1 || v <= 0) {
            snprintf(err, errlen, "max_bytes: must be a positive integer");
            free(s);
            return -1;
        }
        s->max_bytes = (size_t)v;
    }
    *state = s;
    return 0;
}

/* handle: called from several worker threads at once; everything here is
 * per call (the state is read-only after init). */
static jet_outcome reverse_handle(void *state, const jet_task *task, jet_task_ctx *ctx)
{
    reverse_state *s = state;
    if (task->payload_len > s->max_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "payload of %zu bytes exceeds max_bytes %zu", task->payload_len, s->max_bytes);
        s->host->set_error(ctx, msg);
        return JET_FAIL; /* retrying would not help: dead-letter it */
    }
    char *out = malloc(task->payload_len + 1);
    if (!out) {
        s->host->set_error(ctx, "out of memory");
        return JET_RETRY; /* transient: try again later */
    }
    const char *in = task->payload;
    for (size_t i = 0; i < task->payload_len; i++)
        out[i] = in[task->payload_len - 1 - i];
    s->host->progress(ctx, 100, "reversed");
    s->host->set_result(ctx, out, task->payload_len); /* the host copies it */
    free(out);
    return JET_SUCCESS;
}

static void reverse_shutdown(void *state) { free(state); }

static const char *const reverse_handlers[] = {"reverse", NULL};

static const jet_plugin reverse_plugin = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "reverse",
    .version = "1.0.0",
    .handlers = reverse_handlers,
    .init = reverse_init,
    .handle = reverse_handle,
    .shutdown = reverse_shutdown,
};

JET_PLUGIN_DEFINE(reverse_plugin)
