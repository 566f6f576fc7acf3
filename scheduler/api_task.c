/* API verbs task.submit, task.get, task.list, task.cancel (docs/API.md).
 * submit commits the row before publishing (Nats-Msg-Id = id); a failed
 * publish is left to the reconciler. */
#include "api.h"
#include "publish.h"

#include <jetsched/backoff.h>
#include <jetsched/ids.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_status(const char *s) { return jet_task_state_parse(s, NULL); }

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

json_t *api_task_submit(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"queue", "priority", "handler", "payload", "payload_base64", "id",
                                         "headers", "max_attempts", "timeout", "deadline", "backoff", "run_at",
                                         "delay", "validate_only", NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    const char *queue = "default", *prio = "normal", *handler = NULL, *id = NULL, *timeout = NULL,
               *deadline = NULL, *backoff_s = NULL;
    int64_t max_attempts = 0, ms = 0, run_at = -1, delay = -1;
    if (api_name(req, "queue", false, &queue, e) < 0 || api_priority(req, "priority", &prio, e) < 0 ||
        api_name(req, "handler", true, &handler, e) < 0 || task_id_field(req, false, &id, e) < 0 ||
        api_int(req, "max_attempts", false, 1, 1000, &max_attempts, e) < 0)
        return NULL;
    if (api_duration(req, "timeout", false, &ms, e) < 0)
        return NULL;
    if (api_str(req, "timeout", false, &timeout, e) == 1 && ms <= 0)
        return api_fail(e, API_INVALID, "timeout", "timeout must be more than 0s");
    if (api_time(req, "deadline", false, &ms, e) < 0)
        return NULL;
    api_str(req, "deadline", false, &deadline, e);
    if (api_str(req, "backoff", false, &backoff_s, e) < 0)
        return NULL;
    if (backoff_s) {
        jet_backoff b;
        jet_err err;
        if (jet_backoff_parse(backoff_s, &b, &err) != JET_OK)
            return api_fail(e, API_INVALID, "backoff", "%s", err.msg);
    }
    if (api_time(req, "run_at", false, &run_at, e) < 0 || api_duration(req, "delay", false, &delay, e) < 0)
        return NULL;
    if (run_at >= 0 && delay >= 0)
        return api_fail(e, API_INVALID, "delay", "give either run_at or delay, not both");
    int64_t deadline_ms = -1;
    if (deadline)
        jet_rfc3339_parse(deadline, &deadline_ms, NULL);
    int64_t start_ms = run_at >= 0 ? run_at : delay >= 0 ? jet_now_ms() + delay : -1;
    if (deadline && start_ms >= 0 && deadline_ms < start_ms)
        return api_fail(e, API_INVALID, "deadline",
                        "deadline %.40s is before the task is due (%s): it could never start", deadline,
                        run_at >= 0 ? "run_at" : "now + delay");
    json_t *headers = NULL;
    if (api_headers(req, "headers", &headers, e) < 0)
        return NULL;
    unsigned char *payload = NULL;
    size_t plen = 0;
    if (api_payload(c, req, &payload, &plen, e) < 0) {
        json_decref(headers);
        return NULL;
    }
    /* validate_only: every check above, nothing stored (jetsched submit
     * --from-file checks all lines this way before it submits any). */
    bool validate_only = false;
    if (api_bool(req, "validate_only", false, &validate_only, e) < 0 || validate_only) {
        free(payload);
        json_decref(headers);
        return validate_only ? json_pack("{s:b}", "valid", 1) : NULL;
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
    char trace[33];
    json_t *tp = json_object_get(headers, JET_HDR_TRACEPARENT);
    jet_trace_id(json_is_string(tp) ? json_string_value(tp) : NULL, trace);
    char *hjson = json_dumps(headers, JSON_COMPACT);
    json_decref(headers);

    char idbuf[JET_ULID_LEN + 1], ma[16], due[32];
    if (!id) {
        jet_ulid_new(idbuf);
        id = idbuf;
    }
    int64_t now = jet_now_ms(), due_ms = run_at >= 0 ? run_at : delay >= 0 ? now + delay : -1;
    bool delayed = due_ms > now;
    snprintf(ma, sizeof ma, "%lld", (long long)max_attempts);
    snprintf(due, sizeof due, "%lld", (long long)due_ms);
    const char *vals[] = {id, queue, handler, prio, delayed ? "scheduled" : "queued", max_attempts ? ma : NULL,
                          (const char *)(payload ? payload : (unsigned char *)""), hjson, delayed ? due : NULL,
                          trace[0] ? trace : NULL};
    int lens[] = {0, 0, 0, 0, 0, 0, (int)plen, 0, 0, 0};
    int fmts[] = {0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    PGresult *r = api_pg(c, "insert task",
                         "INSERT INTO tasks AS t (id, queue, handler, priority, status, max_attempts, payload, headers,"
                         " scheduled_for, trace_id) VALUES ($1, $2, $3, $4, $5, $6::integer, $7::bytea, $8::jsonb,"
                         " to_timestamp($9::double precision / 1000), $10)"
                         " ON CONFLICT (id) DO NOTHING RETURNING " PUB_COLS,
                         10, vals, lens, fmts, e);
    free(payload);
    free(hjson);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        const char *p[] = {id};
        r = api_pg(c, "read task", "SELECT status FROM tasks WHERE id = $1", 1, p, NULL, NULL, e);
        if (!r)
            return NULL;
        json_t *out = json_pack("{s:s,s:s,s:b}", "id", id, "status", PQntuples(r) ? PQgetvalue(r, 0, 0) : "unknown",
                                "created", 0);
        PQclear(r);
        return out;
    }
    if (!delayed)
        api_publish_new(c, r);
    PQclear(r);
    return json_pack("{s:s,s:s,s:b}", "id", id, "status", delayed ? "scheduled" : "queued", "created", 1);
}

/* ---------------- task.get, task.list ---------------- */

#define TASK_COLS(payload, result)                                                                              \
    "id, queue, handler, priority, status, attempts, max_attempts, " payload ", " result ", error, agent, "     \
    API_MS("created_at") ", " API_MS("scheduled_for") ", " API_MS("dispatched_at") ", " API_MS("started_at")  \
    ", " API_MS("finished_at") ", schedule_id, trace_id, (extract(epoch from created_at) * 1000000)::bigint"

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
    json_t *st = json_object_get(req, "status");
    if (st && !json_is_null(st)) {
        json_t *arr = json_is_array(st) ? json_incref(st) : json_pack("[O]", st);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            if (!json_is_string(v) || !is_status(json_string_value(v))) {
                json_decref(arr);
                return api_fail(e, API_INVALID, "status",
                                "status must be a task state or a list of them (scheduled, queued, running, "
                                "succeeded, retrying, dead, expired, cancelled, duplicate, skipped)");
            }
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
    if (cursor) {
        if (!(cur = api_cursor_decode(cursor, e)))
            return NULL;
        /* "<created_at in Unix microseconds>|<task id>", both checked here:
         * nothing of a crafted cursor reaches PostgreSQL unvalidated. */
        cur_id = strchr(cur, '|');
        char *end = NULL;
        long long us = cur_id ? strtoll(cur, &end, 10) : -1;
        if (!cur_id || end != cur_id || cur == cur_id || us < 0 || us > JET_TIME_MAX_MS * 1000 ||
            !jet_task_id_valid(cur_id + 1)) {
            free(cur);
            return api_fail(e, API_INVALID, "cursor", "cursor is not one returned by task.list (pass next_cursor unchanged)");
        }
        *cur_id++ = '\0';
    }
    char sql[2048], sn[32], un[32], lim[32];
    const char *vals[10];
    int n = 0;
    snprintf(sql, sizeof sql, "SELECT " TASK_COLS("NULL::bytea", "NULL::text") " FROM tasks WHERE true");
#define COND(fmt, v)                                                                                            \
    do {                                                                                                       \
        vals[n++] = (v);                                                                                       \
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), fmt, n);                                         \
    } while (0)
    if (queue)
        COND(" AND queue = $%d", queue);
    if (statuses[0])
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
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " AND (created_at, id) < (timestamptz 'epoch' + $%d::bigint * interval '1 microsecond', $%d)", n - 1,
                 n);
    }
    snprintf(lim, sizeof lim, "%lld", (long long)limit + 1);
    COND(" ORDER BY created_at DESC, id DESC LIMIT $%d", lim);
#undef COND
    PGresult *r = api_pg(c, "list tasks", sql, n, vals, NULL, NULL, e);
    free(cur);
    if (!r)
        return NULL;
    json_t *tasks = json_array();
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < limit; i++)
        json_array_append_new(tasks, task_json(r, i, false));
    json_t *next = json_null();
    if (rows > limit) {
        char text[400];
        snprintf(text, sizeof text, "%s|%s", PQgetvalue(r, (int)limit - 1, 18), PQgetvalue(r, (int)limit - 1, 0));
        char *enc = api_cursor_encode(text);
        next = json_string(enc);
        free(enc);
    }
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
