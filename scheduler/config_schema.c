/* schedulerd's configuration schema: its own keys; the shared tables are
 * composed in schedulerd_schema. */
#include "schedulerd.h"

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define NOBOUND 1, 0

/* One element of web.tokens. */
static const jet_cfg_key web_token_keys[] = {
    {"name", JET_CFG_STRING, NULL, NOBOUND, NULL, JET_CFG_REQUIRED, NULL, NULL,
     "the token's name, shown in the audit log (1-64 of [A-Za-z0-9_.-])"},
    {"role", JET_CFG_ENUM, "viewer", NOBOUND, "viewer|operator", 0, NULL, NULL,
     "viewer reads; operator reads and acts (submit, cancel, replay, purge, schedule changes)"},
    {"file", JET_CFG_STRING, NULL, NOBOUND, NULL, JET_CFG_REQUIRED, NULL, NULL,
     "file holding the token (at least 16 printable characters, e.g. openssl rand -hex 24)"},
    {NULL},
};

static const jet_cfg_key schedulerd_keys[] = {
    {"scheduler.id", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL,
     "instance id shown as leader (default: host name and pid)"},
    {"postgres.migrate", JET_CFG_BOOL, "true", NOBOUND, NULL, 0, NULL, NULL,
     "apply pending sql/ migrations at start"},
    {"scheduler.tick", JET_CFG_DURATION, "100ms", 10, 10 * SEC, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "how often the leader looks for due fires and delayed tasks"},
    {"scheduler.plan_ahead", JET_CFG_DURATION, "2s", 0, 60 * SEC, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "fires and delayed tasks due within this are committed ahead and published from memory on time (0: at due)"},
    {"scheduler.plan_max_tasks", JET_CFG_INT, "200000", 1, INT64_C(10000000), NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "most tasks held in the leader's plan; beyond it they are published at their due time"},
    {"scheduler.plan_max_bytes", JET_CFG_SIZE, "256MiB", 1048576, INT64_C(16) * 1073741824, NULL, JET_CFG_RELOADABLE,
     NULL, NULL, "most memory (messages) held in the leader's plan; beyond it tasks are published at their due time"},
    {"scheduler.catchup_window", JET_CFG_DURATION, "1h", 0, 30 * DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "default window in which missed fires are caught up (per-schedule override)"},
    {"scheduler.misfire_threshold", JET_CFG_DURATION, "1m", 0, DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "a fire at most this late (e.g. during a leader change) runs normally; later ones are misfires (policy)"},
    {"limits.max_hold", JET_CFG_DURATION, "1h", SEC, 30 * DAY, NULL, 0, NULL, NULL,
     "a task parked by a concurrency/rate limit (throttled) longer than this ends expired"},
    {"reconcile.interval", JET_CFG_DURATION, "10s", SEC, HOUR, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "how often the leader reconciles PostgreSQL with the stream"},
    {"reconcile.redispatch_after", JET_CFG_DURATION, "5m", 10 * SEC, 30 * DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "a queued task not started after this is republished (with Jetsched-Redispatch)"},
    {"history.retention", JET_CFG_DURATION, "30d", HOUR, 3650 * DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "finished tasks and attempts older than this are pruned"},
    {"api.max_payload", JET_CFG_SIZE, "1MiB", 0, 64 * 1048576, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "largest payload accepted by task.submit"},
    {"api.pg_connections", JET_CFG_INT, "4", 1, 64, NULL, 0, NULL, NULL,
     "API worker threads, each with its own PostgreSQL connection: requests are served concurrently and "
     "concurrent task.submit requests are stored together in one transaction (group commit)"},
    {"stats.interval", JET_CFG_DURATION, "5s", SEC, HOUR, NULL, 0, NULL, NULL,
     "how often the leader samples queue depth, consumer lag and tasks by state for /metrics"},
    {"stats.count_cap", JET_CFG_INT, "100000", 1, INT64_C(1000000000), NULL, 0, NULL, NULL,
     "most rows counted per task state by that sample (a bounded index scan; the cap means \"at least\")"},
    {"http.listen", JET_CFG_STRING, "127.0.0.1:9465", NOBOUND, "listen", 0, NULL, NULL,
     "address of /healthz, /readyz and /metrics (empty disables)"},
    {"rollup.interval", JET_CFG_DURATION, "5s", 100, 10 * MIN, NULL, 0, NULL, NULL,
     "how often the leader adds finished tasks to the per-minute rollup task_minutes (the console's overview)"},
    {"rollup.grace", JET_CFG_DURATION, "30s", 0, 10 * MIN, NULL, 0, NULL, NULL,
     "a finished task is rolled up this long after it finished (tasks recorded later than that are not counted)"},
    {"web.listen", JET_CFG_STRING, "", NOBOUND, "listen", 0, NULL, NULL,
     "address of the web console and the REST API /api/v1 (empty disables); beyond loopback it needs TLS "
     "(web.tls_cert/web.tls_key) or web.trust_proxy, and at least one token"},
    {"web.root", JET_CFG_STRING, "/usr/share/jetsched/web", NOBOUND, NULL, 0, NULL, NULL,
     "directory of the console's static files"},
    {"web.tls_cert", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "PEM certificate (chain) for HTTPS"},
    {"web.tls_key", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "PEM private key for HTTPS (unencrypted)"},
    {"web.trust_proxy", JET_CFG_BOOL, "false", NOBOUND, NULL, 0, NULL, NULL,
     "a TLS-terminating reverse proxy is the only client: allows plain HTTP beyond loopback and takes the client "
     "address from X-Forwarded-For (its last entry)"},
    {"web.tokens", JET_CFG_GROUPLIST, NULL, NOBOUND, NULL, 0, NULL, web_token_keys,
     "API tokens: ( { name = \"ops\"; role = \"operator\"; file = \"/etc/jetsched/web/ops.token\"; } )"},
    {"web.session_secret_file", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL,
     "file with the key (at least 32 characters) that signs console sessions; give every schedulerd the same file "
     "(unset: a random key per process)"},
    {"web.session_ttl", JET_CFG_DURATION, "12h", MIN, 30 * DAY, NULL, 0, NULL, NULL,
     "lifetime of a console session"},
    {"web.login_max_failures", JET_CFG_INT, "5", 1, 1000000, NULL, 0, NULL, NULL,
     "failed logins (or bad bearer tokens) from one address within web.login_window before it gets 429"},
    {"web.login_window", JET_CFG_DURATION, "1m", SEC, DAY, NULL, 0, NULL, NULL,
     "window of web.login_max_failures, and how long an address is then refused"},
    {"web.max_connections", JET_CFG_INT, "512", 4, 100000, NULL, 0, NULL, NULL,
     "open connections at most (one thread each; event streams included)"},
    {"web.max_connections_per_ip", JET_CFG_INT, "64", 0, 100000, NULL, 0, NULL, NULL,
     "open connections at most from one client address, so that one client holding connections open "
     "(slowloris) cannot take all of web.max_connections; 0: no limit; not applied with web.trust_proxy "
     "(every connection then comes from the proxy)"},
    {"web.idle_timeout", JET_CFG_DURATION, "30s", SEC, HOUR, NULL, 0, NULL, NULL,
     "a connection that makes no progress for this long is closed (keep it above web.sse_heartbeat)"},
    {"web.sse_max_clients", JET_CFG_INT, "256", 1, 100000, NULL, 0, NULL, NULL,
     "event streams (GET /api/v1/events) at most; more get 503"},
    {"web.sse_buffer", JET_CFG_SIZE, "256KiB", 4096, 64 * 1048576, NULL, 0, NULL, NULL,
     "events waiting for one stream at most; a client that falls further behind is cut off"},
    {"web.sse_heartbeat", JET_CFG_DURATION, "15s", 100, 10 * MIN, NULL, 0, NULL, NULL,
     "a comment line is sent on an idle event stream this often"},
    {NULL},
};

const jet_cfg_key *const schedulerd_schema[] = {
    jet_cfg_keys_log, jet_cfg_keys_nats, jet_cfg_keys_jetstream, jet_cfg_keys_postgres, schedulerd_keys, NULL,
};
