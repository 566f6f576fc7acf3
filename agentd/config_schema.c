/* agentd's configuration schema: the agent's own keys; the shared tables
 * (log, nats, jetstream, postgres) are composed in agentd_schema. */
#include "agentd.h"

#include <stddef.h>
#include <stdlib.h>

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define NOBOUND 1, 0

/* One element of `queues`. */
static const jet_cfg_key queue_keys[] = {
    {"name", JET_CFG_STRING, NULL, NOBOUND, "name", JET_CFG_REQUIRED, NULL, NULL, "queue name ([a-z0-9_-], 1-64)"},
    {"concurrency", JET_CFG_INT, "4", 1, 4096, NULL, 0, NULL, NULL, "worker threads running this queue's tasks"},
    {"max_attempts", JET_CFG_INT, "5", 1, 1000, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "attempts when a task has no Jetsched-Max-Attempts header"},
    {"backoff", JET_CFG_STRING, "exp:1s:10m", NOBOUND, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "retry backoff when a task has no Jetsched-Backoff header: exp|fixed|linear:base:cap"},
    {"timeout", JET_CFG_DURATION, "5m", SEC, 7 * 24 * HOUR, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "run-time limit when a task has no Jetsched-Timeout header"},
    {NULL},
};

/* One element of `exec.commands`: an allow-listed command, served as a handler. */
static const jet_cfg_key exec_keys[] = {
    {"name", JET_CFG_STRING, NULL, NOBOUND, "name", JET_CFG_REQUIRED, NULL, NULL, "handler name of the command"},
    {"argv", JET_CFG_STRLIST, NULL, NOBOUND, NULL, JET_CFG_REQUIRED, NULL, NULL,
     "program and arguments (no shell); the payload is its stdin, its stdout the result"},
    {"timeout", JET_CFG_DURATION, "5m", SEC, 7 * 24 * HOUR, NULL, 0, NULL, NULL,
     "run-time limit; the whole process group is killed after it"},
    {"cwd", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "working directory"},
    {"env", JET_CFG_STRLIST, NULL, NOBOUND, NULL, 0, NULL, NULL, "environment, as [\"K=V\", ...]"},
    {"rlimit_cpu", JET_CFG_DURATION, NULL, SEC, 7 * 24 * HOUR, NULL, 0, NULL, NULL, "RLIMIT_CPU"},
    {"rlimit_as", JET_CFG_SIZE, NULL, 1048576, INT64_C(1) << 40, NULL, 0, NULL, NULL, "RLIMIT_AS (address space)"},
    {"rlimit_nofile", JET_CFG_INT, NULL, 3, 1048576, NULL, 0, NULL, NULL, "RLIMIT_NOFILE"},
    {NULL},
};

/* One element of `webhooks`: an endpoint of the http plugin, served as a handler. */
static const jet_cfg_key webhook_keys[] = {
    {"name", JET_CFG_STRING, NULL, NOBOUND, "name", JET_CFG_REQUIRED, NULL, NULL, "handler name of the endpoint"},
    {"url", JET_CFG_STRING, NULL, NOBOUND, NULL, JET_CFG_REQUIRED, NULL, NULL, "URL the payload is POSTed to"},
    {"timeout", JET_CFG_DURATION, "30s", 100, HOUR, NULL, 0, NULL, NULL, "request timeout (a timeout is retried)"},
    {"headers", JET_CFG_STRLIST, NULL, NOBOUND, NULL, 0, NULL, NULL, "extra request headers: [\"Name: value\"]"},
    {NULL},
};

static const jet_cfg_key agentd_keys[] = {
    {"agent.id", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL,
     "agent id in the registry and in history (default: the host name)"},
    {"agent.heartbeat", JET_CFG_DURATION, "5s", SEC, 5 * MIN, NULL, 0, NULL, NULL,
     "registry heartbeat interval (keep jetstream.agent_ttl about three times this)"},
    {"agent.plugin_dir", JET_CFG_STRING, "/usr/lib/jetsched/plugins", NOBOUND, NULL, 0, NULL, NULL,
     "directory of native plugins (*.so)"},
    {"agent.lua_dir", JET_CFG_STRING, "/usr/share/jetsched/lua", NOBOUND, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "directory of Lua handlers (<handler>.lua)"},
    {"lua.memory_limit", JET_CFG_SIZE, "64MiB", INT64_C(1) << 20, INT64_C(4) << 30, NULL, 0, NULL, NULL,
     "hard memory cap of one Lua state (one per worker thread); a task reaching it fails and its state is recycled"},
    {"lua.recycle_after_tasks", JET_CFG_INT, "10000", 0, 1000000000, NULL, 0, NULL, NULL,
     "close and recreate a worker's Lua state after this many tasks (0 = never)"},
    {"lua.recycle_after_memory", JET_CFG_SIZE, "16MiB", 0, INT64_C(4) << 30, NULL, 0, NULL, NULL,
     "recycle a Lua state whose memory after a task and a full garbage collection is above this (0 = never)"},
    {"lua.instruction_check_interval", JET_CFG_INT, "1000", 1, 1000000, NULL, 0, NULL, NULL,
     "Lua VM instructions between two checks of the time limit and of cancellation"},
    {"plugins.load", JET_CFG_STRLIST, NULL, NOBOUND, NULL, 0, NULL, NULL,
     "extra plugin files to load besides agent.plugin_dir/*.so"},
    {"plugins.config_file", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL,
     "JSON file {\"<plugin>\": {...}} with settings of third-party plugins"},
    {"exec.commands", JET_CFG_GROUPLIST, NULL, NOBOUND, NULL, 0, NULL, exec_keys,
     "allow-listed commands of the exec plugin: ( { name = \"backup\"; argv = [\"/usr/bin/backup\"]; } )"},
    {"webhooks", JET_CFG_GROUPLIST, NULL, NOBOUND, NULL, 0, NULL, webhook_keys,
     "endpoints of the http plugin: ( { name = \"notify\"; url = \"https://example.com/hook\"; } )"},
    {"queues", JET_CFG_GROUPLIST, NULL, NOBOUND, NULL, 0, NULL, queue_keys,
     "queues served: ( { name = \"default\"; concurrency = 4; }, ... ); default: one queue \"default\""},
    {"priority.mode", JET_CFG_ENUM, "weighted", NOBOUND, "weighted|strict", JET_CFG_RELOADABLE, NULL, NULL,
     "weighted round robin over high/normal/low, or strict (low only when high and normal are empty)"},
    {"priority.weight_high", JET_CFG_INT, "6", 1, 1000, NULL, JET_CFG_RELOADABLE, NULL, NULL, "weight of the high lane"},
    {"priority.weight_normal", JET_CFG_INT, "3", 1, 1000, NULL, JET_CFG_RELOADABLE, NULL, NULL, "weight of the normal lane"},
    {"priority.weight_low", JET_CFG_INT, "1", 1, 1000, NULL, JET_CFG_RELOADABLE, NULL, NULL, "weight of the low lane"},
    {"limits.lease", JET_CFG_DURATION, "30s", 3 * SEC, HOUR, NULL, 0, NULL, NULL,
     "slot lease of a concurrency key, renewed every third of it while the task runs: a killed agent's slots "
     "free when it ends; a handler whose lease could not be renewed is cancelled"},
    {"history.enabled", JET_CFG_BOOL, "true", NOBOUND, NULL, 0, NULL, NULL,
     "record attempts in PostgreSQL before acking; false acks without any record (benchmarks only: "
     "it gives up the history, idempotency checks and the no-loss guarantee)"},
    {"history.batch_size", JET_CFG_INT, "256", 1, 10000, NULL, 0, NULL, NULL, "attempt records per PostgreSQL transaction"},
    {"history.flush_interval", JET_CFG_DURATION, "20ms", 1, 10 * SEC, NULL, 0, NULL, NULL,
     "longest wait before a partial batch is written"},
    {"history.running_after", JET_CFG_DURATION, "250ms", 0, HOUR, NULL, 0, NULL, NULL,
     "an attempt still running after this gets a 'running' record (checked every 100 ms), so long tasks "
     "show as running; a shorter one is written once, with its outcome (0 = 'running' at every start)"},
    {"history.max_pending", JET_CFG_INT, "10000", 1, 10000000, NULL, 0, NULL, NULL,
     "finished tasks held un-acked while PostgreSQL is slow or down; fetching pauses when full"},
    {"idempotency.check", JET_CFG_ENUM, "redelivered", NOBOUND, "redelivered|always",
     JET_CFG_RELOADABLE | JET_CFG_DEPRECATED, NULL, NULL,
     "kept for old configurations, no effect: every delivery is looked up in PostgreSQL (the admission step) "
     "and a task whose row is terminal is not run"},
    {"http.listen", JET_CFG_STRING, "127.0.0.1:9464", NOBOUND, "listen", 0, NULL, NULL,
     "address of /healthz, /readyz and /metrics (empty disables)"},
    {"shutdown.grace", JET_CFG_DURATION, "30s", 0, HOUR, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "on SIGTERM, how long running tasks may finish before the rest are handed back"},
    {NULL},
};

const jet_cfg_key *const agentd_schema[] = {
    jet_cfg_keys_log, jet_cfg_keys_nats, jet_cfg_keys_jetstream, jet_cfg_keys_postgres, agentd_keys, NULL,
};

/* ---- the typed settings (agentd.h) ---- */

#define F(path, ctype, member) JET_CFG_FIELD(path, ctype, agentd_settings, member)
static const jet_cfg_field settings_fields[] = {
    F("agent.id", JET_CT_STR, agent_id),
    F("nats.prefix", JET_CT_STR, nats_prefix),
    F("agent.lua_dir", JET_CT_STR, lua_dir),
    F("http.listen", JET_CT_STR, http_listen),
    F("agent.heartbeat", JET_CT_I64, heartbeat_ms),
    F("jetstream.ack_wait", JET_CT_I64, ack_wait_ms),
    F("jetstream.cancel_ttl", JET_CT_I64, cancel_ttl_ms),
    F("shutdown.grace", JET_CT_I64, shutdown_grace_ms),
    F("history.enabled", JET_CT_BOOL, history_enabled),
    F("history.batch_size", JET_CT_INT, history_batch_size),
    F("history.flush_interval", JET_CT_I64, history_flush_ms),
    F("history.max_pending", JET_CT_I64, history_max_pending),
    F("history.running_after", JET_CT_I64, history_running_after_ms),
    F("priority.mode", JET_CT_CHOICE, priority_mode),
    F("priority.weight_high", JET_CT_INT, weights[0]),
    F("priority.weight_normal", JET_CT_INT, weights[1]),
    F("priority.weight_low", JET_CT_INT, weights[2]),
    F("idempotency.check", JET_CT_CHOICE, idempotency),
    {NULL, 0, 0},
};
#undef F

#define Q(path, ctype, member) JET_CFG_FIELD(path, ctype, queue_settings, member)
static const jet_cfg_field queue_fields[] = {
    Q("name", JET_CT_STR, name),
    Q("concurrency", JET_CT_INT, concurrency),
    Q("max_attempts", JET_CT_INT, max_attempts),
    Q("timeout", JET_CT_I64, timeout_ms),
    Q("backoff", JET_CT_STR, backoff),
    {NULL, 0, 0},
};
#undef Q

void agentd_settings_bind(const jet_config *cfg, agentd_settings *s)
{
    *s = (agentd_settings){0};
    jet_cfg_bind(cfg, settings_fields, s);
    s->queues = jet_cfg_bind_groups(cfg, "queues", queue_fields, sizeof *s->queues, true, &s->nqueues);
}

void agentd_settings_free(agentd_settings *s)
{
    free(s->queues);
    *s = (agentd_settings){0};
}
