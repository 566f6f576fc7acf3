/* Helpers shared by the Lua host unit tests (tests/unit/test_lua_*.c): the
 * test host API of tests/plugins/test_host.c, extended with a working
 * checkpoint store (one blob, shared by every host of the process: "another
 * agent" in the tests is another lua_host using the same store) and a
 * recorder of submitted tasks. Header-only: include it once per test. */
#ifndef JETSCHED_LUA_TESTKIT_H
#define JETSCHED_LUA_TESTKIT_H

#include "lua/host.h"
#include "test_host.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define assert_contains(hay, needle)                                                                   \
    do {                                                                                               \
        if (!strstr((hay), (needle)))                                                                  \
            fail_msg("expected \"%s\" in: %s", (needle), (hay));                                      \
    } while (0)

#define assert_not_contains(hay, needle)                                                               \
    do {                                                                                               \
        if (strstr((hay), (needle)))                                                                   \
            fail_msg("did not expect \"%s\" in: %s", (needle), (hay));                                \
    } while (0)

/* ---- checkpoint store ---- */

static pthread_mutex_t lt_mu = PTHREAD_MUTEX_INITIALIZER;
static char *lt_cp;
static size_t lt_cp_len;
static int lt_cp_saves;

static inline void lt_cp_reset(void)
{
    pthread_mutex_lock(&lt_mu);
    free(lt_cp);
    lt_cp = NULL;
    lt_cp_len = 0;
    lt_cp_saves = 0;
    pthread_mutex_unlock(&lt_mu);
}

static inline void lt_cp_set(const char *v)
{
    pthread_mutex_lock(&lt_mu);
    free(lt_cp);
    lt_cp = strdup(v);
    lt_cp_len = strlen(v);
    pthread_mutex_unlock(&lt_mu);
}

static inline int lt_checkpoint_save(jet_task_ctx *ctx, const void *data, size_t len)
{
    (void)ctx;
    pthread_mutex_lock(&lt_mu);
    free(lt_cp);
    lt_cp = malloc(len + 1);
    memcpy(lt_cp, data, len);
    lt_cp[len] = '\0';
    lt_cp_len = len;
    lt_cp_saves++;
    pthread_mutex_unlock(&lt_mu);
    return 0;
}

static inline int lt_checkpoint_load(jet_task_ctx *ctx, void **data, size_t *len)
{
    (void)ctx;
    pthread_mutex_lock(&lt_mu);
    *data = NULL;
    *len = 0;
    if (lt_cp) {
        *data = malloc(lt_cp_len ? lt_cp_len : 1);
        memcpy(*data, lt_cp, lt_cp_len);
        *len = lt_cp_len;
    }
    pthread_mutex_unlock(&lt_mu);
    return 0;
}

/* ---- submit recorder ---- */

typedef struct lt_submitted {
    char queue[80], priority[16], handler[80], id[140];
    char payload[1024];
    char headers[512]; /* "name=value;" ... */
} lt_submitted;

#define LT_MAX_SUBMITS 256
static lt_submitted lt_subs[LT_MAX_SUBMITS];
static int lt_n_subs;
static int lt_submit_fail; /* non-zero: submit returns -1 */

static inline void lt_subs_reset(void)
{
    pthread_mutex_lock(&lt_mu);
    lt_n_subs = 0;
    lt_submit_fail = 0;
    pthread_mutex_unlock(&lt_mu);
}

static inline int lt_submit(jet_task_ctx *ctx, const char *queue, const char *priority, const char *handler,
                     const void *payload, size_t payload_len, const jet_header *headers, size_t n_headers,
                     const char *id)
{
    (void)ctx;
    pthread_mutex_lock(&lt_mu);
    if (lt_submit_fail || lt_n_subs == LT_MAX_SUBMITS) {
        pthread_mutex_unlock(&lt_mu);
        return -1;
    }
    lt_submitted *s = &lt_subs[lt_n_subs++];
    memset(s, 0, sizeof *s);
    snprintf(s->queue, sizeof s->queue, "%s", queue ? queue : "(null)");
    snprintf(s->priority, sizeof s->priority, "%s", priority ? priority : "(null)");
    snprintf(s->handler, sizeof s->handler, "%s", handler);
    snprintf(s->id, sizeof s->id, "%s", id ? id : "(null)");
    snprintf(s->payload, sizeof s->payload, "%.*s", (int)payload_len, (const char *)payload);
    for (size_t i = 0; i < n_headers; i++) {
        size_t used = strlen(s->headers);
        snprintf(s->headers + used, sizeof s->headers - used, "%s=%s;", headers[i].name, headers[i].value);
    }
    pthread_mutex_unlock(&lt_mu);
    return 0;
}

static jet_host_api lt_api;

static inline void lt_init_api(void)
{
    lt_api = th_api;
    lt_api.checkpoint_save = lt_checkpoint_save;
    lt_api.checkpoint_load = lt_checkpoint_load;
    lt_api.submit = lt_submit;
}

/* ---- hosts and runs ---- */

static inline lua_host *lt_open_opts(const lua_host_options *opt)
{
    lua_host *h = NULL;
    jet_err err = {0};
    if (lua_host_open(opt, &lt_api, &h, &err) != JET_OK) {
        fprintf(stderr, "lua_host_open(%s): %s\n", opt->dir, err.msg);
        abort();
    }
    return h;
}

static inline lua_host *lt_open(const char *dir)
{
    lua_host_options opt;
    lua_host_options_init(&opt);
    opt.dir = dir;
    return lt_open_opts(&opt);
}

/* Runs handler(payload) with a time limit; ctx is initialised here and must
 * be freed by the caller with th_ctx_free(). */
static inline jet_outcome lt_run_t(lua_host *h, const char *handler, const char *payload, int64_t timeout_ms,
                            jet_task_ctx *ctx)
{
    th_ctx_init(ctx);
    jet_task t = th_task(handler, payload, strlen(payload));
    t.timeout_ms = timeout_ms;
    return lua_host_run(h, &t, ctx);
}

static inline jet_outcome lt_run(lua_host *h, const char *handler, const char *payload, jet_task_ctx *ctx)
{
    return lt_run_t(h, handler, payload, 30000, ctx);
}

#endif
