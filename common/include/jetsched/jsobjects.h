/* The NATS objects of DESIGN §3 (task stream, DLQ stream, per-(queue,
 * priority) durable pull consumers, KV buckets): their names, and creating
 * or checking them idempotently. An existing object whose configuration is
 * incompatible is refused with an error naming the object and the setting.
 * `jetsched init` and every daemon at start call the same functions. */
#ifndef JETSCHED_JSOBJECTS_H
#define JETSCHED_JSOBJECTS_H

#include <stdio.h>
#include <nats/nats.h>
#include <jetsched/config.h>
#include <jetsched/names.h>
#include <jetsched/status.h>

/* Names derived from `nats.prefix` (default "jetsched"). */
typedef struct jet_js_names {
    char prefix[64];          /* jetsched */
    char task_stream[80];     /* JETSCHED_TASKS */
    char task_subjects[96];   /* jetsched.task.> */
    char dlq_stream[80];      /* JETSCHED_DLQ */
    char dlq_subjects[96];    /* jetsched.dlq.> */
    char kv_leader[80];       /* jetsched_leader */
    char kv_agents[80];       /* jetsched_agents */
    char kv_cancel[80];       /* jetsched_cancel */
    char kv_checkpoints[80];  /* jetsched_checkpoints */
    char kv_control[80];      /* jetsched_control: queue/lane pauses (no TTL) */
} jet_js_names;

void jet_js_names_init(jet_js_names *n, const char *prefix);
/* "jetsched.task.<queue>.<priority>" */
void jet_js_task_subject(const jet_js_names *n, const char *queue, jet_priority p, char *buf, size_t len);
/* "q_<queue>_<priority>" */
void jet_js_consumer_name(const char *queue, jet_priority p, char *buf, size_t len);
/* The inverse: false for names that are not q_<queue>_<priority> (the queue may hold '_'). */
bool jet_js_consumer_parse(const char *name, char queue[JET_NAME_MAX + 1], jet_priority *p);
/* A usable `nats.prefix`: 1-48 characters of [A-Za-z0-9_-]. The ensure
 * functions refuse other prefixes with JET_ERR_INVALID. */
bool jet_js_prefix_valid(const char *prefix);

typedef enum jet_js_outcome { JET_JS_UNCHANGED, JET_JS_CREATED } jet_js_outcome;

/* Called once per object checked, for `jetsched init` to print what it did:
 * kind is "stream", "kv" or "consumer"; name is the stream, bucket or
 * consumer (durable) name. Not called at all when a conflict is refused. */
typedef void (*jet_js_report_fn)(void *ctx, const char *kind, const char *name, jet_js_outcome outcome);

/* Each ensure call first looks every object up; if any existing object's
 * settings differ from what jetsched needs it returns JET_ERR_CONFLICT with
 * one line per object ("stream X: retention is \"limits\", jetsched needs
 * \"workqueue\"; refusing to change it ...") and changes nothing. Otherwise it
 * creates what is missing (never updating what exists). NATS unreachable or
 * JetStream disabled: JET_ERR_UNAVAILABLE / JET_ERR_TIMEOUT; a bad
 * nats.prefix or queue name: JET_ERR_INVALID.
 *
 * Streams and KV buckets (not consumers). */
jet_status jet_js_ensure_base(jsCtx *js, const jet_config *cfg, jet_js_report_fn report, void *ctx, jet_err *err);
/* The three priority consumers of one queue. */
jet_status jet_js_ensure_queue(jsCtx *js, const jet_config *cfg, const char *queue, jet_js_report_fn report,
                               void *ctx, jet_err *err);
/* Base objects plus the consumers of every queue in `jetstream.queues` and `extra_queues`. */
jet_status jet_js_ensure_all(jsCtx *js, const jet_config *cfg, const char *const *extra_queues, size_t n_extra,
                             jet_js_report_fn report, void *ctx, jet_err *err);

#endif
