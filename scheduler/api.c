/* The API's request machinery (docs/API.md): the verb table, field
 * validation with errors naming the field, error replies with the stable
 * codes, PostgreSQL on a worker's connection, reply JSON helpers. Serving
 * (the workers, group commit, NATS) is api_pool.c. */
#include "api.h"
#include "publish.h"

#include <jetsched/base64.h>
#include <jetsched/jsonutil.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/names.h>
#include <jetsched/pgconn.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>
#include <jetsched/utf8.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define API_HEADER_ROOM 16384 /* agentd's TASK_MAX_HEADER_BYTES */
#define API_HEADER_ROOM_TEXT "16384"

/* Every verb; `writes` marks the ones that change state (operator role on
 * the HTTP API). A new verb needs a route in scheduler/web_routes.c too:
 * tests/integration/web_routes.c walks this table. */
static const api_verb_def verbs[] = {
    {"task.submit", api_task_submit, true},
    {"task.submit_many", api_task_submit_many, true},
    {"task.get", api_task_get, false},
    {"task.list", api_task_list, false},
    {"task.cancel", api_task_cancel, true},
    {"workflow.submit", api_workflow_submit, true},
    {"workflow.add", api_workflow_add, true},
    {"workflow.get", api_workflow_get, false},
    {"workflow.list", api_workflow_list, false},
    {"workflow.cancel", api_workflow_cancel, true},
    {"schedule.create", api_schedule_create, true},
    {"schedule.update", api_schedule_update, true},
    {"schedule.get", api_schedule_get, false},
    {"schedule.delete", api_schedule_delete, true},
    {"schedule.pause", api_schedule_pause, true},
    {"schedule.resume", api_schedule_resume, true},
    {"schedule.list", api_schedule_list, false},
    {"schedule.trigger", api_schedule_trigger, true},
    {"schedule.preview", api_schedule_preview, false},
    {"dlq.list", api_dlq_list, false},
    {"dlq.get", api_dlq_get, false},
    {"dlq.replay", api_dlq_replay, true},
    {"dlq.purge", api_dlq_purge, true},
    {"cluster.leader", api_cluster_leader, false},
    {"cluster.agents", api_cluster_agents, false},
    {"cluster.queues", api_cluster_queues, false},
    {"queue.pause", api_queue_pause, true},
    {"queue.resume", api_queue_resume, true},
    {"limit.set", api_limit_set, true},
    {"limit.get", api_limit_get, false},
    {"limit.list", api_limit_list, false},
    {"limit.delete", api_limit_delete, true},
    {"stats.minutes", api_stats_minutes, false},
};


/* ---------------- errors and fields ---------------- */

json_t *api_fail(api_err *e, const char *code, const char *field, const char *fmt, ...)
{
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    /* One line: libpq messages carry "\n\t" continuations. */
    char *w = e->msg;
    for (const char *r = e->msg; *r; r++) {
        bool space = *r == '\n' || *r == '\t' || *r == '\r';
        if (space && (w == e->msg || w[-1] == ' '))
            continue;
        *w++ = space ? ' ' : *r;
    }
    while (w > e->msg && w[-1] == ' ')
        w--;
    *w = '\0';
    /* Messages quote client input (cut by %.Ns at any byte, or one byte of a
     * multi-byte character as %c): the reply must stay valid UTF-8 JSON. */
    jet_utf8_repair(e->msg, sizeof e->msg);
    jet_utf8_repair(e->field, sizeof e->field);
    return NULL;
}

bool api_check_fields(const json_t *req, const char *const *allowed, api_err *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)req, k, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], k) == 0;
        if (!ok) {
            char list[512] = "";
            for (size_t i = 0; allowed[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", allowed[i]);
            api_fail(e, API_INVALID, k, "unknown field \"%.100s\" (accepted: %s)", k, list[0] ? list : "none");
            return false;
        }
    }
    return true;
}

static json_t *field_of(const json_t *req, const char *f)
{
    json_t *v = json_object_get(req, f);
    return v && !json_is_null(v) ? v : NULL;
}

static int missing(const char *f, bool required, api_err *e)
{
    if (!required)
        return 0;
    api_fail(e, API_INVALID, f, "field \"%s\" is required", f);
    return -1;
}

int api_str(const json_t *req, const char *f, bool required, const char **out, api_err *e)
{
    json_t *v = field_of(req, f);
    if (!v)
        return missing(f, required, e);
    if (!json_is_string(v)) {
        api_fail(e, API_INVALID, f, "field \"%s\" must be a string", f);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

int api_int(const json_t *req, const char *f, bool required, int64_t lo, int64_t hi, int64_t *out, api_err *e)
{
    json_t *v = field_of(req, f);
    if (!v)
        return missing(f, required, e);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        api_fail(e, API_INVALID, f, "field \"%s\" must be an integer from %lld to %lld", f, (long long)lo,
                 (long long)hi);
        return -1;
    }
    *out = (int64_t)json_integer_value(v);
    return 1;
}

int api_bool(const json_t *req, const char *f, bool required, bool *out, api_err *e)
{
    json_t *v = field_of(req, f);
    if (!v)
        return missing(f, required, e);
    if (!json_is_boolean(v)) {
        api_fail(e, API_INVALID, f, "field \"%s\" must be true or false", f);
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

int api_name(const json_t *req, const char *f, bool required, const char **out, api_err *e)
{
    int rc = api_str(req, f, required, out, e);
    if (rc == 1 && !jet_name_valid(*out)) {
        api_fail(e, API_INVALID, f, "%s \"%.80s\" is not a valid name: 1-64 characters of [a-z0-9_-]", f, *out);
        return -1;
    }
    return rc;
}

int api_priority(const json_t *req, const char *f, const char **out, api_err *e)
{
    int rc = api_str(req, f, false, out, e);
    jet_priority p;
    if (rc == 1 && !jet_priority_parse(*out, &p)) {
        api_fail(e, API_INVALID, f, "%s \"%.40s\" is not one of high, normal, low", f, *out);
        return -1;
    }
    return rc;
}

int api_duration(const json_t *req, const char *f, bool required, int64_t *ms, api_err *e)
{
    const char *s;
    int rc = api_str(req, f, required, &s, e);
    jet_err err;
    if (rc == 1 && jet_duration_parse(s, ms, &err) != JET_OK) {
        api_fail(e, API_INVALID, f, "%s: %s", f, err.msg);
        return -1;
    }
    return rc;
}

int api_time(const json_t *req, const char *f, bool required, int64_t *ms, api_err *e)
{
    const char *s;
    int rc = api_str(req, f, required, &s, e);
    jet_err err;
    if (rc == 1 && jet_rfc3339_parse(s, ms, &err) != JET_OK) {
        api_fail(e, API_INVALID, f, "%s: %s", f, err.msg);
        return -1;
    }
    if (rc == 1 && !api_time_in_range(f, *ms, e))
        return -1;
    return rc;
}

bool api_time_in_range(const char *f, int64_t ms, api_err *e)
{
    if (ms >= JET_TIME_MIN_MS && ms <= JET_TIME_MAX_MS)
        return true;
    api_fail(e, API_INVALID, f, "%s must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z", f);
    return false;
}

int api_payload(api_ctx *c, const json_t *req, unsigned char **buf, size_t *len, api_err *e)
{
    const char *text = NULL, *b64 = NULL;
    int rt = api_str(req, "payload", false, &text, e);
    if (rt < 0)
        return -1;
    int rb = api_str(req, "payload_base64", false, &b64, e);
    if (rb < 0)
        return -1;
    if (rt == 1 && rb == 1) {
        api_fail(e, API_INVALID, "payload_base64", "give either payload or payload_base64, not both");
        return -1;
    }
    if (rt == 0 && rb == 0)
        return 0;
    /* api.max_payload, and never more than the NATS server takes in one
     * message (its max_payload counts the headers too): a task that cannot
     * be published would be republished by the reconciler forever. */
    int64_t max = atomic_load(&c->s->max_payload), server = natsConnection_GetMaxPayload(c->s->nc) - API_HEADER_ROOM;
    const char *limit_name = "api.max_payload";
    if (server > 0 && server < max) {
        max = server;
        limit_name = "the NATS server's max_payload less " API_HEADER_ROOM_TEXT " bytes for headers";
    }
    if (rt == 1) {
        size_t n = json_string_length(json_object_get(req, "payload"));
        if ((int64_t)n > max) {
            api_fail(e, API_TOO_LARGE, "payload", "payload is %zu bytes; the limit (%s) is %lld bytes", n, limit_name,
                     (long long)max);
            return -1;
        }
        *buf = malloc(n + 1);
        memcpy(*buf, text, n);
        (*buf)[n] = '\0';
        *len = n;
        return 1;
    }
    size_t n = json_string_length(json_object_get(req, "payload_base64"));
    if (!jet_base64_decode(b64, n, buf, len)) {
        api_fail(e, API_INVALID, "payload_base64", "payload_base64 is not valid base64");
        return -1;
    }
    if ((int64_t)*len > max) {
        api_fail(e, API_TOO_LARGE, "payload_base64", "payload is %zu bytes; the limit (%s) is %lld bytes", *len,
                 limit_name, (long long)max);
        free(*buf);
        *buf = NULL;
        return -1;
    }
    return 1;
}

static bool header_name_ok(const char *k)
{
    if (!*k || strlen(k) > 128)
        return false;
    for (const char *p = k; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == ':' || (unsigned char)*p >= 0x7f)
            return false;
    return true;
}

int api_headers(const json_t *req, const char *f, json_t **out, api_err *e)
{
    json_t *h = field_of(req, f);
    if (!h)
        return 0;
    if (!json_is_object(h)) {
        api_fail(e, API_INVALID, f, "field \"%s\" must be an object of string values", f);
        return -1;
    }
    const char *k;
    json_t *v;
    char path[200];
    size_t total = 0;
    json_object_foreach(h, k, v) {
        total += strlen(k) + (json_is_string(v) ? json_string_length(v) : 0) + 4;
        snprintf(path, sizeof path, "%s.%.128s", f, k);
        if (!header_name_ok(k)) {
            api_fail(e, API_INVALID, path, "header name \"%.128s\" must be 1-128 printable characters without ':'",
                     k);
            return -1;
        }
        bool limit_key = !strcmp(k, JET_HDR_CONCURRENCY_KEY) || !strcmp(k, JET_HDR_RATE_KEY);
        if (limit_key && (!json_is_string(v) || !jet_limit_key_valid(json_string_value(v)))) {
            api_fail(e, API_INVALID, path, "header %s must be 1-%d characters of A-Z a-z 0-9 _ . : -", k,
                     JET_LIMIT_KEY_MAX);
            return -1;
        }
        if (!limit_key && (!strncasecmp(k, "Nats-", 5) || !strncasecmp(k, "Jetsched-", 9))) {
            api_fail(e, API_INVALID, path,
                     "header %.128s is reserved: Nats-* and Jetsched-* headers are set by jetsched (use the "
                     "request's fields: id, handler, max_attempts, timeout, deadline, backoff)", k);
            return -1;
        }
        if (!json_is_string(v)) {
            api_fail(e, API_INVALID, path, "header %.128s must be a string", k);
            return -1;
        }
        for (const char *p = json_string_value(v); *p; p++)
            if (*p == '\r' || *p == '\n') {
                api_fail(e, API_INVALID, path, "header %.128s must stay on one line (no CR or LF)", k);
                return -1;
            }
    }
    if (total > API_HEADER_ROOM / 2) {
        api_fail(e, API_INVALID, f, "headers take %zu bytes; at most %d are accepted", total, API_HEADER_ROOM / 2);
        return -1;
    }
    *out = json_incref(h);
    return 1;
}

int api_limit(const json_t *req, int64_t *limit, api_err *e)
{
    *limit = 50;
    return api_int(req, "limit", false, 1, 1000, limit, e);
}

bool api_list_args(const json_t *req, const char **queue, int64_t *limit, const char **cursor, api_err *e)
{
    static const char *const fields[] = {"queue", "limit", "cursor", NULL};
    return api_check_fields(req, fields, e) && api_name(req, "queue", false, queue, e) >= 0 &&
           api_limit(req, limit, e) >= 0 && api_str(req, "cursor", false, cursor, e) >= 0;
}

char *api_cursor_encode(const char *text) { return jet_base64_encode(text, strlen(text), true); }

char *api_cursor_decode(const char *cursor, api_err *e)
{
    unsigned char *out = NULL;
    size_t len = 0;
    /* Decoded bytes go into SQL parameters: text PostgreSQL would refuse
     * (NUL, invalid UTF-8) or a huge cursor is refused here, naming the field. */
    if (strlen(cursor) > 1024 || !jet_base64_decode(cursor, strlen(cursor), &out, &len) ||
        !jet_utf8_valid((const char *)out, len)) {
        free(out);
        api_fail(e, API_INVALID, "cursor", "cursor is not one returned by this verb (pass next_cursor unchanged)");
        return NULL;
    }
    return (char *)out;
}

/* ---------------- PostgreSQL ---------------- */

static void pg_drop(api_ctx *c)
{
    PQfinish(c->pg);
    c->pg = NULL;
    c->prepared = 0;
    c->session = 0; /* its advisory lock ended with the connection: the leader sweeps its rows */
}

void api_pg_close(api_ctx *c)
{
    if (c->pg && c->session && PQstatus(c->pg) == CONNECTION_OK) {
        /* A clean stop: every committed row of the session was published
         * (or reset for the reconciler) already. */
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)c->session);
        const char *p[] = {key};
        PQclear(PQexecParams(c->pg, "DELETE FROM api_sessions WHERE key = $1::int8", 1, NULL, p, NULL, NULL, 0));
    }
    pg_drop(c);
}

/* A pool connection's publish session (sql/0016): a random key held as a
 * session advisory lock for the connection's life and a row of
 * api_sessions. Rows its task.submit commits carry the key, so that the
 * leader republishes them at once if the connection ends between a commit
 * and the publish (schedulerd killed). Without it (e.g. the row cannot be
 * written) c->session stays 0 and submits record dispatched_at after their
 * publish instead. */
static void pg_open_session(api_ctx *c)
{
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return;
    int64_t key = (int64_t)(rnd >> 2) | 1; /* positive, never 0 */
    char k[24];
    snprintf(k, sizeof k, "%lld", (long long)key);
    const char *p[] = {k, c->s->id};
    PGresult *r = PQexecParams(c->pg,
                               "WITH l AS MATERIALIZED (SELECT pg_advisory_lock($1::int8))"
                               " INSERT INTO api_sessions (key, scheduler) SELECT $1::int8, $2 FROM l",
                               2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK && atoi(PQcmdTuples(r)) == 1)
        c->session = key;
    else
        jet_warn("api: no publish session on this PostgreSQL connection (%s); its submits record dispatched_at after "
                 "the publish", PQresultErrorMessage(r));
    PQclear(r);
}

static bool pg_ensure(api_ctx *c, api_err *e)
{
    if (c->offline) {
        api_fail(e, API_UNAVAILABLE, NULL, "PostgreSQL is not used by this API context (offline)");
        return false;
    }
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return true;
    if (c->pg)
        pg_drop(c);
    jet_err err = {0};
    if (jet_pg_connect(c->s->cfg, "schedulerd-api", &c->pg, &err) != JET_OK) {
        c->pg = NULL;
        api_fail(e, API_UNAVAILABLE, NULL, "PostgreSQL is unavailable: %s", err.msg);
        return false;
    }
    PGresult *r = PQexec(c->pg, "SET TIME ZONE 'UTC'");
    PQclear(r);
    if (c->pub)
        pg_open_session(c);
    return true;
}

/* One statement on c->pg: prepared once per connection under slot (bit of
 * c->prepared) when slot >= 0, else PQexecParams. */
static PGresult *pg_exec(api_ctx *c, int slot, const char *sql, int n, const char *const *vals, const int *lens,
                         const int *fmts)
{
    if (slot < 0)
        return PQexecParams(c->pg, sql, n, NULL, vals, lens, fmts, 0);
    char name[32];
    snprintf(name, sizeof name, "jetsched_api_%d", slot);
    if (!(c->prepared & (1u << slot))) {
        PGresult *r = PQprepare(c->pg, name, sql, n, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return r;
        PQclear(r);
        c->prepared |= 1u << slot;
    }
    return PQexecPrepared(c->pg, name, n, vals, lens, fmts, 0);
}

static PGresult *pg_run(api_ctx *c, int slot, const char *what, const char *sql, int n, const char *const *vals,
                        const int *lens, const int *fmts, api_err *e)
{
    if (!pg_ensure(c, e))
        return NULL;
    bool in_tx = PQtransactionStatus(c->pg) != PQTRANS_IDLE;
    PGresult *r = pg_exec(c, slot, sql, n, vals, lens, fmts);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    if (PQstatus(c->pg) != CONNECTION_OK && !in_tx) {
        /* The connection broke (e.g. PostgreSQL restarted since the last
         * request): one more try on a fresh connection. Outside a
         * transaction every statement of the API can be repeated. */
        PQclear(r);
        pg_drop(c);
        if (!pg_ensure(c, e))
            return NULL;
        r = pg_exec(c, slot, sql, n, vals, lens, fmts);
        st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            return r;
    }
    jet_err err;
    jet_pg_err(&err, c->pg, r, what);
    bool transient = jet_pg_is_transient(c->pg, r);
    PQclear(r);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        pg_drop(c);
        transient = true;
    }
    if (transient) {
        api_fail(e, API_UNAVAILABLE, NULL, "PostgreSQL is unavailable: %s", err.msg);
    } else {
        /* PostgreSQL's text can quote the failing row (DETAIL) and the
         * client's values: it goes to the log, never into the reply. */
        jet_error("api %s: %s", c->verb, err.msg);
        const char *state = strstr(err.msg, "(SQLSTATE ");
        api_fail(e, API_INTERNAL, NULL, "%s failed in PostgreSQL%s%.16s; the details are in schedulerd's log", what,
                 state ? " " : "", state ? state : "");
    }
    return NULL;
}

PGresult *api_pg(api_ctx *c, const char *what, const char *sql, int n, const char *const *vals, const int *lens,
                 const int *fmts, api_err *e)
{
    return pg_run(c, -1, what, sql, n, vals, lens, fmts, e);
}

int64_t api_pg_session(api_ctx *c, api_err *e) { return pg_ensure(c, e) ? c->session : -1; }

PGresult *api_pg_prepared(api_ctx *c, int slot, const char *what, const char *sql, int n, const char *const *vals,
                          api_err *e)
{
    return pg_run(c, slot, what, sql, n, vals, NULL, NULL, e);
}

bool api_pg_exec(api_ctx *c, const char *what, const char *sql, api_err *e)
{
    PGresult *r = api_pg(c, what, sql, 0, NULL, NULL, NULL, e);
    PQclear(r);
    return r != NULL;
}

void api_pg_rollback(api_ctx *c)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

void api_publish_new(api_ctx *c, PGresult *r) { api_publish_row(c, r, 0); }

void api_publish_row(api_ctx *c, PGresult *r, int i)
{
    int64_t fire = -1;
    const char *id = PQgetvalue(r, i, 0);
    if (sched_publish_row(c->s, r, i, false, &fire) != 0) {
        const char *p[] = {id};
        api_err ignore = {0};
        PQclear(api_pg(c, "record dispatched_at",
                       "UPDATE tasks SET dispatched_at = now() WHERE id = $1 AND status = 'queued'", 1, p, NULL, NULL,
                       &ignore));
    } else {
        jet_warn("api %s: task %s is committed but its publish failed; the reconciler publishes it", c->verb, id);
    }
}

char *api_keyset_decode(const char *cursor, const char *verb, bool (*id_ok)(const char *), char **id, api_err *e)
{
    char *cur = api_cursor_decode(cursor, e);
    if (!cur)
        return NULL;
    char *bar = strchr(cur, '|'), *end = NULL;
    long long us = bar ? strtoll(cur, &end, 10) : -1;
    if (!bar || end != bar || cur == bar || us < 0 || us > JET_TIME_MAX_MS * 1000 || !id_ok(bar + 1)) {
        free(cur);
        api_fail(e, API_INVALID, "cursor", "cursor is not one returned by %s (pass next_cursor unchanged)", verb);
        return NULL;
    }
    *bar = '\0';
    *id = bar + 1;
    return cur;
}

json_t *api_keyset_next(PGresult *r, int row, int us_col, int id_col)
{
    char text[400];
    snprintf(text, sizeof text, "%s|%s", PQgetvalue(r, row, us_col), PQgetvalue(r, row, id_col));
    char *enc = api_cursor_encode(text);
    json_t *next = json_string(enc);
    free(enc);
    return next;
}

/* ---------------- reply JSON ---------------- */

char *api_ms_text(int64_t ms, char *buf, size_t len) { return jet_rfc3339_format(ms, buf, len); }

void api_set_time(json_t *o, const char *key, PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) {
        json_object_set_new(o, key, json_null());
        return;
    }
    char buf[40];
    json_object_set_new(o, key, json_string(api_ms_text(strtoll(PQgetvalue(r, row, col), NULL, 10), buf, sizeof buf)));
}

void api_set_text(json_t *o, const char *key, PGresult *r, int row, int col)
{
    json_object_set_new(o, key, PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col)));
}

void api_set_intcol(json_t *o, const char *key, PGresult *r, int row, int col)
{
    json_object_set_new(o, key,
                        PQgetisnull(r, row, col) ? json_null() : json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10)));
}

void api_set_bytes(json_t *o, const void *data, size_t len)
{
    json_t *s = json_stringn(data ? data : "", len);
    if (s) {
        json_object_set_new(o, "payload", s);
        return;
    }
    char *b = jet_base64_encode(data, len, false);
    json_object_set_new(o, "payload_base64", json_string(b));
    free(b);
}

void api_set_bytea(json_t *o, PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) {
        json_object_set_new(o, "payload", json_null());
        return;
    }
    size_t n = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    api_set_bytes(o, b, n);
    PQfreemem(b);
}

/* ---------------- serving ---------------- */

json_t *api_error_body(const api_err *e)
{
    json_t *err = json_pack("{s:s,s:s}", "code", e->code ? e->code : API_INTERNAL, "message", e->msg);
    if (e->field[0])
        json_object_set_new(err, "field", json_string(e->field));
    return json_pack("{s:o}", "error", err);
}

int api_http_status(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {API_INVALID, 400},     {API_UNAUTHENTICATED, 401}, {API_PERMISSION, 403}, {API_NOT_FOUND, 404},
        {API_EXISTS, 409},      {API_PRECONDITION, 409},    {API_TOO_LARGE, 413},  {API_EXHAUSTED, 429},
        {API_UNAVAILABLE, 503}, {API_INTERNAL, 500},
    };
    if (!code)
        return 200;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].code, code))
            return map[i].status;
    return 500;
}

const api_verb_def *api_verbs(size_t *n)
{
    *n = sizeof verbs / sizeof verbs[0];
    return verbs;
}

const api_verb_def *api_verb_find(const char *verb)
{
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(verbs[i].verb, verb))
            return &verbs[i];
    return NULL;
}

json_t *api_parse_body(const char *data, size_t len, api_err *e)
{
    if (len == 0)
        return json_object();
    /* jansson recurses per level: bound the nesting before it parses. */
    if (jet_json_depth(data, len, API_MAX_DEPTH) > API_MAX_DEPTH) {
        api_fail(e, API_INVALID, NULL, "request body is nested too deep (at most %d levels of arrays and objects)",
                 API_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    json_t *req = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!req) {
        api_fail(e, API_INVALID, NULL, "request body is not valid JSON: line %d column %d: %s", je.line, je.column,
                 je.text);
        return NULL;
    }
    if (!json_is_object(req)) {
        json_decref(req);
        api_fail(e, API_INVALID, NULL, "request body must be a JSON object");
        return NULL;
    }
    return req;
}
