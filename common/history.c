/* The history writer (contract in history.h): a bounded queue filled by
 * submitting threads, and one writer thread that turns it into batches, each
 * one transaction made of one prepared statement (the batch as column
 * arrays, unnested into plain INSERTs for tasks that have no row yet and an
 * idempotent INSERT ... ON CONFLICT for the others, into tasks and
 * task_attempts), then the records' callbacks. Failures: a broken connection is
 * reconnected and the batch replayed; a data error splits the batch until
 * the bad record is alone and rejected; anything else is retried with
 * backoff. */
#include <jetsched/history.h>
#include <jetsched/log.h>
#include <jetsched/pgarray.h>
#include <jetsched/pgconn.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>
#include <jetsched/utf8.h>

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* ------------------------------------------------------------ records */

enum { F_TASK_ID, F_QUEUE, F_HANDLER, F_PRIORITY, F_STATUS, F_AGENT, F_ERROR, F_RESULT, F_SCHEDULE_ID, F_TRACE_ID,
       F_COUNT };

#define NAME_CAP 256 /* ids, names, agent, trace id: the database checks the real rules */

typedef struct hrec {
    struct hrec *next;
    jet_history_done_fn done;
    void *ctx;
    int64_t enq_ms;           /* monotonic */
    size_t bytes;             /* memory held, for max_pending_bytes */
    size_t enc_max;           /* worst-case size of its array elements */
    int64_t created_ms, started_ms, finished_ms;
    int attempt, max_attempts;
    const char *f[F_COUNT];   /* NULL when absent */
    size_t flen[F_COUNT];
    const unsigned char *payload; /* NULL: not kept */
    size_t payload_len;
    char data[];
} hrec;

static const char *const PRIORITIES[] = {"high", "normal", "low", NULL};

static const char *find_word(const char *const *list, const char *s)
{
    for (size_t i = 0; s && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return list[i];
    return NULL;
}

/* ------------------------------------------------------------ UTF-8 sanitising */

size_t jet_history_sanitize(const char *in, size_t len, char *out, size_t cap, bool *changed)
{
    return jet_utf8_sanitize(in, len, out, cap, changed);
}

/* ------------------------------------------------------------ the writer object */

struct jet_history {
    const jet_config *cfg;
    jet_history_options opt;
    char *app_name;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;   /* writer: records arrived, closing, abort */
    pthread_cond_t space;  /* submitters: pending went down */
    pthread_cond_t idle;   /* close: pending reached 0 */
    hrec *head, *tail;
    size_t queued;
    size_t pending, pending_bytes; /* queued + in flight */
    bool closing;
    volatile bool abort;   /* the close deadline passed: give up */
    int sock;              /* the writer's socket, -1 when none (shut down on abort) */
    jet_history_stats st;
    bool ever_connected;
    /* writer thread only */
    PGconn *conn;
    char *enc;             /* the encoded batch */
    size_t enc_cap;
    struct batch_row *rows;
    size_t rows_cap;
};

void jet_history_options_default(jet_history_options *o)
{
    o->batch_size = 256;
    o->flush_interval_ms = 20;
    o->max_pending = 10000;
    o->max_pending_bytes = 64u << 20;
    o->max_text = 64u << 10;
    o->application_name = "jetsched-history";
}

static void wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t mono_deadline_ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(mono_deadline_ms / 1000);
    ts.tv_nsec = (long)(mono_deadline_ms % 1000) * 1000000L;
    pthread_cond_timedwait(c, m, &ts);
}

/* ------------------------------------------------------------ submit */

static jet_status validate(const jet_history_record *rec, jet_err *err)
{
    if (!rec || !rec->task_id || !*rec->task_id)
        return jet_err_set(err, JET_ERR_INVALID, "history record: task_id is required");
    if (!rec->queue || !*rec->queue)
        return jet_err_set(err, JET_ERR_INVALID, "history record %.128s: queue is required", rec->task_id);
    /* 'lost' is an attempt status, not a task state (DESIGN §12): an attempt
     * delivered again with no record at all; its task row becomes 'retrying'. */
    if (rec->status && strcmp(rec->status, "lost") == 0 && rec->attempt < 1)
        return jet_err_set(err, JET_ERR_INVALID, "history record %.128s: a 'lost' record needs its attempt",
                           rec->task_id);
    if (!find_word(jet_task_state_names, rec->status))
        return jet_err_set(err, JET_ERR_INVALID, "history record %.128s: status \"%.32s\" is not a task state",
                           rec->task_id, rec->status ? rec->status : "(null)");
    if (rec->priority && !find_word(PRIORITIES, rec->priority))
        return jet_err_set(err, JET_ERR_INVALID, "history record %.128s: priority \"%.32s\" is not high|normal|low",
                           rec->task_id, rec->priority);
    if (rec->attempt < 0 || rec->max_attempts < 0)
        return jet_err_set(err, JET_ERR_INVALID, "history record %.128s: attempt and max_attempts must be >= 0",
                           rec->task_id);
    return JET_OK;
}

/* One allocation holding the record and sanitised copies of its strings. */
static hrec *rec_build(const jet_history_options *opt, const jet_history_record *in, bool *sanitized)
{
    const char *src[F_COUNT] = {in->task_id, in->queue, in->handler, NULL, NULL, in->agent,
                                in->error, in->result, in->schedule_id, in->trace_id};
    /* enc_max: commas, quotes, integers, NULLs, status and priority, then 2x every text byte */
    size_t len[F_COUNT] = {0}, out[F_COUNT] = {0}, total = sizeof(hrec), enc_max = 384;
    for (int i = 0; i < F_COUNT; i++) {
        if (!src[i])
            continue;
        len[i] = i == F_ERROR && in->error_len ? in->error_len : i == F_RESULT && in->result_len ? in->result_len
                                                                                                : strlen(src[i]);
        size_t cap = i == F_ERROR || i == F_RESULT ? opt->max_text : NAME_CAP;
        bool changed = false;
        out[i] = jet_history_sanitize(src[i], len[i], NULL, cap, &changed);
        *sanitized |= changed;
        total += out[i] + 1;
        enc_max += 2 * out[i] + 2;
    }
    size_t plen = in->payload ? in->payload_len : 0;
    total += plen;
    enc_max += 2 * plen + 8;
    hrec *r = malloc(total);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    char *p = r->data;
    for (int i = 0; i < F_COUNT; i++) {
        if (!src[i])
            continue;
        size_t cap = i == F_ERROR || i == F_RESULT ? opt->max_text : NAME_CAP;
        jet_history_sanitize(src[i], len[i], p, cap, NULL);
        p[out[i]] = '\0';
        r->f[i] = p;
        r->flen[i] = out[i];
        p += out[i] + 1;
    }
    if (in->payload) {
        memcpy(p, in->payload, plen);
        r->payload = (const unsigned char *)p;
        r->payload_len = plen;
    }
    r->f[F_STATUS] = find_word(jet_task_state_names, in->status);
    r->flen[F_STATUS] = strlen(r->f[F_STATUS]);
    r->f[F_PRIORITY] = in->priority ? find_word(PRIORITIES, in->priority) : "normal";
    r->flen[F_PRIORITY] = strlen(r->f[F_PRIORITY]);
    r->attempt = in->attempt;
    r->max_attempts = in->max_attempts;
    r->created_ms = in->created_ms;
    r->started_ms = in->started_ms;
    r->finished_ms = in->finished_ms;
    r->bytes = total;
    r->enc_max = enc_max;
    return r;
}

static bool fits(const jet_history *h, size_t bytes)
{
    return h->pending < h->opt.max_pending &&
           (h->pending == 0 || h->pending_bytes + bytes <= h->opt.max_pending_bytes);
}

jet_status jet_history_submit(jet_history *h, const jet_history_record *rec, jet_history_done_fn done, void *ctx,
                              int64_t wait_ms, jet_err *err)
{
    jet_status st = validate(rec, err);
    if (st != JET_OK)
        return st;
    bool sanitized = false;
    hrec *r = rec_build(&h->opt, rec, &sanitized);
    if (!r)
        return jet_err_set(err, JET_ERR_NOMEM, "history record %.128s: out of memory", rec->task_id);
    if (sanitized)
        jet_debug("history: task %s: text repaired (invalid UTF-8, NUL bytes or over %zu bytes)", r->f[F_TASK_ID],
                  h->opt.max_text);
    r->done = done;
    r->ctx = ctx;
    if (pthread_equal(pthread_self(), h->thread))
        wait_ms = 0; /* a callback must never wait for its own thread */
    int64_t deadline = jet_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&h->mu);
    while (!h->closing && !fits(h, r->bytes) && wait_ms != 0) {
        if (wait_ms < 0)
            pthread_cond_wait(&h->space, &h->mu);
        else if (jet_mono_ms() >= deadline)
            break;
        else
            wait_until(&h->space, &h->mu, deadline);
    }
    if (h->closing || !fits(h, r->bytes)) {
        st = h->closing ? jet_err_set(err, JET_ERR_UNAVAILABLE, "history writer is closing")
                        : jet_err_set(err, JET_ERR_TIMEOUT, "history buffer full (%zu records, %zu bytes pending)",
                                      h->pending, h->pending_bytes);
        pthread_mutex_unlock(&h->mu);
        free(r);
        return st;
    }
    r->enq_ms = jet_mono_ms();
    if (h->tail)
        h->tail->next = r;
    else
        h->head = r;
    h->tail = r;
    h->queued++;
    h->pending++;
    h->pending_bytes += r->bytes;
    h->st.submitted++;
    h->st.sanitized += sanitized;
    if (h->queued == 1 || h->queued == (size_t)h->opt.batch_size)
        pthread_cond_signal(&h->work);
    pthread_mutex_unlock(&h->mu);
    return JET_OK;
}

size_t jet_history_pending(jet_history *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->pending;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void jet_history_stats_get(jet_history *h, jet_history_stats *out)
{
    pthread_mutex_lock(&h->mu);
    *out = h->st;
    out->pending = h->pending;
    out->pending_bytes = h->pending_bytes;
    pthread_mutex_unlock(&h->mu);
}

/* ------------------------------------------------------------ completion */

/* Fires the callbacks of recs[lo..hi) (those not yet completed), frees them
 * and releases their room in the buffer. */
static void complete(jet_history *h, hrec **recs, size_t lo, size_t hi, jet_status st, const char *reason)
{
    size_t n = 0, bytes = 0;
    for (size_t i = lo; i < hi; i++) {
        hrec *r = recs[i];
        if (!r)
            continue;
        if (r->done)
            r->done(r->ctx, st, st == JET_OK ? NULL : reason);
        n++;
        bytes += r->bytes;
        free(r);
        recs[i] = NULL;
    }
    pthread_mutex_lock(&h->mu);
    h->pending -= n;
    h->pending_bytes -= bytes;
    if (st == JET_OK)
        h->st.committed += n;
    else if (st == JET_ERR_INVALID)
        h->st.rejected += n;
    else
        h->st.abandoned += n;
    pthread_cond_broadcast(&h->space);
    if (h->pending == 0)
        pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
}

/* ------------------------------------------------------------ SQL */

/* One statement per batch, so one transaction (committed at the protocol's
 * Sync) and one round trip: the batch arrives as 18 arrays (one per column),
 * the data-modifying CTE upserts tasks, the main query upserts
 * task_attempts (their foreign-key checks run at the end of the statement).
 * The writer marks in each row whether it is the one that goes into tasks
 * (tw: per task, the record furthest in (attempt, state rank), attempt 0
 * meaning "the task's latest attempt") and into task_attempts (aw: per
 * (task, attempt), the furthest state), so that each row is touched once
 * and the server needs no sort. An existing task row only moves forward and
 * a terminal one never changes, so a replayed batch changes nothing (one
 * exception: a planned fire `skipped` as "withdrawn before it was due" takes
 * the record of a run, which the task had when its pause, update or delete
 * committed after the fire was published and admitted: docs/SCHEDULER.md,
 * "Withdrawn fires do not run"; a refusal, `duplicate`, leaves it). A
 * `throttled` row ranks above the records of its own attempt: agentd parks
 * a rate_limited attempt N with its own statement (keylimits.c, attempts =
 * N), and that attempt's `running` record, queued earlier in this writer,
 * may commit after it; the park is the later state, and only a later
 * attempt moves the row on (test agentd_park); an
 * attempt row is inserted once and a 'running' (or 'lost') one completed once
 * by the attempt's outcome; 'lost' goes into tasks as 'retrying'. */
#define NCOLS 18
#define BATCH_CTE                                                                                               \
    "WITH s AS MATERIALIZED (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"  \
    "  $6::int[], $7::int[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::int8[], $13::int8[],"       \
    "  $14::text[], $15::text[], $16::bytea[], $17::bool[], $18::bool[])"                                       \
    "  AS u(task_id, queue, handler, priority, status, attempt, max_attempts, agent, error, result, created_ms," \
    "       started_ms, finished_ms, schedule_id, trace_id, payload, tw, aw)"
#define TASK_INSERT                                                                                            \
    "INSERT INTO tasks AS t (id, queue, handler, priority, status, attempts, max_attempts, payload,"             \
    "  result, error, agent, created_at, started_at, finished_at, updated_at, schedule_id, trace_id)"           \
    " SELECT s.task_id, s.queue, s.handler, s.priority,"                                                       \
    "  CASE WHEN s.status = 'lost' THEN 'retrying' ELSE s.status END, s.attempt, s.max_attempts, s.payload,"    \
    "  s.result, s.error, s.agent, coalesce(to_timestamp(s.created_ms::float8 / 1000), now()),"                \
    "  to_timestamp(s.started_ms::float8 / 1000),"                                                              \
    "  coalesce(to_timestamp(s.finished_ms::float8 / 1000),"                                                    \
    "           CASE WHEN jetsched_status_terminal(s.status) THEN now() END),"                                  \
    "  now(), s.schedule_id, s.trace_id"                                                                        \
    " FROM s WHERE s.tw"
#define TASK_CONFLICT                                                                                          \
    " ON CONFLICT (id) DO UPDATE SET"                                                                           \
    "  handler = coalesce(excluded.handler, t.handler), status = excluded.status,"                              \
    "  attempts = greatest(excluded.attempts, t.attempts),"                                                     \
    "  max_attempts = coalesce(excluded.max_attempts, t.max_attempts),"                                         \
    "  payload = coalesce(excluded.payload, t.payload), result = excluded.result, error = excluded.error,"     \
    "  agent = coalesce(excluded.agent, t.agent), started_at = coalesce(excluded.started_at, t.started_at),"   \
    "  finished_at = excluded.finished_at, updated_at = excluded.updated_at,"                                   \
    "  schedule_id = coalesce(excluded.schedule_id, t.schedule_id),"                                            \
    "  trace_id = coalesce(excluded.trace_id, t.trace_id)"                                                      \
    " WHERE (NOT jetsched_status_terminal(t.status)"                                                            \
    "   OR (t.status = 'skipped' AND t.error LIKE 'withdrawn before it was due%' AND excluded.status <> 'duplicate'))" \
    "  AND (CASE WHEN excluded.attempts = 0 THEN t.attempts ELSE excluded.attempts END,"                        \
    "       jetsched_status_rank(excluded.status))"                                                             \
    "      > (t.attempts, CASE WHEN t.status = 'throttled' THEN 4 ELSE jetsched_status_rank(t.status) END)"
#define ATTEMPT_INSERT                                                                                         \
    "INSERT INTO task_attempts AS a (task_id, attempt, agent, status, started_at, finished_at, error)"          \
    " SELECT s.task_id, s.attempt, s.agent, s.status, to_timestamp(s.started_ms::float8 / 1000),"               \
    "  coalesce(to_timestamp(s.finished_ms::float8 / 1000),"                                                    \
    "           CASE WHEN s.status NOT IN ('running', 'lost') THEN now() END),"                                 \
    "  s.error"                                                                                                 \
    " FROM s WHERE s.aw"
#define ATTEMPT_CONFLICT                                                                                       \
    " ON CONFLICT (task_id, attempt) DO UPDATE SET"                                                             \
    "  status = excluded.status, agent = coalesce(excluded.agent, a.agent),"                                    \
    "  started_at = coalesce(excluded.started_at, a.started_at), finished_at = excluded.finished_at,"          \
    "  error = excluded.error"                                                                                  \
    " WHERE a.status IN ('running', 'lost') AND excluded.status NOT IN ('running', 'lost')"

static const char UPSERT_SQL[] =
    BATCH_CTE "), t AS (" TASK_INSERT TASK_CONFLICT ") " ATTEMPT_INSERT ATTEMPT_CONFLICT;
#define UPSERT_NAME "jetsched_history_upsert"

/* The same batch with the tasks that have no row yet taken apart (the
 * common case: a task published straight to NATS, recorded once when its
 * attempt ends): s.found is one tasks_pkey probe per record (LATERAL ...
 * LIMIT 1: a parameterised index scan whatever the table's size in the
 * generic plan), and a fresh task's row and attempt rows are plain INSERTs.
 * An INSERT ... ON CONFLICT costs each row an arbiter probe of the unique
 * index before the insert, a speculative-insertion lock and a second WAL
 * record to confirm the tuple, in tasks and again in task_attempts (about a
 * sixth of the backend's CPU per record, docs/PERFORMANCE.md); the plain
 * INSERT checks uniqueness during its own index insert. The other rows go
 * through the upsert above, unchanged. A fresh task's attempt rows are new
 * too: the writer inserts a task row and its attempt rows in one statement,
 * and retention deletes them together. Should a row appear between the
 * snapshot and the insert (another agent recording the same task at the same
 * moment), or an attempt row exist without its task row, the plain INSERT
 * fails with unique_violation, nothing of the batch is kept, and the batch is
 * written again with UPSERT_SQL (write_once). */
static const char FRESH_SQL[] =
    BATCH_CTE " LEFT JOIN LATERAL (SELECT true AS found FROM tasks x WHERE x.id = u.task_id LIMIT 1) e ON true),"
    " tf AS (" TASK_INSERT " AND s.found IS NULL),"
    " t AS (" TASK_INSERT " AND s.found" TASK_CONFLICT "),"
    " af AS (" ATTEMPT_INSERT " AND s.found IS NULL) "
    ATTEMPT_INSERT " AND s.found" ATTEMPT_CONFLICT;
#define FRESH_NAME "jetsched_history_fresh"

/* ------------------------------------------------------------ which records of a batch win */

/* The same ranks as jetsched_status_rank() (sql/0007_held_states.sql). */
static int status_rank(const char *status)
{
    static const struct {
        const char *status;
        int rank;
    } ranks[] = {{"scheduled", 0}, {"waiting", 0}, {"throttled", 0}, {"queued", 1}, {"running", 2}, {"retrying", 3},
                 {"lost", 3} /* its task row becomes 'retrying' */};
    for (size_t i = 0; i < sizeof ranks / sizeof *ranks; i++)
        if (strcmp(ranks[i].status, status) == 0)
            return ranks[i].rank;
    return 4; /* terminal */
}

/* task_attempts takes attempt >= 1 records whose state is an attempt outcome. */
static bool is_attempt_row(const hrec *r)
{
    return r->attempt >= 1 && status_rank(r->f[F_STATUS]) != 0 && strcmp(r->f[F_STATUS], "queued") != 0 &&
           strcmp(r->f[F_STATUS], "skipped") != 0;
}

typedef struct batch_row { /* one record of the batch being encoded */
    hrec *r;
    size_t seq;     /* submission order within the batch */
    int eff;        /* attempt, or the task's latest attempt in the batch when 0 */
    int rank;
    bool tw, aw;
} batch_row;

static int by_task(const void *a, const void *b)
{
    const batch_row *x = a, *y = b;
    int c = strcmp(x->r->f[F_TASK_ID], y->r->f[F_TASK_ID]);
    return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorted by task (so that concurrent writers lock rows in one order), with
 * the winners of each task group and of each (task, attempt) marked. */
static void mark_winners(batch_row *rows, size_t n)
{
    qsort(rows, n, sizeof *rows, by_task);
    for (size_t lo = 0, hi; lo < n; lo = hi) {
        int max_attempt = 0;
        for (hi = lo; hi < n && strcmp(rows[hi].r->f[F_TASK_ID], rows[lo].r->f[F_TASK_ID]) == 0; hi++)
            if (rows[hi].r->attempt > max_attempt)
                max_attempt = rows[hi].r->attempt;
        size_t best = lo;
        for (size_t i = lo; i < hi; i++) {
            batch_row *x = &rows[i];
            x->eff = x->r->attempt ? x->r->attempt : max_attempt;
            x->rank = status_rank(x->r->f[F_STATUS]);
            if (x->eff > rows[best].eff || (x->eff == rows[best].eff && x->rank >= rows[best].rank))
                best = i; /* later rows win ties: seq ascending within the group */
            x->aw = is_attempt_row(x->r);
            for (size_t j = lo; j < i && x->aw; j++)
                if (rows[j].aw && rows[j].r->attempt == x->r->attempt) {
                    if (x->rank >= rows[j].rank)
                        rows[j].aw = false;
                    else
                        x->aw = false;
                }
        }
        rows[best].tw = true;
    }
}

/* ------------------------------------------------------------ array encoding (jetsched/pgarray.h) */

/* Column c of one row, in the order of UPSERT_SQL's parameters. */
static char *put_elem(char *o, const batch_row *row, int c)
{
    static const int text_field[NCOLS] = {F_TASK_ID, F_QUEUE, F_HANDLER, F_PRIORITY, F_STATUS, -1, -1, F_AGENT,
                                          F_ERROR, F_RESULT, -1, -1, -1, F_SCHEDULE_ID, F_TRACE_ID, -1, -1, -1};
    const hrec *r = row->r;
    if (text_field[c] >= 0)
        return jet_pgarr_put_text(o, r->f[text_field[c]], r->flen[text_field[c]]);
    switch (c) {
    case 5: return jet_pgarr_put_int(o, row->eff, false); /* == attempt, except 0 inherits the batch's latest */
    case 6: return jet_pgarr_put_int(o, r->max_attempts, true);
    case 10: return jet_pgarr_put_int(o, r->created_ms, true);
    case 11: return jet_pgarr_put_int(o, r->started_ms, true);
    case 12: return jet_pgarr_put_int(o, r->finished_ms, true);
    case 15: return jet_pgarr_put_bytea(o, r->payload, r->payload_len);
    case 16: *o = row->tw ? 't' : 'f'; return o + 1;
    default: *o = row->aw ? 't' : 'f'; return o + 1;
    }
}

/* Encodes recs[0..n) as NCOLS array literals in h->buf; params[c] points at
 * column c. Returns the total size, or -1 when out of memory. */
static ptrdiff_t encode_batch(jet_history *h, hrec **recs, size_t n, const char *params[NCOLS])
{
    size_t need = NCOLS * 3;
    for (size_t i = 0; i < n; i++)
        need += recs[i]->enc_max;
    if (need > h->enc_cap) {
        char *nb = realloc(h->enc, need);
        if (!nb)
            return -1;
        h->enc = nb;
        h->enc_cap = need;
    }
    if (n > h->rows_cap) {
        batch_row *nr = realloc(h->rows, n * sizeof *nr);
        if (!nr)
            return -1;
        h->rows = nr;
        h->rows_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        h->rows[i] = (batch_row){.r = recs[i], .seq = i};
    mark_winners(h->rows, n);
    char *o = h->enc;
    for (int c = 0; c < NCOLS; c++) {
        params[c] = o;
        *o++ = '{';
        for (size_t i = 0; i < n; i++) {
            if (i)
                *o++ = ',';
            o = put_elem(o, &h->rows[i], c);
        }
        *o++ = '}';
        *o++ = '\0';
    }
    return o - h->enc;
}

/* ------------------------------------------------------------ one transaction */

typedef enum { W_OK, W_TRANSIENT, W_DATA, W_OTHER } wresult;

/* Classifies a failure and describes it in *err (without row details, which
 * may hold payload text). */
static wresult classify(PGconn *c, const PGresult *res, const char *what, jet_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (PQstatus(c) != CONNECTION_OK || jet_pg_is_transient(c, res)) {
        jet_pg_err(err, c, res, what);
        return W_TRANSIENT;
    }
    if (primary)
        jet_err_set(err, JET_ERR_PG, "%s: %.600s (SQLSTATE %s)", what, primary, state ? state : "?");
    else
        jet_pg_err(err, c, res, what);
    if (state && (!strncmp(state, "21", 2) || !strncmp(state, "22", 2) || !strncmp(state, "23", 2) ||
                  !strncmp(state, "54", 2)))
        return W_DATA;
    return W_OTHER;
}

/* Reads the results of the current query up to the end (ReadyForQuery: the
 * implicit transaction has committed or failed by then); the first failure
 * (a status other than want) is classified into *out, and its SQLSTATE
 * copied into state (empty when none). */
static void drain(PGconn *c, ExecStatusType want, const char *what, wresult *out, char state[6], jet_err *err)
{
    PGresult *r;
    state[0] = '\0';
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != want && *out == W_OK) {
            *out = classify(c, r, what, err);
            const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(state, 6, "%s", s ? s : "");
        }
        PQclear(r);
    }
    if (PQstatus(c) != CONNECTION_OK && *out == W_OK)
        *out = classify(c, NULL, what, err);
}

/* One batch, one transaction: FRESH_SQL, or UPSERT_SQL again when FRESH_SQL
 * met a row that was not there at its snapshot (unique_violation: nothing of
 * it was kept). */
static wresult write_once(jet_history *h, hrec **recs, size_t n, jet_err *err)
{
    const char *params[NCOLS];
    ptrdiff_t len = encode_batch(h, recs, n, params);
    if (len < 0) {
        jet_err_set(err, JET_ERR_NOMEM, "history: out of memory encoding a batch of %zu records", n);
        return W_OTHER;
    }
    if (len > INT32_MAX) {
        jet_err_set(err, JET_ERR_INVALID, "history: a batch of %zu records is too large to send", n);
        return W_DATA; /* split it */
    }
    wresult w = W_OK;
    char state[6];
    if (!PQsendQueryPrepared(h->conn, FRESH_NAME, NCOLS, params, NULL, NULL, 0))
        return classify(h->conn, NULL, "history: send batch", err);
    drain(h->conn, PGRES_COMMAND_OK, "history: insert", &w, state, err);
    if (w != W_DATA || strcmp(state, "23505") != 0)
        return w;
    jet_debug("history: a batch of %zu records met existing rows, written again as an upsert: %s", n, err->msg);
    pthread_mutex_lock(&h->mu);
    h->st.upserts_again++;
    pthread_mutex_unlock(&h->mu);
    w = W_OK;
    if (!PQsendQueryPrepared(h->conn, UPSERT_NAME, NCOLS, params, NULL, NULL, 0))
        return classify(h->conn, NULL, "history: send batch", err);
    drain(h->conn, PGRES_COMMAND_OK, "history: upsert", &w, state, err);
    return w;
}

/* ------------------------------------------------------------ connection */

/* Sleeps ms unless the writer is aborted; returns false when aborted. */
static bool nap(jet_history *h, int64_t ms)
{
    int64_t deadline = jet_mono_ms() + ms;
    pthread_mutex_lock(&h->mu);
    while (!h->abort && jet_mono_ms() < deadline)
        wait_until(&h->work, &h->mu, deadline);
    bool ok = !h->abort;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

static void notice_to_log(void *arg, const char *msg)
{
    (void)arg;
    jet_debug("history: postgres: %s", msg);
}

static jet_status session_setup(PGconn *c, jet_err *err)
{
    PQsetNoticeProcessor(c, notice_to_log, NULL);
    if (PQsetClientEncoding(c, "UTF8") != 0)
        return jet_pg_err(err, c, NULL, "history: set client_encoding UTF8");
    static const char *const stmt[][2] = {{UPSERT_NAME, UPSERT_SQL}, {FRESH_NAME, FRESH_SQL}};
    for (size_t i = 0; i < sizeof stmt / sizeof *stmt; i++) {
        PGresult *r = PQprepare(c, stmt[i][0], stmt[i][1], NCOLS, NULL);
        jet_status st = PQresultStatus(r) == PGRES_COMMAND_OK ? JET_OK
                        : jet_pg_err(err, c, r, "history: prepare the batch statements (is the schema migrated?)");
        PQclear(r);
        if (st != JET_OK)
            return st;
    }
    return JET_OK;
}

static void drop_conn(jet_history *h)
{
    pthread_mutex_lock(&h->mu);
    h->sock = -1;
    h->st.connected = false;
    pthread_mutex_unlock(&h->mu);
    PQfinish(h->conn);
    h->conn = NULL;
}

/* Connects (retrying with backoff) and prepares the session; false when aborted. */
static bool writer_connect(jet_history *h)
{
    int64_t backoff = 200;
    while (!h->conn) {
        if (h->abort)
            return false;
        PGconn *c = NULL;
        jet_err err;
        jet_status st = jet_pg_connect_retry(h->cfg, h->app_name, &h->abort, -1, &c, &err);
        if (st == JET_OK && session_setup(c, &err) == JET_OK) {
            pthread_mutex_lock(&h->mu);
            h->conn = c;
            h->sock = PQsocket(c);
            h->st.connected = true;
            h->st.reconnects += h->ever_connected;
            h->ever_connected = true;
            pthread_mutex_unlock(&h->mu);
            jet_info("history: connected to PostgreSQL (%zu records pending)", jet_history_pending(h));
            break;
        }
        if (c)
            PQfinish(c);
        if (h->abort)
            return false;
        jet_warn("history: %s; retrying in %lld ms", err.msg, (long long)backoff);
        if (!nap(h, backoff))
            return false;
        backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
    }
    return true;
}

/* ------------------------------------------------------------ batches */

static void reject(jet_history *h, hrec **recs, size_t i, const char *reason)
{
    jet_warn("history: rejected the record of task %.128s attempt %d (status %s): %s", recs[i]->f[F_TASK_ID],
             recs[i]->attempt, recs[i]->f[F_STATUS], reason);
    complete(h, recs, i, i + 1, JET_ERR_INVALID, reason);
}

/* Writes recs[lo..hi) until it is committed (or its bad records rejected);
 * false when the writer was aborted first. */
static bool write_range(jet_history *h, hrec **recs, size_t lo, size_t hi)
{
    int64_t backoff = 100;
    for (int tries = 0;; tries++) {
        if (!writer_connect(h))
            return false;
        jet_err err;
        wresult w = write_once(h, recs + lo, hi - lo, &err);
        if (w == W_OK) {
            pthread_mutex_lock(&h->mu);
            h->st.batches++;
            h->st.connected = true;
            pthread_mutex_unlock(&h->mu);
            complete(h, recs, lo, hi, JET_OK, NULL);
            return true;
        }
        if (w == W_DATA) {
            if (hi - lo == 1) {
                reject(h, recs, lo, err.msg);
                return true;
            }
            size_t mid = lo + (hi - lo) / 2;
            return write_range(h, recs, lo, mid) && write_range(h, recs, mid, hi);
        }
        pthread_mutex_lock(&h->mu);
        h->st.retries++;
        pthread_mutex_unlock(&h->mu);
        if (w == W_TRANSIENT) {
            jet_warn("history: PostgreSQL unavailable, replaying a batch of %zu records after reconnecting: %s",
                     hi - lo, err.msg);
            drop_conn(h);
            if (tries > 0 && !nap(h, backoff)) /* the first replay is immediate */
                return false;
            backoff = tries > 0 && backoff < 10000 ? backoff * 2 : backoff;
            continue;
        }
        if (tries == 0 || tries % 10 == 0)
            jet_error("history: writing a batch of %zu records failed (retrying in %lld ms on a new session; is "
                      "the schema migrated?): %s", hi - lo, (long long)backoff, err.msg);
        drop_conn(h);
        if (!nap(h, backoff))
            return false;
        backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
    }
}

/* Waits for a batch: full, or its oldest record flush_interval old, or
 * closing. Returns the number taken into recs (0: time to exit). */
static size_t take_batch(jet_history *h, hrec **recs)
{
    size_t max = (size_t)h->opt.batch_size, n = 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        if (h->abort || (h->closing && h->queued == 0))
            break;
        if (h->queued == 0) {
            pthread_cond_wait(&h->work, &h->mu);
            continue;
        }
        int64_t due = h->head->enq_ms + h->opt.flush_interval_ms;
        if (h->queued >= max || h->closing || jet_mono_ms() >= due) {
            while (n < max && h->head) {
                recs[n++] = h->head;
                h->head = h->head->next;
            }
            if (!h->head)
                h->tail = NULL;
            h->queued -= n;
            break;
        }
        wait_until(&h->work, &h->mu, due);
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* Abort: fails what is still queued. */
static void fail_queued(jet_history *h)
{
    pthread_mutex_lock(&h->mu);
    hrec *r = h->head;
    h->head = h->tail = NULL;
    h->queued = 0;
    pthread_mutex_unlock(&h->mu);
    while (r) {
        hrec *next = r->next;
        complete(h, &r, 0, 1, JET_ERR_UNAVAILABLE, "history writer closed before the record was committed");
        r = next;
    }
}

static void *writer_main(void *arg)
{
    jet_history *h = arg;
    hrec **recs = calloc((size_t)h->opt.batch_size, sizeof *recs);
    size_t n;
    /* Connect at once rather than on the first record: the first records
     * then do not wait for a connection (and a user of the writer can tell
     * "not connected yet" from "connected" before it submits anything). */
    writer_connect(h);
    while (recs && (n = take_batch(h, recs)) > 0) {
        if (!write_range(h, recs, 0, n))
            complete(h, recs, 0, n, JET_ERR_UNAVAILABLE, "history writer closed before the record was committed");
    }
    if (!recs)
        jet_error("history: out of memory starting the writer");
    fail_queued(h);
    free(recs);
    if (h->conn)
        drop_conn(h);
    return NULL;
}

/* ------------------------------------------------------------ open / close */

static jet_status check_options(const jet_history_options *o, jet_err *err)
{
    if (o->batch_size < 1 || o->batch_size > 100000)
        return jet_err_set(err, JET_ERR_INVALID, "history: batch_size %d is not in 1..100000", o->batch_size);
    if (o->flush_interval_ms < 0 || o->max_pending < 1 || o->max_text < 16)
        return jet_err_set(err, JET_ERR_INVALID,
                           "history: flush_interval must be >= 0, max_pending >= 1 and max_text >= 16");
    return JET_OK;
}

jet_status jet_history_open(const jet_config *cfg, const jet_history_options *opt, jet_history **out, jet_err *err)
{
    jet_history *h = calloc(1, sizeof *h);
    if (!h)
        return jet_err_set(err, JET_ERR_NOMEM, "history: out of memory");
    jet_history_options_default(&h->opt);
    if (opt)
        h->opt = *opt;
    if (!h->opt.application_name)
        h->opt.application_name = "jetsched-history";
    if (!h->opt.max_pending_bytes)
        h->opt.max_pending_bytes = 64u << 20;
    jet_status st = check_options(&h->opt, err);
    if (st != JET_OK) {
        free(h);
        return st;
    }
    h->cfg = cfg;
    h->sock = -1;
    h->app_name = strdup(h->opt.application_name);
    h->opt.application_name = h->app_name;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->work, &ca);
    pthread_cond_init(&h->space, &ca);
    pthread_cond_init(&h->idle, &ca);
    pthread_condattr_destroy(&ca);
    int rc = h->app_name ? pthread_create(&h->thread, NULL, writer_main, h) : ENOMEM;
    if (rc != 0) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->work);
        pthread_cond_destroy(&h->space);
        pthread_cond_destroy(&h->idle);
        free(h->app_name);
        free(h);
        return jet_err_set(err, JET_ERR_INTERNAL, "history: cannot start the writer thread: %s", strerror(rc));
    }
    *out = h;
    return JET_OK;
}

jet_status jet_history_close(jet_history *h, int64_t wait_ms)
{
    if (!h)
        return JET_OK;
    int64_t deadline = jet_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&h->mu);
    h->closing = true;
    pthread_cond_broadcast(&h->work);
    pthread_cond_broadcast(&h->space);
    while (h->pending > 0 && (wait_ms < 0 || jet_mono_ms() < deadline)) {
        if (wait_ms < 0)
            pthread_cond_wait(&h->idle, &h->mu);
        else
            wait_until(&h->idle, &h->mu, deadline);
    }
    if (h->pending > 0) {
        jet_warn("history: closing with %zu records not committed after %lld ms", h->pending, (long long)wait_ms);
        h->abort = true;
        if (h->sock >= 0)
            shutdown(h->sock, SHUT_RDWR); /* wakes a writer blocked on PostgreSQL */
        pthread_cond_broadcast(&h->work);
    } else {
        h->abort = true; /* nothing left to write: stops a writer still (re)connecting */
        pthread_cond_broadcast(&h->work);
    }
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    jet_status st = h->st.abandoned ? JET_ERR_TIMEOUT : JET_OK;
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->work);
    pthread_cond_destroy(&h->space);
    pthread_cond_destroy(&h->idle);
    free(h->enc);
    free(h->rows);
    free(h->app_name);
    free(h);
    return st;
}
