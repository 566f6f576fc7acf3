/* agentd: the worker daemon. Start-up order, signals (SIGTERM drain, SIGHUP
 * reload), readiness, the systemd watchdog, and shutdown. */
#include "agentd.h"
#include "agent.h"
#include "acker.h"
#include "cancel.h"
#include "control.h"
#include "dispatch.h"
#include "handlers.h"
#include "inflight.h"
#include "keylimits.h"
#include "outcome.h"
#include "puller.h"
#include "recorder.h"
#include "registry.h"
#include "supervisor.h"
#include "worker.h"

#include <jetsched/alloc.h>
#include <jetsched/daemon_cli.h>
#include <jetsched/httpd.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/natsconn.h>
#include <jetsched/redact.h>
#include <jetsched/sdnotify.h>
#include <jetsched/timeutil.h>

#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool ready(void *arg, char *why, size_t len)
{
    agent *a = arg;
    if (atomic_load(&a->draining)) {
        snprintf(why, len, "draining");
        return false;
    }
    if (natsConnection_Status(a->nc) != NATS_CONN_STATUS_CONNECTED) {
        snprintf(why, len, "not connected to NATS");
        return false;
    }
    if (!recorder_healthy(a, why, len))
        return false;
    if (atomic_load(&a->recording) >= a->max_recording) {
        snprintf(why, len, "history buffer full (%d finished tasks waiting for PostgreSQL)",
                 atomic_load(&a->recording));
        return false;
    }
    return true;
}

static double gauge_inflight(void *arg) { return inflight_count(arg); }
static double gauge_recording(void *arg) { return atomic_load(&((agent *)arg)->recording); }
static double gauge_reconnects(void *arg) { (void)arg; return (double)jet_nats_reconnects(); }
static double gauge_abandoned(void *arg) { return (double)supervisor_abandoned(arg); }
static double gauge_connected(void *arg) { return natsConnection_Status(((agent *)arg)->nc) == NATS_CONN_STATUS_CONNECTED; }
static double gauge_concurrency(void *arg)
{
    agent *a = arg;
    int n = 0;
    for (size_t i = 0; i < a->nqueues; i++)
        n += a->queues[i].concurrency;
    return n;
}
static double gauge_ready(void *arg) { return ready(arg, (char[64]){0}, 64) ? 1 : 0; }

/* The reloadable settings, into the running queues (start-up and SIGHUP). */
static void apply_reloadable(agent *a, const agentd_settings *set, const jet_config *cfg)
{
    jet_log_init_from_config("agentd", cfg);
    atomic_store(&a->idempotency_always, set->idempotency == IDEMPOTENCY_ALWAYS);
    for (size_t i = 0; i < a->nqueues; i++) {
        queue_rt *q = &a->queues[i];
        pthread_mutex_lock(&q->mu);
        q->strict = set->priority_mode == PRIORITY_STRICT;
        for (int p = 0; p < JET_PRIO_COUNT; p++)
            q->lanes[p].weight = set->weights[p];
        for (size_t g = 0; g < set->nqueues; g++) {
            const queue_settings *qs = &set->queues[g];
            if (!qs->name || strcmp(qs->name, q->name) != 0)
                continue;
            q->defaults.max_attempts = qs->max_attempts;
            q->defaults.timeout_ms = qs->timeout_ms;
            jet_backoff_parse(qs->backoff, &q->defaults.backoff, NULL);
        }
        pthread_mutex_unlock(&q->mu);
    }
}

/* Builds the queue runtimes from `queues` (default: one queue "default"
 * with the defaults of the schema's queue keys). */
static jet_status setup_queues(agent *a, jet_err *err)
{
    a->nqueues = a->set.nqueues;
    a->queues = jet_xcalloc(a->nqueues, sizeof *a->queues);
    for (size_t i = 0; i < a->nqueues; i++) {
        queue_rt *q = &a->queues[i];
        const queue_settings *qs = &a->set.queues[i];
        q->a = a;
        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->cv, NULL);
        pthread_cond_init(&q->work_cv, NULL);
        snprintf(q->name, sizeof q->name, "%s", qs->name ? qs->name : "default");
        if (!jet_name_valid(q->name))
            return jet_err_set(err, JET_ERR_INVALID, "queues[%zu].name: \"%s\" is not a valid queue name", i, q->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(a->queues[j].name, q->name))
                return jet_err_set(err, JET_ERR_INVALID, "queues[%zu].name: queue \"%s\" is listed twice", i, q->name);
        q->concurrency = qs->concurrency;
        q->defaults.max_attempts = qs->max_attempts;
        q->defaults.timeout_ms = qs->timeout_ms;
        jet_status st = jet_backoff_parse(qs->backoff, &q->defaults.backoff, err);
        if (st)
            return jet_err_set(err, st, "queues[%zu].backoff: %s", i, err->msg);
    }
    apply_reloadable(a, &a->set, a->cfg);
    return JET_OK;
}

static jet_status connect_nats(agent *a, jet_err *err)
{
    char name[200];
    snprintf(name, sizeof name, "agentd@%s", a->id);
    jet_status st = jet_nats_connect_wait(a->cfg, name, &a->nc, err);
    if (st)
        return st;
    st = jet_nats_jetstream(a->nc, a->cfg, &a->js, err);
    if (st)
        return st;
    st = jet_js_ensure_base(a->js, a->cfg, NULL, NULL, err);
    for (size_t i = 0; st == JET_OK && i < a->nqueues; i++)
        st = jet_js_ensure_queue(a->js, a->cfg, a->queues[i].name, NULL, NULL, err);
    /* The task stream's incarnation (its creation time) makes the ids of
     * tasks published without Nats-Msg-Id unique across a recreated stream. */
    jsStreamInfo *si = NULL;
    if (st == JET_OK && js_GetStreamInfo(&si, a->js, a->names.task_stream, NULL, NULL) == NATS_OK && si) {
        task_set_stream_created(si->Created / 1000000000);
        jsStreamInfo_Destroy(si);
    }
    return st;
}

/* SIGHUP: the reloadable keys and the Lua scripts. */
static void on_sighup(void *arg)
{
    agent *a = arg;
    const char *file = jet_config_file(a->cfg);
    jet_config *fresh = NULL;
    jet_err err;
    if (jet_config_load(agentd_schema, file, &fresh, &err) != JET_OK) {
        jet_error("SIGHUP: configuration not reloaded (the running one stays):\n%s", err.msg);
        handlers_reload(a, NULL); /* the scripts are reloaded all the same */
        return;
    }
    if (jet_config_nonreloadable_changes(a->cfg, fresh, &err) > 0)
        jet_warn("SIGHUP: %s", err.msg);
    agentd_settings set;
    agentd_settings_bind(fresh, &set);
    apply_reloadable(a, &set, fresh);
    handlers_reload(a, set.lua_dir);
    agentd_settings_free(&set);
    /* The running config keeps ownership of everything the threads hold; the
     * reloadable values were copied out above. */
    jet_config_free(fresh);
    jet_info("SIGHUP: configuration reloaded from %s", file ? file : "(defaults)");
    for (size_t i = 0; i < a->nqueues; i++)
        puller_wake(&a->queues[i]);
}

static void hand_back_unfinished(inflight *f, void *a)
{
    if (atomic_load(&f->state) == RUN_RUNNING || atomic_load(&f->state) == RUN_WAITING)
        acker_nak_now(a, f->task);
}

typedef struct unstarted {
    agent_task **ts; /* copies: id and stream message only */
    size_t n;
} unstarted;

/* A task a worker took and had not started when the drain gave up (its
 * admission still waiting for PostgreSQL, for a slot): handed back without
 * running, so recorded as handed back before its Nak like the others
 * (DESIGN §12; test agentd_drain_kill). */
static void collect_unstarted(inflight *f, void *arg)
{
    unstarted *u = arg;
    if (atomic_load(&f->state) != RUN_WAITING)
        return;
    agent_task *c = jet_xcalloc(1, sizeof *c);
    memcpy(c->id, f->task->id, sizeof c->id);
    c->stream_seq = f->task->stream_seq;
    u->ts = jet_xrealloc(u->ts, (u->n + 1) * sizeof *u->ts);
    u->ts[u->n++] = c;
}

static void drain(agent *a, int64_t grace_ms)
{
    jet_info("draining: no new tasks; running tasks may finish for %lld ms", (long long)grace_ms);
    jet_sd_stopping("draining");
    atomic_store(&a->draining, true);
    for (size_t i = 0; i < a->nqueues; i++)
        puller_join(&a->queues[i]);
    int64_t until = jet_mono_ms() + grace_ms;
    for (size_t i = 0; i < a->nqueues; i++) {
        int64_t left = until - jet_mono_ms();
        workers_drain(&a->queues[i], left > 0 ? left : 0);
    }
    /* Tasks still running after the grace were cancelled by workers_drain;
     * give them a moment to notice, then hand back whatever still runs. */
    int64_t cancel_until = jet_mono_ms() + 2000;
    for (;;) {
        int busy = 0;
        for (size_t i = 0; i < a->nqueues; i++) {
            pthread_mutex_lock(&a->queues[i].mu);
            busy += a->queues[i].busy;
            pthread_mutex_unlock(&a->queues[i].mu);
        }
        if (busy == 0 || jet_mono_ms() >= cancel_until)
            break;
        jet_sleep_ms(20);
    }
    unstarted u = {0};
    inflight_foreach(a, collect_unstarted, &u);
    recorder_handed_back(a, u.ts, u.n);
    for (size_t i = 0; i < u.n; i++)
        free(u.ts[i]);
    free(u.ts);
    inflight_foreach(a, hand_back_unfinished, a);
}

int main(int argc, char **argv)
{
    static const jet_daemon_info info = {
        .name = "agentd",
        .summary = "jetsched worker: pulls tasks from NATS JetStream and runs them in plugins and Lua",
        .default_config = "/etc/jetsched/agentd.conf",
        .schema = agentd_schema,
    };
    agent ag = {0}, *a = &ag;
    int rc = jet_daemon_start(&info, argc, argv, &a->cfg);
    if (rc >= 0)
        return rc;

    /* Orphans of exec'd commands (grandchildren whose process group was
     * killed) are re-parented to us and reaped by the exec plugin, even in
     * containers whose PID 1 does not reap. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    jet_daemon_block_signals(); /* every thread inherits the mask; main waits for the signals */

    jet_err err = {0};
    jet_status st = JET_OK;
    jet_httpd *httpd = NULL;
    inflight_init(a);
    agentd_settings_bind(a->cfg, &a->set);
    if (a->set.agent_id)
        snprintf(a->id, sizeof a->id, "%s", a->set.agent_id);
    else
        gethostname(a->id, sizeof a->id - 1);
    jet_js_names_init(&a->names, a->set.nats_prefix);
    a->ack_wait_ms = a->set.ack_wait_ms;
    a->max_recording = a->set.history_max_pending;

    if ((st = setup_queues(a, &err)) || (st = connect_nats(a, &err)) || (st = recorder_start(a, &err)) ||
        (st = limits_start(a, &err)) ||
        (st = cancel_start(a, &err)) || (st = control_start(a, &err)) || (st = handlers_init(a, &err)) || (st = outcome_start(a, &err)) ||
        (st = acker_start(a, &err)) || (st = supervisor_start(a, &err)))
        goto fail;
    for (size_t i = 0; i < a->nqueues; i++)
        if ((st = puller_init(&a->queues[i], &err)) || (st = workers_start(&a->queues[i], &err)) ||
            (st = puller_start(&a->queues[i], &err)))
            goto fail;
    if ((st = registry_start(a, &err)))
        goto fail;
    jet_metric_gauge_fn("jetsched_agent_in_flight", "Tasks held by this agent (waiting, running, recording).",
                        gauge_inflight, a);
    jet_metric_gauge_fn("jetsched_agent_history_pending", "Finished tasks waiting for their PostgreSQL commit.",
                        gauge_recording, a);
    jet_metric_gauge_fn("jetsched_agent_nats_reconnects", "NATS reconnects since start.", gauge_reconnects, a);
    jet_metric_gauge_fn("jetsched_agent_nats_connected", "1 while connected to NATS.", gauge_connected, a);
    jet_metric_gauge_fn("jetsched_agent_concurrency", "Worker threads of all served queues.", gauge_concurrency, a);
    jet_metric_gauge_fn("jetsched_agent_abandoned_threads", "Handler threads abandoned after ignoring a timeout.",
                        gauge_abandoned, a);
    jet_metric_gauge_fn("jetsched_agent_ready", "1 when /readyz is OK.", gauge_ready, a);
    if (a->set.http_listen && (st = jet_httpd_start(a->set.http_listen, ready, a, &httpd, &err)))
        goto fail;

    char nats_shown[2048];
    jet_info("agent %s ready: %zu queue(s), NATS %s", a->id, a->nqueues,
             jet_redact(jet_cfg_str(a->cfg, "nats.url"), nats_shown, sizeof nats_shown));
    if (httpd)
        jet_info("http endpoints on %s (port %d)", a->set.http_listen, jet_httpd_port(httpd));
    jet_sd_ready("running");

    jet_daemon_run_signals(on_sighup, a);
    drain(a, a->set.shutdown_grace_ms);
    recorder_flush(a, 10000);
    acker_stop(a);
    registry_stop(a);
    rc = JET_EXIT_OK;
    jet_info("drained; exiting");
    goto out;

fail:
    if (jet_stop_signal_pending()) {
        /* SIGTERM/SIGINT during start-up: a clean stop, not a failure. */
        jet_info("stopped during start-up (%s); exiting", err.msg);
        rc = JET_EXIT_OK;
    } else {
        jet_error("%s", err.msg);
        rc = JET_EXIT_FAILURE;
    }
    atomic_store(&a->draining, true);
    recorder_flush(a, 0);
    acker_stop(a);
    registry_stop(a);
out:
    atomic_store(&a->stopped, true);
    jet_httpd_stop(httpd);
    supervisor_stop(a);
    limits_stop(a);
    cancel_stop(a);
    control_stop(a);
    handlers_shutdown(a);
    if (a->nc) {
        natsConnection_FlushTimeout(a->nc, 2000);
        jsCtx_Destroy(a->js);
        natsConnection_Destroy(a->nc);
    }
    /* The worker threads are detached: the queues are freed only once every
     * one of them has left (an abandoned handler may keep one; then the
     * queues stay allocated until the process exits). */
    bool all_stopped = true;
    for (size_t i = 0; i < a->nqueues; i++)
        all_stopped &= workers_stop(&a->queues[i], 2000);
    if (all_stopped) {
        for (size_t i = 0; i < a->nqueues; i++)
            dispatch_free(&a->queues[i]);
        free(a->queues);
    }
    outcome_free(a);
    recorder_free(a);
    agentd_settings_free(&a->set);
    jet_config_free(a->cfg);
    jet_metrics_reset();
    nats_Close();
    return rc;
}
