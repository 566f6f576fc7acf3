/* Workflows in schedulerd (docs/WORKFLOWS.md): the leader's releaser
 * (wf_release.c) and the publish of released or root nodes shared with the
 * workflow verbs (api_workflow.c). */
#ifndef SCHED_WF_H
#define SCHED_WF_H

#include "schedulerd.h"

/* The transaction advisory lock that keeps a drain round of the releaser
 * and a workflow.cancel from overlapping (their row locks cross). */
#define WF_CANCEL_LOCK "hashtextextended('jetsched_workflow_release', 0)"

/* The releaser thread: acts while this schedulerd leads (s->epoch != 0). */
jet_status wf_release_start(sched *s, jet_err *err);
void wf_release_stop(sched *s);

/* Publishes the rows i of r (PUB_COLS) with want[i] true, all in flight at
 * once on a JetStream context of this call; done[i] is set for each one the
 * stream stored (or already had: a duplicate inside the window). Any
 * thread. Returns how many are done. */
size_t wf_publish_rows(sched *s, PGresult *r, const bool *want, bool *done);

#endif
