/* The history writer: records attempt results and task state changes in
 * PostgreSQL (tasks, task_attempts) in batches, one transaction per batch
 * (one prepared multi-row statement: the batch's columns as arrays, unnested
 * into INSERT ... ON CONFLICT), and tells the caller through a per-record
 * callback once the record is committed: agentd acks a task from that
 * callback (DESIGN §4).
 *
 * Guarantees:
 * - a callback with JET_OK fires only after the COMMIT that holds its record
 *   succeeded; every accepted record gets exactly one callback;
 * - writes are idempotent: a batch replayed after a lost COMMIT reply (or a
 *   record submitted twice) creates no duplicate; attempts are keyed by
 *   (task_id, attempt); a task row only moves forward in (attempt, state
 *   rank) and a terminal row is never overwritten;
 * - memory is bounded (max_pending records, max_pending_bytes): submit waits
 *   at most its timeout and then reports the buffer full;
 * - PostgreSQL outages: reconnect with backoff, replay the unacknowledged
 *   batch; records wait in memory (bounded) meanwhile;
 * - hostile text (invalid UTF-8, NUL bytes, huge strings) is sanitised:
 *   invalid sequences become U+FFFD, NULs are dropped, error/result text is
 *   capped at max_text bytes; a record PostgreSQL still refuses (a CHECK on
 *   the task id, a timestamp out of range) is isolated by splitting the
 *   batch, rejected through its callback with the reason (and logged), and
 *   the rest is committed. */
#ifndef JETSCHED_HISTORY_H
#define JETSCHED_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jetsched/config.h>
#include <jetsched/status.h>

typedef struct jet_history jet_history;

typedef struct jet_history_options {
    int batch_size;             /* records per transaction (history.batch_size; default 256) */
    int64_t flush_interval_ms;  /* longest wait before a partial batch is written (default 20) */
    size_t max_pending;         /* records accepted and not yet completed (history.max_pending; default 10000) */
    size_t max_pending_bytes;   /* bytes they may hold (default 64 MiB; one record is always admitted) */
    size_t max_text;            /* cap of error and result text in bytes (default 64 KiB) */
    const char *application_name; /* PostgreSQL application_name (default "jetsched-history") */
} jet_history_options;

/* Fills *o with the defaults above. */
void jet_history_options_default(jet_history_options *o);

/* One attempt result and/or task state change. Strings are copied by submit;
 * NULL means unknown (the stored value is then kept or left NULL). */
typedef struct jet_history_record {
    const char *task_id;      /* required; [A-Za-z0-9_-]{1,128} or rejected by the database */
    const char *queue;        /* required */
    const char *handler;      /* NULL: unknown (a task dead-lettered for missing_handler) */
    const char *priority;     /* "high", "normal", "low"; NULL: "normal" */
    const char *status;       /* required: scheduled queued running succeeded retrying dead expired
                                 cancelled duplicate skipped, or lost (an attempt status only: the
                                 attempt row says 'lost', the task row 'retrying'; attempt >= 1) */
    int attempt;              /* >= 1: also writes task_attempts(task_id, attempt) when status is an
                                 attempt outcome (running succeeded retrying dead expired cancelled
                                 duplicate); 0: the task row only */
    int max_attempts;         /* 0: unknown */
    const char *agent;        /* agent id */
    const char *error;        /* error text; may hold NULs and invalid UTF-8 when error_len is given */
    size_t error_len;         /* 0: strlen(error) */
    const char *result;       /* result text (same rules as error) */
    size_t result_len;        /* 0: strlen(result) */
    int64_t created_ms;       /* Unix ms; 0: now (used when the task row is created) */
    int64_t started_ms;       /* Unix ms of the attempt's start; 0: unknown */
    int64_t finished_ms;      /* Unix ms of the attempt's end; 0: now for terminal states */
    const char *schedule_id;
    const char *trace_id;
    const void *payload;      /* non-NULL: keep the payload (opaque bytes) on the task row */
    size_t payload_len;
} jet_history_record;

/* Completion of one record, called on the writer thread (never under a lock
 * of the writer). st: JET_OK (committed), JET_ERR_INVALID (PostgreSQL
 * refused this record: reason says why; it will never be stored), or
 * JET_ERR_UNAVAILABLE (the writer was closed before the record could be
 * committed). reason is NULL for JET_OK and valid only during the call.
 * It must not call jet_history_close; a submit from it never waits. */
typedef void (*jet_history_done_fn)(void *ctx, jet_status st, const char *reason);

/* Starts the writer thread. It connects with cfg's postgres.* keys when it
 * has its first batch to write and reconnects with backoff after a failure,
 * so this succeeds while PostgreSQL is down. The schema must be migrated
 * (until it is, batches are retried with an error in the log). cfg must stay
 * valid until jet_history_close. opt NULL: defaults. */
jet_status jet_history_open(const jet_config *cfg, const jet_history_options *opt, jet_history **out, jet_err *err);

/* Queues a copy of rec. Returns JET_OK (done will be called exactly once),
 * JET_ERR_TIMEOUT (the buffer stayed full for wait_ms: back off; done will
 * not be called), JET_ERR_INVALID (rec is malformed: the message names the
 * field) or JET_ERR_UNAVAILABLE (closing). wait_ms: 0 never waits, < 0
 * waits until there is room. Thread-safe. */
jet_status jet_history_submit(jet_history *h, const jet_history_record *rec, jet_history_done_fn done, void *ctx,
                              int64_t wait_ms, jet_err *err);

/* Records accepted and not yet completed (queued plus in flight): a metric,
 * and with max_pending the caller's readiness / fetch-pause signal. */
size_t jet_history_pending(jet_history *h);

typedef struct jet_history_stats {
    uint64_t submitted, committed, rejected, abandoned; /* records */
    uint64_t sanitized;         /* records whose text was repaired or capped */
    uint64_t batches;           /* committed transactions */
    uint64_t retries;           /* batch writes retried after a failure */
    uint64_t upserts_again;     /* batches written again as an upsert: a row appeared after the fresh-row check */
    uint64_t reconnects;        /* connections made after the first */
    size_t pending, pending_bytes;
    bool connected;             /* the writer holds a working session (false before the first batch) */
} jet_history_stats;

void jet_history_stats_get(jet_history *h, jet_history_stats *out);

/* Stops accepting records, writes what is pending for at most wait_ms (< 0:
 * until done), then fails the rest with JET_ERR_UNAVAILABLE, stops the
 * thread and frees h. Returns JET_OK when everything was committed or
 * rejected, JET_ERR_TIMEOUT when records were abandoned. h may be NULL. */
jet_status jet_history_close(jet_history *h, int64_t wait_ms);

/* Copies in[0..len) to out as valid UTF-8 without NULs: invalid sequences
 * become U+FFFD, NULs are dropped, and when the result would exceed cap
 * bytes it is cut at a character boundary and ends with "…[truncated]".
 * out NULL: only measures. Returns the bytes written (never more than cap,
 * which must be >= 16); *changed (may be NULL) tells whether it differs. */
size_t jet_history_sanitize(const char *in, size_t len, char *out, size_t cap, bool *changed);

#endif
