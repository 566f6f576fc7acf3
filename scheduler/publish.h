/* Publishing task rows to the task stream, shared by the leader's work
 * (fire.c: fires, delayed tasks; reconcile.c: the reconciler) and the API (task.submit,
 * schedule.trigger, dlq.replay): the message and its headers built from a
 * PostgreSQL row, the publish with retries that tells a stored message from
 * one dropped by the duplicate window, and the leader's asynchronous publish
 * of whole batches (sched_pubset: a bounded window of pub-acks in flight). */
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

/* Writes what the connection holds in its buffer now. libnats writes a
 * publish that does not fill its 32 KiB buffer from its flusher thread,
 * which waits 1 ms after being woken for more to come: every pub-ack a
 * publisher waits for, and every API reply, came 1 ms (more on a busy
 * machine) later than needed. natsConnection_FlushTimeout writes the buffer
 * at once, then waits up to SCHED_PUSH_WAIT_MS for the server's PONG (a
 * round trip; nothing is lost when it times out). Only while connected. */
#define SCHED_PUSH_WAIT_MS 100
void sched_nats_push(sched *s);

/* ---- asynchronous batches (the leader thread; each API worker on its own publisher) ----
 * sched_pubset_add() publishes with js_PublishMsgAsync on a JetStream
 * context of its own (at most SCHED_PUB_WINDOW pub-acks in flight, each
 * waited for at most nats.publish_timeout); sched_pubset_finish() waits for
 * every pub-ack (js_PublishAsyncComplete, bounded), retries the failed ones
 * once synchronously (sched_publish_msg, stopping at the first that fails
 * again) and leaves the outcome in items[]. Nothing is published while NATS
 * is not connected: those rows are failed, left to the reconciler. One set
 * is open at a time on a publisher. */
#define SCHED_PUB_WINDOW 4096

typedef struct sched_pub_item {
    char *id;
    int64_t fire_ms;   /* Jetsched-Fire-Time, -1 when none */
    int64_t acked_ms;  /* wall clock of the pub-ack (result 1) */
    int result;        /* 1 stored, 0 failed, -1 dropped as a duplicate */
    bool redispatch;
    /* internal */
    bool inflight, timed_out;
    const void *sent;  /* the message handed to the library while in flight */
    natsMsg *msg;      /* kept after a failure, for the retry */
} sched_pub_item;

typedef struct sched_publisher sched_publisher;

typedef struct sched_pubset {
    sched *s;
    sched_publisher *pub;
    sched_pub_item *items;
    size_t n, cap, hint;
    int64_t timeout_ms; /* nats.publish_timeout, read once per set (not per message) */
    char first_err[400];
} sched_pubset;

/* On the leader's asynchronous context (created on first use). */
void sched_pubset_init(sched_pubset *ps, sched *s);
/* On a context of one's own (an API worker): one set open at a time per
 * publisher; the set's owner alone uses it. */
sched_publisher *sched_publisher_new(sched *s);
void sched_publisher_free(sched_publisher *pub);
void sched_pubset_init_on(sched_pubset *ps, sched *s, sched_publisher *pub);
/* Publishes row i of r (PUB_COLS) asynchronously. */
void sched_pubset_add(sched_pubset *ps, PGresult *r, int i, bool redispatch);
/* Publishes m (built by sched_task_msg; taken over, NULL counts as failed)
 * asynchronously. */
void sched_pubset_add_msg(sched_pubset *ps, natsMsg *m, const char *id, int64_t fire_ms, bool redispatch);
/* The same, taking over id (malloc'ed) as well. */
void sched_pubset_add_msg_own(sched_pubset *ps, natsMsg *m, char *id, int64_t fire_ms, bool redispatch);
/* Waits for the outcome of everything added (see above). */
void sched_pubset_finish(sched_pubset *ps);
void sched_pubset_free(sched_pubset *ps);
/* Destroys the leader's asynchronous JetStream context (shutdown). */
void sched_publish_close(void);

#endif
