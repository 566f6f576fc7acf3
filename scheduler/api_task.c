/* API verbs task.submit, task.submit_many, task.get, task.list, task.cancel
 * (docs/API.md), and the group commit of task.submit requests (api.h:
 * api_submit_group, driven by api_pool.c). A submit commits the row before
 * publishing (Nats-Msg-Id = id); a failed publish is left to the
 * reconciler. */
#include "api.h"
#include "publish.h"

#include <jetsched/backoff.h>
#include <jetsched/base64.h>
#include <jetsched/ids.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/pgarray.h>
#include <jetsched/strmap.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int task_id_field(const json_t *req, bool required, const char **id, api_err *e)
{
    int rc = api_str(req, "id", required, id, e);
    if (rc == 1 && !jet_task_id_valid(*id)) {
        api_fail(e, API_INVALID, "id", "id \"%.140s\" is not a valid task id: 1-128 characters of [A-Za-z0-9_-]",
                 *id);
        return -1;
    }
    return rc;
}

/* ---------------- task.submit ---------------- */

/* <workflow>-on_success / -on_complete of a workflow with that callback:
 * its row is reserved by workflow.submit (sql/0020), so this is the clear
 * error; a submit racing a workflow.submit finds the id taken instead. */
static bool reserved_callback_id(api_ctx *c, const char *id, api_err *e)
{
    static const char *const kinds[] = {"on_success", "on_complete"};
    size_t n = strlen(id);
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(kinds[k]);
        if (c->offline || n < kl + 2 || id[n - kl - 1] != '-' || strcmp(id + n - kl, kinds[k]) != 0)
            continue;
        char wf[JET_TASK_ID_MAX + 1];
        snprintf(wf, sizeof wf, "%.*s", (int)(n - kl - 1), id);
        const char *p[] = {wf};
        PGresult *r = api_pg(c, "read workflow callbacks",
                             k ? "SELECT 1 FROM workflows WHERE id = $1 AND on_complete IS NOT NULL"
                               : "SELECT 1 FROM workflows WHERE id = $1 AND on_success IS NOT NULL",
                             1, p, NULL, NULL, e);
        if (!r)
            return true;
        bool taken = PQntuples(r) > 0;
        PQclear(r);
        if (taken) {
            api_fail(e, API_INVALID, "id", "id %s is the task id of workflow %s's %s callback", id, wf, kinds[k]);
            return true;
        }
    }
    return false;
}

/* One validated submission (struct api_submit, api.h). */
typedef struct api_submit submit_row;

static void submit_row_free(submit_row *row)
{
    free(row->payload);
    free(row->hjson);
    row->payload = NULL;
    row->hjson = NULL;
}

void api_task_row_free(api_task_row *row) { submit_row_free(row); }

json_t *api_task_row_json(const api_task_row *w)
{
    char *b64 = w->payload ? jet_base64_encode(w->payload, w->plen, false) : NULL;
    json_t *h = w->hjson ? json_loads(w->hjson, 0, NULL) : NULL;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:s?,s:o,s:o,s:s?}", "id", w->id, "queue", w->queue, "handler",
                          w->handler, "priority", w->prio, "status", w->delayed ? "scheduled" : "queued",
                          "max_attempts", w->max_attempts ? json_integer(w->max_attempts) : json_null(), "payload",
                          b64 ? b64 : "", "headers", h ? h : json_object(), "due",
                          w->delayed ? json_integer(w->due_ms) : json_null(), "trace", w->trace[0] ? w->trace : NULL);
    free(b64);
    return o;
}

/* Every check of task.submit on req; fills *row. Returns 1 (row ready), 0
 * (validate_only: valid, nothing to store) or -1 (*e filled). */
static int submit_prepare(api_ctx *c, json_t *req, submit_row *row, api_err *e)
{
    static const char *const fields[] = {"queue", "priority", "handler", "payload", "payload_base64", "id",
                                         "headers", "max_attempts", "timeout", "deadline", "backoff", "run_at",
                                         "delay", "validate_only", NULL};
    memset(row, 0, sizeof *row);
    if (!api_check_fields(req, fields, e))
        return -1;
    const char *queue = "default", *prio = "normal", *handler = NULL, *id = NULL, *timeout = NULL,
               *deadline = NULL, *backoff_s = NULL;
    int64_t max_attempts = 0, ms = 0, run_at = -1, delay = -1;
    if (api_name(req, "queue", false, &queue, e) < 0 || api_priority(req, "priority", &prio, e) < 0 ||
        api_name(req, "handler", true, &handler, e) < 0 || task_id_field(req, false, &id, e) < 0 ||
        api_int(req, "max_attempts", false, 1, 1000, &max_attempts, e) < 0)
        return -1;
    if (id && reserved_callback_id(c, id, e))
        return -1;
    if (api_duration(req, "timeout", false, &ms, e) < 0)
        return -1;
    if (api_str(req, "timeout", false, &timeout, e) == 1 && ms <= 0)
        return api_fail(e, API_INVALID, "timeout", "timeout must be more than 0s"), -1;
    if (api_time(req, "deadline", false, &ms, e) < 0)
        return -1;
    api_str(req, "deadline", false, &deadline, e);
    if (api_str(req, "backoff", false, &backoff_s, e) < 0)
        return -1;
    if (backoff_s) {
        jet_backoff b;
        jet_err err;
        if (jet_backoff_parse(backoff_s, &b, &err) != JET_OK)
            return api_fail(e, API_INVALID, "backoff", "%s", err.msg), -1;
    }
    if (api_time(req, "run_at", false, &run_at, e) < 0 || api_duration(req, "delay", false, &delay, e) < 0)
        return -1;
    if (run_at >= 0 && delay >= 0)
        return api_fail(e, API_INVALID, "delay", "give either run_at or delay, not both"), -1;
    int64_t deadline_ms = -1;
    if (deadline)
        jet_rfc3339_parse(deadline, &deadline_ms, NULL);
    int64_t start_ms = run_at >= 0 ? run_at : delay >= 0 ? jet_now_ms() + delay : -1;
    if (deadline && start_ms >= 0 && deadline_ms < start_ms)
        return api_fail(e, API_INVALID, "deadline",
                        "deadline %.40s is before the task is due (%s): it could never start", deadline,
                        run_at >= 0 ? "run_at" : "now + delay"),
               -1;
    json_t *headers = NULL;
    if (api_headers(req, "headers", &headers, e) < 0)
        return -1;
    unsigned char *payload = NULL;
    size_t plen = 0;
    if (api_payload(c, req, &payload, &plen, e) < 0) {
        json_decref(headers);
        return -1;
    }
    /* validate_only: every check above, nothing stored (jetsched submit
     * --from-file checks all lines this way before it submits any). */
    bool validate_only = false;
    if (api_bool(req, "validate_only", false, &validate_only, e) < 0 || validate_only) {
        free(payload);
        json_decref(headers);
        return validate_only ? 0 : -1;
    }

    /* The stored headers: the extra ones plus those given as fields. */
    if (!headers)
        headers = json_object();
    if (timeout)
        json_object_set_new(headers, JET_HDR_TIMEOUT, json_string(timeout));
    if (deadline)
        json_object_set_new(headers, JET_HDR_DEADLINE, json_string(deadline));
    if (backoff_s)
        json_object_set_new(headers, JET_HDR_BACKOFF, json_string(backoff_s));
    json_t *tp = json_object_get(headers, JET_HDR_TRACEPARENT);
    jet_trace_id(json_is_string(tp) ? json_string_value(tp) : NULL, row->trace);
    row->hjson = json_dumps(headers, JSON_COMPACT);
    json_decref(headers);
    if (id)
        snprintf(row->id, sizeof row->id, "%s", id);
    else
        jet_ulid_new(row->id);
    int64_t now = jet_now_ms();
    row->queue = queue;
    row->handler = handler;
    row->prio = prio;
    row->max_attempts = max_attempts;
    row->due_ms = run_at >= 0 ? run_at : delay >= 0 ? now + delay : -1;
    row->delayed = row->due_ms > now;
    row->payload = payload;
    row->plen = plen;
    return 1;
}

/* ---------------- storing and publishing submissions ---------------- */

/* What one INSERT of submissions left: the created rows (PUB_COLS, then
 * status) and the states of the ids that existed already. */
typedef struct stored {
    PGresult *ins, *st;
    int64_t session; /* the publish session the rows were written with (0: none) */
    jet_strmap *created, *existing; /* id -> status (borrowed from ins, st) */
} stored;

static void stored_free(stored *sd)
{
    PQclear(sd->ins);
    PQclear(sd->st);
    jet_strmap_free(sd->created, NULL);
    jet_strmap_free(sd->existing, NULL);
    memset(sd, 0, sizeof *sd);
}

/* The INSERT's columns as PostgreSQL array literals, one per column (cheaper
 * to build and to parse than a JSON document of objects). */
enum { C_ID, C_QUEUE, C_HANDLER, C_PRIO, C_STATUS, C_MAX, C_PAYLOAD, C_HEADERS, C_DUE, C_TRACE, NCOLS };

static void encode_rows(submit_row *const *rows, size_t n, char **col)
{
    size_t cap[NCOLS] = {0};
    for (size_t i = 0; i < n; i++) {
        const submit_row *w = rows[i];
        cap[C_ID] += 2 * strlen(w->id) + 3;
        cap[C_QUEUE] += 2 * strlen(w->queue) + 3;
        cap[C_HANDLER] += 2 * strlen(w->handler) + 3;
        cap[C_PRIO] += 2 * strlen(w->prio) + 3;
        cap[C_STATUS] += 2 * strlen("scheduled") + 3;
        cap[C_MAX] += 22;
        cap[C_PAYLOAD] += 2 * w->plen + 7;
        cap[C_HEADERS] += 2 * (w->hjson ? strlen(w->hjson) : 2) + 3;
        cap[C_DUE] += 22;
        cap[C_TRACE] += 2 * strlen(w->trace) + 5;
    }
    char *o[NCOLS];
    for (int k = 0; k < NCOLS; k++) {
        col[k] = malloc(cap[k] + 3);
        o[k] = col[k];
        *o[k]++ = '{';
    }
    for (size_t i = 0; i < n; i++) {
        const submit_row *w = rows[i];
        if (i)
            for (int k = 0; k < NCOLS; k++)
                *o[k]++ = ',';
        const char *status = w->delayed ? "scheduled" : "queued", *h = w->hjson ? w->hjson : "{}";
        o[C_ID] = jet_pgarr_put_text(o[C_ID], w->id, strlen(w->id));
        o[C_QUEUE] = jet_pgarr_put_text(o[C_QUEUE], w->queue, strlen(w->queue));
        o[C_HANDLER] = jet_pgarr_put_text(o[C_HANDLER], w->handler, strlen(w->handler));
        o[C_PRIO] = jet_pgarr_put_text(o[C_PRIO], w->prio, strlen(w->prio));
        o[C_STATUS] = jet_pgarr_put_text(o[C_STATUS], status, strlen(status));
        o[C_MAX] = jet_pgarr_put_int(o[C_MAX], w->max_attempts, true);
        o[C_PAYLOAD] = jet_pgarr_put_bytea(o[C_PAYLOAD], w->payload ? w->payload : (const unsigned char *)"", w->plen);
        o[C_HEADERS] = jet_pgarr_put_text(o[C_HEADERS], h, strlen(h));
        o[C_DUE] = w->delayed ? jet_pgarr_put_int(o[C_DUE], w->due_ms, false) : jet_pgarr_put_text(o[C_DUE], NULL, 0);
        o[C_TRACE] = jet_pgarr_put_text(o[C_TRACE], w->trace[0] ? w->trace : NULL, strlen(w->trace));
    }
    for (int k = 0; k < NCOLS; k++) {
        *o[k]++ = '}';
        *o[k] = '\0';
    }
}

/* The n rows in one statement (one transaction, prepared once per
 * connection): INSERT ... SELECT FROM unnest(<column arrays>) ON CONFLICT
 * (id) DO NOTHING; then the states of the ids that existed. A queued row
 * is written once: dispatched_at = now() and api_session = the connection's
 * publish session (sql/0016) go in with it, since its publish follows the
 * commit at once (publish_created resets a failed one; the leader resets
 * those of a session that ended, reconcile.c). false with *e (nothing
 * stored, or unavailable: unknown). */
static bool store_rows(api_ctx *c, submit_row *const *rows, size_t n, stored *sd, api_err *e)
{
    memset(sd, 0, sizeof *sd);
    sd->session = api_pg_session(c, e); /* connected first: the key goes into the rows */
    if (sd->session < 0)
        return false;
    char *col[NCOLS];
    encode_rows(rows, n, col);
    char session[24];
    snprintf(session, sizeof session, "%lld", (long long)sd->session);
    const char *vals[NCOLS + 1];
    for (int k = 0; k < NCOLS; k++)
        vals[k] = col[k];
    vals[NCOLS] = sd->session ? session : NULL;
    sd->ins = api_pg_prepared(
        c, API_STMT_INSERT_TASKS, "insert tasks",
        "INSERT INTO tasks AS t (id, queue, handler, priority, status, max_attempts, payload, headers,"
        " scheduled_for, trace_id, dispatched_at, api_session) SELECT u.id, u.queue, u.handler, u.priority,"
        " u.status, u.max_attempts, u.payload, u.headers::jsonb, to_timestamp(u.due::float8 / 1000), u.trace,"
        " CASE WHEN u.status = 'queued' AND $11::int8 IS NOT NULL THEN now() END,"
        " CASE WHEN u.status = 'queued' THEN $11::int8 END"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bytea[],"
        " $8::text[], $9::int8[], $10::text[]) AS u(id, queue, handler, priority, status, max_attempts, payload,"
        " headers, due, trace)"
        " ON CONFLICT (id) DO NOTHING RETURNING " PUB_COLS ", t.status",
        NCOLS + 1, vals, e);
    if (sd->ins && (size_t)PQntuples(sd->ins) < n) { /* some existed already: their states */
        const char *ids[] = {col[C_ID]};
        sd->st = api_pg_prepared(c, API_STMT_TASK_STATES, "read tasks",
                                 "SELECT id, status FROM tasks WHERE id = ANY($1::text[])", 1, ids, e);
    }
    for (int k = 0; k < NCOLS; k++)
        free(col[k]);
    if (!sd->ins || ((size_t)PQntuples(sd->ins) < n && !sd->st)) {
        stored_free(sd);
        return false;
    }
    sd->created = jet_strmap_new();
    sd->existing = jet_strmap_new();
    for (int i = 0; i < PQntuples(sd->ins); i++)
        jet_strmap_put(sd->created, PQgetvalue(sd->ins, i, 0), PQgetvalue(sd->ins, i, 9));
    /* every id's state (an id given twice in one statement is created by
     * its first submission; the second gets this state) */
    for (int i = 0; sd->st && i < PQntuples(sd->st); i++)
        jet_strmap_put(sd->existing, PQgetvalue(sd->st, i, 0), PQgetvalue(sd->st, i, 1));
    return true;
}

/* Without a publish session (stored.session 0): dispatched_at of the published
 * rows, one statement. Its commit does not wait for the WAL flush
 * (synchronous_commit off for this transaction alone): losing it in a crash
 * only makes the reconciler publish those rows again under the same id
 * (dropped by the stream's duplicate window). */
static void record_dispatched(api_ctx *c, jet_pgarr *ok)
{
    if (ok->n) {
        const char *p[] = {jet_pgarr_lit(ok)};
        api_err ignore = {0};
        PQclear(api_pg(c, "record dispatched_at",
                       "WITH s AS (SELECT set_config('synchronous_commit', 'off', true))"
                       " UPDATE tasks SET dispatched_at = now() FROM s WHERE id = ANY($1::text[]) AND status = 'queued'",
                       1, p, NULL, NULL, &ignore));
    }
    jet_pgarr_free(ok);
}

/* With a publish session: the committed rows whose publish failed get
 * dispatched_at NULL again, so that the reconciler publishes them within
 * seconds (if this statement fails too they wait for
 * reconcile.redispatch_after, or for the sweep of this session when its
 * connection is gone). */
static void reset_unpublished(api_ctx *c, int64_t key, jet_pgarr *failed)
{
    char session[24];
    snprintf(session, sizeof session, "%lld", (long long)key);
    const char *p[] = {jet_pgarr_lit(failed), session};
    api_err e = {0};
    PGresult *r = api_pg_prepared(c, API_STMT_UNPUBLISHED, "reset dispatched_at of unpublished tasks",
                                  "UPDATE tasks SET dispatched_at = NULL WHERE id = ANY($1::text[])"
                                  " AND status = 'queued' AND api_session = $2::int8",
                                  2, p, &e);
    if (!r)
        jet_warn("api %s: %s; the reconciler publishes those tasks after reconcile.redispatch_after", c->verb,
                 e.msg);
    PQclear(r);
}

/* Publishes the created `queued` rows of sd (after their commit): on the
 * context's own asynchronous publisher when it has one (all pub-acks
 * awaited together), else one synchronous publish each (which records its
 * own dispatched_at). With a publish session only the failed ones are
 * written again (reset_unpublished); without one the stored ones are added
 * to *ok for record_dispatched. A failed publish is logged and left to the
 * reconciler. */
static void publish_created(api_ctx *c, const stored *sd, jet_pgarr *ok)
{
    PGresult *ins = sd->ins;
    if (!c->pub) {
        for (int i = 0; i < PQntuples(ins); i++)
            if (!strcmp(PQgetvalue(ins, i, 9), "queued"))
                api_publish_row(c, ins, i);
        return;
    }
    sched_pubset ps;
    sched_pubset_init_on(&ps, c->s, c->pub);
    for (int i = 0; i < PQntuples(ins); i++)
        if (!strcmp(PQgetvalue(ins, i, 9), "queued"))
            sched_pubset_add(&ps, ins, i, false);
    if (ps.n) {
        sched_pubset_finish(&ps);
        jet_pgarr failed = {0};
        for (size_t i = 0; i < ps.n; i++) {
            if (ps.items[i].result == 0)
                jet_pgarr_add(&failed, ps.items[i].id);
            else if (!sd->session) /* stored, or in the stream already (duplicate) */
                jet_pgarr_add(ok, ps.items[i].id);
        }
        if (failed.n) {
            jet_warn("api %s: %zu of %zu committed task(s) not published; the reconciler publishes them", c->verb,
                     failed.n, ps.n);
            if (sd->session)
                reset_unpublished(c, sd->session, &failed);
        }
        jet_pgarr_free(&failed);
    }
    sched_pubset_free(&ps);
}

/* The reply for row w after store_rows: created (claimed once: an id
 * repeated in one statement is created once) or its existing state. */
static json_t *row_result(const submit_row *w, stored *sd)
{
    const char *stc = jet_strmap_get(sd->created, w->id);
    if (stc) {
        json_t *out = json_pack("{s:s,s:s,s:b}", "id", w->id, "status", stc, "created", 1);
        jet_strmap_remove(sd->created, w->id);
        return out;
    }
    const char *ste = jet_strmap_get(sd->existing, w->id);
    return json_pack("{s:s,s:s,s:b}", "id", w->id, "status", ste ? ste : "unknown", "created", 0);
}

/* Stores rows[0..n) with one INSERT, publishes the created queued ones and
 * fills res[i] with each one's reply. When PostgreSQL refuses the statement
 * (internal: nothing of it is stored) the two halves go again, down to
 * single rows, so that one bad submission fails alone (errs[i]) and the
 * others are stored; unavailable: errs[i] of every row (the outcome
 * unknown: submit again with the same id). */
static void store_publish(api_ctx *c, submit_row *const *rows, size_t n, json_t **res, api_err *errs, jet_pgarr *ok)
{
    stored sd;
    api_err e = {0};
    if (store_rows(c, rows, n, &sd, &e)) {
        publish_created(c, &sd, ok);
        for (size_t i = 0; i < n; i++)
            res[i] = row_result(rows[i], &sd);
        stored_free(&sd);
        return;
    }
    if (n > 1 && e.code && !strcmp(e.code, API_INTERNAL)) {
        jet_warn("api %s: %zu submissions were refused together (%s); storing them in halves", c->verb, n, e.msg);
        store_publish(c, rows, n / 2, res, errs, ok);
        store_publish(c, rows + n / 2, n - n / 2, res + n / 2, errs + n / 2, ok);
        return;
    }
    for (size_t i = 0; i < n; i++)
        errs[i] = e;
}

int api_task_prepare(api_ctx *c, json_t *req, api_task_row *row, api_err *e) { return submit_prepare(c, req, row, e); }

size_t api_submit_bytes(const api_submit *sub) { return sub->plen + (sub->hjson ? strlen(sub->hjson) : 0) + 256; }

int api_submit_prepare(api_ctx *c, json_t *req, api_submit **out, json_t **res, api_err *e)
{
    submit_row *row = calloc(1, sizeof *row);
    int rc = submit_prepare(c, req, row, e);
    if (rc <= 0) {
        free(row);
        *out = NULL;
        if (rc == 0)
            *res = json_pack("{s:b}", "valid", 1);
        return rc;
    }
    *out = row;
    return 1;
}

void api_submit_group(api_ctx *c, api_submit **subs, size_t n, json_t **res, api_err *errs,
                      void (*answer)(void *arg), void *arg)
{
    jet_pgarr ok = {0};
    store_publish(c, subs, n, res, errs, &ok);
    for (size_t i = 0; i < n; i++) {
        submit_row_free(subs[i]);
        free(subs[i]);
        subs[i] = NULL;
    }
    if (answer)
        answer(arg); /* committed and published: the replies need not wait for dispatched_at */
    record_dispatched(c, &ok);
}

json_t *api_task_submit(api_ctx *c, json_t *req, api_err *e)
{
    api_submit *sub = NULL;
    json_t *res = NULL;
    if (api_submit_prepare(c, req, &sub, &res, e) <= 0)
        return res;
    api_submit_group(c, &sub, 1, &res, e, NULL, NULL);
    return res;
}

/* ---------------- task.submit_many ---------------- */

#define SUBMIT_MANY_MAX 1000

/* {"tasks": [<task.submit request>, ...] (1-1000), "partial": false}:
 * every task validated first; atomic (default): any bad task fails the
 * request and nothing is stored; partial: the good ones are stored and each
 * bad one gets its error. The good ones go in with one INSERT (one
 * transaction), then the immediate ones are published. */
json_t *api_task_submit_many(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"tasks", "partial", NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    bool partial = false;
    if (api_bool(req, "partial", false, &partial, e) < 0)
        return NULL;
    json_t *tasks = json_object_get(req, "tasks");
    if (!json_is_array(tasks) || json_array_size(tasks) == 0 || json_array_size(tasks) > SUBMIT_MANY_MAX)
        return api_fail(e, API_INVALID, "tasks", "tasks must be an array of 1 to %d task.submit requests",
                        SUBMIT_MANY_MAX);
    size_t n = json_array_size(tasks);
    submit_row *rows = calloc(n, sizeof *rows);
    submit_row **good_rows = calloc(n, sizeof *good_rows);
    api_err *errs = calloc(n, sizeof *errs);
    bool *good = calloc(n, sizeof *good);
    size_t ngood = 0;
    json_t *out = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tasks, i);
        int rc;
        if (!json_is_object(t)) {
            api_fail(&errs[i], API_INVALID, NULL, "must be an object (a task.submit request)");
            rc = -1;
        } else if (json_object_get(t, "validate_only")) {
            api_fail(&errs[i], API_INVALID, "validate_only", "validate_only is not taken inside task.submit_many");
            rc = -1;
        } else {
            rc = submit_prepare(c, t, &rows[i], &errs[i]);
        }
        good[i] = rc == 1;
        if (good[i])
            good_rows[ngood++] = &rows[i];
        if (rc < 0 && !partial) {
            char field[200];
            snprintf(field, sizeof field, "tasks[%zu]%s%s", i, errs[i].field[0] ? "." : "", errs[i].field);
            out = api_fail(e, errs[i].code, field, "tasks[%zu]: %s (nothing was stored)", i, errs[i].msg);
            goto done;
        }
    }
    json_t **res = calloc(n, sizeof *res);
    api_err *serrs = calloc(n, sizeof *serrs);
    if (ngood) {
        jet_pgarr ok = {0};
        if (partial) {
            /* each good task gets its own outcome: one PostgreSQL refuses
             * fails alone */
            store_publish(c, good_rows, ngood, res, serrs, &ok);
        } else {
            stored sd;
            if (!store_rows(c, good_rows, ngood, &sd, e)) {
                free(res);
                free(serrs);
                goto done; /* *e: refused (nothing stored) or unavailable (the outcome unknown: same ids again) */
            }
            publish_created(c, &sd, &ok); /* publish after commit (one statement: already committed) */
            for (size_t i = 0; i < ngood; i++)
                res[i] = row_result(good_rows[i], &sd);
            stored_free(&sd);
        }
        record_dispatched(c, &ok);
    }
    json_t *results = json_array();
    long n_created = 0, n_existing = 0, n_failed = 0;
    for (size_t i = 0, g = 0; i < n; i++) {
        const api_err *err_i = NULL;
        if (!good[i])
            err_i = &errs[i];
        else if (!res[g])
            err_i = &serrs[g++];
        if (err_i) {
            n_failed++;
            json_t *err = json_pack("{s:s,s:s}", "code", err_i->code, "message", err_i->msg);
            if (err_i->field[0])
                json_object_set_new(err, "field", json_string(err_i->field));
            json_array_append_new(results, json_pack("{s:o}", "error", err));
            continue;
        }
        if (json_is_true(json_object_get(res[g], "created")))
            n_created++;
        else
            n_existing++;
        json_array_append_new(results, res[g++]);
    }
    free(res);
    free(serrs);
    out = json_pack("{s:i,s:i,s:i,s:o}", "submitted", (int)n_created, "existing", (int)n_existing, "failed",
                    (int)n_failed, "results", results);
done:
    for (size_t i = 0; i < n; i++)
        submit_row_free(&rows[i]);
    free(rows);
    free(good_rows);
    free(errs);
    free(good);
    return out;
}

/* ---------------- task.get, task.list ---------------- */

#define TASK_COLS(payload, result)                                                                              \
    "id, queue, handler, priority, status, attempts, max_attempts, " payload ", " result ", error, agent, "     \
    API_MS("created_at") ", " API_MS("scheduled_for") ", " API_MS("dispatched_at") ", " API_MS("started_at")  \
    ", " API_MS("finished_at") ", schedule_id, trace_id, (extract(epoch from created_at) * 1000000)::bigint, "      \
    "workflow_id"

static json_t *task_json(PGresult *r, int i, bool full)
{
    json_t *o = json_object();
    api_set_text(o, "id", r, i, 0);
    api_set_text(o, "queue", r, i, 1);
    api_set_text(o, "handler", r, i, 2);
    api_set_text(o, "priority", r, i, 3);
    api_set_text(o, "status", r, i, 4);
    api_set_intcol(o, "attempts", r, i, 5);
    api_set_intcol(o, "max_attempts", r, i, 6);
    if (full) {
        api_set_bytea(o, r, i, 7);
        api_set_text(o, "result", r, i, 8);
    }
    api_set_text(o, "error", r, i, 9);
    api_set_text(o, "agent", r, i, 10);
    api_set_time(o, "created_at", r, i, 11);
    api_set_time(o, "scheduled_for", r, i, 12);
    api_set_time(o, "dispatched_at", r, i, 13);
    api_set_time(o, "started_at", r, i, 14);
    api_set_time(o, "finished_at", r, i, 15);
    api_set_text(o, "schedule_id", r, i, 16);
    api_set_text(o, "trace_id", r, i, 17);
    api_set_text(o, "workflow_id", r, i, 19); /* (18: the keyset cursor's created_at) docs/WORKFLOWS.md */
    return o;
}

json_t *api_task_get(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"id", NULL};
    const char *id;
    if (!api_check_fields(req, fields, e) || task_id_field(req, true, &id, e) < 0)
        return NULL;
    const char *p[] = {id};
    PGresult *r = api_pg(c, "read task", "SELECT " TASK_COLS("payload", "result") " FROM tasks WHERE id = $1", 1, p,
                         NULL, NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, "id", "task %s not found", id);
    }
    json_t *task = task_json(r, 0, true);
    PQclear(r);
    r = api_pg(c, "read attempts",
               "SELECT attempt, agent, status, " API_MS("started_at") ", " API_MS("finished_at") ", error"
               " FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
               1, p, NULL, NULL, e);
    if (!r) {
        json_decref(task);
        return NULL;
    }
    json_t *attempts = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *a = json_object();
        api_set_intcol(a, "attempt", r, i, 0);
        api_set_text(a, "agent", r, i, 1);
        api_set_text(a, "status", r, i, 2);
        api_set_time(a, "started_at", r, i, 3);
        api_set_time(a, "finished_at", r, i, 4);
        api_set_text(a, "error", r, i, 5);
        json_array_append_new(attempts, a);
    }
    PQclear(r);
    return json_pack("{s:o,s:o}", "task", task, "attempts", attempts);
}

json_t *api_task_list(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"queue", "status", "handler", "schedule_id", "since", "until", "limit",
                                         "cursor", NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    const char *queue = NULL, *handler = NULL, *schedule = NULL, *cursor = NULL;
    int64_t since = -1, until = -1, limit;
    if (api_name(req, "queue", false, &queue, e) < 0 || api_name(req, "handler", false, &handler, e) < 0 ||
        api_name(req, "schedule_id", false, &schedule, e) < 0 || api_time(req, "since", false, &since, e) < 0 ||
        api_time(req, "until", false, &until, e) < 0 || api_limit(req, &limit, e) < 0 ||
        api_str(req, "cursor", false, &cursor, e) < 0)
        return NULL;
    char statuses[256] = "";
    bool listed[JET_TASK_STATE_COUNT] = {false};
    json_t *st = json_object_get(req, "status");
    if (st && !json_is_null(st)) {
        json_t *arr = json_is_array(st) ? json_incref(st) : json_pack("[O]", st);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            jet_task_state ts;
            if (!json_is_string(v) || !jet_task_state_parse(json_string_value(v), &ts)) {
                json_decref(arr);
                return api_fail(e, API_INVALID, "status",
                                "status must be a task state or a list of them (scheduled, queued, running, "
                                "succeeded, retrying, dead, expired, cancelled, duplicate, skipped)");
            }
            listed[ts] = true;
            if (strlen(statuses) < 200)
                snprintf(statuses + strlen(statuses), sizeof statuses - strlen(statuses), "%s%s", i ? "," : "{",
                         json_string_value(v));
        }
        json_decref(arr);
        if (!statuses[0])
            return api_fail(e, API_INVALID, "status", "status must not be an empty list");
        strcat(statuses, "}");
    }
    char *cur = NULL, *cur_id = NULL;
    if (cursor && !(cur = api_keyset_decode(cursor, "task.list", jet_task_id_valid, &cur_id, e)))
        return NULL;
    char conds[1024] = "", sql[8192], sn[32], un[32], lim[32];
    const char *vals[10];
    int n = 0;
#define COND(fmt, v)                                                                                            \
    do {                                                                                                       \
        vals[n++] = (v);                                                                                       \
        snprintf(conds + strlen(conds), sizeof conds - strlen(conds), fmt, n);                                 \
    } while (0)
    if (queue)
        COND(" AND queue = $%d", queue);
    /* One state: "status = $n", so that tasks_status_created_idx and
     * tasks_queue_created_idx give the rows in the listing's order (an
     * "= ANY" on a second index column is not an ordered scan in PostgreSQL
     * 15, and with LIMIT the planner then walks the whole queue). Several
     * states, or none and no queue, without a handler or schedule: one
     * branch per state (each that range of tasks_status_created_idx, or of
     * tasks_queue_created_idx in a queue, LIMIT n) merged in the listing's
     * order (Merge Append): there is no index of all rows by (created_at, id)
     * since sql/0019, so that a recorded task costs one index entry less
     * (docs/ARCHITECTURE.md, "The history schema: the index set"). A queue
     * without a state stays one range of tasks_queue_only_created_idx. */
    char one_status[32] = "";
    if (statuses[0] && !strchr(statuses, ',') && strlen(statuses) < sizeof one_status + 2)
        snprintf(one_status, sizeof one_status, "%.*s", (int)strlen(statuses) - 2, statuses + 1);
    bool merge = !handler && !schedule && !one_status[0] && (!queue || statuses[0]);
    int branches = 0;
    for (int i = 0; merge && i < JET_TASK_STATE_COUNT; i++)
        branches += jet_task_state_of_task((jet_task_state)i) && (!statuses[0] || listed[i]);
    if (one_status[0])
        COND(" AND status = $%d", one_status);
    else if (statuses[0] && !branches)
        COND(" AND status = ANY($%d::text[])", statuses);
    if (handler)
        COND(" AND handler = $%d", handler);
    if (schedule)
        COND(" AND schedule_id = $%d", schedule);
    snprintf(sn, sizeof sn, "%lld", (long long)since);
    snprintf(un, sizeof un, "%lld", (long long)until);
    if (since >= 0)
        COND(" AND created_at >= to_timestamp($%d::double precision / 1000)", sn);
    if (until >= 0)
        COND(" AND created_at < to_timestamp($%d::double precision / 1000)", un);
    if (cur) {
        vals[n++] = cur;
        vals[n++] = cur_id;
        snprintf(conds + strlen(conds), sizeof conds - strlen(conds),
                 " AND (created_at, id) < (timestamptz 'epoch' + $%d::bigint * interval '1 microsecond', $%d)", n - 1,
                 n);
    }
#undef COND
    snprintf(lim, sizeof lim, "%lld", (long long)limit + 1);
    vals[n++] = lim;
    if (branches) {
        snprintf(sql, sizeof sql, "SELECT " TASK_COLS("NULL::bytea", "NULL::text") " FROM (");
        for (int i = 0, b = 0; i < JET_TASK_STATE_COUNT; i++)
            if (jet_task_state_of_task((jet_task_state)i) && (!statuses[0] || listed[i]))
                snprintf(sql + strlen(sql), sizeof sql - strlen(sql),
                         "%s(SELECT * FROM tasks WHERE status = '%s'%s ORDER BY created_at DESC, id DESC LIMIT $%d)",
                         b++ ? " UNION ALL " : "", jet_task_state_name((jet_task_state)i), conds, n);
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), ") tasks ORDER BY created_at DESC, id DESC LIMIT $%d", n);
    } else {
        snprintf(sql, sizeof sql, "SELECT " TASK_COLS("NULL::bytea", "NULL::text") " FROM tasks WHERE true%s"
                 " ORDER BY created_at DESC, id DESC LIMIT $%d", conds, n);
    }
    PGresult *r = api_pg(c, "list tasks", sql, n, vals, NULL, NULL, e);
    free(cur);
    if (!r)
        return NULL;
    json_t *tasks = json_array();
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < limit; i++)
        json_array_append_new(tasks, task_json(r, i, false));
    json_t *next = rows > limit ? api_keyset_next(r, (int)limit - 1, 18, 0) : json_null();
    PQclear(r);
    return json_pack("{s:o,s:o}", "tasks", tasks, "next_cursor", next);
}

/* ---------------- task.cancel ---------------- */

json_t *api_task_cancel(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"id", NULL};
    const char *id;
    if (!api_check_fields(req, fields, e) || task_id_field(req, true, &id, e) < 0)
        return NULL;
    const char *p[] = {id};
    PGresult *r = api_pg(c, "cancel delayed task",
                         "UPDATE tasks SET status = 'cancelled', error = 'cancelled through the API before it was due',"
                         " finished_at = now(), updated_at = now() WHERE id = $1 AND status = 'scheduled' RETURNING id",
                         1, p, NULL, NULL, e);
    if (!r)
        return NULL;
    bool done = PQntuples(r) == 1;
    PQclear(r);
    if (done)
        return json_pack("{s:s,s:s}", "id", id, "status", "cancelled");
    r = api_pg(c, "read task", "SELECT status, jetsched_status_terminal(status) FROM tasks WHERE id = $1", 1, p, NULL,
               NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, "id", "task %s not found", id);
    }
    if (PQgetvalue(r, 0, 1)[0] == 't') {
        json_t *out = api_fail(e, API_PRECONDITION, "id", "task %s is %s: a finished task cannot be cancelled", id,
                               PQgetvalue(r, 0, 0));
        PQclear(r);
        return out;
    }
    PQclear(r);
    char at[40];
    json_t *v = json_pack("{s:s,s:s}", "by", c->s->id, "at", api_ms_text(jet_now_ms(), at, sizeof at));
    char *value = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    uint64_t rev = 0;
    natsStatus st = kvStore_PutString(&rev, c->cancel_kv, id, value);
    free(value);
    if (st != NATS_OK)
        return api_fail(e, API_UNAVAILABLE, NULL, "cannot write the cancellation of %s to %s: %s", id,
                        c->s->names.kv_cancel, natsStatus_GetText(st));
    return json_pack("{s:s,s:s}", "id", id, "status", "cancelling");
}
