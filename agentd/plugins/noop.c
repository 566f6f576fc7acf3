/* noop: the handler "noop" succeeds at once (benchmarks measure the agent, not the work). */
#include <jetsched/plugin.h>

#include <stddef.h>

static int noop_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    (void)host, (void)config_json, (void)err, (void)errlen;
    *state = NULL;
    return 0;
}

static jet_outcome noop_handle(void *state, const jet_task *task, jet_task_ctx *ctx)
{
    (void)state, (void)task, (void)ctx;
    return JET_SUCCESS;
}

static const char *const noop_handlers[] = {"noop", NULL};

static const jet_plugin noop_plugin = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "noop",
    .version = "1.0.0",
    .handlers = noop_handlers,
    .init = noop_init,
    .handle = noop_handle,
};

JET_PLUGIN_DEFINE(noop_plugin)
