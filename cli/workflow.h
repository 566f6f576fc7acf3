/* The workflow verbs' shared parts (cmd_workflow.c: submit add list cancel;
 * cmd_workflow_get.c: the DAG of an array of nodes and get's layered view). */
#ifndef JETSCHED_CLI_WORKFLOW_H
#define JETSCHED_CLI_WORKFLOW_H

#include "cli.h"

#define WF_ID_MAX 64
#define WF_GET_PAGE 1000   /* nodes per workflow.get page (its default: a reply stays far below max_payload) */
#define WF_GET_SHOWN 10000 /* nodes get reads without --all */

/* A workflow id: 1-64 characters of [A-Za-z0-9_-]. */
bool wf_id_valid(const char *s);
/* A request to a workflow.* verb (like cli_request, *out the reply), with a
 * hint when schedulerd has no workflow API and a longer wait for requests
 * of many nodes. */
int wf_request(cli_ctx *ctx, const char *verb, json_t *req, json_t **out);

/* ---- cmd_workflow_get.c ---- */

typedef struct {
    const json_t *obj;
    const char *id, *status;
    size_t order; /* position in the array */
    long layer;   /* topological layer; -1 when not placed (on or behind a cycle) */
    int rank;     /* (get) how much it needs a look: 0 failed ... 4 succeeded */
} gnode;

typedef struct {
    gnode *v; /* sorted by id */
    size_t n;
    size_t *start, *child; /* the children of v[i]: child[start[i]] .. child[start[i + 1] - 1] */
    size_t *sorted, nsorted; /* (dag_sort) indexes of v, parents first */
} dag;

/* The node id of a depends_on entry: "id" or {"id": ...}. */
const char *wf_dep_id(const json_t *d);
/* The graph of nodes ({"id","depends_on",...} each). strict: a node
 * without id, a duplicate id, an unknown parent or a self edge is an error
 * (printed as the API words it; false); otherwise such edges are left out.
 * dag_free it in any case. */
bool dag_build(dag *g, const json_t *nodes, bool strict);
/* Kahn's algorithm: g->sorted holds the nodes parents first (the roots in
 * array order, then as they are released) and each placed node its layer.
 * False when some nodes are on or behind a cycle (their layer stays -1). */
bool dag_sort(dag *g);
void dag_free(dag *g);
/* jetsched workflow get */
int wf_get(cli_ctx *ctx, const char *sub, int argc, char **argv);

#endif
