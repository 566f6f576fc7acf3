/* A well-behaved plugin for the loader tests: its handlers come from its
 * settings ({"handlers":["a","b"],"marker":"/path"}); handle() sets the
 * result to the settings text it received; shutdown() appends "shutdown" to
 * the marker file so the test can see that it ran. */
#include <jetsched/plugin.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cfg_state {
    const jet_host_api *host;
    char *config;
    char *marker;
    char **names;
} cfg_state;

static void cfg_free(cfg_state *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->names && s->names[i]; i++)
        free(s->names[i]);
    free(s->names);
    free(s->config);
    free(s->marker);
    free(s);
}

static int cfg_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(config_json, 0, &je);
    if (!root) {
        snprintf(err, errlen, "bad JSON: %s", je.text);
        return -1;
    }
    cfg_state *s = calloc(1, sizeof *s);
    json_t *hs = json_object_get(root, "handlers");
    size_t n = json_array_size(hs);
    s->host = host;
    s->config = strdup(config_json);
    s->names = calloc(n + 1, sizeof *s->names);
    for (size_t i = 0; i < n; i++)
        s->names[i] = strdup(json_string_value(json_array_get(hs, i)));
    const char *m = json_string_value(json_object_get(root, "marker"));
    s->marker = m ? strdup(m) : NULL;
    json_decref(root);
    *state = s;
    return 0;
}

static jet_outcome cfg_handle(void *state, const jet_task *task, jet_task_ctx *ctx)
{
    cfg_state *s = state;
    char buf[512];
    snprintf(buf, sizeof buf, "%s:%s", task->handler, s->config);
    s->host->set_result(ctx, buf, strlen(buf));
    return JET_SUCCESS;
}

static void cfg_shutdown(void *state)
{
    cfg_state *s = state;
    if (s->marker) {
        FILE *f = fopen(s->marker, "a");
        if (f) {
            fputs("shutdown\n", f);
            fclose(f);
        }
    }
    cfg_free(s);
}

static const char *const *cfg_handlers(void *state) { return (const char *const *)((cfg_state *)state)->names; }

static const jet_plugin cfg_plugin = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "cfg",
    .version = "2.3.4",
    .handlers = NULL, /* only handlers_after_init */
    .init = cfg_init,
    .handle = cfg_handle,
    .shutdown = cfg_shutdown,
    .handlers_after_init = cfg_handlers,
};

JET_PLUGIN_DEFINE(cfg_plugin)
