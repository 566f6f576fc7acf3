/* The workflow calls of the host API (plugin ABI 1.2 and Lua ctx,
 * docs/WORKFLOWS.md "Handler calls"): the running task's workflow, adding a
 * child node through the API verb workflow.add (with the derived node id and
 * "from_task"), and the parents' results read from PostgreSQL. */
#ifndef AGENTD_WORKFLOW_H
#define AGENTD_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>

#include <jetsched/plugin.h>

#include "agent.h"

#define WF_NODE_ID_MAX 63

/* Per-attempt state of the calls (siblings added by name, the parents'
 * results once read), hung on the inflight and freed with it. */
struct wf_run;
void wf_run_free(struct wf_run *r);

/* The workflow of a task: its Jetsched-Workflow-Id header, taken only when
 * the task id is "<workflow>-<node>" (as schedulerd names every node and
 * callback); NULL otherwise. Points into the task. */
const char *wf_task_workflow(const agent_task *t);

/* A child's node id (docs/WORKFLOWS.md): "<spawning node>-<name>", or
 * "h<first 32 hex of sha256(<spawning node>/<name>)>" when that is longer
 * than 63 characters or its task id "<workflow>-<node>" longer than 128.
 * out: at least WF_NODE_ID_MAX + 1 bytes. */
void wf_child_node_id(const char *wf, const char *spawn_node, const char *name, char *out, size_t len);

/* The jet_host_api functions (ctx is the task's inflight). */
const char *wf_host_workflow_id(jet_task_ctx *ctx);
int wf_host_add(jet_task_ctx *ctx, const char *name, const char *task_json, const char *const *depends_on, size_t n,
                int allow_failure, char *out, size_t outlen);
const char *wf_host_parent_results(jet_task_ctx *ctx);

/* Closes the PostgreSQL connection of parent_results (at shutdown). */
void wf_calls_shutdown(void);

#endif
