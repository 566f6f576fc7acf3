/* Admission checks before a handler runs, and the admission lookup (DESIGN §12). */
#include "admission.h"
#include "cancel.h"
#include "handlers.h"
#include "keylimits.h"
#include "inflight.h"
#include "acker.h"
#include "outcome.h"
#include "recorder.h"

#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/timeutil.h>

#include <pthread.h>

#include <stdio.h>

/* ---- the admission lookup: one PostgreSQL query for a pull batch ----
 *
 * The thread that receives a queue's deliveries (libnats' delivery thread of
 * the pull inbox, puller.c) collects the deliveries that arrive together
 * and, before any worker sees them, reads their rows in one query
 * (admission_lookup: recorder_rows, id = ANY($1)); each task carries its
 * row to the worker, which decides on it at once (admission_settle). The
 * workers do not wait for PostgreSQL, nor for each other.
 *
 * A row read more than ROW_FRESH_US before a worker takes the task (a late
 * delivery waiting for a slot, a machine too loaded to wake the worker) is
 * read again by the worker (lookup_row below). Those lookups are rare; the
 * workers that need one at the same time still share a query: each queues
 * its task id, and whichever finds no query running takes every id queued
 * so far and asks once; ids queued while it runs go in the next one. */

#define ROW_FRESH_US 100000

enum { LOOKUP_MAX = 256 };

typedef struct lookup {
    const char *id;
    recorder_row row;
    bool asked;        /* PostgreSQL answered the query (row is the truth, found or not) */
    bool done;
    pthread_cond_t cv; /* its own: a finished query wakes exactly its tasks and the next leader */
    struct lookup *next;
} lookup;

static struct {
    pthread_mutex_t mu;
    lookup *head, **tail;
    bool querying;
} adm = {PTHREAD_MUTEX_INITIALIZER, NULL, &adm.head, false};

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;
static jet_metric *m_refused, *m_queries, *m_looked_up, *m_lost;

static void metrics_init(void)
{
    m_refused = jet_metric_counter("jetsched_agent_admission_refused_total",
                                   "Deliveries acked without running: their PostgreSQL row is terminal (or a workflow node still waiting).", "reason");
    m_queries = jet_metric_counter("jetsched_agent_admission_queries_total",
                                   "Admission lookups (one PostgreSQL query each).", NULL);
    m_looked_up = jet_metric_counter("jetsched_agent_admission_tasks_total",
                                     "Deliveries looked up by the admission step.", NULL);
    m_lost = jet_metric_counter("jetsched_agent_lost_attempts_total",
                                "Attempts recorded as 'lost': delivered again with no record of them.", NULL);
}

static void lookup_row(agent *a, lookup *me)
{
    pthread_cond_init(&me->cv, NULL);
    pthread_mutex_lock(&adm.mu);
    me->next = NULL;
    *adm.tail = me;
    adm.tail = &me->next;
    while (!me->done) {
        if (adm.querying) {
            pthread_cond_wait(&me->cv, &adm.mu);
            continue;
        }
        adm.querying = true;
        lookup *batch[LOOKUP_MAX];
        const char *ids[LOOKUP_MAX];
        recorder_row rows[LOOKUP_MAX];
        size_t n = 0;
        while (adm.head && n < LOOKUP_MAX) {
            batch[n] = adm.head;
            ids[n] = adm.head->id;
            n++;
            adm.head = adm.head->next;
        }
        if (!adm.head)
            adm.tail = &adm.head;
        pthread_mutex_unlock(&adm.mu);
        bool asked = recorder_rows(a, ids, n, rows);
        jet_metric_add(m_queries, NULL, 1);
        jet_metric_add(m_looked_up, NULL, (double)n);
        pthread_mutex_lock(&adm.mu);
        for (size_t i = 0; i < n; i++) {
            batch[i]->row = rows[i];
            batch[i]->asked = asked;
            batch[i]->done = true;
            if (batch[i] != me)
                pthread_cond_signal(&batch[i]->cv);
        }
        adm.querying = false;
        if (adm.head) /* queued meanwhile: its first task leads the next query */
            pthread_cond_signal(&adm.head->cv);
    }
    pthread_mutex_unlock(&adm.mu);
    pthread_cond_destroy(&me->cv);
}

void admission_lookup(agent *a, inflight *const *fs, size_t n)
{
    pthread_once(&metrics_once, metrics_init);
    size_t i = 0;
    while (i < n) {
        const char *ids[LOOKUP_MAX];
        inflight *of[LOOKUP_MAX];
        recorder_row rows[LOOKUP_MAX];
        size_t k = 0;
        for (; i < n && k < LOOKUP_MAX; i++)
            if (!fs[i]->task->dead_reason) { /* malformed: dead without a row */
                of[k] = fs[i];
                ids[k++] = fs[i]->task->id;
            }
        if (k == 0)
            break;
        int64_t asked_us = jet_mono_us(); /* the row is at least this fresh */
        bool asked = recorder_rows(a, ids, k, rows);
        jet_metric_add(m_queries, NULL, 1);
        jet_metric_add(m_looked_up, NULL, (double)k);
        for (size_t j = 0; j < k; j++) {
            if (!of[j]->adm_row)
                of[j]->adm_row = jet_xmalloc(sizeof *of[j]->adm_row);
            *of[j]->adm_row = rows[j];
            of[j]->adm_asked = asked;
            of[j]->adm_read_us = asked_us;
        }
    }
}

/* Attempt numbers continue after the ones PostgreSQL recorded (the delivery
 * count restarts for a republished or redispatched message). */
static void continue_attempts(agent_task *t, const recorder_row *row)
{
    int attempts = row->attempts, delivered = (int)t->delivered;
    /* Deliveries of this message handed back without running (the drain,
     * a failed park: recorder_handed_back) spend no attempt (DESIGN §12). */
    int back = row->handed_back_seq == t->stream_seq ? row->handed_back : 0;
    if (back > delivered - 1)
        back = delivered > 1 ? delivered - 1 : 0;
    int runs = delivered - back; /* deliveries that may have run, this one included */
    /* attempt_base may be negative: task_attempt is attempt_base + delivered. */
    t->attempt_base = attempts >= runs ? attempts - runs + 1 - back : -back;
    t->pub.attempt = task_attempt(t);
}

/* Every delivery (first or not: after a nats-server crash an acknowledged
 * message can come back as a first delivery, and a client can republish an
 * id after the duplicate window or forge Jetsched-Task-Id): true, with *row
 * set, when PostgreSQL holds a terminal row for this task id, which then
 * must not run. A row that is not terminal (queued, running after a crash,
 * retrying) lets the task run; its attempts continue after the ones
 * already recorded. */
static bool row_terminal(agent *a, inflight *f, recorder_row *row, bool *asked)
{
    agent_task *t = f->task;
    pthread_once(&metrics_once, metrics_init);
    if (f->adm_row && jet_mono_us() - f->adm_read_us <= ROW_FRESH_US) {
        *row = *f->adm_row; /* read by the admission lookup of its batch */
        *asked = f->adm_asked;
    } else {
        lookup me = {.id = t->id};
        lookup_row(a, &me);
        *row = me.row;
        *asked = me.asked;
    }
    if (!row->found) {
        /* A redelivery of a task without a row (published straight to
         * NATS): the deliveries handed back are in task_handbacks. */
        if (*asked && t->delivered > 1) {
            int back = recorder_handbacks(a, t);
            if (back > (int)t->delivered - 1)
                back = (int)t->delivered - 1;
            t->attempt_base = -back;
            t->pub.attempt = task_attempt(t);
        }
        return false;
    }
    if (jet_task_state_terminal(row->status))
        return true;
    continue_attempts(t, row);
    return false;
}

/* A refused delivery: acked without running, recorded as a `duplicate`
 * attempt (the task's row is terminal and stays as it is). */
static void refuse(agent_task *t, const recorder_row *row, outcome *o, char *why, size_t len)
{
    const char *st = jet_task_state_name(row->status);
    const char *l[] = {st};
    jet_metric_add(m_refused, l, 1);
    continue_attempts(t, row);
    snprintf(why, len, "not run: its task row is already %s (id already used)", st);
    jet_debug("task %s (queue %s, handler %s, delivery %llu) refused at admission: row is %s", t->id, t->queue,
              t->handler[0] ? t->handler : "-", (unsigned long long)t->delivered, st);
    *o = (outcome){.status = JET_TASK_DUPLICATE, .error = why};
}

/* DESIGN §12: a redelivery whose earlier attempts have no record at all (a
 * first attempt shorter than history.running_after writes nothing before
 * its outcome, so an agent killed meanwhile leaves nothing) gets a 'lost'
 * row for each, committed before this attempt runs, so that poison is judged
 * on recorded attempts. Attempts recorded so far are row->attempts (0: no
 * row); this delivery is attempt task_attempt(t) (continue_attempts).
 * Only when PostgreSQL answered: without the lookup nothing is known. */
static void record_lost(agent *a, inflight *f, const recorder_row *row, bool asked)
{
    agent_task *t = f->task;
    int recorded = row->found ? row->attempts : 0, attempt = task_attempt(t);
    if (!asked || t->delivered <= 1 || attempt - 1 <= recorded)
        return;
    int from = recorded + 1, to = attempt - 1;
    if (to - from >= 16) /* far past any max_attempts: poison either way, keep the write bounded */
        from = to - 15;
    jet_metric_add(m_lost, NULL, (double)(to - from + 1));
    jet_info("task %s (queue %s, delivery %llu): attempt(s) %d..%d left no record; recorded as lost", t->id,
             t->queue, (unsigned long long)t->delivered, from, to);
    recorder_lost(a, f, from, to);
}

/* A workflow node whose row is still `waiting` (docs/WORKFLOWS.md): its
 * dependencies are not done, so nothing schedulerd publishes can be it
 * (the releaser moves a row to `queued` before it publishes it); this is a
 * message published straight to NATS under its id. Acked without running
 * and without a record: the row stays `waiting` for its release. */
static bool hold_waiting(agent *a, inflight *f, const recorder_row *row)
{
    if (!row->found || row->status != JET_TASK_WAITING)
        return false;
    const char *l[] = {"waiting"};
    jet_metric_add(m_refused, l, 1);
    jet_warn("task %s (queue %s) refused at admission: it is a workflow node still waiting for its dependencies "
             "(a message published outside schedulerd); acked, not run",
             f->task->id, f->task->queue);
    acker_ack_now(a, f->task);
    inflight_unlink(a, f);
    inflight_release(f);
    return true;
}

bool admission_settle(agent *a, inflight *f)
{
    agent_task *t = f->task;
    outcome o = {0};
    recorder_row row = {0};
    bool asked = false;
    char why[200];
    if (t->dead_reason) {
        o = (outcome){.status = JET_TASK_DEAD, .reason = t->dead_reason, .error = t->dead_detail};
    } else if (row_terminal(a, f, &row, &asked)) {
        refuse(t, &row, &o, why, sizeof why);
    } else if (hold_waiting(a, f, &row)) {
        return true;
    } else if (row.found && row.status == JET_TASK_THROTTLED) {
        limits_drop_stale(a, f); /* parked: the leader publishes it again */
        return true;
    } else if (record_lost(a, f, &row, asked), task_attempt(t) > t->max_attempts) {
        /* Judged on recorded attempts (PostgreSQL, including the 'lost'
         * ones just written), not on JetStream's delivery count. */
        o = (outcome){.status = JET_TASK_DEAD, .reason = JET_REASON_POISON,
                      .error = "more attempts than its max attempts: earlier attempts never finished "
                               "(the agent running them crashed or was killed)"};
    } else if (t->deadline_ms && jet_now_ms() > t->deadline_ms) {
        o = (outcome){.status = JET_TASK_EXPIRED, .error = "not started before its Jetsched-Deadline"};
    } else if (cancel_requested(a, t->id)) {
        o = (outcome){.status = JET_TASK_CANCELLED, .error = "cancelled before it started"};
    } else if (!handlers_exists(a, t->handler)) {
        if (handlers_unavailable_reason(a, t->handler, f)) {
            outcome_unavailable(a, f);
            return true;
        }
        /* Another agent of the queue (or this one after a rolling upgrade)
         * may serve it: retry with backoff like handler_unavailable, and
         * dead-letter (reason kept) only when the attempts run out. */
        snprintf(why, sizeof why, "agent %.64s has no plugin or Lua script serving handler %.64s", a->id,
                 t->handler);
        outcome_retry_or_dead(a, f, JET_REASON_UNKNOWN_HANDLER, why);
        return true;
    } else {
        return limits_admit(a, f); /* a slot and a token, or parked */
    }
    outcome_record(a, f, &o);
    return true;
}
