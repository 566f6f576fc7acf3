/* A test plugin for agentd's integration tests (tests/integration/agentd_host.c):
 *   checkpoint  attempt 1 saves a checkpoint and asks for a retry in 100 ms;
 *               later attempts load it and return it as the result.
 *   stubborn    sleeps for the seconds in its payload, ignoring cancelled():
 *               agentd must abandon its thread after the timeout + grace.
 *   long        sleeps for the seconds in its payload in 100 ms steps, honouring
 *               cancelled() and reporting progress: outlives AckWait only if
 *               agentd keeps the message alive with +WPI.
 *   submitter   submits a follow-up "echo" task whose id is "<its id>-child".
 *   napms       sleeps for the milliseconds in its payload; its result is the
 *               most handlers of this plugin seen running at once so far
 *               (tests/integration/agentd_late_pulls.c: never above concurrency). */
#include <jetsched/plugin.h>

#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const jet_host_api *host;
static _Atomic int napping, napping_max;

static int init(const jet_host_api *api, const char *config_json, void **state, char *err, size_t errlen)
{
    (void)config_json, (void)err, (void)errlen;
    host = api;
    *state = NULL;
    return 0;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long payload_seconds(const jet_task *t)
{
    char buf[32] = "";
    snprintf(buf, sizeof buf, "%.*s", (int)(t->payload_len < 31 ? t->payload_len : 31), (const char *)t->payload);
    return atol(buf);
}

static jet_outcome handle(void *state, const jet_task *t, jet_task_ctx *ctx)
{
    (void)state;
    if (!strcmp(t->handler, "checkpoint")) {
        void *data = NULL;
        size_t len = 0;
        if (host->checkpoint_load(ctx, &data, &len) != 0)
            return JET_RETRY;
        if (!data) {
            char note[64];
            int n = snprintf(note, sizeof note, "step-1-of-%s", t->id);
            host->checkpoint_save(ctx, note, (size_t)n);
            host->set_error(ctx, "stopping after step 1");
            host->retry_in(ctx, 100);
            return JET_RETRY;
        }
        host->set_result(ctx, data, len);
        free(data);
        return JET_SUCCESS;
    }
    if (!strcmp(t->handler, "stubborn")) {
        nap_ms(payload_seconds(t) * 1000);
        return JET_SUCCESS;
    }
    if (!strcmp(t->handler, "long")) {
        long steps = payload_seconds(t) * 10;
        for (long i = 0; i < steps; i++) {
            if (host->cancelled(ctx))
                return JET_RETRY;
            if (i % 10 == 0)
                host->progress(ctx, (int)(i * 100 / steps), "working");
            nap_ms(100);
        }
        host->set_result(ctx, "done", 4);
        return JET_SUCCESS;
    }
    if (!strcmp(t->handler, "napms")) {
        int now = atomic_fetch_add(&napping, 1) + 1, seen = atomic_load(&napping_max);
        while (now > seen && !atomic_compare_exchange_weak(&napping_max, &seen, now))
            ;
        char buf[32];
        snprintf(buf, sizeof buf, "%.*s", (int)(t->payload_len < 31 ? t->payload_len : 31), (const char *)t->payload);
        nap_ms(atol(buf));
        int n = snprintf(buf, sizeof buf, "%d", atomic_load(&napping_max));
        atomic_fetch_sub(&napping, 1);
        host->set_result(ctx, buf, (size_t)n);
        return JET_SUCCESS;
    }
    if (!strcmp(t->handler, "submitter")) {
        char id[160];
        snprintf(id, sizeof id, "%s-child", t->id);
        return host->submit(ctx, NULL, "high", "echo", "from parent", 11, NULL, 0, id) == 0 ? JET_SUCCESS : JET_RETRY;
    }
    return JET_FAIL;
}

static const char *const handlers[] = {"checkpoint", "stubborn", "long", "submitter", "napms", NULL};
static const jet_plugin testkit = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "testkit",
    .version = "1",
    .handlers = handlers,
    .init = init,
    .handle = handle,
};
JET_PLUGIN_DEFINE(testkit)
