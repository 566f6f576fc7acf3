/* A test plugin for the fault-injection suite (tests/fault/): handler
 * "sidefx" sleeps for the milliseconds in its payload (default 0), then
 * appends one line per run to its append-only side-effect log and succeeds:
 *
 *     <task id> <attempt> <agent> <pid> <unix ms>\n
 *
 * Settings (plugins.config_file): {"sidefx": {"log": "/path", "agent": "a1"}}.
 * The line is one write(2) on an O_APPEND descriptor, so lines of
 * concurrent workers never interleave; it reaches the page cache before the
 * handler returns, so a kill -9 of agentd after the run keeps it. */
#include <jetsched/plugin.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fx_state {
    int fd;
    char agent[128];
} fx_state;

static int fx_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    (void)host;
    json_error_t je;
    json_t *root = json_loads(config_json, 0, &je);
    const char *log = root ? json_string_value(json_object_get(root, "log")) : NULL;
    const char *agent = root ? json_string_value(json_object_get(root, "agent")) : NULL;
    if (!log || !*log) {
        snprintf(err, errlen, "sidefx: setting \"log\" (a file path) is required");
        json_decref(root);
        return -1;
    }
    fx_state *s = calloc(1, sizeof *s);
    s->fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        snprintf(err, errlen, "sidefx: cannot open %s", log);
        free(s);
        json_decref(root);
        return -1;
    }
    snprintf(s->agent, sizeof s->agent, "%s", agent && *agent ? agent : "-");
    json_decref(root);
    *state = s;
    return 0;
}

static jet_outcome fx_handle(void *state, const jet_task *t, jet_task_ctx *ctx)
{
    (void)ctx;
    fx_state *s = state;
    char buf[32] = "";
    snprintf(buf, sizeof buf, "%.*s", (int)(t->payload_len < 31 ? t->payload_len : 31), (const char *)t->payload);
    long ms = atol(buf);
    if (ms > 0 && ms < 60000) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char line[512];
    int n = snprintf(line, sizeof line, "%s %d %s %d %lld\n", t->id, t->attempt, s->agent, (int)getpid(),
                     (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    if (n <= 0 || n >= (int)sizeof line || write(s->fd, line, (size_t)n) != n)
        return JET_RETRY;
    return JET_SUCCESS;
}

static void fx_shutdown(void *state)
{
    fx_state *s = state;
    if (!s)
        return;
    close(s->fd);
    free(s);
}

static const char *const fx_handlers[] = {"sidefx", NULL};

static const jet_plugin fx_plugin = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "sidefx",
    .version = "1.0",
    .handlers = fx_handlers,
    .init = fx_init,
    .handle = fx_handle,
    .shutdown = fx_shutdown,
};

JET_PLUGIN_DEFINE(fx_plugin)
