/* A test plugin of the plugin ABI 1.2 workflow calls (tests/integration/sched_wf_handlers.c):
 *   wfadd   adds children "n1" and "n2" (handler echo), a child with a long
 *           name (its node id is hashed), and "join" (handler wfjoin)
 *           depending on n1 and n2 with allow_failure; the result is
 *           "<workflow> <n1 id> <n2 id> <long id> <join id>". Outside a
 *           workflow it fails permanently with workflow_add's message.
 *   wfjoin  the result is parent_results' JSON text.
 *   wfkill  adds children "k1".."k3" (handler echo), then on attempt 1
 *           sleeps 60 s (the test kills the agent meanwhile); the result is
 *           the number of children. */
#include <jetsched/plugin.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static const jet_host_api *host;

static int init(const jet_host_api *api, const char *config_json, void **state, char *err, size_t errlen)
{
    (void)config_json;
    host = api;
    *state = NULL;
    if (!JET_HOST_HAS(api, workflow_add)) {
        snprintf(err, errlen, "this agentd has no workflow calls (ABI 1.2)");
        return -1;
    }
    return 0;
}

static jet_outcome wf_add(jet_task_ctx *ctx)
{
    static const char *const pair[] = {"n1", "n2"};
    static const struct {
        const char *name, *task;
        size_t ndeps;
    } calls[] = {
        {"n1", "{\"handler\":\"echo\",\"payload\":\"one\"}", 0},
        {"n2", "{\"handler\":\"echo\",\"payload\":\"two\",\"priority\":\"high\"}", 0},
        {"a-child-name-long-enough-that-its-node-id-is-hashed-0123456789", "{\"handler\":\"echo\"}", 0},
        {"join", "{\"handler\":\"wfjoin\"}", 2},
    };
    char ids[4][JET_WF_TASK_ID_LEN];
    for (int i = 0; i < 4; i++) {
        int rc = jet_ctx_workflow_add(host, ctx, calls[i].name, calls[i].task, calls[i].ndeps ? pair : NULL,
                                      calls[i].ndeps, calls[i].ndeps ? 1 : 0, ids[i], sizeof ids[i]);
        if (rc != 0) {
            host->set_error(ctx, ids[i]);
            return rc == JET_WF_UNAVAILABLE ? JET_RETRY : JET_FAIL;
        }
    }
    const char *wf = jet_ctx_workflow_id(host, ctx);
    char out[1024];
    int n = snprintf(out, sizeof out, "%s %s %s %s %s", wf ? wf : "-", ids[0], ids[1], ids[2], ids[3]);
    host->set_result(ctx, out, (size_t)n);
    return JET_SUCCESS;
}

static jet_outcome wf_kill(const jet_task *t, jet_task_ctx *ctx)
{
    char id[JET_WF_TASK_ID_LEN];
    for (int i = 1; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "k%d", i);
        int rc = jet_ctx_workflow_add(host, ctx, name, "{\"handler\":\"echo\"}", NULL, 0, 0, id, sizeof id);
        if (rc != 0) {
            host->set_error(ctx, id);
            return JET_RETRY;
        }
    }
    for (int i = 0; t->attempt == 1 && i < 600 && !host->cancelled(ctx); i++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    host->set_result(ctx, "3", 1);
    return JET_SUCCESS;
}

static jet_outcome handle(void *state, const jet_task *t, jet_task_ctx *ctx)
{
    (void)state;
    if (!strcmp(t->handler, "wfadd"))
        return wf_add(ctx);
    if (!strcmp(t->handler, "wfkill"))
        return wf_kill(t, ctx);
    const char *p = jet_ctx_parent_results(host, ctx);
    if (!p) {
        host->set_error(ctx, "parent_results: NULL");
        return JET_RETRY;
    }
    host->set_result(ctx, p, strlen(p));
    return JET_SUCCESS;
}

static const char *const handlers[] = {"wfadd", "wfjoin", "wfkill", NULL};
static const jet_plugin wfkit = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "wfkit",
    .version = "1",
    .handlers = handlers,
    .init = init,
    .handle = handle,
};
JET_PLUGIN_DEFINE(wfkit)
