/* Publishing task rows to the task stream, shared by the leader's work
 * (firer.c: fires, delayed tasks, the reconciler) and the API (task.submit,
 * schedule.trigger, dlq.replay): the message and its headers built from a
 * PostgreSQL row, and the publish with retries that tells a stored message
 * from one dropped by the duplicate window. */
#ifndef SCHED_PUBLISH_H
#define SCHED_PUBLISH_H

#include "schedulerd.h"

/* Columns of a "task to publish" result, in this order (alias t = tasks). */
#define PUB_COLS "t.id, t.queue, t.priority, t.handler, t.payload, t.headers::text, t.max_attempts, " \
                 "t.schedule_id, (extract(epoch from t.scheduled_for) * 1000)::bigint"

/* Builds the message of row i of r (PUB_COLS): subject from queue and
 * priority, the stored headers, Jetsched-Handler, Nats-Msg-Id = id,
 * Jetsched-Max-Attempts, Jetsched-Schedule-Id, Jetsched-Fire-Time (from
 * scheduled_for; *fire_ms gets it, -1 when NULL), and Jetsched-Redispatch
 * when redispatch. NULL when out of memory. */
natsMsg *sched_task_msg(sched *s, PGresult *r, int i, bool redispatch, int64_t *fire_ms);

/* Publishes m through JetStream (a few attempts; none while NATS is not
 * connected). Returns 1 stored, 0 failed, -1 dropped as a duplicate by the
 * stream's duplicate window. id only names the task in logs. */
int sched_publish_msg(sched *s, natsMsg *m, const char *id);

/* sched_task_msg + sched_publish_msg. */
int sched_publish_row(sched *s, PGresult *r, int i, bool redispatch, int64_t *fire_ms);

#endif
