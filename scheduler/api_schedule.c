/* API verbs schedule.create|update|get|delete|pause|resume|list|trigger|
 * preview (docs/API.md). Specs are parsed with scheduler/cron.h exactly as
 * the leader parses them (so a spec accepted here fires), and the next fire
 * time is computed here on create, on a changed spec or zone, and on resume
 * (a paused schedule does not catch up the fires it skipped). */
#include "api.h"
#include "cron.h"
#include "publish.h"

#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_COLS                                                                                             \
    "id, kind, spec, tz, queue, priority, handler, payload, headers::text, max_attempts, misfire,"            \
    " (extract(epoch from catchup_window) * 1000)::bigint, overlap, paused, " API_MS("next_fire_at") ", "     \
    API_MS("last_fire_at") ", " API_MS("created_at") ", " API_MS("updated_at")

static json_t *schedule_json(PGresult *r, int i)
{
    json_t *o = json_object();
    static const char *const text_cols[] = {"id", "kind", "spec", "tz", "queue", "priority", "handler"};
    for (int k = 0; k < 7; k++)
        api_set_text(o, text_cols[k], r, i, k);
    api_set_bytea(o, r, i, 7);
    json_t *h = json_loads(PQgetvalue(r, i, 8), 0, NULL);
    json_object_set_new(o, "headers", h ? h : json_object());
    api_set_intcol(o, "max_attempts", r, i, 9);
    api_set_text(o, "misfire", r, i, 10);
    if (PQgetisnull(r, i, 11)) {
        json_object_set_new(o, "catchup_window", json_null());
    } else {
        char d[64];
        json_object_set_new(o, "catchup_window",
                            json_string(jet_duration_format(strtoll(PQgetvalue(r, i, 11), NULL, 10), d, sizeof d)));
    }
    api_set_text(o, "overlap", r, i, 12);
    json_object_set_new(o, "paused", json_boolean(PQgetvalue(r, i, 13)[0] == 't'));
    api_set_time(o, "next_fire_at", r, i, 14);
    api_set_time(o, "last_fire_at", r, i, 15);
    api_set_time(o, "created_at", r, i, 16);
    api_set_time(o, "updated_at", r, i, 17);
    return o;
}

static json_t *schedule_reply(PGresult *r)
{
    json_t *out = json_pack("{s:o}", "schedule", schedule_json(r, 0));
    PQclear(r);
    return out;
}

/* ---------------- specs ---------------- */

/* The kind of a spec when none is given (DESIGN §5). */
static const char *derive_kind(const char *spec)
{
    while (isspace((unsigned char)*spec))
        spec++;
    if (!strncasecmp(spec, "@every", 6))
        return "every";
    if (isdigit((unsigned char)spec[0]) && isdigit((unsigned char)spec[1]) && isdigit((unsigned char)spec[2]) &&
        isdigit((unsigned char)spec[3]) && spec[4] == '-')
        return "at";
    return "cron";
}

/* Parses kind/spec/tz of req (kind derived when absent); errors name spec,
 * kind or tz. given: the request gives the spec or kind (not the pair stored
 * before kind cron with @every was refused, which still parses). */
static jet_sched *parse_spec(const json_t *req, const char *id, bool given, const char **kind_out, api_err *e)
{
    const char *spec = NULL, *kind = NULL, *tz = "UTC";
    if (api_str(req, "spec", true, &spec, e) < 0 || api_str(req, "kind", false, &kind, e) < 0 ||
        api_str(req, "tz", false, &tz, e) < 0)
        return NULL;
    if (kind && strcmp(kind, "cron") && strcmp(kind, "every") && strcmp(kind, "at")) {
        api_fail(e, API_INVALID, "kind", "kind \"%.40s\" is not one of cron, every, at", kind);
        return NULL;
    }
    if (!*spec) {
        api_fail(e, API_INVALID, "spec", "spec must not be empty");
        return NULL;
    }
    if (!*tz) {
        api_fail(e, API_INVALID, "tz", "tz must not be empty (omit it for UTC, or give an IANA name like Europe/Paris)");
        return NULL;
    }
    if (!kind)
        kind = derive_kind(spec);
    else if (given && !strcmp(kind, "cron") && !strcmp(derive_kind(spec), "every")) {
        /* The engine reads "@every" under kind cron too, but the schedule
         * would be labelled cron while firing at fixed intervals. */
        api_fail(e, API_INVALID, "spec", "spec \"%.60s\": @every is kind every, not cron (omit kind or give every)",
                 spec);
        return NULL;
    }
    jet_sched *js = NULL;
    jet_err err = {0};
    if (jet_sched_parse(kind, spec, tz, id ? id : "preview", &js, &err) != JET_OK) {
        api_fail(e, API_INVALID, strncmp(err.msg, "time zone", 9) == 0 ? "tz" : "spec", "%s", err.msg);
        return NULL;
    }
    *kind_out = kind;
    return js;
}

/* ---------------- create, update ---------------- */

static const char *const sched_fields[] = {"id", "spec", "kind", "tz", "queue", "priority", "handler", "payload",
                                           "payload_base64", "headers", "max_attempts", "misfire",
                                           "catchup_window", "overlap", "paused", NULL};

typedef struct sched_in {
    const char *id, *kind, *spec, *tz, *queue, *prio, *handler, *misfire, *overlap;
    unsigned char *payload;
    size_t plen;
    char *headers;
    int64_t max_attempts, catchup_ms, next_ms;
    bool paused;
} sched_in;

static void sched_in_free(sched_in *in)
{
    free(in->payload);
    free(in->headers);
}

static int enum_field(const json_t *req, const char *f, const char *a, const char *b, const char *c3,
                      const char **out, api_err *e)
{
    int rc = api_str(req, f, false, out, e);
    if (rc == 1 && strcmp(*out, a) && strcmp(*out, b) && (!c3 || strcmp(*out, c3))) {
        api_fail(e, API_INVALID, f, "%s \"%.40s\" is not one of %s, %s%s%s", f, *out, a, b, c3 ? ", " : "",
                 c3 ? c3 : "");
        return -1;
    }
    return rc;
}

/* Validates a complete schedule (create, or an update merged over the stored
 * one). recompute: compute next_ms from now. */
static bool sched_validate(api_ctx *c, const json_t *req, bool recompute, bool spec_given, sched_in *in, api_err *e)
{
    memset(in, 0, sizeof *in);
    in->queue = "default";
    in->prio = "normal";
    in->misfire = "fire_once";
    in->overlap = "allow";
    in->tz = "UTC";
    in->catchup_ms = -1;
    json_t *h = NULL;
    if (!api_check_fields(req, sched_fields, e) || api_name(req, "id", true, &in->id, e) < 0)
        return false;
    jet_sched *js = parse_spec(req, in->id, spec_given, &in->kind, e);
    if (!js)
        return false;
    api_str(req, "spec", true, &in->spec, e);
    api_str(req, "tz", false, &in->tz, e);
    in->next_ms = jet_sched_next(js, jet_now_ms());
    jet_sched_free(js);
    if (recompute && in->next_ms < 0)
        return api_fail(e, API_INVALID, "spec", "%s \"%.200s\" has no fire time after now", in->kind, in->spec), false;
    if (api_name(req, "queue", false, &in->queue, e) < 0 || api_priority(req, "priority", &in->prio, e) < 0 ||
        api_name(req, "handler", true, &in->handler, e) < 0 ||
        api_int(req, "max_attempts", false, 1, 1000, &in->max_attempts, e) < 0 ||
        enum_field(req, "misfire", "fire_once", "fire_all", "skip", &in->misfire, e) < 0 ||
        api_duration(req, "catchup_window", false, &in->catchup_ms, e) < 0 ||
        enum_field(req, "overlap", "allow", "forbid", NULL, &in->overlap, e) < 0 ||
        api_bool(req, "paused", false, &in->paused, e) < 0 || api_headers(req, "headers", &h, e) < 0)
        return false;
    if (api_payload(c, req, &in->payload, &in->plen, e) < 0) {
        json_decref(h);
        return false;
    }
    in->headers = h ? json_dumps(h, JSON_COMPACT) : strdup("{}");
    json_decref(h);
    return true;
}

/* Parameters $1..$15 of a schedule row plus $16 (recompute next_fire_at). */
static PGresult *sched_write(api_ctx *c, const char *what, const char *sql, const sched_in *in, bool recompute,
                             api_err *e)
{
    char ma[16], cw[32], nx[32];
    snprintf(ma, sizeof ma, "%lld", (long long)in->max_attempts);
    snprintf(cw, sizeof cw, "%lld", (long long)in->catchup_ms);
    snprintf(nx, sizeof nx, "%lld", (long long)in->next_ms);
    const char *vals[] = {in->id, in->kind, in->spec, in->tz, in->queue, in->prio, in->handler,
                          in->payload ? (const char *)in->payload : "", in->headers, in->max_attempts ? ma : NULL,
                          in->misfire, in->catchup_ms >= 0 ? cw : NULL, in->overlap, in->paused ? "true" : "false",
                          in->next_ms >= 0 ? nx : NULL, recompute ? "true" : "false"};
    int lens[16] = {[7] = (int)in->plen};
    int fmts[16] = {[7] = 1};
    return api_pg(c, what, sql, 16, vals, lens, fmts, e);
}

json_t *api_schedule_create(api_ctx *c, json_t *req, api_err *e)
{
    sched_in in;
    if (!sched_validate(c, req, true, true, &in, e)) {
        sched_in_free(&in);
        return NULL;
    }
    PGresult *r = sched_write(c, "create schedule",
                              "INSERT INTO schedules (id, kind, spec, tz, queue, priority, handler, payload, headers,"
                              " max_attempts, misfire, catchup_window, overlap, paused, next_fire_at) VALUES ($1, $2,"
                              " $3, $4, $5, $6, $7, $8::bytea, $9::jsonb, $10::integer, $11,"
                              " $12::bigint * interval '1 millisecond', $13, $14::boolean,"
                              " CASE WHEN $16::boolean THEN to_timestamp($15::double precision / 1000) END)"
                              " ON CONFLICT (id) DO NOTHING RETURNING " SCHED_COLS,
                              &in, true, e);
    if (r && PQntuples(r) == 0) {
        PQclear(r);
        api_fail(e, API_EXISTS, "id", "schedule %s already exists (use schedule.update)", in.id);
        r = NULL;
    }
    sched_in_free(&in);
    return r ? schedule_reply(r) : NULL;
}

json_t *api_schedule_update(api_ctx *c, json_t *req, api_err *e)
{
    const char *id;
    if (!api_check_fields(req, sched_fields, e) || api_name(req, "id", true, &id, e) < 0)
        return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(req, k, v)
    {
        /* null clears only the fields that can be absent; elsewhere it would
         * read as "not given" after the merge and answer "is required". */
        if (json_is_null(v) && strcmp(k, "max_attempts") && strcmp(k, "catchup_window"))
            return api_fail(e, API_INVALID, k,
                            "field \"%s\" must not be null (only max_attempts and catchup_window can be cleared)", k);
    }
    if (!api_pg_exec(c, "begin", "BEGIN", e))
        return NULL;
    const char *p[] = {id};
    PGresult *r = api_pg(c, "read schedule", "SELECT " SCHED_COLS " FROM schedules WHERE id = $1 FOR UPDATE", 1, p,
                         NULL, NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, "id", "schedule %s not found", id);
    }
    bool was_paused = PQgetvalue(r, 0, 13)[0] == 't';
    json_t *merged = schedule_json(r, 0);
    PQclear(r);
    static const char *const derived[] = {"next_fire_at", "last_fire_at", "created_at", "updated_at"};
    for (size_t i = 0; i < 4; i++)
        json_object_del(merged, derived[i]);
    if (json_object_get(req, "spec") && !json_object_get(req, "kind"))
        json_object_del(merged, "kind"); /* derived again from the new spec */
    if (json_object_get(req, "payload") || json_object_get(req, "payload_base64")) {
        json_object_del(merged, "payload");
        json_object_del(merged, "payload_base64");
    }
    json_object_update(merged, req);
    bool paused_now = json_is_true(json_object_get(merged, "paused"));
    bool recompute = json_object_get(req, "spec") || json_object_get(req, "kind") || json_object_get(req, "tz") ||
                     (was_paused && !paused_now);
    sched_in in;
    bool ok = sched_validate(c, merged, recompute, json_object_get(req, "spec") || json_object_get(req, "kind"), &in,
                             e);
    if (ok) {
        r = sched_write(c, "update schedule",
                        "UPDATE schedules SET kind = $2, spec = $3, tz = $4, queue = $5, priority = $6, handler = $7,"
                        " payload = $8::bytea, headers = $9::jsonb, max_attempts = $10::integer, misfire = $11,"
                        " catchup_window = $12::bigint * interval '1 millisecond', overlap = $13,"
                        " paused = $14::boolean, next_fire_at = CASE WHEN $16::boolean"
                        " THEN to_timestamp($15::double precision / 1000) ELSE next_fire_at END, updated_at = now()"
                        " WHERE id = $1 RETURNING " SCHED_COLS,
                        &in, recompute, e);
        ok = r && api_pg_exec(c, "commit", "COMMIT", e);
        if (!ok) {
            PQclear(r);
            r = NULL;
        }
    }
    sched_in_free(&in);
    json_decref(merged);
    return ok ? schedule_reply(r) : NULL;
}

/* ---------------- get, delete, pause, resume, list ---------------- */

static int id_only(const json_t *req, const char **id, api_err *e)
{
    static const char *const fields[] = {"id", NULL};
    if (!api_check_fields(req, fields, e))
        return -1;
    return api_name(req, "id", true, id, e);
}

static json_t *one_schedule(api_ctx *c, const char *what, const char *sql, const char *id, api_err *e)
{
    const char *p[] = {id};
    PGresult *r = api_pg(c, what, sql, 1, p, NULL, NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, "id", "schedule %s not found", id);
    }
    return schedule_reply(r);
}

json_t *api_schedule_get(api_ctx *c, json_t *req, api_err *e)
{
    const char *id;
    if (id_only(req, &id, e) < 0)
        return NULL;
    return one_schedule(c, "read schedule", "SELECT " SCHED_COLS " FROM schedules WHERE id = $1", id, e);
}

json_t *api_schedule_delete(api_ctx *c, json_t *req, api_err *e)
{
    const char *id;
    if (id_only(req, &id, e) < 0)
        return NULL;
    const char *p[] = {id};
    PGresult *r = api_pg(c, "delete schedule", "DELETE FROM schedules WHERE id = $1 RETURNING id", 1, p, NULL, NULL, e);
    if (!r)
        return NULL;
    int n = PQntuples(r);
    PQclear(r);
    if (n == 0)
        return api_fail(e, API_NOT_FOUND, "id", "schedule %s not found", id);
    return json_pack("{s:s,s:b}", "id", id, "deleted", 1);
}

json_t *api_schedule_pause(api_ctx *c, json_t *req, api_err *e)
{
    const char *id;
    if (id_only(req, &id, e) < 0)
        return NULL;
    return one_schedule(c, "pause schedule",
                        "UPDATE schedules SET paused = true, updated_at = now() WHERE id = $1 RETURNING " SCHED_COLS,
                        id, e);
}

json_t *api_schedule_resume(api_ctx *c, json_t *req, api_err *e)
{
    const char *id;
    if (id_only(req, &id, e) < 0)
        return NULL;
    if (!api_pg_exec(c, "begin", "BEGIN", e))
        return NULL;
    const char *p[] = {id};
    PGresult *r = api_pg(c, "read schedule", "SELECT kind, spec, tz, paused FROM schedules WHERE id = $1 FOR UPDATE",
                         1, p, NULL, NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, "id", "schedule %s not found", id);
    }
    char nx[32] = "";
    if (PQgetvalue(r, 0, 3)[0] == 't') {
        jet_sched *js = NULL;
        if (jet_sched_parse(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), id, &js, NULL) == JET_OK) {
            int64_t next = jet_sched_next(js, jet_now_ms());
            if (next >= 0)
                snprintf(nx, sizeof nx, "%lld", (long long)next);
            jet_sched_free(js);
        }
    }
    PQclear(r);
    const char *pp[] = {id, nx[0] ? nx : NULL};
    r = api_pg(c, "resume schedule",
               "UPDATE schedules SET next_fire_at = CASE WHEN paused THEN to_timestamp($2::double precision / 1000)"
               " ELSE next_fire_at END, paused = false, updated_at = now() WHERE id = $1 RETURNING " SCHED_COLS,
               2, pp, NULL, NULL, e);
    if (!r || !api_pg_exec(c, "commit", "COMMIT", e)) {
        PQclear(r);
        return NULL;
    }
    return schedule_reply(r);
}

json_t *api_schedule_list(api_ctx *c, json_t *req, api_err *e)
{
    const char *queue = NULL, *cursor = NULL;
    int64_t limit;
    if (!api_list_args(req, &queue, &limit, &cursor, e))
        return NULL;
    char *after = NULL;
    if (cursor && !(after = api_cursor_decode(cursor, e)))
        return NULL;
    char lim[32];
    snprintf(lim, sizeof lim, "%lld", (long long)limit + 1);
    const char *p[] = {queue, after, lim};
    PGresult *r = api_pg(c, "list schedules",
                         "SELECT " SCHED_COLS " FROM schedules WHERE ($1::text IS NULL OR queue = $1)"
                         " AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
                         3, p, NULL, NULL, e);
    free(after);
    if (!r)
        return NULL;
    json_t *list = json_array(), *next = json_null();
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < limit; i++)
        json_array_append_new(list, schedule_json(r, i));
    if (rows > limit) {
        char *enc = api_cursor_encode(PQgetvalue(r, (int)limit - 1, 0));
        next = json_string(enc);
        free(enc);
    }
    PQclear(r);
    return json_pack("{s:o,s:o}", "schedules", list, "next_cursor", next);
}

/* ---------------- trigger, preview ---------------- */

json_t *api_schedule_trigger(api_ctx *c, json_t *req, api_err *e)
{
    const char *id;
    if (id_only(req, &id, e) < 0)
        return NULL;
    char tid[JET_TASK_ID_MAX + 1];
    snprintf(tid, sizeof tid, "%s-manual-%lld", id, (long long)jet_now_ms());
    const char *p[] = {tid, id};
    PGresult *r = api_pg(c, "trigger schedule",
                         "INSERT INTO tasks AS t (id, queue, handler, priority, status, max_attempts, payload, headers,"
                         " scheduled_for, schedule_id) SELECT $1, sc.queue, sc.handler, sc.priority, 'queued',"
                         " sc.max_attempts, sc.payload, sc.headers, now(), sc.id FROM schedules sc WHERE sc.id = $2"
                         " ON CONFLICT (id) DO NOTHING RETURNING " PUB_COLS,
                         2, p, NULL, NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, "id", "schedule %s not found", id);
    }
    api_publish_new(c, r);
    PQclear(r);
    return json_pack("{s:s,s:s}", "task_id", tid, "status", "queued");
}

json_t *api_schedule_preview(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"id", "spec", "tz", "kind", "count", "from", NULL};
    const char *id = NULL, *from = "now";
    int64_t count = 5, from_ms = jet_now_ms();
    if (!api_check_fields(req, fields, e) || api_name(req, "id", false, &id, e) < 0 ||
        api_int(req, "count", false, 1, 100, &count, e) < 0 || api_str(req, "from", false, &from, e) < 0)
        return NULL;
    jet_err err;
    if (strcmp(from, "now") != 0 && jet_rfc3339_parse(from, &from_ms, &err) != JET_OK)
        return api_fail(e, API_INVALID, "from", "from: \"now\" or an RFC 3339 time: %s", err.msg);
    if (!api_time_in_range("from", from_ms, e))
        return NULL;
    json_t *spec_req = json_incref(req);
    if (id) {
        if (json_object_get(req, "spec") || json_object_get(req, "kind") || json_object_get(req, "tz")) {
            json_decref(spec_req);
            return api_fail(e, API_INVALID, "id", "give either id or spec (with kind and tz), not both");
        }
        const char *p[] = {id};
        PGresult *r = api_pg(c, "read schedule", "SELECT kind, spec, tz FROM schedules WHERE id = $1", 1, p, NULL,
                             NULL, e);
        json_decref(spec_req);
        if (!r)
            return NULL;
        if (PQntuples(r) == 0) {
            PQclear(r);
            return api_fail(e, API_NOT_FOUND, "id", "schedule %s not found", id);
        }
        spec_req = json_pack("{s:s,s:s,s:s}", "kind", PQgetvalue(r, 0, 0), "spec", PQgetvalue(r, 0, 1), "tz",
                             PQgetvalue(r, 0, 2));
        PQclear(r);
    }
    const char *kind;
    jet_sched *js = parse_spec(spec_req, id, !id, &kind, e); /* kind may point into spec_req */
    if (!js) {
        json_decref(spec_req);
        return NULL;
    }
    int64_t times[100];
    size_t n = jet_sched_preview(js, from_ms, times, (size_t)count);
    json_t *next = json_array();
    for (size_t i = 0; i < n; i++) {
        char buf[40];
        json_array_append_new(next, json_string(api_ms_text(times[i], buf, sizeof buf)));
    }
    json_t *out = json_pack("{s:s,s:s,s:o}", "kind", kind, "tz", jet_sched_tz(js), "next", next);
    jet_sched_free(js);
    json_decref(spec_req);
    return out;
}
