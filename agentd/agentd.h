/* agentd's configuration: the schema (config_schema.c) and the typed
 * settings it is bound to at start-up and on SIGHUP (jet_cfg_bind), so that
 * no module looks a key up by path while it runs. Defaults live in the
 * schema only. */
#ifndef AGENTD_H
#define AGENTD_H

#include <jetsched/config.h>

extern const jet_cfg_key *const agentd_schema[];

/* priority.mode and idempotency.check, in the order of their schema choices. */
enum { PRIORITY_WEIGHTED, PRIORITY_STRICT };
enum { IDEMPOTENCY_REDELIVERED, IDEMPOTENCY_ALWAYS };

/* One element of `queues`. */
typedef struct queue_settings {
    const char *name;              /* NULL in the default element (queue "default") */
    int concurrency;
    int max_attempts;              /* reloadable */
    int64_t timeout_ms;            /* reloadable */
    const char *backoff;           /* reloadable */
} queue_settings;

typedef struct agentd_settings {
    const char *agent_id;          /* NULL: the host name */
    const char *nats_prefix;
    const char *lua_dir;           /* reloadable (the scripts) */
    const char *http_listen;
    int64_t heartbeat_ms, ack_wait_ms, cancel_ttl_ms, shutdown_grace_ms;
    bool history_enabled;
    int history_batch_size;
    int64_t history_flush_ms, history_max_pending;
    int64_t history_running_after_ms; /* 0: the 'running' record is written at start */
    int priority_mode;             /* reloadable: PRIORITY_* */
    int weights[3];                /* reloadable: high, normal, low */
    int idempotency;               /* reloadable: IDEMPOTENCY_* */
    queue_settings *queues;        /* `queues`, or one element of defaults when the list is empty */
    size_t nqueues;
} agentd_settings;

/* Binds cfg into *s (strings point into cfg: s is valid while cfg lives). */
void agentd_settings_bind(const jet_config *cfg, agentd_settings *s);
void agentd_settings_free(agentd_settings *s);

#endif
