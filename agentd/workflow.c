/* The workflow calls of the host API (plugin ABI 1.2, Lua ctx): workflow_id,
 * workflow_add (a request to the API verb workflow.add with the derived node
 * id and "from_task") and parent_results (one PostgreSQL query on a
 * connection of its own). */
#include "workflow.h"

#include <jansson.h>
#include <jetsched/alloc.h>
#include <jetsched/log.h>
#include <jetsched/names.h>
#include <jetsched/pgconn.h>
#include <jetsched/sha256.h>
#include <jetsched/strmap.h>
#include <jetsched/task.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WF_ADD_TIMEOUT_MS 10000

struct wf_run {
    jet_strmap *siblings; /* names added by this attempt -> (void *)1 */
    char *parents;        /* parent_results' text, once read */
};

void wf_run_free(struct wf_run *r)
{
    if (!r)
        return;
    if (r->siblings)
        jet_strmap_free(r->siblings, NULL);
    free(r->parents);
    free(r);
}

static inflight *ctx_inflight(jet_task_ctx *ctx) { return (inflight *)ctx; }

/* The run state, created on first use (f->mu held). */
static struct wf_run *run_of(inflight *f)
{
    if (!f->wf)
        f->wf = jet_xcalloc(1, sizeof *f->wf);
    return f->wf;
}

const char *wf_task_workflow(const agent_task *t) { return task_workflow(t); }

static bool node_name_valid(const char *s)
{
    return s && strlen(s) <= WF_NODE_ID_MAX && jet_task_id_valid(s);
}

void wf_child_node_id(const char *wf, const char *spawn_node, const char *name, char *out, size_t len)
{
    size_t n = strlen(spawn_node) + 1 + strlen(name);
    if (n <= WF_NODE_ID_MAX && strlen(wf) + 1 + n <= JET_TASK_ID_MAX) {
        snprintf(out, len, "%s-%s", spawn_node, name);
        return;
    }
    char key[JET_TASK_ID_MAX + WF_NODE_ID_MAX + 2], hex[JET_SHA256_HEX_LEN];
    int kl = snprintf(key, sizeof key, "%s/%s", spawn_node, name);
    jet_sha256_hex(key, (size_t)kl, hex);
    snprintf(out, len, "h%.32s", hex);
}

const char *wf_host_workflow_id(jet_task_ctx *ctx) { return wf_task_workflow(ctx_inflight(ctx)->task); }

static int fail(char *out, size_t outlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *out, size_t outlen, int code, const char *fmt, ...)
{
    if (out && outlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out, outlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The node of the request: task_json plus id, depends_on and the default queue. */
static json_t *child_node(inflight *f, const char *wf, const char *spawn, const char *node_id, const char *task_json,
                          const char *const *deps, size_t n, int allow_failure, char *out, size_t outlen, int *rc)
{
    json_error_t je;
    json_t *node = task_json ? json_loads(task_json, JSON_REJECT_DUPLICATES, &je) : NULL;
    *rc = JET_WF_INVALID;
    if (!json_is_object(node)) {
        fail(out, outlen, JET_WF_INVALID, "workflow_add: the task must be a JSON object (a task.submit body)%s%s",
             node ? "" : ": ", node ? "" : je.text);
        json_decref(node);
        return NULL;
    }
    static const char *const refused[] = {"id", "depends_on", NULL};
    for (int i = 0; refused[i]; i++)
        if (json_object_get(node, refused[i])) {
            fail(out, outlen, JET_WF_INVALID, "workflow_add: the task must not have \"%s\" (the child is named by "
                 "its name, its parents by depends_on)", refused[i]);
            json_decref(node);
            return NULL;
        }
    if (!json_object_get(node, "queue"))
        json_object_set_new(node, "queue", json_string(f->task->queue));
    json_t *arr = json_array();
    struct wf_run *r = f->wf;
    for (size_t i = 0; i < n; i++) {
        if (!node_name_valid(deps[i])) {
            fail(out, outlen, JET_WF_INVALID, "workflow_add: depends_on[%zu] \"%.80s\" is not a name or node id "
                 "(1-63 characters of [A-Za-z0-9_-])", i, deps[i] ? deps[i] : "(null)");
            json_decref(arr);
            json_decref(node);
            return NULL;
        }
        char pid[WF_NODE_ID_MAX + 1];
        if (r && r->siblings && jet_strmap_get(r->siblings, deps[i]))
            wf_child_node_id(wf, spawn, deps[i], pid, sizeof pid);
        else
            snprintf(pid, sizeof pid, "%s", deps[i]);
        json_array_append_new(arr, json_pack("{s:s,s:b}", "id", pid, "allow_failure", allow_failure ? 1 : 0));
    }
    json_object_set_new(node, "id", json_string(node_id));
    json_object_set_new(node, "depends_on", arr);
    *rc = 0;
    return node;
}

/* Sends the request; 0, or an error code with the message in out. */
static int request_add(inflight *f, const char *body, char *out, size_t outlen)
{
    agent *a = f->queue->a;
    char subject[160];
    snprintf(subject, sizeof subject, "%s.api.workflow.add", a->names.prefix);
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, a->nc, subject, body, (int)strlen(body), WF_ADD_TIMEOUT_MS);
    if (s != NATS_OK)
        return fail(out, outlen, JET_WF_UNAVAILABLE, "workflow_add: no answer from %s: %s", subject,
                    natsStatus_GetText(s));
    json_error_t je;
    json_t *rep = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &je);
    natsMsg_Destroy(reply);
    int rc = 0;
    json_t *err = json_object_get(rep, "error");
    if (!json_is_object(rep)) {
        rc = fail(out, outlen, JET_WF_UNAVAILABLE, "workflow_add: %s answered no JSON object", subject);
    } else if (err) {
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        rc = fail(out, outlen, code && !strcmp(code, "unavailable") ? JET_WF_UNAVAILABLE : JET_WF_INVALID,
                  "workflow_add: %s: %s", code ? code : "error", msg ? msg : "");
    }
    json_decref(rep);
    return rc;
}

int wf_host_add(jet_task_ctx *ctx, const char *name, const char *task_json, const char *const *depends_on, size_t n,
                int allow_failure, char *out, size_t outlen)
{
    inflight *f = ctx_inflight(ctx);
    const char *wf = wf_task_workflow(f->task);
    if (!wf)
        return fail(out, outlen, JET_WF_INVALID, "workflow_add: task %s is not a task of a workflow", f->task->id);
    if (!node_name_valid(name))
        return fail(out, outlen, JET_WF_INVALID, "workflow_add: name \"%.80s\" is not valid (1-63 characters of "
                    "[A-Za-z0-9_-])", name ? name : "(null)");
    if (n && !depends_on)
        return fail(out, outlen, JET_WF_INVALID, "workflow_add: depends_on is NULL with %zu entries", n);
    const char *spawn = f->task->id + strlen(wf) + 1;
    char node_id[WF_NODE_ID_MAX + 1];
    wf_child_node_id(wf, spawn, name, node_id, sizeof node_id);
    int rc;
    pthread_mutex_lock(&f->mu);
    json_t *node = child_node(f, wf, spawn, node_id, task_json, depends_on, n, allow_failure, out, outlen, &rc);
    pthread_mutex_unlock(&f->mu);
    if (!node)
        return rc;
    json_t *req = json_pack("{s:s,s:s,s:[o]}", "id", wf, "from_task", f->task->id, "tasks", node);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    rc = request_add(f, body, out, outlen);
    free(body);
    if (rc != 0) {
        jet_warn("task %s: %s", f->task->id, out ? out : "workflow_add failed");
        return rc;
    }
    pthread_mutex_lock(&f->mu);
    struct wf_run *r = run_of(f);
    if (!r->siblings)
        r->siblings = jet_strmap_new();
    jet_strmap_put(r->siblings, name, (void *)1);
    pthread_mutex_unlock(&f->mu);
    return fail(out, outlen, 0, "%s-%s", wf, node_id);
}

/* ---- parent_results: PostgreSQL, one connection for the agent ---- */

static struct {
    pthread_mutex_t mu;
    PGconn *conn;
} g_pg = {PTHREAD_MUTEX_INITIALIZER, NULL};

/* The parents' JSON text (malloc'd), or NULL (logged). g_pg.mu held. */
static char *query_parents(agent *a, const char *task_id, const char *wf)
{
    static const char sql[] =
        "SELECT coalesce(json_object_agg(substr(t.id, length($2) + 2), json_build_object('task_id', t.id,"
        " 'status', t.status, 'result', t.result) ORDER BY t.id), '{}')::text"
        " FROM workflow_edges e JOIN tasks t ON t.id = e.parent_id WHERE e.child_id = $1";
    const char *p[] = {task_id, wf};
    for (int tries = 0; tries < 2; tries++) {
        jet_err err = {0};
        if (!g_pg.conn && jet_pg_connect(a->cfg, "agentd-workflow", &g_pg.conn, &err) != JET_OK) {
            jet_warn("task %s: parent_results: %s", task_id, err.msg);
            return NULL;
        }
        PGresult *r = PQexecParams(g_pg.conn, sql, 2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            char *s = jet_xstrdup(PQgetvalue(r, 0, 0));
            PQclear(r);
            return s;
        }
        jet_pg_err(&err, g_pg.conn, r, "parent_results");
        bool broken = PQstatus(g_pg.conn) != CONNECTION_OK || jet_pg_is_transient(g_pg.conn, r);
        PQclear(r);
        jet_warn("task %s: %s", task_id, err.msg);
        if (!broken)
            return NULL;
        PQfinish(g_pg.conn); /* reconnect once */
        g_pg.conn = NULL;
    }
    return NULL;
}

const char *wf_host_parent_results(jet_task_ctx *ctx)
{
    inflight *f = ctx_inflight(ctx);
    const char *wf = wf_task_workflow(f->task);
    if (!wf) {
        jet_warn("task %s: parent_results: not a task of a workflow", f->task->id);
        return NULL;
    }
    pthread_mutex_lock(&f->mu);
    const char *cached = f->wf ? f->wf->parents : NULL;
    pthread_mutex_unlock(&f->mu);
    if (cached) /* the parents ended before this node was released: their results do not change */
        return cached;
    pthread_mutex_lock(&g_pg.mu);
    char *s = query_parents(f->queue->a, f->task->id, wf);
    pthread_mutex_unlock(&g_pg.mu);
    if (!s)
        return NULL;
    pthread_mutex_lock(&f->mu);
    struct wf_run *r = run_of(f);
    if (!r->parents)
        r->parents = s;
    else
        free(s);
    const char *out = r->parents;
    pthread_mutex_unlock(&f->mu);
    return out;
}

void wf_calls_shutdown(void)
{
    pthread_mutex_lock(&g_pg.mu);
    PQfinish(g_pg.conn);
    g_pg.conn = NULL;
    pthread_mutex_unlock(&g_pg.mu);
}
