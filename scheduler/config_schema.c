/* schedulerd's configuration schema: its own keys; the shared tables are
 * composed in schedulerd_schema. */
#include "schedulerd.h"

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define NOBOUND 1, 0

static const jet_cfg_key schedulerd_keys[] = {
    {"scheduler.id", JET_CFG_STRING, NULL, NOBOUND, NULL, 0, NULL, NULL,
     "instance id shown as leader (default: host name and pid)"},
    {"postgres.migrate", JET_CFG_BOOL, "true", NOBOUND, NULL, 0, NULL, NULL,
     "apply pending sql/ migrations at start"},
    {"scheduler.tick", JET_CFG_DURATION, "100ms", 10, 10 * SEC, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "how often the leader looks for due fires and delayed tasks"},
    {"scheduler.catchup_window", JET_CFG_DURATION, "1h", 0, 30 * DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "default window in which missed fires are caught up (per-schedule override)"},
    {"scheduler.misfire_threshold", JET_CFG_DURATION, "1m", 0, DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "a fire at most this late (e.g. during a leader change) runs normally; later ones are misfires (policy)"},
    {"reconcile.interval", JET_CFG_DURATION, "10s", SEC, HOUR, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "how often the leader reconciles PostgreSQL with the stream"},
    {"reconcile.redispatch_after", JET_CFG_DURATION, "5m", 10 * SEC, 30 * DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "a queued task not started after this is republished (with Jetsched-Redispatch)"},
    {"history.retention", JET_CFG_DURATION, "30d", HOUR, 3650 * DAY, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "finished tasks and attempts older than this are pruned"},
    {"api.max_payload", JET_CFG_SIZE, "1MiB", 0, 64 * 1048576, NULL, JET_CFG_RELOADABLE, NULL, NULL,
     "largest payload accepted by task.submit"},
    {"stats.interval", JET_CFG_DURATION, "5s", SEC, HOUR, NULL, 0, NULL, NULL,
     "how often the leader samples queue depth, consumer lag and tasks by state for /metrics"},
    {"stats.count_cap", JET_CFG_INT, "100000", 1, INT64_C(1000000000), NULL, 0, NULL, NULL,
     "most rows counted per task state by that sample (a bounded index scan; the cap means \"at least\")"},
    {"http.listen", JET_CFG_STRING, "127.0.0.1:9465", NOBOUND, NULL, 0, NULL, NULL,
     "address of /healthz, /readyz and /metrics (empty disables)"},
    {NULL},
};

const jet_cfg_key *const schedulerd_schema[] = {
    jet_cfg_keys_log, jet_cfg_keys_nats, jet_cfg_keys_jetstream, jet_cfg_keys_postgres, schedulerd_keys, NULL,
};
