/* API verbs limit.set|get|list|delete (docs/API.md "Limits"): per-key
 * concurrency and rate limits, and a queue's default for the keys of its
 * tasks, in PostgreSQL table `limits` (sql/0008_limits.sql). Agents enforce
 * them (agentd/limits.c); the leader publishes parked tasks again
 * (scheduler/release.c). limit.set refuses with failed_precondition while an
 * agent without the `limits` feature serves the queue (DESIGN §12). */
#include "api.h"

#include <jetsched/names.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_COLS                                                                                             \
    "l.scope, l.name, l.concurrency, l.rate, coalesce(l.burst, 1), " API_MS("l.updated_at") ","             \
    " (SELECT count(*) FROM limit_leases x WHERE x.key = l.name AND x.until > clock_timestamp()),"          \
    " (SELECT count(*) FROM limit_waiting w WHERE w.key = l.name AND w.released_at IS NULL),"               \
    " (SELECT " API_MS("h.until") " FROM limit_holds h WHERE h.key = l.name AND h.until > clock_timestamp())"

static json_t *limit_json(PGresult *r, int i)
{
    bool queue = !strcmp(PQgetvalue(r, i, 0), "queue");
    json_t *o = json_object();
    json_object_set_new(o, queue ? "queue" : "key", json_string(PQgetvalue(r, i, 1)));
    api_set_intcol(o, "concurrency", r, i, 2);
    if (PQgetisnull(r, i, 3))
        json_object_set_new(o, "rate", json_null());
    else
        json_object_set_new(o, "rate", json_real(strtod(PQgetvalue(r, i, 3), NULL)));
    api_set_intcol(o, "burst", r, i, 4);
    api_set_time(o, "updated_at", r, i, 5);
    if (!queue) { /* a queue default is per key: the counts are on the keys' own rows */
        api_set_intcol(o, "in_use", r, i, 6);
        api_set_intcol(o, "waiting", r, i, 7);
        api_set_time(o, "held_until", r, i, 8);
    }
    return o;
}

/* A changed limit may let parked tasks go: the leader's releaser listens. */
static void wake_releaser(api_ctx *c)
{
    api_err ignored;
    PQclear(api_pg(c, "notify jetsched_limits", "SELECT pg_notify('jetsched_limits', 'limit')", 0, NULL, NULL, NULL,
                   &ignored));
}

/* key or queue (exactly one): *scope "key" or "queue", *name the value. */
static bool target(const json_t *req, const char **scope, const char **name, api_err *e)
{
    const char *key = NULL, *queue = NULL;
    if (api_str(req, "key", false, &key, e) < 0 || api_name(req, "queue", false, &queue, e) < 0)
        return false;
    if (key && !jet_limit_key_valid(key))
        return api_fail(e, API_INVALID, "key", "key \"%.140s\" must be 1-%d characters of A-Z a-z 0-9 _ . : -", key,
                        JET_LIMIT_KEY_MAX) != NULL;
    if (!key == !queue)
        return api_fail(e, API_INVALID, key ? "queue" : "key",
                        "give exactly one of key (a key's limit) or queue (the default of a queue's keys)") != NULL;
    *scope = key ? "key" : "queue";
    *name = key ? key : queue;
    return true;
}

/* rate: a JSON number (tasks per second), 1e-6 to 1e6. Below 1e-6 one
 * token's time (1/rate s, up to burst of them) overflows PostgreSQL's
 * interval in jetsched_limit_acquire: the key's tasks would stay parked. */
static int rate_arg(const json_t *req, double *out, api_err *e)
{
    json_t *v = json_object_get(req, "rate");
    if (!v || json_is_null(v))
        return 0;
    double r = json_is_number(v) ? json_number_value(v) : -1;
    if (!(r >= 1e-6 && r <= 1e6) || !isfinite(r)) {
        api_fail(e, API_INVALID, "rate", "field \"rate\" must be a number of tasks per second from 0.000001 (one "
                 "in 11.6 days) to 1000000");
        return -1;
    }
    *out = r;
    return 1;
}

/* Every agent that may run a task with this key must enforce it: the
 * queue's agents for a queue default; for a key (any queue may carry it),
 * the agents of every queue some agent serves. */
static bool agents_enforce(api_ctx *c, const char *scope, const char *name, api_err *e)
{
    if (!strcmp(scope, "queue"))
        return api_queues_have_feature(c, &name, 1, "limits", e);
    api_err ignored = {0};
    json_t *none = json_object();
    json_t *all = api_cluster_agents(c, none, &ignored);
    json_decref(none);
    if (!all)
        return api_fail(e, API_UNAVAILABLE, NULL, "checking the agents' features: %s", ignored.msg) != NULL;
    json_t *seen = json_object();
    size_t i, k;
    json_t *agent, *q;
    json_array_foreach(json_object_get(all, "agents"), i, agent)
        json_array_foreach(json_object_get(agent, "queues"), k, q)
            if (json_is_string(q))
                json_object_set_new(seen, json_string_value(q), json_true());
    size_t n = json_object_size(seen), j = 0;
    const char **queues = calloc(n ? n : 1, sizeof *queues);
    const char *qn;
    json_t *v;
    json_object_foreach(seen, qn, v)
        queues[j++] = qn;
    bool ok = api_queues_have_feature(c, queues, n, "limits", e);
    free(queues);
    json_decref(seen);
    json_decref(all);
    return ok;
}

json_t *api_limit_set(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"key", "queue", "concurrency", "rate", "burst", NULL};
    const char *scope, *name;
    int64_t conc = 0, burst = 0;
    double rate = 0;
    int hc, hr, hb;
    if (!api_check_fields(req, fields, e) || !target(req, &scope, &name, e) ||
        (hc = api_int(req, "concurrency", false, 1, 1000000, &conc, e)) < 0 || (hr = rate_arg(req, &rate, e)) < 0 ||
        (hb = api_int(req, "burst", false, 1, 1000000, &burst, e)) < 0)
        return NULL;
    if (!hc && !hr)
        return api_fail(e, API_INVALID, "concurrency", "give concurrency, rate, or both");
    if (hb && !hr)
        return api_fail(e, API_INVALID, "burst", "burst goes with rate");
    if (c->offline)
        return api_fail(e, API_UNAVAILABLE, NULL, "PostgreSQL is not available");
    if (!agents_enforce(c, scope, name, e))
        return NULL;
    char cs[24], rs[40], bs[24];
    snprintf(cs, sizeof cs, "%lld", (long long)conc);
    snprintf(rs, sizeof rs, "%.17g", rate);
    snprintf(bs, sizeof bs, "%lld", (long long)burst);
    const char *vals[] = {scope, name, hc ? cs : NULL, hr ? rs : NULL, hb ? bs : NULL};
    PGresult *r = api_pg(c, "limit.set",
                         "WITH l AS (INSERT INTO limits AS l (scope, name, concurrency, rate, burst) VALUES "
                         "($1, $2, $3::int, $4::float8, $5::int) ON CONFLICT (scope, name) DO UPDATE SET "
                         "concurrency = EXCLUDED.concurrency, rate = EXCLUDED.rate, burst = EXCLUDED.burst, "
                         "updated_at = now() RETURNING *) SELECT " LIMIT_COLS " FROM l",
                         5, vals, NULL, NULL, e);
    if (!r)
        return NULL;
    json_t *out = json_pack("{s:o}", "limit", limit_json(r, 0));
    PQclear(r);
    wake_releaser(c);
    return out;
}

json_t *api_limit_get(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"key", "queue", NULL};
    const char *scope, *name;
    if (!api_check_fields(req, fields, e) || !target(req, &scope, &name, e))
        return NULL;
    if (c->offline)
        return api_fail(e, API_UNAVAILABLE, NULL, "PostgreSQL is not available");
    const char *vals[] = {scope, name};
    PGresult *r = api_pg(c, "limit.get", "SELECT " LIMIT_COLS " FROM limits l WHERE l.scope = $1 AND l.name = $2", 2,
                         vals, NULL, NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, !strcmp(scope, "key") ? "key" : "queue", "no limit for %s \"%s\"", scope,
                        name);
    }
    json_t *out = json_pack("{s:o}", "limit", limit_json(r, 0));
    PQclear(r);
    return out;
}

/* Pages in the list's order (queue defaults, then keys, each by name): the
 * cursor is "scope|name" of the last row of the previous page. */
json_t *api_limit_list(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"limit", "cursor", NULL};
    int64_t limit = 1000;
    const char *cursor = NULL;
    if (!api_check_fields(req, fields, e) || api_int(req, "limit", false, 1, 1000, &limit, e) < 0 ||
        api_str(req, "cursor", false, &cursor, e) < 0)
        return NULL;
    char *after = NULL, *name = NULL;
    if (cursor) {
        if (!(after = api_cursor_decode(cursor, e)))
            return NULL;
        char *bar = strchr(after, '|');
        if (!bar || (strncmp(after, "queue|", 6) && strncmp(after, "key|", 4)) || !bar[1]) {
            free(after);
            return api_fail(e, API_INVALID, "cursor", "cursor is not one returned by limit.list (pass next_cursor "
                            "unchanged)");
        }
        *bar = '\0';
        name = bar + 1;
    }
    if (c->offline) {
        free(after);
        return api_fail(e, API_UNAVAILABLE, NULL, "PostgreSQL is not available");
    }
    char lim[32];
    snprintf(lim, sizeof lim, "%lld", (long long)limit + 1);
    const char *p[] = {after, name, lim};
    PGresult *r = api_pg(c, "limit.list",
                         "SELECT " LIMIT_COLS " FROM limits l WHERE $1::text IS NULL OR l.scope < $1"
                         " OR (l.scope = $1 AND l.name > $2::text) ORDER BY l.scope DESC, l.name LIMIT $3::int",
                         3, p, NULL, NULL, e);
    free(after);
    if (!r)
        return NULL;
    json_t *list = json_array(), *next = json_null();
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < limit; i++)
        json_array_append_new(list, limit_json(r, i));
    if (rows > limit) {
        char text[300];
        snprintf(text, sizeof text, "%s|%s", PQgetvalue(r, (int)limit - 1, 0), PQgetvalue(r, (int)limit - 1, 1));
        char *enc = api_cursor_encode(text);
        next = json_string(enc);
        free(enc);
    }
    PQclear(r);
    return json_pack("{s:o,s:o}", "limits", list, "next_cursor", next);
}

json_t *api_limit_delete(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"key", "queue", NULL};
    const char *scope, *name;
    if (!api_check_fields(req, fields, e) || !target(req, &scope, &name, e))
        return NULL;
    if (c->offline)
        return api_fail(e, API_UNAVAILABLE, NULL, "PostgreSQL is not available");
    const char *vals[] = {scope, name};
    /* Tasks parked under it are released by the leader (no limit: all of them, in batches). */
    PGresult *r = api_pg(c, "limit.delete",
                         "WITH d AS (DELETE FROM limits WHERE scope = $1 AND name = $2 RETURNING 1) SELECT count(*) FROM d",
                         2, vals, NULL, NULL, e);
    if (!r)
        return NULL;
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (n == 0)
        return api_fail(e, API_NOT_FOUND, !strcmp(scope, "key") ? "key" : "queue", "no limit for %s \"%s\"", scope,
                        name);
    wake_releaser(c);
    return json_pack("{s:s,s:s,s:b}", scope, name, "scope", scope, "deleted", 1);
}
