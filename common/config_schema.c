/* The schema tables shared by every daemon and the CLI: log, nats,
 * jetstream (the objects of DESIGN §3) and postgres. Daemon-specific tables
 * live with each daemon. Durations are in ms, sizes in bytes. */
#include <jetsched/config.h>

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define NOBOUND 1, 0

const jet_cfg_key jet_cfg_keys_log[] = {
    {"log.level", JET_CFG_ENUM, "info", NOBOUND, "debug|info|warn|error", JET_CFG_RELOADABLE, NULL, NULL,
     "minimum level written to stderr"},
    {"log.format", JET_CFG_ENUM, "text", NOBOUND, "text|json", 0, NULL, NULL,
     "text lines for people, or one JSON object per line for log shippers"},
    {NULL},
};

const jet_cfg_key jet_cfg_keys_nats[] = {
    {"nats.url", JET_CFG_STRING, "nats://127.0.0.1:4222", NOBOUND, NULL, JET_CFG_CREDENTIALS, NULL, NULL,
     "server URL(s), comma-separated, e.g. nats://n1:4222,nats://n2:4222"},
    {"nats.prefix", JET_CFG_STRING, "jetsched", NOBOUND, NULL, 0, NULL, NULL,
     "prefix of every subject, stream and bucket (stream JETSCHED_TASKS for prefix jetsched)"},
    {"nats.user", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "user name for user/password auth"},
    {"nats.password", JET_CFG_STRING, NULL, NOBOUND, NULL, JET_CFG_SECRET, NULL, NULL,
     "password (prefer nats.password_file)"},
    {"nats.password_file", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "file holding the password"},
    {"nats.token", JET_CFG_STRING, NULL, NOBOUND, NULL, JET_CFG_SECRET, NULL, NULL,
     "auth token (prefer nats.token_file)"},
    {"nats.token_file", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "file holding the auth token"},
    {"nats.nkey_seed_file", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "file holding an NKey seed (SU...)"},
    {"nats.creds_file", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "credentials file (JWT + seed)"},
    {"nats.tls_ca", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "CA certificate file; enables TLS"},
    {"nats.tls_cert", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "client certificate file (mutual TLS)"},
    {"nats.tls_key", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL, "client private key file (mutual TLS)"},
    {"nats.connect_timeout", JET_CFG_DURATION, "5s", 100, 5 * MIN, NULL, 0, NULL, NULL, "timeout of one connect attempt"},
    {"nats.ping_interval", JET_CFG_DURATION, "5s", SEC, 10 * MIN, NULL, 0, NULL, NULL,
     "client ping interval; a dead server is noticed after two missed pings"},
    {"nats.inbox_prefix", JET_CFG_STRING, "_INBOX", NOBOUND, NULL, 0, NULL, NULL,
     "subject prefix of this client's reply inboxes; give each NATS user its own (e.g. _INBOX_agentd) and allow it to subscribe only there"},
    {"nats.reconnect_wait", JET_CFG_DURATION, "1s", 10, MIN, NULL, 0, NULL, NULL,
     "wait between reconnect attempts (reconnects are unlimited)"},
    {"nats.publish_timeout", JET_CFG_DURATION, "5s", 100, 5 * MIN, NULL, 0, NULL, NULL,
     "maximum wait for a JetStream publish acknowledgement"},
    {NULL},
};

const jet_cfg_key jet_cfg_keys_jetstream[] = {
    {"jetstream.replicas", JET_CFG_INT, "1", 1, 5, NULL, 0, NULL, NULL,
     "replicas of every stream and bucket: 1 for one server, 3 for production clusters"},
    {"jetstream.duplicate_window", JET_CFG_DURATION, "2m", 100, DAY, NULL, 0, NULL, NULL,
     "task stream duplicate window (Nats-Msg-Id de-duplication)"},
    {"jetstream.max_msgs", JET_CFG_INT, "10000000", 1, INT64_C(1) << 40, NULL, 0, NULL, NULL,
     "task stream message limit; publishes beyond it are refused (discard: new)"},
    {"jetstream.max_bytes", JET_CFG_SIZE, "8GiB", 1048576, INT64_C(1) << 50, NULL, 0, NULL, NULL,
     "task stream byte limit; publishes beyond it are refused (discard: new)"},
    {"jetstream.max_msg_size", JET_CFG_SIZE, "1MiB", 1024, 64 * 1048576, NULL, 0, NULL, NULL,
     "largest task message (headers + payload)"},
    {"jetstream.ack_wait", JET_CFG_DURATION, "30s", SEC, HOUR, NULL, 0, NULL, NULL,
     "consumer AckWait: an unacknowledged task is redelivered after this (agentd sends progress at a third of it)"},
    {"jetstream.max_ack_pending", JET_CFG_INT, "1000", 1, 1000000, NULL, 0, NULL, NULL,
     "consumer MaxAckPending: bound on tasks delivered and not yet acknowledged per (queue, priority)"},
    {"jetstream.dlq_max_age", JET_CFG_DURATION, "14d", MIN, 3650 * DAY, NULL, 0, NULL, NULL,
     "how long dead letters are kept"},
    {"jetstream.leader_ttl", JET_CFG_DURATION, "10s", SEC, 10 * MIN, NULL, 0, NULL, NULL,
     "TTL of the leader key; a dead leader is replaced after at most this"},
    {"jetstream.agent_ttl", JET_CFG_DURATION, "15s", SEC, HOUR, NULL, 0, NULL, NULL,
     "TTL of agent registry entries (about three heartbeats)"},
    {"jetstream.cancel_ttl", JET_CFG_DURATION, "24h", MIN, 30 * DAY, NULL, 0, NULL, NULL,
     "how long a cancellation request is kept"},
    {"jetstream.checkpoint_ttl", JET_CFG_DURATION, "7d", MIN, 365 * DAY, NULL, 0, NULL, NULL,
     "how long a task's last checkpoint is kept"},
    {"jetstream.queues", JET_CFG_STRLIST, "default", NOBOUND, "name", 0, NULL, NULL,
     "queues whose consumers `jetsched init` creates (agentd also creates the ones it serves)"},
    {NULL},
};

const jet_cfg_key jet_cfg_keys_postgres[] = {
    {"postgres.dsn", JET_CFG_STRING, "host=127.0.0.1 port=5432 dbname=jetsched", NOBOUND, NULL, JET_CFG_CREDENTIALS,
     "JETSCHED_PG_DSN", NULL, "libpq connection string or URI (without the password)"},
    {"postgres.password_file", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL,
     "file holding the password (or use ~/.pgpass / PGPASSFILE)"},
    {"postgres.connect_timeout", JET_CFG_DURATION, "5s", SEC, 5 * MIN, NULL, 0, NULL, NULL,
     "timeout of one connect attempt"},
    {"postgres.statement_timeout", JET_CFG_DURATION, "30s", 0, HOUR, NULL, 0, NULL, NULL,
     "server-side statement_timeout of every session (0 disables)"},
    {"postgres.reconnect_max", JET_CFG_DURATION, "10s", 100, 10 * MIN, NULL, 0, NULL, NULL,
     "cap of the reconnect backoff"},
    {NULL},
};
