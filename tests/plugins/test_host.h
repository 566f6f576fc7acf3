/* A small implementation of the agent side of jet_host_api for the plugin
 * unit tests: it records what a handler reports in a jet_task_ctx. */
#ifndef JETSCHED_TEST_HOST_H
#define JETSCHED_TEST_HOST_H

#include <jetsched/plugin.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

struct jet_task_ctx {
    pthread_mutex_t mu;
    char *result;
    size_t result_len;
    bool has_result;
    char error[8192];
    bool has_error;
    int64_t retry_in_ms;       /* -1 = not called */
    int64_t rate_limited_ms;   /* ABI 1.1 rate_limited(); -1 = not called */
    int64_t start_ms;
    int64_t cancel_after_ms;   /* cancelled() turns true this long after th_ctx_init; -1 = never */
    atomic_int cancel_now;     /* or when set */
    atomic_int cancelled_calls;
    int progress;
    char log[8192];
};

extern const jet_host_api th_api;

void th_ctx_init(jet_task_ctx *c);
void th_ctx_free(jet_task_ctx *c);
/* The result as a NUL-terminated string (static empty string when none). */
const char *th_result(const jet_task_ctx *c);

/* A task for `handler` with that payload; id "task-0001", queue "default". */
jet_task th_task(const char *handler, const void *payload, size_t len);

int64_t th_now_ms(void);
/* Directory of an environment variable, or the test aborts. */
const char *th_env_dir(const char *var);

#endif
