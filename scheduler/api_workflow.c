/* API verbs workflow.submit, workflow.add, workflow.get, workflow.list and
 * workflow.cancel (docs/WORKFLOWS.md): the DAG checks (ids, self edges,
 * unknown parents, cycles, node and byte limits), the one transaction that
 * stores a workflow's row, nodes and edges, and the publish of the nodes
 * without parents after the commit. Releases are the leader's (wf_release.c). */
#include "api.h"
#include "publish.h"
#include "wf.h"

#include <jetsched/ids.h>
#include <jetsched/log.h>
#include <jetsched/pgarray.h>
#include <jetsched/strmap.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WF_REQ_MAX_NODES 10000
#define WF_MAX_NODES 1000000
#define WF_REQ_MAX_BYTES (64LL * 1024 * 1024)
#define WF_ID_MAX 64
#define WF_NODE_ID_MAX 63

typedef struct wf_node {
    const char *id;    /* node id (borrowed from the request) */
    json_t *body;      /* the node without id/depends_on: what api_task_prepare read */
    api_task_row row;  /* row.id = <workflow>-<node> */
    size_t ndeps;
    const char **deps; /* parent node ids */
    bool *allow;       /* per parent: the edge allows failure */
    int *dep_idx;      /* index of the parent in this request, -1 outside it (workflow.add) */
} wf_node;

typedef struct wf_req {
    const char *wf;
    size_t n;
    wf_node *nodes;
    jet_strmap *index; /* node id -> index + 1 */
} wf_req;

static void wf_req_free(wf_req *q)
{
    for (size_t i = 0; i < q->n; i++) {
        api_task_row_free(&q->nodes[i].row);
        json_decref(q->nodes[i].body);
        free(q->nodes[i].deps);
        free(q->nodes[i].allow);
        free(q->nodes[i].dep_idx);
    }
    free(q->nodes);
    if (q->index)
        jet_strmap_free(q->index, NULL);
    memset(q, 0, sizeof *q);
}

static bool wf_id_valid(const char *s, size_t max) { return strlen(s) <= max && jet_task_id_valid(s); }

/* on_success, on_complete, or ending in -on_success / -on_complete: node
 * x-on_complete of workflow a is task a-x-on_complete, the callback of
 * workflow a-x (it would stand in for that callback). */
static bool callback_like(const char *s)
{
    static const char *const kinds[] = {"on_success", "on_complete"};
    size_t n = strlen(s);
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(kinds[k]);
        if (n >= kl && !strcmp(s + n - kl, kinds[k]) && (n == kl || s[n - kl - 1] == '-'))
            return true;
    }
    return false;
}

/* Adds the Jetsched-Workflow-Id header to a prepared row's stored headers. */
static void row_add_workflow_header(api_task_row *row, const char *wf)
{
    json_t *h = row->hjson ? json_loads(row->hjson, 0, NULL) : NULL;
    if (!json_is_object(h)) {
        json_decref(h);
        h = json_object();
    }
    json_object_set_new(h, JET_HDR_WORKFLOW_ID, json_string(wf));
    free(row->hjson);
    row->hjson = json_dumps(h, JSON_COMPACT);
    json_decref(h);
}

/* A node's (or callback's) task.submit body: the fields a node must not
 * have refused, the rest checked by api_task_prepare on a shallow copy. */
static int prepare_body(api_ctx *c, json_t *body, const char *what, const char *field, api_task_row *row, api_err *e)
{
    static const char *const refused[] = {"run_at", "delay", "validate_only", NULL};
    for (int k = 0; refused[k]; k++)
        if (json_object_get(body, refused[k]))
            return api_fail(e, API_INVALID, NULL, "%s: %s is not taken in a workflow %s (it runs when %s)", what,
                            refused[k], strncmp(what, "node", 4) ? "callback" : "node",
                            strncmp(what, "node", 4) ? "the workflow ends" : "its parents are done"),
                   snprintf(e->field, sizeof e->field, "%s.%s", field, refused[k]), -1;
    api_err e2 = {0};
    if (api_task_prepare(c, body, row, &e2) < 0) {
        api_fail(e, e2.code, NULL, "%s: %s", what, e2.msg);
        snprintf(e->field, sizeof e->field, "%.60s%s%.90s", field, e2.field[0] ? "." : "", e2.field);
        return -1;
    }
    return 0;
}

/* Reads tasks[] of a submit or add into q (each node checked as a
 * task.submit body, plus its id and depends_on). */
static int parse_nodes(api_ctx *c, const char *wf, json_t *tasks, bool may_be_empty, wf_req *q, api_err *e)
{
    memset(q, 0, sizeof *q);
    q->wf = wf;
    if (!tasks && may_be_empty)
        return 0;
    if (!json_is_array(tasks) || (!may_be_empty && json_array_size(tasks) == 0))
        return api_fail(e, API_INVALID, "tasks", "tasks must be an array of %d to %d nodes", may_be_empty ? 0 : 1,
                        WF_REQ_MAX_NODES),
               -1;
    if (json_array_size(tasks) > WF_REQ_MAX_NODES)
        return api_fail(e, API_INVALID, "tasks", "tasks has %zu nodes; at most %d per request (use workflow.add)",
                        json_array_size(tasks), WF_REQ_MAX_NODES),
               -1;
    q->n = json_array_size(tasks);
    q->nodes = calloc(q->n ? q->n : 1, sizeof *q->nodes);
    q->index = jet_strmap_new();
    long long bytes = 0;
    for (size_t i = 0; i < q->n; i++) {
        wf_node *nd = &q->nodes[i];
        json_t *t = json_array_get(tasks, i);
        char field[64], what[120];
        snprintf(field, sizeof field, "tasks[%zu]", i);
        if (!json_is_object(t))
            return api_fail(e, API_INVALID, field, "%s must be an object (a node: a task.submit body with id and "
                            "depends_on)", field), -1;
        json_t *idv = json_object_get(t, "id");
        if (!json_is_string(idv))
            return api_fail(e, API_INVALID, NULL, "%s has no node id (\"id\": 1-%d characters of [A-Za-z0-9_-])",
                            field, WF_NODE_ID_MAX),
                   snprintf(e->field, sizeof e->field, "%s.id", field), -1;
        nd->id = json_string_value(idv);
        if (!wf_id_valid(nd->id, WF_NODE_ID_MAX) || callback_like(nd->id))
            return api_fail(e, API_INVALID, NULL, "node id \"%.80s\" at %s is not valid: 1-%d characters of "
                            "[A-Za-z0-9_-], not on_success or on_complete (nor ending in -on_success or "
                            "-on_complete)", nd->id, field, WF_NODE_ID_MAX),
                   snprintf(e->field, sizeof e->field, "%s.id", field), -1;
        if (strlen(wf) + 1 + strlen(nd->id) > JET_TASK_ID_MAX)
            return api_fail(e, API_INVALID, NULL, "node \"%s\": its task id %s-%s would be over %d characters", nd->id,
                            wf, nd->id, JET_TASK_ID_MAX),
                   snprintf(e->field, sizeof e->field, "%s.id", field), -1;
        snprintf(what, sizeof what, "node \"%.80s\"", nd->id);
        uintptr_t prev = (uintptr_t)jet_strmap_put(q->index, nd->id, (void *)(uintptr_t)(i + 1));
        if (prev)
            return api_fail(e, API_INVALID, NULL, "node \"%s\" is defined twice (tasks[%zu] and tasks[%zu])", nd->id,
                            (size_t)prev - 1, i),
                   snprintf(e->field, sizeof e->field, "%s.id", field), -1;
        json_t *deps = json_object_get(t, "depends_on");
        if (deps && !json_is_null(deps) && !json_is_array(deps))
            return api_fail(e, API_INVALID, NULL, "%s: depends_on must be a list of node ids or "
                            "{\"id\",\"allow_failure\"} objects", what),
                   snprintf(e->field, sizeof e->field, "%s.depends_on", field), -1;
        nd->ndeps = json_is_array(deps) ? json_array_size(deps) : 0;
        nd->deps = calloc(nd->ndeps + 1, sizeof *nd->deps);
        nd->allow = calloc(nd->ndeps + 1, sizeof *nd->allow);
        nd->dep_idx = calloc(nd->ndeps + 1, sizeof *nd->dep_idx);
        for (size_t j = 0; j < nd->ndeps; j++) {
            json_t *d = json_array_get(deps, j);
            char df[128];
            snprintf(df, sizeof df, "%s.depends_on[%zu]", field, j);
            if (json_is_object(d)) {
                static const char *const dfields[] = {"id", "allow_failure", NULL};
                api_err e2 = {0};
                if (!api_check_fields(d, dfields, &e2))
                    return api_fail(e, API_INVALID, NULL, "%s: %s", what, e2.msg),
                           snprintf(e->field, sizeof e->field, "%.100s.%.50s", df, e2.field), -1;
                json_t *af = json_object_get(d, "allow_failure");
                if (af && !json_is_boolean(af) && !json_is_null(af))
                    return api_fail(e, API_INVALID, NULL, "%s: allow_failure must be true or false", what),
                           snprintf(e->field, sizeof e->field, "%s.allow_failure", df), -1;
                nd->allow[j] = json_is_true(af);
                d = json_object_get(d, "id");
            }
            if (!json_is_string(d) || !wf_id_valid(json_string_value(d), WF_NODE_ID_MAX))
                return api_fail(e, API_INVALID, df, "%s: each parent in depends_on is a node id (1-%d characters of "
                                "[A-Za-z0-9_-]) or {\"id\",\"allow_failure\"}", what, WF_NODE_ID_MAX), -1;
            nd->deps[j] = json_string_value(d);
            if (!strcmp(nd->deps[j], nd->id))
                return api_fail(e, API_INVALID, df, "node \"%s\" depends on itself", nd->id), -1;
            for (size_t k = 0; k < j && nd->ndeps <= 64; k++)
                if (!strcmp(nd->deps[k], nd->deps[j]))
                    return api_fail(e, API_INVALID, df, "node \"%s\" lists \"%s\" twice in depends_on", nd->id,
                                    nd->deps[j]), -1;
        }
        nd->body = json_copy(t);
        json_object_del(nd->body, "id");
        json_object_del(nd->body, "depends_on");
        if (prepare_body(c, nd->body, what, field, &nd->row, e) < 0)
            return -1;
        snprintf(nd->row.id, sizeof nd->row.id, "%s-%s", wf, nd->id);
        row_add_workflow_header(&nd->row, wf);
        bytes += (long long)nd->row.plen;
        if (bytes > WF_REQ_MAX_BYTES)
            return api_fail(e, API_TOO_LARGE, field, "the nodes' payloads are over %lld bytes together at %s; at "
                            "most %lld per request (use workflow.add)", WF_REQ_MAX_BYTES, what, WF_REQ_MAX_BYTES), -1;
    }
    /* Parents inside the request; long lists checked for repeats here. */
    for (size_t i = 0; i < q->n; i++) {
        wf_node *nd = &q->nodes[i];
        jet_strmap *seen = nd->ndeps > 64 ? jet_strmap_new() : NULL;
        for (size_t j = 0; j < nd->ndeps; j++) {
            uintptr_t k = (uintptr_t)jet_strmap_get(q->index, nd->deps[j]);
            nd->dep_idx[j] = k ? (int)(k - 1) : -1;
            if (seen && jet_strmap_put(seen, nd->deps[j], (void *)1)) {
                jet_strmap_free(seen, NULL);
                return api_fail(e, API_INVALID, NULL, "node \"%s\" lists \"%s\" twice in depends_on", nd->id,
                                nd->deps[j]),
                       snprintf(e->field, sizeof e->field, "tasks[%zu].depends_on[%zu]", i, j), -1;
            }
        }
        if (seen)
            jet_strmap_free(seen, NULL);
    }
    return 0;
}

/* Cycle check on the edges inside the request (iterative DFS). */
static int check_cycles(wf_req *q, api_err *e)
{
    unsigned char *color = calloc(q->n + 1, 1); /* 0 new, 1 on the path, 2 done */
    size_t *stack = malloc((q->n + 1) * sizeof *stack), *next = calloc(q->n + 1, sizeof *next);
    int rc = 0;
    for (size_t root = 0; root < q->n && rc == 0; root++) {
        if (color[root])
            continue;
        size_t sp = 0;
        stack[sp++] = root;
        color[root] = 1;
        while (sp && rc == 0) {
            size_t v = stack[sp - 1];
            wf_node *nd = &q->nodes[v];
            if (next[v] == nd->ndeps) {
                color[v] = 2;
                sp--;
                continue;
            }
            int p = nd->dep_idx[next[v]++];
            if (p < 0 || color[p] == 2)
                continue;
            if (color[p] == 0) {
                color[p] = 1;
                stack[sp++] = (size_t)p;
                continue;
            }
            /* p is on the path: the cycle is p ... v -> p */
            size_t from = sp - 1;
            while (stack[from] != (size_t)p)
                from--;
            char path[700] = "";
            size_t len = 0;
            for (size_t k = from; k < sp && len < sizeof path - 100; k++)
                len += (size_t)snprintf(path + len, sizeof path - len, "%s -> ", q->nodes[stack[k]].id);
            if (len >= sizeof path - 100)
                len += (size_t)snprintf(path + len, sizeof path - len, "... -> ");
            snprintf(path + len, sizeof path - len, "%s", q->nodes[p].id);
            api_fail(e, API_INVALID, NULL, "the dependencies form a cycle: %s (each depends on the next)", path);
            snprintf(e->field, sizeof e->field, "tasks[%zu].depends_on", v);
            rc = -1;
        }
    }
    free(color);
    free(stack);
    free(next);
    return rc;
}

/* The distinct queues of the nodes and callbacks: failed_precondition while
 * an agent without the "workflows" feature serves one of them. */
static bool check_feature(api_ctx *c, const wf_req *q, const api_task_row *const *cbs, size_t ncb, api_err *e)
{
    jet_strmap *seen = jet_strmap_new();
    const char **qs = calloc(q->n + ncb + 1, sizeof *qs);
    size_t nq = 0;
    for (size_t i = 0; i < q->n + ncb; i++) {
        const char *name = i < q->n ? q->nodes[i].row.queue : cbs[i - q->n] ? cbs[i - q->n]->queue : NULL;
        if (name && !jet_strmap_put(seen, name, (void *)1))
            qs[nq++] = name;
    }
    bool ok = c->offline || api_queues_have_feature(c, qs, nq, "workflows", e);
    free(qs);
    jet_strmap_free(seen, NULL);
    return ok;
}

/* The nodes as jsonb_to_recordset rows, with their pending-parent counts. */
static char *nodes_json(const wf_req *q)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < q->n; i++) {
        json_t *o = api_task_row_json(&q->nodes[i].row);
        json_object_set_new(o, "deps", json_integer((json_int_t)q->nodes[i].ndeps));
        json_array_append_new(arr, o);
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

static char *edges_json(const wf_req *q)
{
    json_t *arr = json_array();
    char parent[JET_TASK_ID_MAX + 2];
    for (size_t i = 0; i < q->n; i++)
        for (size_t j = 0; j < q->nodes[i].ndeps; j++) {
            snprintf(parent, sizeof parent, "%s-%s", q->wf, q->nodes[i].deps[j]);
            json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "p", parent, "c", q->nodes[i].row.id, "a",
                                                 q->nodes[i].allow[j]));
        }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

/* Inserts the nodes and their edges (inside the caller's transaction);
 * *ins gets the inserted rows (PUB_COLS, status). Returns 1, or 0 when a
 * node's task id exists already (*e already_exists/invalid_argument naming
 * it; *existing_all true when every node existed in this workflow), -1 on
 * a database error. */
static int insert_nodes(api_ctx *c, const wf_req *q, PGresult **ins, bool *existing_all, api_err *e)
{
    char *doc = nodes_json(q);
    const char *vals[] = {doc, q->wf};
    PGresult *r = api_pg(c, "insert workflow nodes",
                         "INSERT INTO tasks AS t (id, queue, handler, priority, status, max_attempts, payload, headers,"
                         " trace_id, workflow_id, deps_pending)"
                         " SELECT u.id, u.queue, u.handler, u.priority,"
                         " CASE WHEN u.deps = 0 THEN 'queued' ELSE 'waiting' END, u.max_attempts,"
                         " decode(u.payload, 'base64'), u.headers, u.trace, $2, u.deps"
                         " FROM jsonb_to_recordset($1::jsonb) AS u(id text, queue text, handler text, priority text,"
                         " max_attempts integer, payload text, headers jsonb, trace text, deps integer)"
                         " ON CONFLICT (id) DO NOTHING RETURNING " PUB_COLS ", t.status",
                         2, vals, NULL, NULL, e);
    free(doc);
    if (!r)
        return -1;
    *existing_all = false;
    if ((size_t)PQntuples(r) == q->n) {
        *ins = r;
        char *edoc = edges_json(q);
        const char *ev[] = {edoc};
        PGresult *er = api_pg(c, "insert workflow edges",
                              "INSERT INTO workflow_edges (parent_id, child_id, allow_failure)"
                              " SELECT u.p, u.c, u.a FROM jsonb_to_recordset($1::jsonb) AS u(p text, c text, a boolean)",
                              1, ev, NULL, NULL, e);
        free(edoc);
        if (!er) {
            PQclear(r);
            *ins = NULL;
            return -1;
        }
        PQclear(er);
        return 1;
    }
    /* Some exist: which, and are they this workflow's own (a repeated add)? */
    size_t created = (size_t)PQntuples(r);
    jet_strmap *made = jet_strmap_new();
    for (int i = 0; i < PQntuples(r); i++)
        jet_strmap_put(made, PQgetvalue(r, i, 0), (void *)1);
    PQclear(r);
    const wf_node *first = NULL;
    size_t fi = 0;
    for (size_t i = 0; i < q->n && !first; i++)
        if (!jet_strmap_get(made, q->nodes[i].row.id))
            first = &q->nodes[i], fi = i;
    jet_strmap_free(made, NULL);
    const char *p[] = {first->row.id};
    r = api_pg(c, "read task", "SELECT workflow_id FROM tasks WHERE id = $1", 1, p, NULL, NULL, e);
    if (!r)
        return -1;
    bool ours = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) && !strcmp(PQgetvalue(r, 0, 0), q->wf);
    PQclear(r);
    *existing_all = created == 0 && ours;
    if (ours)
        api_fail(e, API_INVALID, NULL, "node \"%s\" exists already in workflow %s (nothing of this request was "
                 "stored)", first->id, q->wf);
    else
        api_fail(e, API_EXISTS, NULL, "node \"%s\": task %s already exists (outside this workflow); nothing was "
                 "stored", first->id, first->row.id);
    snprintf(e->field, sizeof e->field, "tasks[%zu].id", fi);
    return 0;
}

/* After the commit: the nodes without parents go to the stream now. */
static void publish_roots(api_ctx *c, PGresult *ins)
{
    if (!ins)
        return;
    int n = PQntuples(ins), cols = PQnfields(ins);
    bool any = false;
    for (int i = 0; i < n && !any; i++)
        any = !strcmp(PQgetvalue(ins, i, cols - 1), "queued");
    if (!any)
        return;
    bool *done = calloc((size_t)n + 1, sizeof *done);
    bool *want = calloc((size_t)n + 1, sizeof *want);
    for (int i = 0; i < n; i++)
        want[i] = !strcmp(PQgetvalue(ins, i, cols - 1), "queued");
    wf_publish_rows(c->s, ins, want, done);
    jet_pgarr ok = {0};
    size_t failed = 0;
    for (int i = 0; i < n; i++) {
        if (done[i])
            jet_pgarr_add(&ok, PQgetvalue(ins, i, 0));
        else if (want[i])
            failed++;
    }
    if (ok.n) {
        const char *p[] = {jet_pgarr_lit(&ok)};
        api_err ignore = {0};
        PQclear(api_pg(c, "record dispatched_at",
                       "UPDATE tasks SET dispatched_at = now() WHERE id = ANY($1::text[]) AND status = 'queued'", 1, p,
                       NULL, NULL, &ignore));
    }
    if (failed)
        jet_warn("api %s: %zu node(s) committed but not published; the reconciler publishes them", c->verb, failed);
    jet_pgarr_free(&ok);
    free(done);
    free(want);
}

static json_t *tasks_reply(const wf_req *q, PGresult *ins)
{
    jet_strmap *st = jet_strmap_new();
    int cols = ins ? PQnfields(ins) : 0;
    for (int i = 0; ins && i < PQntuples(ins); i++)
        jet_strmap_put(st, PQgetvalue(ins, i, 0), PQgetvalue(ins, i, cols - 1));
    json_t *arr = json_array();
    for (size_t i = 0; i < q->n; i++) {
        const char *s = jet_strmap_get(st, q->nodes[i].row.id);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "id", q->nodes[i].id, "task_id", q->nodes[i].row.id,
                                             "status", s ? s : "unknown"));
    }
    jet_strmap_free(st, NULL);
    return arr;
}

static json_t *existing_reply(api_ctx *c, const char *wf, api_err *e)
{
    const char *p[] = {wf};
    PGresult *r = api_pg(c, "read workflow", "SELECT status, open, nodes FROM workflows WHERE id = $1", 1, p, NULL,
                         NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_fail(e, API_NOT_FOUND, "id", "workflow %s not found", wf);
    }
    json_t *out = json_pack("{s:s,s:s,s:b,s:b,s:I}", "id", wf, "status", PQgetvalue(r, 0, 0), "open",
                            PQgetvalue(r, 0, 1)[0] == 't', "created", 0, "nodes",
                            (json_int_t)strtoll(PQgetvalue(r, 0, 2), NULL, 10));
    PQclear(r);
    return out;
}

/* In the caller's transaction: a row that has the releaser check whether
 * workflow wf is over (after a close, an add, a cancel), and its wake-up. */
static bool wake(api_ctx *c, const char *wf, api_err *e)
{
    const char *p[] = {wf};
    PGresult *r = api_pg(c, "wake the releaser",
                         "WITH w AS (INSERT INTO workflow_outbox (task_id, workflow_id, status, counted)"
                         " VALUES ('', $1, '', false)) SELECT pg_notify('jetsched_workflow', '')",
                         1, p, NULL, NULL, e);
    PQclear(r);
    return r != NULL;
}

/* ---------------- workflow.submit ---------------- */

/* A callback (on_success / on_complete): a task.submit body without id. */
static int parse_callback(api_ctx *c, json_t *req, const char *name, const char *wf, api_task_row *row,
                          json_t **stored, api_err *e)
{
    json_t *cb = json_object_get(req, name);
    *stored = NULL;
    if (!cb || json_is_null(cb))
        return 0;
    if (!json_is_object(cb))
        return api_fail(e, API_INVALID, name, "%s must be an object (a task.submit body without id)", name), -1;
    if (json_object_get(cb, "id"))
        return api_fail(e, API_INVALID, NULL, "%s: id is not taken (its task id is <workflow id>-%s)", name, name),
               snprintf(e->field, sizeof e->field, "%s.id", name), -1;
    if (prepare_body(c, cb, name, name, row, e) < 0)
        return -1;
    snprintf(row->id, sizeof row->id, "%s-%s", wf, name);
    row_add_workflow_header(row, wf);
    *stored = api_task_row_json(row);
    return 1;
}

json_t *api_workflow_submit(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"id", "tasks", "on_success", "on_complete", "open", "validate_only", NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    const char *id = NULL;
    bool open = false, validate_only = false;
    if (api_str(req, "id", false, &id, e) < 0 || api_bool(req, "open", false, &open, e) < 0 ||
        api_bool(req, "validate_only", false, &validate_only, e) < 0)
        return NULL;
    char wf[JET_ULID_LEN + WF_ID_MAX + 1];
    if (id && !wf_id_valid(id, WF_ID_MAX))
        return api_fail(e, API_INVALID, "id", "workflow id \"%.80s\" is not valid: 1-%d characters of [A-Za-z0-9_-]",
                        id, WF_ID_MAX);
    if (id)
        snprintf(wf, sizeof wf, "%s", id);
    else
        jet_ulid_new(wf);
    wf_req q;
    api_task_row cbrow[2];
    memset(cbrow, 0, sizeof cbrow);
    json_t *cbjson[2] = {NULL, NULL};
    json_t *out = NULL;
    PGresult *ins = NULL;
    if (parse_nodes(c, wf, json_object_get(req, "tasks"), false, &q, e) < 0 || check_cycles(&q, e) < 0)
        goto done;
    for (size_t i = 0; i < q.n; i++)
        for (size_t j = 0; j < q.nodes[i].ndeps; j++)
            if (q.nodes[i].dep_idx[j] < 0) {
                api_fail(e, API_INVALID, NULL, "node \"%s\" depends on \"%s\", which is not a node of this workflow",
                         q.nodes[i].id, q.nodes[i].deps[j]);
                snprintf(e->field, sizeof e->field, "tasks[%zu].depends_on[%zu]", i, j);
                goto done;
            }
    if (parse_callback(c, req, "on_success", wf, &cbrow[0], &cbjson[0], e) < 0 ||
        parse_callback(c, req, "on_complete", wf, &cbrow[1], &cbjson[1], e) < 0)
        goto done;
    const api_task_row *cbs[2] = {cbjson[0] ? &cbrow[0] : NULL, cbjson[1] ? &cbrow[1] : NULL};
    if (!check_feature(c, &q, cbs, 2, e))
        goto done;
    if (validate_only) {
        out = json_pack("{s:b}", "valid", 1);
        goto done;
    }
    if (!api_pg_exec(c, "begin", "BEGIN", e))
        goto done;
    char nn[24];
    snprintf(nn, sizeof nn, "%zu", q.n);
    char *s0 = cbjson[0] ? json_dumps(cbjson[0], JSON_COMPACT) : NULL, *s1 = cbjson[1] ? json_dumps(cbjson[1], JSON_COMPACT) : NULL;
    const char *wv[] = {wf, open ? "t" : "f", nn, s0, s1};
    PGresult *r = api_pg(c, "insert workflow",
                         "INSERT INTO workflows (id, open, nodes, on_success, on_complete)"
                         " VALUES ($1, $2::boolean, $3::integer, $4::jsonb, $5::jsonb)"
                         " ON CONFLICT (id) DO NOTHING RETURNING id",
                         5, wv, NULL, NULL, e);
    if (!r) {
        free(s0);
        free(s1);
        goto done;
    }
    bool created = PQntuples(r) == 1;
    PQclear(r);
    if (!created) {
        free(s0);
        free(s1);
        api_pg_rollback(c);
        out = existing_reply(c, wf, e);
        goto done;
    }
    /* The callbacks' rows are reserved now, `waiting` (deps_pending NULL:
     * not a node), so that the primary key decides between this workflow
     * and a task.submit of the same id that read `workflows` before this
     * commits (sql/0020); the releaser moves them on when the workflow ends. */
    if (cbs[0] || cbs[1]) {
        const char *cv[] = {wf, s0, s1};
        r = api_pg(c, "reserve callbacks",
                   "INSERT INTO tasks (id, queue, handler, priority, status, max_attempts, payload, headers, trace_id,"
                   " workflow_id, deps_pending)"
                   " SELECT $1 || '-' || k.kind, coalesce(k.cb->>'queue', 'default'), k.cb->>'handler',"
                   " coalesce(k.cb->>'priority', 'normal'), 'waiting', (k.cb->>'max_attempts')::integer,"
                   " decode(coalesce(k.cb->>'payload', ''), 'base64'), coalesce(k.cb->'headers', '{}'::jsonb),"
                   " k.cb->>'trace', $1, NULL"
                   " FROM (VALUES ('on_success', $2::jsonb), ('on_complete', $3::jsonb)) AS k(kind, cb)"
                   " WHERE k.cb IS NOT NULL ON CONFLICT (id) DO NOTHING RETURNING id",
                   3, cv, NULL, NULL, e);
        bool taken[2] = {cbs[0] != NULL, cbs[1] != NULL};
        for (int i = 0; r && i < PQntuples(r); i++)
            for (int k = 0; k < 2; k++)
                if (cbs[k] && !strcmp(PQgetvalue(r, i, 0), cbrow[k].id))
                    taken[k] = false;
        PQclear(r);
        if (!r || taken[0] || taken[1]) {
            if (r)
                api_fail(e, API_EXISTS, taken[0] ? "on_success" : "on_complete",
                         "task %s already exists: the workflow's callback would not run (nothing was stored)",
                         cbrow[taken[0] ? 0 : 1].id);
            free(s0);
            free(s1);
            api_pg_rollback(c);
            goto done;
        }
    }
    free(s0);
    free(s1);
    bool existing_all = false;
    if (insert_nodes(c, &q, &ins, &existing_all, e) <= 0 || !api_pg_exec(c, "commit", "COMMIT", e)) {
        api_pg_rollback(c);
        goto done;
    }
    publish_roots(c, ins);
    out = json_pack("{s:s,s:s,s:b,s:b,s:I,s:o}", "id", wf, "status", "running", "open", open, "created", 1, "nodes",
                    (json_int_t)q.n, "tasks", tasks_reply(&q, ins));
done:
    PQclear(ins);
    wf_req_free(&q);
    for (int k = 0; k < 2; k++) {
        api_task_row_free(&cbrow[k]);
        json_decref(cbjson[k]);
    }
    return out;
}

/* ---------------- workflow.add ---------------- */

json_t *api_workflow_add(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"id", "tasks", "close", "from_task", NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    const char *wf = NULL, *from = NULL;
    bool close = false;
    if (api_str(req, "id", true, &wf, e) < 0 || api_bool(req, "close", false, &close, e) < 0 ||
        api_str(req, "from_task", false, &from, e) < 0)
        return NULL;
    if (from && (!jet_task_id_valid(from) || strncmp(from, wf, strlen(wf)) != 0 || from[strlen(wf)] != '-'))
        return api_fail(e, API_INVALID, "from_task", "from_task \"%.140s\" is not a node of workflow %.64s", from, wf);
    if (!wf_id_valid(wf, WF_ID_MAX))
        return api_fail(e, API_INVALID, "id", "workflow id \"%.80s\" is not valid: 1-%d characters of [A-Za-z0-9_-]",
                        wf, WF_ID_MAX);
    wf_req q;
    json_t *out = NULL;
    PGresult *ins = NULL, *r = NULL;
    jet_pgarr outside = {0};
    if (parse_nodes(c, wf, json_object_get(req, "tasks"), true, &q, e) < 0 || check_cycles(&q, e) < 0)
        goto done;
    if (q.n == 0 && !close) {
        api_fail(e, API_INVALID, "tasks", "tasks must be an array of 1 to %d nodes (or give \"close\": true)",
                 WF_REQ_MAX_NODES);
        goto done;
    }
    if (!check_feature(c, &q, NULL, 0, e))
        goto done;
    /* Parents outside the request: existing nodes of the workflow. */
    char parent[JET_TASK_ID_MAX + 2];
    jet_strmap *seen = jet_strmap_new();
    size_t nout = 0;
    for (size_t i = 0; i < q.n; i++)
        for (size_t j = 0; j < q.nodes[i].ndeps; j++)
            if (q.nodes[i].dep_idx[j] < 0) {
                snprintf(parent, sizeof parent, "%s-%s", wf, q.nodes[i].deps[j]);
                if (!jet_strmap_put(seen, parent, (void *)1)) {
                    jet_pgarr_add(&outside, parent);
                    nout++;
                }
            }
    jet_strmap_free(seen, NULL);
    if (!api_pg_exec(c, "begin", "BEGIN", e))
        goto done;
    const char *p1[] = {wf};
    r = api_pg(c, "lock workflow", "SELECT open, finished_at IS NOT NULL, nodes, status FROM workflows WHERE id = $1"
               " FOR UPDATE", 1, p1, NULL, NULL, e);
    if (!r)
        goto done;
    if (PQntuples(r) == 0) {
        api_fail(e, API_NOT_FOUND, "id", "workflow %s not found", wf);
        goto done;
    }
    long long total = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    bool by_node = false;
    if (from && PQgetvalue(r, 0, 1)[0] != 't' && strcmp(PQgetvalue(r, 0, 3), "cancelled") != 0) {
        /* A running node adds children (plugin ABI 1.2, Lua ctx): allowed
         * in a closed workflow while that node has not ended; its row is
         * locked until this commit, so its end (and so the workflow's) is
         * drained after the new nodes exist. */
        const char *pf[] = {from, wf};
        PGresult *fr = api_pg(c, "lock the adding node",
                              "SELECT jetsched_status_terminal(status) FROM tasks WHERE id = $1 AND workflow_id = $2"
                              " AND deps_pending IS NOT NULL FOR SHARE",
                              2, pf, NULL, NULL, e);
        if (!fr)
            goto done;
        bool live = PQntuples(fr) == 1 && PQgetvalue(fr, 0, 0)[0] == 'f';
        bool known = PQntuples(fr) == 1;
        PQclear(fr);
        if (!live) {
            api_fail(e, known ? API_PRECONDITION : API_INVALID, "from_task",
                     known ? "task %s has ended: it cannot add nodes" : "task %s is not a node of workflow %s", from,
                     wf);
            goto done;
        }
        by_node = true;
    }
    if (PQgetvalue(r, 0, 0)[0] != 't' && !by_node) {
        api_fail(e, API_PRECONDITION, "id", "workflow %s is %s: it takes no more nodes", wf,
                 PQgetvalue(r, 0, 1)[0] == 't' ? "over" : "closed");
        goto done;
    }
    if (total + (long long)q.n > WF_MAX_NODES) {
        api_fail(e, API_INVALID, "tasks", "workflow %s would have %lld nodes; at most %d", wf,
                 total + (long long)q.n, WF_MAX_NODES);
        goto done;
    }
    PQclear(r);
    r = NULL;
    if (nout) {
        /* The outside parents must be nodes of this workflow. No lock: each
         * gets a replay row (counted = false) whose state the releaser reads
         * when it drains it, after this commit; a parent that ends later
         * moves the new edges with its own row. */
        const char *p2[] = {wf, jet_pgarr_lit(&outside)};
        r = api_pg(c, "read parents",
                   "SELECT id FROM tasks WHERE workflow_id = $1 AND deps_pending IS NOT NULL AND id = ANY($2::text[])",
                   2, p2, NULL, NULL, e);
        if (!r)
            goto done;
        if ((size_t)PQntuples(r) < nout) {
            jet_strmap *found = jet_strmap_new();
            for (int i = 0; i < PQntuples(r); i++)
                jet_strmap_put(found, PQgetvalue(r, i, 0), (void *)1);
            bool named = false;
            for (size_t i = 0; i < q.n && !named; i++)
                for (size_t j = 0; j < q.nodes[i].ndeps; j++) {
                    snprintf(parent, sizeof parent, "%s-%s", wf, q.nodes[i].deps[j]);
                    if (q.nodes[i].dep_idx[j] < 0 && !jet_strmap_get(found, parent)) {
                        api_fail(e, API_INVALID, NULL, "node \"%s\" depends on \"%s\", which is not a node of "
                                 "workflow %s", q.nodes[i].id, q.nodes[i].deps[j], wf);
                        snprintf(e->field, sizeof e->field, "tasks[%zu].depends_on[%zu]", i, j);
                        named = true;
                        break;
                    }
                }
            jet_strmap_free(found, NULL);
            goto done;
        }
        PQclear(r);
        r = api_pg(c, "replay parents",
                   "INSERT INTO workflow_outbox (task_id, workflow_id, status, counted)"
                   " SELECT u, $1, '', false FROM unnest($2::text[]) AS u",
                   2, p2, NULL, NULL, e);
        if (!r)
            goto done;
        PQclear(r);
        r = NULL;
    }
    bool existing_all = false;
    if (q.n) {
        int rc = insert_nodes(c, &q, &ins, &existing_all, e);
        if (rc < 0)
            goto done;
        if (rc == 0) {
            if (!existing_all)
                goto done;
            api_pg_rollback(c); /* a repeated add: every node is there already */
            e->code = NULL;
            out = existing_reply(c, wf, e);
            if (out)
                json_object_set_new(out, "added", json_integer(0));
            goto done;
        }
    }
    char nn[24];
    snprintf(nn, sizeof nn, "%zu", q.n);
    const char *p3[] = {wf, nn, close ? "t" : "f"};
    r = api_pg(c, "update workflow",
               "UPDATE workflows SET nodes = nodes + $2::integer, open = open AND NOT $3::boolean, updated_at = now()"
               " WHERE id = $1 RETURNING nodes, status, open",
               3, p3, NULL, NULL, e);
    if (!r || !wake(c, wf, e) || !api_pg_exec(c, "commit", "COMMIT", e))
        goto done;
    publish_roots(c, ins);
    out = json_pack("{s:s,s:s,s:b,s:b,s:I,s:I,s:o}", "id", wf, "status", PQgetvalue(r, 0, 1), "open",
                    PQgetvalue(r, 0, 2)[0] == 't', "created", 1, "nodes",
                    (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "added", (json_int_t)q.n, "tasks",
                    tasks_reply(&q, ins));
done:
    if (!out)
        api_pg_rollback(c);
    PQclear(r);
    PQclear(ins);
    jet_pgarr_free(&outside);
    wf_req_free(&q);
    return out;
}

/* ---------------- workflow.get ---------------- */

static int wf_id_field(const json_t *req, const char **wf, api_err *e)
{
    if (api_str(req, "id", true, wf, e) < 0)
        return -1;
    if (!wf_id_valid(*wf, WF_ID_MAX))
        return api_fail(e, API_INVALID, "id", "workflow id \"%.80s\" is not valid: 1-%d characters of [A-Za-z0-9_-]",
                        *wf, WF_ID_MAX),
               -1;
    return 0;
}

json_t *api_workflow_get(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"id", "nodes", "limit", "cursor", NULL};
    const char *wf, *cursor = NULL;
    bool with_nodes = true;
    int64_t limit = 1000;
    if (!api_check_fields(req, fields, e) || wf_id_field(req, &wf, e) < 0 ||
        api_bool(req, "nodes", false, &with_nodes, e) < 0 || api_int(req, "limit", false, 1, 10000, &limit, e) < 0 ||
        api_str(req, "cursor", false, &cursor, e) < 0)
        return NULL;
    char *after = NULL;
    if (cursor) {
        if (!(after = api_cursor_decode(cursor, e)))
            return NULL;
        if (!jet_task_id_valid(after)) {
            free(after);
            return api_fail(e, API_INVALID, "cursor", "cursor is not one returned by workflow.get (pass next_cursor "
                            "unchanged)");
        }
    }
    const char *p[] = {wf};
    PGresult *r = api_pg(c, "read workflow",
                         "SELECT status, open, nodes, " API_MS("created_at") ", " API_MS("finished_at") ","
                         " on_success IS NOT NULL, on_complete IS NOT NULL FROM workflows WHERE id = $1",
                         1, p, NULL, NULL, e);
    if (!r) {
        free(after);
        return NULL;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        free(after);
        return api_fail(e, API_NOT_FOUND, "id", "workflow %s not found", wf);
    }
    json_t *w = json_pack("{s:s,s:s,s:b,s:I}", "id", wf, "status", PQgetvalue(r, 0, 0), "open",
                          PQgetvalue(r, 0, 1)[0] == 't', "nodes", (json_int_t)strtoll(PQgetvalue(r, 0, 2), NULL, 10));
    api_set_time(w, "created_at", r, 0, 3);
    api_set_time(w, "finished_at", r, 0, 4);
    bool has_cb[2] = {PQgetvalue(r, 0, 5)[0] == 't', PQgetvalue(r, 0, 6)[0] == 't'};
    PQclear(r);
    static const char *const kinds[2] = {"on_success", "on_complete"};
    char cbid[2][JET_TASK_ID_MAX + 16];
    for (int k = 0; k < 2; k++) {
        snprintf(cbid[k], sizeof cbid[k], "%s-%s", wf, kinds[k]);
        json_object_set_new(w, kinds[k], has_cb[k] ? json_string(cbid[k]) : json_null());
    }
    json_t *out = NULL, *counts = json_object(), *callbacks = json_array(), *nodes = NULL, *next = json_null();
    r = api_pg(c, "count workflow nodes",
               "SELECT status, count(*) FROM tasks WHERE workflow_id = $1 AND deps_pending IS NOT NULL GROUP BY status"
               " ORDER BY status",
               1, p, NULL, NULL, e);
    if (!r)
        goto fail;
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(counts, PQgetvalue(r, i, 0), json_integer(strtoll(PQgetvalue(r, i, 1), NULL, 10)));
    PQclear(r);
    json_object_set_new(w, "counts", counts);
    counts = NULL;
    const char *pc[] = {cbid[0], cbid[1]};
    r = api_pg(c, "read callbacks", "SELECT id, status FROM tasks WHERE id IN ($1, $2)", 2, pc, NULL, NULL, e);
    if (!r)
        goto fail;
    for (int k = 0; k < 2; k++) {
        if (!has_cb[k])
            continue;
        const char *st = NULL;
        for (int i = 0; i < PQntuples(r); i++)
            if (!strcmp(PQgetvalue(r, i, 0), cbid[k]))
                st = PQgetvalue(r, i, 1);
        json_array_append_new(callbacks, json_pack("{s:s,s:s,s:s?}", "kind", kinds[k], "task_id", cbid[k], "status", st));
    }
    PQclear(r);
    if (with_nodes) {
        char lim[24], skip[24];
        snprintf(lim, sizeof lim, "%lld", (long long)limit + 1);
        snprintf(skip, sizeof skip, "%zu", strlen(wf) + 2);
        const char *pn[] = {wf, after ? after : "", lim, skip};
        r = api_pg(c, "list workflow nodes",
                   "SELECT t.id, substr(t.id, $4::integer), t.handler, t.queue, t.status, t.attempts, t.error, "
                   API_MS("t.created_at") ", " API_MS("t.started_at") ", " API_MS("t.finished_at") ","
                   " (SELECT coalesce(json_agg(json_build_object('id', substr(e.parent_id, $4::integer),"
                   "   'allow_failure', e.allow_failure) ORDER BY e.parent_id), '[]')"
                   "  FROM workflow_edges e WHERE e.child_id = t.id)"
                   " FROM tasks t WHERE t.workflow_id = $1 AND t.deps_pending IS NOT NULL AND t.id > $2"
                   " ORDER BY t.id LIMIT $3::integer",
                   4, pn, NULL, NULL, e);
        if (!r)
            goto fail;
        nodes = json_array();
        int rows = PQntuples(r);
        for (int i = 0; i < rows && i < limit; i++) {
            json_t *o = json_object();
            api_set_text(o, "id", r, i, 1);
            api_set_text(o, "task_id", r, i, 0);
            api_set_text(o, "handler", r, i, 2);
            api_set_text(o, "queue", r, i, 3);
            api_set_text(o, "status", r, i, 4);
            api_set_intcol(o, "attempts", r, i, 5);
            api_set_text(o, "error", r, i, 6);
            json_t *deps = json_loads(PQgetvalue(r, i, 10), 0, NULL);
            json_object_set_new(o, "depends_on", deps ? deps : json_array());
            api_set_time(o, "created_at", r, i, 7);
            api_set_time(o, "started_at", r, i, 8);
            api_set_time(o, "finished_at", r, i, 9);
            json_array_append_new(nodes, o);
        }
        if (rows > limit) {
            char *enc = api_cursor_encode(PQgetvalue(r, (int)limit - 1, 0));
            json_decref(next);
            next = json_string(enc);
            free(enc);
        }
        PQclear(r);
    }
    out = json_pack("{s:o,s:o}", "workflow", w, "callbacks", callbacks);
    w = callbacks = NULL;
    if (nodes)
        json_object_set_new(out, "nodes", nodes);
    json_object_set_new(out, "next_cursor", next);
    free(after);
    return out;
fail:
    json_decref(w);
    json_decref(counts);
    json_decref(callbacks);
    json_decref(next);
    free(after);
    return NULL;
}

/* ---------------- workflow.list ---------------- */

static bool wf_status_valid(const char *s)
{
    return !strcmp(s, "running") || !strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static bool wf_list_id_valid(const char *s) { return wf_id_valid(s, WF_ID_MAX); }

json_t *api_workflow_list(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"status", "since", "until", "limit", "cursor", NULL};
    if (!api_check_fields(req, fields, e))
        return NULL;
    const char *cursor = NULL;
    int64_t since = -1, until = -1, limit;
    if (api_time(req, "since", false, &since, e) < 0 || api_time(req, "until", false, &until, e) < 0 ||
        api_limit(req, &limit, e) < 0 || api_str(req, "cursor", false, &cursor, e) < 0)
        return NULL;
    jet_pgarr statuses = {0};
    json_t *st = json_object_get(req, "status");
    if (st && !json_is_null(st)) {
        json_t *arr = json_is_array(st) ? json_incref(st) : json_pack("[O]", st);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            if (!json_is_string(v) || !wf_status_valid(json_string_value(v))) {
                json_decref(arr);
                jet_pgarr_free(&statuses);
                return api_fail(e, API_INVALID, "status", "status must be a workflow state or a list of them "
                                "(running, succeeded, failed, cancelled)");
            }
            jet_pgarr_add(&statuses, json_string_value(v));
        }
        json_decref(arr);
        if (!statuses.n)
            return api_fail(e, API_INVALID, "status", "status must not be an empty list");
    }
    char *cur = NULL, *cur_id = NULL;
    if (cursor && !(cur = api_keyset_decode(cursor, "workflow.list", wf_list_id_valid, &cur_id, e))) {
        jet_pgarr_free(&statuses);
        return NULL;
    }
    char sn[32], un[32], lim[32];
    snprintf(sn, sizeof sn, "%lld", (long long)since);
    snprintf(un, sizeof un, "%lld", (long long)until);
    snprintf(lim, sizeof lim, "%lld", (long long)limit + 1);
    const char *vals[] = {statuses.n ? jet_pgarr_lit(&statuses) : NULL, sn, un, cur, cur_id, lim};
    PGresult *r = api_pg(c, "list workflows",
                         "SELECT id, status, open, nodes, " API_MS("created_at") ", " API_MS("finished_at") ","
                         " (extract(epoch from created_at) * 1000000)::bigint FROM workflows"
                         " WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))"
                         " AND ($2::bigint < 0 OR created_at >= to_timestamp($2::double precision / 1000))"
                         " AND ($3::bigint < 0 OR created_at < to_timestamp($3::double precision / 1000))"
                         " AND ($4::bigint IS NULL OR (created_at, id) < (timestamptz 'epoch' + $4::bigint *"
                         " interval '1 microsecond', $5))"
                         " ORDER BY created_at DESC, id DESC LIMIT $6::integer",
                         6, vals, NULL, NULL, e);
    free(cur);
    jet_pgarr_free(&statuses);
    if (!r)
        return NULL;
    json_t *list = json_array();
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < limit; i++) {
        json_t *o = json_pack("{s:s,s:s,s:b,s:I}", "id", PQgetvalue(r, i, 0), "status", PQgetvalue(r, i, 1), "open",
                              PQgetvalue(r, i, 2)[0] == 't', "nodes", (json_int_t)strtoll(PQgetvalue(r, i, 3), NULL, 10));
        api_set_time(o, "created_at", r, i, 4);
        api_set_time(o, "finished_at", r, i, 5);
        json_array_append_new(list, o);
    }
    json_t *next = rows > limit ? api_keyset_next(r, (int)limit - 1, 6, 0) : json_null();
    PQclear(r);
    return json_pack("{s:o,s:o}", "workflows", list, "next_cursor", next);
}

/* ---------------- workflow.cancel ---------------- */

json_t *api_workflow_cancel(api_ctx *c, json_t *req, api_err *e)
{
    static const char *const fields[] = {"id", NULL};
    const char *wf;
    if (!api_check_fields(req, fields, e) || wf_id_field(req, &wf, e) < 0)
        return NULL;
    const char *p[] = {wf};
    PGresult *r = api_pg(c, "read workflow", "SELECT status, finished_at IS NOT NULL FROM workflows WHERE id = $1", 1,
                         p, NULL, NULL, e);
    if (!r)
        return NULL;
    if (PQntuples(r) == 0 || PQgetvalue(r, 0, 1)[0] == 't') {
        json_t *out = PQntuples(r) == 0
                          ? api_fail(e, API_NOT_FOUND, "id", "workflow %s not found", wf)
                          : api_fail(e, API_PRECONDITION, "id", "workflow %s is over (%s): it cannot be cancelled", wf,
                                     PQgetvalue(r, 0, 0));
        PQclear(r);
        return out;
    }
    PQclear(r);
    /* The nodes first, then the workflow row. The releaser's drain locks
     * child rows (in no particular order), then workflow rows, then the
     * rows it releases: the two deadlocked under load (PostgreSQL aborted
     * one, the cancel answered `unavailable`). They take one transaction
     * advisory lock first, so they never overlap; a drain round is short. */
    if (!api_pg_exec(c, "begin", "BEGIN", e) ||
        !api_pg_exec(c, "serialise with the releaser", "SELECT pg_advisory_xact_lock(" WF_CANCEL_LOCK ")", e))
        return NULL;
    r = api_pg(c, "cancel waiting nodes",
               "UPDATE tasks SET status = 'cancelled', error = 'workflow cancelled', finished_at = now(),"
               " updated_at = now() WHERE workflow_id = $1 AND deps_pending IS NOT NULL AND status = 'waiting'",
               1, p, NULL, NULL, e);
    if (!r)
        return NULL;
    long long cancelled = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    r = api_pg(c, "cancel workflow",
               "UPDATE workflows SET status = 'cancelled', open = false, updated_at = now()"
               " WHERE id = $1 AND finished_at IS NULL RETURNING id",
               1, p, NULL, NULL, e);
    if (!r)
        return NULL;
    bool ok = PQntuples(r) == 1;
    PQclear(r);
    if (!ok) {
        api_pg_rollback(c);
        return api_fail(e, API_PRECONDITION, "id", "workflow %s ended meanwhile: it cannot be cancelled", wf);
    }
    r = api_pg(c, "read running nodes",
               "SELECT id FROM tasks WHERE workflow_id = $1 AND deps_pending IS NOT NULL"
               " AND status IN ('queued', 'running', 'retrying')",
               1, p, NULL, NULL, e);
    if (!r)
        return NULL;
    if (!wake(c, wf, e) || !api_pg_exec(c, "commit", "COMMIT", e)) {
        PQclear(r);
        return NULL;
    }
    char at[40];
    json_t *v = json_pack("{s:s,s:s,s:s}", "by", c->s->id, "at", api_ms_text(jet_now_ms(), at, sizeof at), "reason",
                          "workflow cancelled");
    char *value = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    long long cancelling = 0, failed = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        uint64_t rev = 0;
        if (kvStore_PutString(&rev, c->cancel_kv, PQgetvalue(r, i, 0), value) == NATS_OK)
            cancelling++;
        else
            failed++;
    }
    free(value);
    PQclear(r);
    if (failed)
        return api_fail(e, API_UNAVAILABLE, NULL, "workflow %s is cancelled, but %lld running or queued node(s) could "
                        "not be told (writing to %s failed); call workflow.cancel again", wf, failed,
                        c->s->names.kv_cancel);
    return json_pack("{s:s,s:s,s:I,s:I}", "id", wf, "status", "cancelled", "cancelled", (json_int_t)cancelled,
                     "cancelling", (json_int_t)cancelling);
}
