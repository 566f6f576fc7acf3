/* schedulerd: leader election, cron and delayed tasks, reconciler, API.
 * Start-up: configuration, NATS (retried), the JetStream objects,
 * PostgreSQL (retried), migrations, then the election and leader threads,
 * the API (api.c; served by every instance, leader or not), the web
 * console and REST API (web.c, when web.listen is set), READY, /healthz /readyz /metrics and the watchdog. SIGTERM: stop acting,
 * resign, exit 0. SIGHUP: reload the reloadable keys. */
#include "api.h"
#include "schedulerd.h"
#include "web.h"
#include "wf.h"

#include <jetsched/daemon_cli.h>
#include <jetsched/httpd.h>
#include <jetsched/ids.h>
#include <jetsched/redact.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/migrate.h>
#include <jetsched/natsconn.h>
#include <jetsched/pgconn.h>
#include <jetsched/sdnotify.h>
#include <jetsched/timeutil.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static bool ready(void *arg, char *why, size_t len)
{
    sched *s = arg;
    if (atomic_load(&s->stop)) {
        snprintf(why, len, "stopping");
        return false;
    }
    if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
        snprintf(why, len, "not connected to NATS");
        return false;
    }
    if (!atomic_load(&s->pg_ok)) {
        snprintf(why, len, "PostgreSQL unavailable");
        return false;
    }
    return true;
}

static double gauge_leader(void *arg) { return atomic_load(&((sched *)arg)->epoch) != 0 ? 1 : 0; }
static double gauge_epoch(void *arg) { return (double)atomic_load(&((sched *)arg)->epoch); }
static double gauge_reconnects(void *arg) { (void)arg; return (double)jet_nats_reconnects(); }
static double gauge_connected(void *arg) { return natsConnection_Status(((sched *)arg)->nc) == NATS_CONN_STATUS_CONNECTED; }

static void apply_reloadable(sched *s, const jet_config *cfg)
{
    jet_log_init_from_config("schedulerd", cfg);
    atomic_store(&s->tick_ms, jet_cfg_int(cfg, "scheduler.tick"));
    atomic_store(&s->catchup_ms, jet_cfg_int(cfg, "scheduler.catchup_window"));
    atomic_store(&s->plan_ahead_ms, jet_cfg_int(cfg, "scheduler.plan_ahead"));
    atomic_store(&s->plan_max_tasks, jet_cfg_int(cfg, "scheduler.plan_max_tasks"));
    atomic_store(&s->plan_max_bytes, jet_cfg_int(cfg, "scheduler.plan_max_bytes"));
    atomic_store(&s->misfire_ms, jet_cfg_int(cfg, "scheduler.misfire_threshold"));
    atomic_store(&s->reconcile_ms, jet_cfg_int(cfg, "reconcile.interval"));
    atomic_store(&s->redispatch_ms, jet_cfg_int(cfg, "reconcile.redispatch_after"));
    atomic_store(&s->retention_ms, jet_cfg_int(cfg, "history.retention"));
    atomic_store(&s->max_payload, jet_cfg_int(cfg, "api.max_payload"));
}

/* SIGHUP: the reloadable keys. */
static void on_sighup(void *arg)
{
    sched *s = arg;
    const char *file = jet_config_file(s->cfg);
    jet_config *fresh = NULL;
    jet_err err;
    if (jet_config_load(schedulerd_schema, file, &fresh, &err) != JET_OK) {
        jet_error("SIGHUP: configuration not reloaded (the running one stays):\n%s", err.msg);
        return;
    }
    if (jet_config_nonreloadable_changes(s->cfg, fresh, &err) > 0)
        jet_warn("SIGHUP: %s", err.msg);
    apply_reloadable(s, fresh);
    jet_config_free(fresh);
    jet_info("SIGHUP: configuration reloaded from %s", file ? file : "(defaults)");
}

static jet_status connect_nats(sched *s, jet_err *err)
{
    char name[260];
    snprintf(name, sizeof name, "schedulerd@%s", s->id);
    jet_status st = jet_nats_connect_wait(s->cfg, name, &s->nc, err);
    if (st)
        return st;
    st = jet_nats_jetstream(s->nc, s->cfg, &s->js, err);
    if (st)
        return st;
    return jet_js_ensure_base(s->js, s->cfg, NULL, NULL, err);
}

static jet_status connect_pg_and_migrate(sched *s, jet_err *err)
{
    PGconn *conn = NULL;
    jet_status st = jet_pg_connect_wait(s->cfg, "schedulerd-init", -1, &conn, err);
    if (st)
        return st;
    if (jet_cfg_bool(s->cfg, "postgres.migrate")) {
        int applied = 0;
        const char *dir = jet_migrate_sql_dir(NULL);
        st = jet_migrate_apply(conn, dir, &applied, err);
        if (st == JET_OK && applied)
            jet_info("applied %d migration(s) from %s", applied, dir);
    }
    PQfinish(conn);
    if (st == JET_OK)
        atomic_store(&s->pg_ok, true);
    return st;
}

int main(int argc, char **argv)
{
    static const jet_daemon_info info = {
        .name = "schedulerd",
        .summary = "jetsched scheduler: leader-elected cron and delayed tasks, reconciler and API",
        .default_config = "/etc/jetsched/schedulerd.conf",
        .schema = schedulerd_schema,
    };
    static sched st_sched;
    sched *s = &st_sched;
    int rc = jet_daemon_start(&info, argc, argv, &s->cfg);
    if (rc >= 0)
        return rc;

    jet_daemon_block_signals();

    jet_err err = {0};
    jet_status st = JET_OK;
    jet_httpd *httpd = NULL;
    bool threads = false;
    if (jet_cfg_str(s->cfg, "scheduler.id")) {
        snprintf(s->id, sizeof s->id, "%s", jet_cfg_str(s->cfg, "scheduler.id"));
    } else {
        char host[128] = "";
        gethostname(host, sizeof host - 1);
        snprintf(s->id, sizeof s->id, "%s-%d", host, (int)getpid());
    }
    char nonce[JET_ULID_LEN + 1];
    jet_ulid_new(nonce);
    snprintf(s->value, sizeof s->value, "%.200s pid=%d nonce=%s", s->id, (int)getpid(), nonce);
    jet_js_names_init(&s->names, jet_cfg_str(s->cfg, "nats.prefix"));
    s->ttl_ms = jet_cfg_int(s->cfg, "jetstream.leader_ttl");
    apply_reloadable(s, s->cfg);

    if ((st = connect_nats(s, &err)) || (st = connect_pg_and_migrate(s, &err)))
        goto fail;
    leader_metrics_init(s);
    stats_metrics_init();
    jet_metric_gauge_fn("jetsched_scheduler_is_leader", "1 while this instance acts as the fenced leader.",
                        gauge_leader, s);
    jet_metric_gauge_fn("jetsched_scheduler_epoch", "The epoch this instance acts under (0: not leader).",
                        gauge_epoch, s);
    jet_metric_gauge_fn("jetsched_scheduler_nats_reconnects", "NATS reconnects since start.", gauge_reconnects, s);
    jet_metric_gauge_fn("jetsched_scheduler_nats_connected", "1 while connected to NATS.", gauge_connected, s);
    if ((st = election_start(s, &err)))
        goto fail;
    if ((st = leader_start(s, &err))) {
        election_stop(s);
        goto fail;
    }
    threads = true;
    if ((st = stats_start(s, &err)) || (st = sweep_start(s, &err)) || (st = rollup_start(s, &err)) ||
        (st = release_start(s, &err)) ||
        (st = wf_release_start(s, &err)))
        goto fail;
    if ((st = api_start(s, &err)))
        goto fail;
    if ((st = web_start(s, &err)))
        goto fail;
    if (jet_cfg_str(s->cfg, "http.listen") && *jet_cfg_str(s->cfg, "http.listen") &&
        (st = jet_httpd_start(jet_cfg_str(s->cfg, "http.listen"), ready, s, &httpd, &err)))
        goto fail;

    char nats_shown[2048];
    jet_info("scheduler %s ready: NATS %s, leader TTL %lld ms", s->id,
             jet_redact(jet_cfg_str(s->cfg, "nats.url"), nats_shown, sizeof nats_shown), (long long)s->ttl_ms);
    if (httpd)
        jet_info("http endpoints on %s (port %d)", jet_cfg_str(s->cfg, "http.listen"), jet_httpd_port(httpd));
    jet_sd_ready("running");

    jet_daemon_run_signals(on_sighup, s);
    jet_info("stopping: no more fires; resigning leadership");
    jet_sd_stopping("stopping");
    rc = JET_EXIT_OK;
    goto out;

fail:
    jet_error("%s", err.msg);
    rc = JET_EXIT_FAILURE;
out:
    web_stop();
    api_stop();
    if (threads) {
        leader_stop(s);
        stats_stop(s);
        rollup_stop(s);
        sweep_stop(s);
        release_stop(s);
        wf_release_stop(s);
        election_stop(s);
    }
    jet_httpd_stop(httpd);
    if (s->nc) {
        natsConnection_FlushTimeout(s->nc, 2000);
        jsCtx_Destroy(s->js);
        natsConnection_Destroy(s->nc);
    }
    jet_config_free(s->cfg);
    jet_metrics_reset();
    nats_Close();
    if (rc == JET_EXIT_OK)
        jet_info("stopped");
    return rc;
}
