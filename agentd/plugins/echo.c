/* echo: the handler "echo" sets the task's result to its payload. */
#include <jetsched/plugin.h>

#include <stddef.h>

static int echo_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    (void)config_json, (void)err, (void)errlen;
    *state = (void *)host; /* the only state echo needs */
    return 0;
}

static jet_outcome echo_handle(void *state, const jet_task *task, jet_task_ctx *ctx)
{
    const jet_host_api *host = state;
    host->set_result(ctx, task->payload_len ? (const char *)task->payload : "", task->payload_len);
    return JET_SUCCESS;
}

static const char *const echo_handlers[] = {"echo", NULL};

static const jet_plugin echo_plugin = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "echo",
    .version = "1.0.0",
    .handlers = echo_handlers,
    .init = echo_init,
    .handle = echo_handle,
};

JET_PLUGIN_DEFINE(echo_plugin)
