/* The leader's sampler of cluster-wide gauges for /metrics (issue 19): queue
 * depth, pending (consumer lag), in flight and redelivered per lane from
 * JetStream, dead letters per queue, and tasks by state from PostgreSQL.
 * Only the acting leader exports them (followers export none of these
 * series), so a sum over all schedulerd never counts a lane twice. Sampled
 * every `stats.interval` on the sampler's own thread and PostgreSQL
 * connection, never on a scrape. Tasks by state are bounded counts: at most
 * `stats.count_cap` rows per state are counted (an index range scan on
 * tasks_status_created_idx), so a 100-million-row history costs the same as
 * a small one; a value equal to the cap means "at least". The table's total
 * comes from pg_class.reltuples (the planner's estimate, no scan).
 * Also: the leader-elections-won counter (election.c calls
 * stats_leader_won). */
#include "schedulerd.h"

#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/pgconn.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every status a task row can have (common/task.h; a status the schema does
 * not know yet simply counts 0). */
#define statuses jet_task_state_names
#define NSTATUS ((size_t)JET_TASK_STATE_COUNT)
#define MAX_LANES 512

static jet_metric *m_depth, *m_pending, *m_ack_pending, *m_redelivered, *m_waiting, *m_dlq, *m_tasks,
    *m_tasks_estimate, *m_sample_errors, *m_leader_won, *m_sampled_at;
static pthread_t stats_thread;
static bool started;
static PGconn *pg;

void stats_leader_won(void)
{
    jet_metric_add(m_leader_won, NULL, 1);
}

static void sample_error(const char *source, const char *fmt, const char *detail)
{
    const char *l[] = {source};
    jet_metric_add(m_sample_errors, l, 1);
    jet_warn(fmt, detail);
}

typedef struct lane {
    char queue[JET_NAME_MAX + 1];
    jet_priority prio; /* JET_PRIO_COUNT: a DLQ subject (no priority) */
    double v[5];       /* depth, pending, in flight, redelivered, pull requests waiting */
} lane;

/* The lane of (queue, prio), added when missing (up to MAX_LANES). */
static lane *lane_of(lane *lanes, int *n, const char *queue, size_t qlen, jet_priority prio)
{
    for (int i = 0; i < *n; i++)
        if (lanes[i].prio == prio && strlen(lanes[i].queue) == qlen && strncmp(lanes[i].queue, queue, qlen) == 0)
            return &lanes[i];
    if (*n == MAX_LANES || qlen == 0 || qlen > JET_NAME_MAX)
        return NULL;
    lane *l = &lanes[(*n)++];
    memset(l, 0, sizeof *l);
    snprintf(l->queue, sizeof l->queue, "%.*s", (int)qlen, queue);
    l->prio = prio;
    return l;
}

/* Adds the per-subject message counts of a stream to the lanes' depth:
 * <prefix>.task.<queue>.<priority> (task stream) or <prefix>.dlq.<queue>. */
static bool subject_counts(sched *s, const char *stream, const char *kind, lane *lanes, int *n)
{
    char filter[128];
    snprintf(filter, sizeof filter, "%s.%s.>", s->names.prefix, kind);
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = filter;
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus st = js_GetStreamInfo(&si, s->js, stream, &o, &je);
    if (st != NATS_OK) {
        char what[200];
        snprintf(what, sizeof what, "%s: %s", stream, natsStatus_GetText(st));
        sample_error("nats", "stats: stream info of %s", what);
        return false;
    }
    size_t skip = strlen(filter) - 1; /* "<prefix>.<kind>." */
    const jsStreamStateSubjects *subs = si->State.Subjects;
    for (int i = 0; subs && i < subs->Count; i++) {
        const char *q = subs->List[i].Subject + skip, *dot = strchr(q, '.');
        jet_priority p = JET_PRIO_COUNT;
        if (strlen(subs->List[i].Subject) <= skip || (strcmp(kind, "task") == 0) != (dot != NULL) ||
            (dot && !jet_priority_parse(dot + 1, &p)))
            continue; /* not a subject jetsched publishes */
        lane *l = lane_of(lanes, n, q, dot ? (size_t)(dot - q) : strlen(q), p);
        if (l)
            l->v[0] += (double)subs->List[i].Msgs;
    }
    jsStreamInfo_Destroy(si);
    return true;
}

static void sample_nats(sched *s)
{
    static lane lanes[MAX_LANES], dlq[MAX_LANES];
    static const char *labels[MAX_LANES * 2];
    static double values[5][MAX_LANES];
    int n = 0, nd = 0;

    jsConsumerInfoList *cl = NULL;
    jsErrCode je = 0;
    natsStatus st = js_Consumers(&cl, s->js, s->names.task_stream, NULL, &je);
    if (st != NATS_OK && st != NATS_NOT_FOUND) {
        sample_error("nats", "stats: listing the consumers: %s", natsStatus_GetText(st));
        return;
    }
    for (int i = 0; cl && i < cl->Count; i++) {
        jsConsumerInfo *ci = cl->List[i];
        char queue[JET_NAME_MAX + 1];
        jet_priority p;
        if (!jet_js_consumer_parse(ci->Name, queue, &p))
            continue;
        lane *l = lane_of(lanes, &n, queue, strlen(queue), p);
        lane *d = lane_of(dlq, &nd, queue, strlen(queue), JET_PRIO_COUNT); /* every served queue: 0 dead letters too */
        if (!l || !d)
            continue;
        l->v[1] = (double)ci->NumPending;
        l->v[2] = (double)ci->NumAckPending;
        l->v[3] = (double)ci->NumRedelivered;
        l->v[4] = (double)ci->NumWaiting;
    }
    jsConsumerInfoList_Destroy(cl);
    bool depth_ok = subject_counts(s, s->names.task_stream, "task", lanes, &n);
    bool dlq_ok = subject_counts(s, s->names.dlq_stream, "dlq", dlq, &nd);

    for (int i = 0; i < n; i++) {
        labels[i * 2] = lanes[i].queue;
        labels[i * 2 + 1] = jet_priority_name(lanes[i].prio);
        for (int k = 0; k < 5; k++)
            values[k][i] = lanes[i].v[k];
    }
    jet_metric *by_lane[5] = {m_depth, m_pending, m_ack_pending, m_redelivered, m_waiting};
    for (int k = depth_ok ? 0 : 1; k < 5; k++)
        jet_metric_set_all(by_lane[k], (size_t)n, labels, values[k]);
    if (dlq_ok) {
        for (int i = 0; i < nd; i++) {
            labels[i] = dlq[i].queue;
            values[0][i] = dlq[i].v[0];
        }
        jet_metric_set_all(m_dlq, (size_t)nd, labels, values[0]);
    }
}

static void sample_pg(sched *s)
{
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        if (pg)
            PQfinish(pg);
        pg = NULL;
        jet_err err = {0};
        if (jet_pg_connect(s->cfg, "schedulerd-stats", &pg, &err) != JET_OK) {
            sample_error("postgres", "stats: %s", err.msg);
            if (pg)
                PQfinish(pg);
            pg = NULL;
            return;
        }
    }
    char cap[32], arr[512] = "{";
    snprintf(cap, sizeof cap, "%lld", (long long)jet_cfg_int(s->cfg, "stats.count_cap"));
    const char *labels[NSTATUS];
    size_t nlabels = 0;
    for (size_t i = 0; i < NSTATUS; i++)
        if (jet_task_state_of_task((jet_task_state)i)) {
            snprintf(arr + strlen(arr), sizeof arr - strlen(arr), "%s%s", nlabels ? "," : "", statuses[i]);
            labels[nlabels++] = statuses[i];
        }
    strcat(arr, "}");
    const char *params[] = {cap, arr};
    PGresult *r = PQexecParams(
        pg,
        "SELECT st.status, (SELECT count(*) FROM (SELECT 1 FROM tasks t WHERE t.status = st.status LIMIT $1::bigint) c),"
        " (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'tasks'::regclass)"
        " FROM unnest($2::text[]) WITH ORDINALITY AS st(status, n) ORDER BY st.n",
        2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sample_error("postgres", "stats: counting tasks by state: %s", PQerrorMessage(pg));
        PQclear(r);
        return;
    }
    double values[NSTATUS];
    int n = PQntuples(r);
    if (n > (int)nlabels)
        n = (int)nlabels;
    for (int i = 0; i < n; i++)
        values[i] = atof(PQgetvalue(r, i, 1));
    jet_metric_set_all(m_tasks, (size_t)n, labels, values);
    double estimate = n > 0 ? atof(PQgetvalue(r, 0, 2)) : 0;
    jet_metric_set_all(m_tasks_estimate, 1, NULL, &estimate);
    PQclear(r);
}

static void clear_all(void)
{
    jet_metric *all[] = {m_depth, m_pending, m_ack_pending, m_redelivered, m_waiting, m_dlq, m_tasks,
                         m_tasks_estimate, m_sampled_at};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        jet_metric_set_all(all[i], 0, NULL, NULL);
}

static void *stats_main(void *arg)
{
    sched *s = arg;
    bool exported = false;
    int64_t next = 0;
    while (!atomic_load(&s->stop)) {
        int64_t now = jet_mono_ms();
        if (atomic_load(&s->epoch) == 0) {
            if (exported)
                clear_all();
            exported = false;
            next = 0;
            if (pg) {
                PQfinish(pg);
                pg = NULL;
            }
        } else if (now >= next) {
            next = now + jet_cfg_int(s->cfg, "stats.interval");
            sample_nats(s);
            sample_pg(s);
            double at = (double)jet_now_ms() / 1000.0;
            jet_metric_set_all(m_sampled_at, 1, NULL, &at);
            exported = true;
        }
        jet_sleep_ms(100);
    }
    return NULL;
}

/* The metrics are registered before the election thread starts (main.c):
 * stats_leader_won() runs on that thread and may count a win before the stats
 * thread exists. */
void stats_metrics_init(void)
{
    m_depth = jet_metric_gauge("jetsched_queue_depth",
                               "Task messages stored per lane (queued and in flight); leader only.", "queue,priority");
    m_pending = jet_metric_gauge("jetsched_queue_pending",
                                 "Consumer lag: task messages not yet delivered per lane; leader only.",
                                 "queue,priority");
    m_ack_pending = jet_metric_gauge("jetsched_queue_in_flight",
                                     "Task messages delivered and not yet acknowledged per lane; leader only.",
                                     "queue,priority");
    m_redelivered = jet_metric_gauge("jetsched_queue_redelivered",
                                     "In-flight task messages delivered more than once per lane; leader only.",
                                     "queue,priority");
    m_waiting = jet_metric_gauge("jetsched_queue_pull_waiting", "Pull requests waiting per lane; leader only.",
                                 "queue,priority");
    m_dlq = jet_metric_gauge("jetsched_dlq_messages", "Dead letters kept in the DLQ stream per queue; leader only.",
                             "queue");
    m_tasks = jet_metric_gauge("jetsched_tasks",
                               "Task rows by status in PostgreSQL, counted up to stats.count_cap; leader only.",
                               "status");
    m_tasks_estimate = jet_metric_gauge("jetsched_tasks_rows_estimate",
                                        "Rows of the tasks table (pg_class.reltuples estimate); leader only.", NULL);
    m_sampled_at = jet_metric_gauge("jetsched_stats_last_sample_timestamp_seconds",
                                    "Unix time of the leader's last sample of the gauges above; leader only.", NULL);
    m_sample_errors = jet_metric_counter("jetsched_stats_sample_errors_total",
                                         "Failed samples of the leader's gauges, by source (nats, postgres).",
                                         "source");
    m_leader_won = jet_metric_counter("jetsched_scheduler_leader_elections_won_total",
                                      "Times this instance won the leader election.", NULL);
}

jet_status stats_start(sched *s, jet_err *err)
{
    clear_all();
    if (pthread_create(&stats_thread, NULL, stats_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the stats thread");
    started = true;
    return JET_OK;
}

void stats_stop(sched *s)
{
    (void)s;
    if (!started)
        return;
    pthread_join(stats_thread, NULL);
    started = false;
    if (pg)
        PQfinish(pg);
    pg = NULL;
}
