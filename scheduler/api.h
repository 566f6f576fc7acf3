/* The request/reply API of docs/API.md, served by every schedulerd in the
 * queue group `jetsched-api` on `<prefix>.api.>`: the shared request
 * machinery (api.c: the verb table, field validation, error replies,
 * PostgreSQL on a worker's connection, JSON helpers; api_pool.c: the
 * workers, group commit of task.submit, the NATS subscription) and the verbs
 * by area (api_task.c, api_schedule.c, api_dlq.c, api_cluster.c, ...). */
#ifndef SCHED_API_H
#define SCHED_API_H

#include "schedulerd.h"

#include <jansson.h>
#include <jetsched/names.h>

/* Stable error codes (docs/API.md). */
#define API_INVALID "invalid_argument"
#define API_NOT_FOUND "not_found"
#define API_EXISTS "already_exists"
#define API_PRECONDITION "failed_precondition"
#define API_TOO_LARGE "payload_too_large"
#define API_UNAVAILABLE "unavailable"
#define API_INTERNAL "internal"
/* Codes of the HTTP transport (scheduler/web*.c); the verbs never use them. */
#define API_UNAUTHENTICATED "unauthenticated"
#define API_PERMISSION "permission_denied"
#define API_EXHAUSTED "resource_exhausted"

/* Milliseconds since the epoch of a timestamptz column, for api_set_time. */
#define API_MS(col) "(extract(epoch from " col ") * 1000)::bigint"

typedef struct api_err {
    const char *code;
    char field[160];
    char msg[1024];
} api_err;

struct sched_publisher;

/* One API worker's context (api_pool.c: one per api.pg_connections). */
typedef struct api_ctx {
    sched *s;
    PGconn *pg;                   /* this worker's connection (NULL: reconnect on next use) */
    struct sched_publisher *pub;  /* its asynchronous publisher (NULL: one synchronous publish at a time) */
    kvStore *cancel_kv, *agents_kv, *leader_kv, *control_kv;
    const char *verb;
    bool offline;                 /* true: no PostgreSQL (the fuzz target's validation-only runs) */
    int64_t session;              /* api_sessions.key of pg (sql/0016), 0: none (a context without pub) */
    unsigned prepared;            /* statements prepared on pg (bits of api_pg_prepared's slot) */
} api_ctx;

typedef json_t *(*api_verb_fn)(api_ctx *c, json_t *req, api_err *e);

/* One entry of the verb table: its name (`task.submit`), its function and
 * whether it changes state (an operator action; the others only read). */
typedef struct api_verb_def {
    const char *verb;
    api_verb_fn fn;
    bool writes;
} api_verb_def;

/* ---- serving (api_pool.c) ----
 * api.pg_connections worker threads, each with its own api_ctx (PostgreSQL
 * connection, asynchronous publisher), take requests from one queue; a
 * task.submit is validated where it arrives (by a worker when its id needs
 * PostgreSQL) and then waits in the pending list until a worker commits it with the others pending (group commit, at most
 * half the workers committing at once). */

/* Prepares the verbs (KV handles, metrics), starts the workers and serves
 * the verbs on NATS (subscribes in the queue group); api_stop drains. */
jet_status api_start(sched *s, jet_err *err);
/* Prepares api_call without NATS or PostgreSQL: every verb validates its
 * request, then answers `unavailable` where it would reach a server (the
 * seam the API fuzz target uses). */
void api_init_offline(sched *s);
void api_stop(void);

/* ---- transport-neutral calls (api.c; used by the NATS subscription and
 * by the HTTP API of scheduler/web*.c) ---- */

/* The verb table, for enumeration: *n entries. */
const api_verb_def *api_verbs(size_t *n);
/* The entry of verb, or NULL when unknown. */
const api_verb_def *api_verb_find(const char *verb);
/* Deepest nesting of arrays/objects accepted in a request body. */
#define API_MAX_DEPTH 32

/* Parses a request body (len 0 is `{}`): a JSON object nested at most
 * API_MAX_DEPTH deep, or NULL with invalid_argument in *e (line and column
 * of a syntax error). */
json_t *api_parse_body(const char *data, size_t len, api_err *e);
/* Runs one verb on a parsed request object (borrowed) on the workers and
 * waits for it. Returns the reply (a new reference) or NULL with *e filled.
 * Counts jetsched_api_requests_total / jetsched_api_request_seconds and logs
 * internal errors. Thread-safe: callers may come from any thread; the verbs
 * hold no transport state. An unknown verb is invalid_argument. */
json_t *api_call(const char *verb, json_t *req, api_err *e);
/* The reply of api_call_async: res (a new reference, taken by the callee)
 * or NULL with *e. Called once, from a worker thread (or the caller's own
 * thread for an unknown verb or an offline context). */
typedef void (*api_done_fn)(void *closure, json_t *res, const api_err *e);
/* Queues one verb (req: a reference taken over) and returns; done gets the
 * reply. */
void api_call_async(const char *verb, json_t *req, api_done_fn done, void *closure);
/* {"error":{"code","message","field"?}}: a new reference. */
json_t *api_error_body(const api_err *e);
/* The HTTP status of an error code (DESIGN §12); 200 for NULL. */
int api_http_status(const char *code);

/* ---- errors and fields (api.c) ---- */

/* Fills *e and returns NULL (so verbs can `return api_fail(...)`). field may be NULL. */
json_t *api_fail(api_err *e, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Rejects any field of req not in allowed (NULL-terminated). */
bool api_check_fields(const json_t *req, const char *const *allowed, api_err *e);
/* Getters: 1 present and valid, 0 absent (or null) and not required, -1 error (in *e). */
int api_str(const json_t *req, const char *f, bool required, const char **out, api_err *e);
int api_int(const json_t *req, const char *f, bool required, int64_t lo, int64_t hi, int64_t *out, api_err *e);
int api_bool(const json_t *req, const char *f, bool required, bool *out, api_err *e);
/* A queue, handler or schedule id name (1-64 of [a-z0-9_-]). */
int api_name(const json_t *req, const char *f, bool required, const char **out, api_err *e);
int api_priority(const json_t *req, const char *f, const char **out, api_err *e);
int api_duration(const json_t *req, const char *f, bool required, int64_t *ms, api_err *e);
/* An RFC 3339 time between JET_TIME_MIN_MS and JET_TIME_MAX_MS. */
int api_time(const json_t *req, const char *f, bool required, int64_t *ms, api_err *e);
/* The same range check for a time got otherwise; false fills *e naming f. */
bool api_time_in_range(const char *f, int64_t ms, api_err *e);
/* payload or payload_base64 (not both): *buf malloc'd (free()), at most
 * api.max_payload bytes (else payload_too_large). */
int api_payload(api_ctx *c, const json_t *req, unsigned char **buf, size_t *len, api_err *e);
/* Extra message headers: an object of string values whose names are valid
 * header names and not Nats-* or Jetsched-*. *out: a new reference. */
int api_headers(const json_t *req, const char *f, json_t **out, api_err *e);
/* limit (1..1000, default 50). */
int api_limit(const json_t *req, int64_t *limit, api_err *e);
/* The arguments of a list verb that takes only {queue?, limit?, cursor?}. */
bool api_list_args(const json_t *req, const char **queue, int64_t *limit, const char **cursor, api_err *e);
/* Opaque cursors: base64url of a text. decode returns a malloc'd string or
 * NULL (invalid_argument on field cursor). */
char *api_cursor_encode(const char *text);
char *api_cursor_decode(const char *cursor, api_err *e);
/* Keyset cursors of the lists ordered by (created_at, id) DESC (task.list,
 * workflow.list): "<created_at in Unix microseconds>|<id>". decode checks
 * both parts (nothing of a crafted cursor reaches PostgreSQL unvalidated)
 * and returns the malloc'd text with the '|' cut, *id pointing after it;
 * NULL with invalid_argument naming verb. next: the cursor (a JSON
 * string) of row `row` of r, columns us_col and id_col. */
char *api_keyset_decode(const char *cursor, const char *verb, bool (*id_ok)(const char *), char **id, api_err *e);
json_t *api_keyset_next(PGresult *r, int row, int us_col, int id_col);

/* ---- PostgreSQL (api.c) ---- */

/* Runs one statement on the API's connection (connecting first when
 * needed). lens/fmts may be NULL (all text). On failure returns NULL with
 * unavailable (PostgreSQL unreachable or transient) or internal in *e. */
PGresult *api_pg(api_ctx *c, const char *what, const char *sql, int n, const char *const *vals, const int *lens,
                 const int *fmts, api_err *e);
bool api_pg_exec(api_ctx *c, const char *what, const char *sql, api_err *e);
/* The same for a hot statement, prepared once per connection under slot
 * (0-31, one per statement text; API_STMT_* of the callers). */
PGresult *api_pg_prepared(api_ctx *c, int slot, const char *what, const char *sql, int n, const char *const *vals,
                          api_err *e);
/* Connects c when needed; its publish session key (0: none), -1 with *e
 * when PostgreSQL is unavailable. */
int64_t api_pg_session(api_ctx *c, api_err *e);
#define API_STMT_INSERT_TASKS 0
#define API_STMT_TASK_STATES 1
#define API_STMT_UNPUBLISHED 2
void api_pg_rollback(api_ctx *c);
/* Closes c's connection (shutdown; ends its publish session, sql/0016). */
void api_pg_close(api_ctx *c);
/* Publishes the committed queued task of row 0 of r (PUB_COLS) and records
 * dispatched_at; a failed publish is logged and left to the reconciler. */
void api_publish_new(api_ctx *c, PGresult *r);
/* The same for row i of r. */
void api_publish_row(api_ctx *c, PGresult *r, int i);

/* ---- reply JSON (api.c) ---- */

void api_set_time(json_t *o, const char *key, PGresult *r, int row, int col);   /* API_MS column or null */
void api_set_text(json_t *o, const char *key, PGresult *r, int row, int col);   /* text or null */
void api_set_intcol(json_t *o, const char *key, PGresult *r, int row, int col); /* integer or null */
/* "payload" (valid UTF-8) or "payload_base64" (any other bytes). */
void api_set_bytes(json_t *o, const void *data, size_t len);
void api_set_bytea(json_t *o, PGresult *r, int row, int col);                   /* bytea or "payload": null */
char *api_ms_text(int64_t ms, char *buf, size_t len);                           /* RFC 3339 */

/* ---- task.submit in groups (api_task.c) ---- */

/* A validated task.submit request (it borrows strings from the request,
 * which must outlive it). */
typedef struct api_submit api_submit;
/* Every check of task.submit: 1 with *out, 0 with *res (validate_only:
 * nothing to store), -1 with *e. */
int api_submit_prepare(api_ctx *c, json_t *req, api_submit **out, json_t **res, api_err *e);
/* Payload and header bytes of a prepared submit (bounds a group). */
size_t api_submit_bytes(const api_submit *sub);
/* Stores n prepared submits with one INSERT (one transaction; an id that
 * exists is left alone: idempotent), publishes the immediate ones after the
 * commit, fills res[i] (the reply of task.submit) or errs[i] for each and
 * calls answer(arg) (may be NULL), then records dispatched_at of the
 * published ones. When PostgreSQL refuses the whole statement, each is
 * stored alone so that only a bad one fails. Frees the submits. */
void api_submit_group(api_ctx *c, api_submit **subs, size_t n, json_t **res, api_err *errs,
                      void (*answer)(void *arg), void *arg);

/* ---- the verbs ---- */

/* Rolling upgrades (DESIGN §12): true when every live agent of the registry
 * that serves one of the queues advertises `feature` in its "features"
 * list; else false with e = failed_precondition naming the agent and queue
 * (an agent without the list is a first-wave agent: it lacks them all).
 * A queue no agent serves passes. queues: n names. */
bool api_queues_have_feature(api_ctx *c, const char *const *queues, size_t n, const char *feature, api_err *e);

/* The same validated task.submit request with its fields visible, for the
 * nodes and callbacks of workflow.submit (api_workflow.c). */
struct api_submit {
    char id[JET_TASK_ID_MAX + 1];
    const char *queue, *handler, *prio;
    int64_t max_attempts, due_ms;
    bool delayed;
    unsigned char *payload;
    size_t plen;
    char *hjson; /* the headers to store (JSON object text) */
    char trace[33];
};
typedef struct api_submit api_task_row;
/* Every check of task.submit on req; fills *row. Returns 1 (row ready), 0
 * (validate_only: valid, nothing to store) or -1 (*e filled). */
int api_task_prepare(api_ctx *c, json_t *req, api_task_row *row, api_err *e);
void api_task_row_free(api_task_row *row);
/* The row as an object for jsonb_to_recordset: id, queue, handler, priority,
 * status, max_attempts, payload (base64), headers, due, trace. */
json_t *api_task_row_json(const api_task_row *row);

json_t *api_task_submit(api_ctx *c, json_t *req, api_err *e);
json_t *api_task_submit_many(api_ctx *c, json_t *req, api_err *e);
json_t *api_task_get(api_ctx *c, json_t *req, api_err *e);
json_t *api_task_list(api_ctx *c, json_t *req, api_err *e);
json_t *api_task_cancel(api_ctx *c, json_t *req, api_err *e);

json_t *api_workflow_submit(api_ctx *c, json_t *req, api_err *e);
json_t *api_workflow_add(api_ctx *c, json_t *req, api_err *e);
json_t *api_workflow_get(api_ctx *c, json_t *req, api_err *e);
json_t *api_workflow_list(api_ctx *c, json_t *req, api_err *e);
json_t *api_workflow_cancel(api_ctx *c, json_t *req, api_err *e);

json_t *api_schedule_create(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_update(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_get(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_delete(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_pause(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_resume(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_list(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_trigger(api_ctx *c, json_t *req, api_err *e);
json_t *api_schedule_preview(api_ctx *c, json_t *req, api_err *e);

json_t *api_dlq_list(api_ctx *c, json_t *req, api_err *e);
json_t *api_dlq_get(api_ctx *c, json_t *req, api_err *e);
json_t *api_dlq_replay(api_ctx *c, json_t *req, api_err *e);
json_t *api_dlq_purge(api_ctx *c, json_t *req, api_err *e);

json_t *api_cluster_leader(api_ctx *c, json_t *req, api_err *e);
json_t *api_cluster_agents(api_ctx *c, json_t *req, api_err *e);
json_t *api_cluster_queues(api_ctx *c, json_t *req, api_err *e);

json_t *api_queue_pause(api_ctx *c, json_t *req, api_err *e);
json_t *api_queue_resume(api_ctx *c, json_t *req, api_err *e);
/* The paused entries of jetsched_control: an object "<queue>" or
 * "<queue>.<priority>" -> {paused, by, at, reason}; NULL with *e on failure. */
json_t *api_queue_pauses(api_ctx *c, api_err *e);
/* Sets "paused" and "pause" ({by, at, reason, scope} or null) on a lane object. */
void api_queue_annotate(json_t *lane, const json_t *pauses, const char *queue, const char *prio);

json_t *api_limit_set(api_ctx *c, json_t *req, api_err *e);
json_t *api_limit_get(api_ctx *c, json_t *req, api_err *e);
json_t *api_limit_list(api_ctx *c, json_t *req, api_err *e);
json_t *api_limit_delete(api_ctx *c, json_t *req, api_err *e);

json_t *api_stats_minutes(api_ctx *c, json_t *req, api_err *e);

#endif
