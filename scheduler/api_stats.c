/* API verb stats.minutes (docs/API.md): finished tasks per queue and minute
 * from the rollup table task_minutes (scheduler/rollup.c), for the web
 * console's overview; a primary-key range read, never a scan of tasks. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATS_MAX_SINCE_MS (INT64_C(8) * 24 * 3600 * 1000)

json_t *api_stats_minutes(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"since", "queue", NULL};
    const char *queue = NULL;
    int64_t since = 3600 * 1000;
    if (!api_check_fields(req, fields, e) || api_duration(req, "since", false, &since, e) < 0 ||
        api_name(req, "queue", false, &queue, e) < 0)
        return NULL;
    if (since <= 0 || since > STATS_MAX_SINCE_MS)
        return api_fail(e, API_INVALID, "since", "since must be above 0s and at most 8d (the rollup's retention)");
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", (long long)since);
    const char *p[] = {ms, queue};
    PGresult *r = api_pg(c, "read task_minutes",
                         "SELECT " API_MS("minute") ", queue, succeeded, dead, expired, cancelled, skipped"
                         " FROM task_minutes WHERE minute >= date_trunc('minute', now() - $1::bigint * interval "
                         "'1 millisecond') AND ($2::text IS NULL OR queue = $2) ORDER BY minute, queue",
                         2, p, NULL, NULL, e);
    if (!r)
        return NULL;
    json_t *rows = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *o = json_object();
        api_set_time(o, "minute", r, i, 0);
        api_set_text(o, "queue", r, i, 1);
        api_set_intcol(o, "succeeded", r, i, 2);
        api_set_intcol(o, "dead", r, i, 3);
        api_set_intcol(o, "expired", r, i, 4);
        api_set_intcol(o, "cancelled", r, i, 5);
        api_set_intcol(o, "skipped", r, i, 6);
        json_array_append_new(rows, o);
    }
    PQclear(r);
    json_t *res = json_pack("{s:o}", "minutes", rows);
    r = api_pg(c, "read task_minutes_state", "SELECT " API_MS("rolled_to") " FROM task_minutes_state", 0, NULL,
               NULL, NULL, e);
    if (!r) {
        json_decref(res);
        return NULL;
    }
    if (PQntuples(r) == 1)
        api_set_time(res, "rolled_to", r, 0, 0);
    PQclear(r);
    return res;
}
