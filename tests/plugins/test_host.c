/* Test implementation of jet_host_api (see test_host.h). */
#include "test_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_ctx_init(jet_task_ctx *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->retry_in_ms = -1;
    c->rate_limited_ms = -1;
    c->cancel_after_ms = -1;
    c->start_ms = th_now_ms();
    atomic_init(&c->cancel_now, 0);
    atomic_init(&c->cancelled_calls, 0);
}

void th_ctx_free(jet_task_ctx *c)
{
    free(c->result);
    c->result = NULL;
    pthread_mutex_destroy(&c->mu);
}

const char *th_result(const jet_task_ctx *c) { return c->result ? c->result : ""; }

static void append_log(jet_task_ctx *c, const char *line)
{
    size_t used = strlen(c->log);
    snprintf(c->log + used, sizeof c->log - used, "%s\n", line);
}

static void th_progress(jet_task_ctx *ctx, int percent, const char *note)
{
    pthread_mutex_lock(&ctx->mu);
    ctx->progress = percent;
    if (note)
        append_log(ctx, note);
    pthread_mutex_unlock(&ctx->mu);
}

static int th_checkpoint_save(jet_task_ctx *ctx, const void *data, size_t len)
{
    (void)ctx, (void)data, (void)len;
    return -1;
}

static int th_checkpoint_load(jet_task_ctx *ctx, void **data, size_t *len)
{
    (void)ctx;
    *data = NULL;
    *len = 0;
    return 0;
}

static void th_log(jet_task_ctx *ctx, jet_log_severity sev, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (!ctx) {
        fprintf(stderr, "[plugin %s] %s\n", names[sev & 3], msg);
        return;
    }
    pthread_mutex_lock(&ctx->mu);
    char line[1024];
    snprintf(line, sizeof line, "%s: %s", names[sev & 3], msg);
    append_log(ctx, line);
    pthread_mutex_unlock(&ctx->mu);
}

static int th_cancelled(jet_task_ctx *ctx)
{
    atomic_fetch_add(&ctx->cancelled_calls, 1);
    if (atomic_load(&ctx->cancel_now))
        return 1;
    return ctx->cancel_after_ms >= 0 && th_now_ms() - ctx->start_ms >= ctx->cancel_after_ms;
}

static int th_submit(jet_task_ctx *ctx, const char *queue, const char *priority, const char *handler,
                     const void *payload, size_t payload_len, const jet_header *headers, size_t n_headers,
                     const char *id)
{
    (void)ctx, (void)queue, (void)priority, (void)handler, (void)payload, (void)payload_len, (void)headers;
    (void)n_headers, (void)id;
    return -1;
}

static void th_set_result(jet_task_ctx *ctx, const char *result, size_t len)
{
    pthread_mutex_lock(&ctx->mu);
    free(ctx->result);
    ctx->result = malloc(len + 1);
    if (ctx->result) {
        memcpy(ctx->result, result, len);
        ctx->result[len] = '\0';
    }
    ctx->result_len = len;
    ctx->has_result = true;
    pthread_mutex_unlock(&ctx->mu);
}

static void th_set_error(jet_task_ctx *ctx, const char *message)
{
    pthread_mutex_lock(&ctx->mu);
    snprintf(ctx->error, sizeof ctx->error, "%s", message ? message : "");
    ctx->has_error = true;
    pthread_mutex_unlock(&ctx->mu);
}

static void th_retry_in(jet_task_ctx *ctx, int64_t delay_ms)
{
    pthread_mutex_lock(&ctx->mu);
    ctx->retry_in_ms = delay_ms;
    pthread_mutex_unlock(&ctx->mu);
}

static void th_rate_limited(jet_task_ctx *ctx, int64_t retry_after_ms)
{
    pthread_mutex_lock(&ctx->mu);
    ctx->rate_limited_ms = retry_after_ms;
    pthread_mutex_unlock(&ctx->mu);
}

const jet_host_api th_api = {
    .struct_size = sizeof(jet_host_api),
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .progress = th_progress,
    .checkpoint_save = th_checkpoint_save,
    .checkpoint_load = th_checkpoint_load,
    .log = th_log,
    .cancelled = th_cancelled,
    .submit = th_submit,
    .set_result = th_set_result,
    .set_error = th_set_error,
    .retry_in = th_retry_in,
    .rate_limited = th_rate_limited,
};

jet_task th_task(const char *handler, const void *payload, size_t len)
{
    jet_task t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    t.id = "task-0001";
    t.handler = handler;
    t.queue = "default";
    t.priority = "normal";
    t.attempt = 1;
    t.max_attempts = 5;
    t.payload = payload;
    t.payload_len = len;
    t.timeout_ms = 30000;
    t.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    return t;
}

const char *th_env_dir(const char *var)
{
    const char *v = getenv(var);
    if (!v || !*v) {
        fprintf(stderr, "environment variable %s is not set (run the test through ctest)\n", var);
        abort();
    }
    return v;
}
