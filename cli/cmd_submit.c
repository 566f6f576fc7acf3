/* jetsched submit: one task through task.submit (payload from an argument,
 * @file or stdin; headers, delay, limits), --wait for its outcome on the live
 * event subject and print its result, or many tasks from a JSON-lines file
 * (--from-file: checked first, then task.submit_many in chunks of up to 1000,
 * atomic per chunk; --partial) with a progress bar on a terminal. */
#include "cli.h"

#include <jetsched/ids.h>
#include <jetsched/names.h>
#include <jetsched/task.h>
#include <jetsched/timeutil.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: jetsched submit [options] HANDLER [PAYLOAD | @FILE | -]\n"
    "       jetsched submit [options] --from-file FILE [--partial] [HANDLER]\n\n"
    "Submits a task through schedulerd (task.submit): the task is recorded in PostgreSQL,\n"
    "then published to <prefix>.task.<queue>.<priority>. PAYLOAD is the task's body as\n"
    "given, @FILE reads it from a file and - from stdin (default: empty). A payload that\n"
    "is not UTF-8 text is sent as payload_base64.\n\n"
    "Options:\n"
    "  -q, --queue NAME        queue (default \"default\")\n"
    "  -p, --priority P        high, normal (default) or low\n"
    "  -H, --header K:V        an extra message header, e.g. traceparent (repeatable)\n"
    "      --id ID             task id and idempotency key (default: a new ULID); submitting\n"
    "                          an existing id changes nothing and reports its status\n"
    "      --at TIME           run at an RFC 3339 time (a delayed task)\n"
    "      --delay DUR         run after DUR, e.g. 10m (a delayed task)\n"
    "      --timeout DUR       run-time limit of one attempt, e.g. 30s\n"
    "      --max-attempts N    attempts before the task is dead-lettered (default: the queue's)\n"
    "      --deadline TIME     not started by this RFC 3339 time => expired\n"
    "      --backoff SPEC      retry backoff: exp, fixed or linear[:base[:cap]], e.g. exp:1s:10m\n"
    "  -w, --wait              wait for the outcome; print it and the result (exit 1 unless\n"
    "                          the task succeeded)\n"
    "      --wait-timeout DUR  give up waiting after DUR (exit 1; the task keeps running)\n"
    "  -f, --from-file FILE    submit one task per line of FILE (- for stdin): each line a JSON\n"
    "                          object with the fields of task.submit (docs/API.md); the options\n"
    "                          above and HANDLER are defaults for fields a line leaves out.\n"
    "                          Every line is checked before anything is submitted, then the\n"
    "                          tasks go in chunks of up to 1000 (task.submit_many), each chunk\n"
    "                          stored whole or not at all; a chunk that fails is named with\n"
    "                          its lines (the chunks before it stay submitted)\n"
    "      --partial           with --from-file: no check first; each bad line is reported\n"
    "                          and the good ones are submitted\n"
    "      --json              print the reply (with --wait: the task and its attempts)\n"
    "  -h, --help              this help\n\n"
    "Examples:\n"
    "  jetsched submit echo '{\"n\":1}'\n"
    "  jetsched submit -q emails -p high -H traceparent:00-4bf9...-01 send_email @mail.json\n"
    "  jetsched submit --wait hello '{\"name\":\"world\"}'\n"
    "  jetsched submit --delay 10m --id report-2026-12 batch_report '{}'\n"
    "  seq 1000 | jq -c '{payload: tostring}' | jetsched submit --from-file - echo\n\n"
    "Exit codes: 0 ok, 1 failed (an API error, or --wait and the task did not succeed),\n"
    "2 usage error, 3 NATS or schedulerd unavailable.\n";

typedef struct submit_opts {
    const char *queue, *priority, *id, *at, *delay, *timeout, *deadline, *backoff, *from_file;
    int64_t max_attempts; /* 0: not given */
    json_t *headers;      /* or NULL */
    bool wait, partial;
    int64_t wait_timeout_ms; /* 0: forever */
} submit_opts;

/* Sets the fields given as options on req, unless req has them already. */
static void apply_defaults(json_t *req, const submit_opts *o, const char *handler)
{
#define DEF(field, value)                                                                                     \
    do {                                                                                                     \
        if ((value) && !json_object_get(req, field))                                                         \
            json_object_set_new(req, field, cli_jstr(value));                                             \
    } while (0)
    DEF("queue", o->queue);
    DEF("priority", o->priority);
    DEF("handler", handler);
    DEF("id", o->id);
    DEF("run_at", o->at);
    DEF("delay", o->delay);
    DEF("timeout", o->timeout);
    DEF("deadline", o->deadline);
    DEF("backoff", o->backoff);
#undef DEF
    if (o->max_attempts && !json_object_get(req, "max_attempts"))
        json_object_set_new(req, "max_attempts", json_integer(o->max_attempts));
    if (o->headers) {
        json_t *h = json_object_get(req, "headers");
        if (!json_is_object(h))
            json_object_set(req, "headers", o->headers);
        else
            json_object_update_missing(h, o->headers);
    }
}

static void print_outcome(const json_t *reply)
{
    const json_t *t = json_object_get(reply, "task");
    char a[32], m[32];
    const char *status = cli_str(t, "status");
    printf("%s %s after %s of %s attempt(s)", cli_str(t, "id"), status ? status : "?", cli_intstr(t, "attempts", a),
           cli_intstr(t, "max_attempts", m));
    if (cli_str(t, "agent"))
        printf(" on %s", cli_str(t, "agent"));
    int64_t s, f;
    if (cli_str(t, "started_at") && cli_str(t, "finished_at") &&
        jet_rfc3339_parse(cli_str(t, "started_at"), &s, NULL) == JET_OK &&
        jet_rfc3339_parse(cli_str(t, "finished_at"), &f, NULL) == JET_OK) {
        char d[32];
        printf(" (last attempt %s)", jet_duration_format(f - s, d, sizeof d));
    }
    putchar('\n');
    if (cli_str(t, "error"))
        printf("error: %s\n", cli_str(t, "error"));
    if (cli_str(t, "result"))
        printf("result: %s\n", cli_str(t, "result"));
    fflush(stdout);
}

/* Waits for a terminal state of task `id`: live events on sub, and task.get
 * every 2 s (events are not persisted: one published before we listened, or
 * an id that existed already, is seen through the API). */
static int wait_for(cli_ctx *ctx, natsSubscription *sub, const char *id, const submit_opts *o)
{
    int64_t start = jet_mono_ms(), next_poll = start + 2000;
    char last[64] = "queued";
    for (;;) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, 500);
        bool done = false;
        if (s == NATS_OK) {
            json_t *ev = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
            const char *st = cli_str(ev, "status");
            if (st && !ctx->json) {
                char a[32];
                const json_t *prog = json_object_get(ev, "progress");
                if (json_is_integer(prog))
                    printf("%s %s %d%%%s%s (attempt %s on %s)\n", id, st, (int)json_integer_value(prog),
                           cli_str(ev, "note") ? " " : "", cli_str(ev, "note") ? cli_str(ev, "note") : "",
                           cli_intstr(ev, "attempt", a), cli_str(ev, "agent") ? cli_str(ev, "agent") : "?");
                else if (!jet_task_status_terminal(st) && (strcmp(st, last) != 0 || strcmp(st, "running") == 0))
                    printf("%s %s (attempt %s on %s)%s%s\n", id, st, cli_intstr(ev, "attempt", a),
                           cli_str(ev, "agent") ? cli_str(ev, "agent") : "?", cli_str(ev, "error") ? ": " : "",
                           cli_str(ev, "error") ? cli_str(ev, "error") : "");
                fflush(stdout);
            }
            if (st)
                snprintf(last, sizeof last, "%s", st);
            done = jet_task_status_terminal(st);
            json_decref(ev);
            natsMsg_Destroy(m);
        } else if (s != NATS_TIMEOUT) {
            fprintf(stderr, "jetsched: unavailable: lost the event subscription: %s\n", natsStatus_GetText(s));
            return CLI_UNAVAILABLE;
        }
        int64_t now = jet_mono_ms();
        if (done || now >= next_poll) {
            next_poll = now + 2000;
            json_t *reply = NULL;
            int rc = cli_request(ctx, "task.get", json_pack("{s:s}", "id", id), &reply);
            if (rc != CLI_OK)
                return rc;
            const char *st = cli_str(json_object_get(reply, "task"), "status");
            if (jet_task_status_terminal(st)) {
                if (ctx->json)
                    cli_print_json(reply);
                else
                    print_outcome(reply);
                rc = jet_task_status_ok(st) ? CLI_OK : CLI_FAILED;
                json_decref(reply);
                return rc;
            }
            json_decref(reply);
            /* a terminal event can precede its row by nothing (it is published
             * after the commit), so a non-terminal row here means "keep going" */
        }
        if (o->wait_timeout_ms && now - start >= o->wait_timeout_ms) {
            char d[32];
            fprintf(stderr, "jetsched: timeout: task %s is still %s after %s (it keeps going; see jetsched get %s)\n",
                    id, last, jet_duration_format(o->wait_timeout_ms, d, sizeof d), id);
            return CLI_FAILED;
        }
    }
}

static int submit_one(cli_ctx *ctx, const submit_opts *o, const char *handler, const char *payload_arg)
{
    json_t *req = json_object();
    if (payload_arg) {
        char *buf;
        size_t len;
        if (!cli_read_payload(ctx, payload_arg, &buf, &len)) {
            json_decref(req);
            return CLI_FAILED;
        }
        cli_set_payload(req, buf, len);
        free(buf);
    } else {
        json_object_set_new(req, "payload", json_string(""));
    }
    char idbuf[JET_ULID_LEN + 1];
    submit_opts eff = *o;
    if (o->wait && !o->id) { /* we must know the id to listen before submitting */
        jet_ulid_new(idbuf);
        eff.id = idbuf;
    }
    apply_defaults(req, &eff, handler);

    natsSubscription *sub = NULL;
    if (o->wait) {
        int rc = CLI_OK;
        natsConnection *nc = cli_nats(ctx, &rc);
        if (!nc) {
            json_decref(req);
            return rc;
        }
        char subject[300];
        snprintf(subject, sizeof subject, "%s.event.*.%s", cli_prefix(ctx), eff.id);
        if (natsConnection_SubscribeSync(&sub, nc, subject) != NATS_OK || natsConnection_Flush(nc) != NATS_OK) {
            fprintf(stderr, "jetsched: unavailable: cannot subscribe to %s\n", subject);
            natsSubscription_Destroy(sub);
            json_decref(req);
            return CLI_UNAVAILABLE;
        }
    }
    json_t *reply = NULL;
    int rc = cli_request(ctx, "task.submit", req, &reply);
    if (rc == CLI_OK) {
        const char *id = cli_str(reply, "id");
        const char *status = cli_str(reply, "status");
        bool created = json_is_true(json_object_get(reply, "created"));
        if (ctx->json && !o->wait)
            cli_print_json(reply);
        else if (!ctx->json && created)
            printf("submitted %s (%s)\n", id ? id : "?", status ? status : "?");
        else if (!ctx->json)
            printf("%s exists already (%s); nothing was submitted\n", id ? id : "?", status ? status : "?");
        fflush(stdout);
        if (o->wait)
            rc = wait_for(ctx, sub, id ? id : eff.id, o);
    }
    json_decref(reply);
    natsSubscription_Destroy(sub);
    return rc;
}

/* ---- --from-file ---- */

typedef struct line_req {
    int line;
    json_t *req;
} line_req;

/* Reads and checks every line; returns the number of bad lines (printed). */
static int read_lines(const char *path, FILE *f, line_req **out, size_t *n)
{
    char *line = NULL;
    size_t cap = 0, used = 0, alloc = 0, len = 0;
    int lineno = 0, bad = 0, got;
    line_req *v = NULL;
    while ((got = cli_read_line(f, &line, &cap, CLI_MAX_LINE, &len)) != 0) {
        lineno++;
        if (got < 0) {
            fprintf(stderr, "jetsched submit: %s:%d: %s\n", path, lineno,
                    got == -1 ? "line longer than 16 MiB" : strerror(errno));
            bad++;
            break; /* the rest of an endless line (a device) is never read */
        }
        if (memchr(line, '\0', len)) {
            if (bad < 20)
                fprintf(stderr, "jetsched submit: %s:%d: the line holds a NUL byte (not JSON text)\n", path, lineno);
            bad++;
            if (bad > 1000)
                break; /* binary input (e.g. a device): stop reading */
            continue;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        size_t skip = strspn(line, " \t");
        if (line[skip] == '\0')
            continue;
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)len, 0, &jerr);
        if (!obj || !json_is_object(obj)) {
            if (bad < 20)
                fprintf(stderr, "jetsched submit: %s:%d:%d: %s\n", path, lineno, obj ? 1 : jerr.column,
                        obj ? "a line must be a JSON object" : jerr.text);
            bad++;
            json_decref(obj);
            continue;
        }
        if (used == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            v = realloc(v, alloc * sizeof *v);
        }
        v[used++] = (line_req){lineno, obj};
    }
    if (bad > 20)
        fprintf(stderr, "jetsched submit: %s: %d more bad lines\n", path, bad - 20);
    free(line);
    *out = v;
    *n = used;
    return bad;
}

/* Every line checked by the API itself (task.submit with validate_only:
 * the server's own rules and limits) before any is submitted; a line too
 * large for one NATS message is refused here. Prints each problem with its
 * line; true when all lines are good. */
static bool check_all(cli_ctx *ctx, const char *path, line_req *lines, size_t n)
{
    int rc = CLI_OK;
    natsConnection *nc = cli_nats(ctx, &rc);
    if (!nc)
        return false;
    int64_t max = natsConnection_GetMaxPayload(nc);
    json_t **reqs = calloc(n ? n : 1, sizeof *reqs), **replies = calloc(n ? n : 1, sizeof *replies);
    int *rcs = calloc(n ? n : 1, sizeof *rcs), bad = 0;
    for (size_t i = 0; i < n; i++) {
        reqs[i] = json_deep_copy(lines[i].req);
        json_object_set_new(reqs[i], "validate_only", json_true());
        char *text = json_dumps(reqs[i], JSON_COMPACT);
        size_t size = text ? strlen(text) : 0;
        free(text);
        if (max > 0 && (int64_t)size > max) {
            if (bad++ < 20)
                fprintf(stderr, "jetsched submit: %s:%d: the request is %zu bytes, more than the NATS server takes "
                                "in one message (max_payload %lld)\n",
                        path, lines[i].line, size, (long long)max);
        }
    }
    if (!bad) {
        cli_request_many(ctx, "task.submit", reqs, n, 64, replies, rcs, NULL);
        for (size_t i = 0; i < n; i++) {
            if (rcs[i] == CLI_OK)
                continue;
            char where[600];
            snprintf(where, sizeof where, "%s:%d", path, lines[i].line);
            if (replies[i] && bad < 20)
                cli_print_api_error(ctx, replies[i], where);
            else if (bad < 20)
                fprintf(stderr, "jetsched submit: %s: not checked (no reply from schedulerd)\n", where);
            bad++;
        }
    }
    if (bad > 20)
        fprintf(stderr, "jetsched submit: %s: %d more bad lines\n", path, bad - 20);
    for (size_t i = 0; i < n; i++) {
        json_decref(reqs[i]);
        json_decref(replies[i]);
    }
    free(reqs);
    free(replies);
    free(rcs);
    return bad == 0;
}

/* One task.submit_many request of --from-file: lines [first, first + n). */
typedef struct chunk {
    size_t first, n;
    int rc;
    json_t *reply; /* the reply, the API error object, or NULL (not answered) */
} chunk;

#define CHUNK_TASKS 1000 /* task.submit_many's limit */
#define CHUNK_WINDOW 4   /* chunks in flight */

/* Splits the lines into chunks of at most CHUNK_TASKS tasks and about
 * max_bytes of request; *out gets them, returns how many. */
static size_t make_chunks(line_req *lines, size_t n, int64_t max_bytes, chunk **out)
{
    chunk *v = calloc(n ? n : 1, sizeof *v);
    size_t nc = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char *text = json_dumps(lines[i].req, JSON_COMPACT);
        size_t size = (text ? strlen(text) : 0) + 1;
        free(text);
        if (!nc || v[nc - 1].n == CHUNK_TASKS || (max_bytes > 0 && bytes + size > (size_t)max_bytes)) {
            v[nc++] = (chunk){.first = i};
            bytes = 64;
        }
        v[nc - 1].n++;
        bytes += size;
    }
    *out = v;
    return nc;
}

static int submit_file(cli_ctx *ctx, const submit_opts *o, const char *handler)
{
    FILE *f = strcmp(o->from_file, "-") == 0 ? stdin : fopen(o->from_file, "r");
    const char *path = f == stdin ? "<stdin>" : o->from_file;
    if (!f) {
        fprintf(stderr, "jetsched submit: cannot open %s: %s\n", o->from_file, strerror(errno));
        return CLI_FAILED;
    }
    line_req *lines;
    size_t n;
    int bad = read_lines(path, f, &lines, &n);
    if (f != stdin)
        fclose(f);
    if (bad) {
        fprintf(stderr, "jetsched submit: %s: %d bad line(s); nothing was submitted\n", path, bad);
        for (size_t i = 0; i < n; i++)
            json_decref(lines[i].req);
        free(lines);
        return CLI_FAILED;
    }
    for (size_t i = 0; i < n; i++)
        apply_defaults(lines[i].req, o, handler);
    /* Atomic (default): every line checked by the API first, so that a bad
     * line submits nothing; --partial: the bad lines are reported by
     * task.submit_many itself and the good ones are stored. */
    if (!o->partial && !check_all(ctx, path, lines, n)) {
        fprintf(stderr, "jetsched submit: %s: nothing was submitted\n", path);
        for (size_t i = 0; i < n; i++)
            json_decref(lines[i].req);
        free(lines);
        return CLI_FAILED;
    }
    int rc = CLI_OK;
    natsConnection *nc = cli_nats(ctx, &rc);
    if (!nc) {
        for (size_t i = 0; i < n; i++)
            json_decref(lines[i].req);
        free(lines);
        return rc;
    }
    int64_t max = natsConnection_GetMaxPayload(nc);
    chunk *chunks;
    size_t nchunks = make_chunks(lines, n, max > 4096 ? max - 1024 : max, &chunks);
    cli_progress bar;
    cli_progress_start(&bar, "submitting", (int64_t)n);
    /* up to CHUNK_WINDOW requests of up to CHUNK_TASKS tasks in flight */
    for (size_t k = 0; k < nchunks; k += CHUNK_WINDOW) {
        size_t m = nchunks - k < CHUNK_WINDOW ? nchunks - k : CHUNK_WINDOW;
        json_t *reqs[CHUNK_WINDOW], *replies[CHUNK_WINDOW] = {0};
        int rcs[CHUNK_WINDOW] = {0};
        for (size_t j = 0; j < m; j++) {
            json_t *tasks = json_array();
            for (size_t i = 0; i < chunks[k + j].n; i++)
                json_array_append(tasks, lines[chunks[k + j].first + i].req);
            reqs[j] = json_pack("{s:o,s:b}", "tasks", tasks, "partial", o->partial);
        }
        cli_request_many(ctx, "task.submit_many", reqs, m, CHUNK_WINDOW, replies, rcs, NULL);
        for (size_t j = 0; j < m; j++) {
            chunks[k + j].rc = rcs[j];
            chunks[k + j].reply = replies[j];
            for (size_t i = 0; i < chunks[k + j].n; i++)
                cli_progress_step(&bar, rcs[j] == CLI_OK);
        }
    }
    cli_progress_end(&bar);
    json_t *results = ctx->json ? json_array() : NULL, *chunk_list = ctx->json ? json_array() : NULL;
    int64_t created = 0, existing = 0, failed = 0, unconfirmed = 0;
    size_t failed_chunks = 0;
    for (size_t k = 0; k < nchunks; k++) {
        const chunk *c = &chunks[k];
        int l0 = lines[c->first].line, l1 = lines[c->first + c->n - 1].line;
        char where[700];
        snprintf(where, sizeof where, "%s: chunk %zu of %zu (lines %d-%d, %zu task(s))", path, k + 1, nchunks, l0,
                 l1, c->n);
        const char *state = "submitted";
        if (c->rc == CLI_OK) {
            json_t *res = json_object_get(c->reply, "results");
            for (size_t i = 0; i < c->n; i++) {
                const line_req *lr = &lines[c->first + i];
                json_t *r = json_array_get(res, i), *err = json_object_get(r, "error");
                if (err) {
                    failed++;
                    char at[620];
                    snprintf(at, sizeof at, "%s:%d", path, lr->line);
                    cli_print_api_error(ctx, err, at);
                    if (rc == CLI_OK)
                        rc = CLI_FAILED;
                    if (results)
                        json_array_append_new(results, json_pack("{s:i,s:O}", "line", lr->line, "error", err));
                    continue;
                }
                if (json_is_true(json_object_get(r, "created")))
                    created++;
                else
                    existing++;
                if (results)
                    json_array_append_new(results, json_pack("{s:i,s:O?,s:O?,s:O?}", "line", lr->line, "id",
                                                             json_object_get(r, "id"), "status",
                                                             json_object_get(r, "status"), "created",
                                                             json_object_get(r, "created")));
            }
        } else if (c->reply) {
            /* atomic: none of the chunk's tasks was stored */
            state = "failed";
            failed += (int64_t)c->n;
            failed_chunks++;
            cli_print_api_error(ctx, c->reply, where);
            fprintf(stderr, "jetsched submit: %s failed: none of its tasks was submitted\n", where);
            if (rc == CLI_OK || c->rc == CLI_UNAVAILABLE)
                rc = c->rc == CLI_UNAVAILABLE ? CLI_UNAVAILABLE : CLI_FAILED;
            for (size_t i = 0; results && i < c->n; i++)
                json_array_append_new(results,
                                      json_pack("{s:i,s:O}", "line", lines[c->first + i].line, "error", c->reply));
        } else {
            state = "unconfirmed";
            unconfirmed += (int64_t)c->n;
            fprintf(stderr, "jetsched submit: %s was not confirmed: its tasks may or may not have been submitted "
                            "(submitting again is idempotent for lines with an \"id\")\n", where);
            rc = CLI_UNAVAILABLE;
        }
        if (chunk_list)
            json_array_append_new(chunk_list, json_pack("{s:i,s:i,s:I,s:s,s:O?}", "first_line", l0, "last_line", l1,
                                                        "tasks", (json_int_t)c->n, "state", state, "error",
                                                        c->rc != CLI_OK ? c->reply : NULL));
        json_decref(c->reply);
    }
    if (results) {
        json_t *doc = json_pack("{s:I,s:I,s:I,s:I,s:o,s:o}", "submitted", (json_int_t)created, "existing",
                                (json_int_t)existing, "failed", (json_int_t)failed, "unconfirmed",
                                (json_int_t)unconfirmed, "chunks", chunk_list, "results", results);
        cli_print_json(doc);
        json_decref(doc);
    } else {
        printf("submitted %lld task(s) from %s", (long long)created, path);
        if (existing)
            printf(", %lld existed already", (long long)existing);
        if (failed)
            printf(", %lld failed", (long long)failed);
        if (failed_chunks)
            printf(" (%zu chunk(s) of up to %d refused whole)", failed_chunks, CHUNK_TASKS);
        if (unconfirmed)
            printf(", %lld unconfirmed", (long long)unconfirmed);
        putchar('\n');
    }
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i].req);
    free(chunks);
    free(lines);
    return rc;
}

int cmd_submit(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'},     {"priority", required_argument, NULL, 'p'},
        {"header", required_argument, NULL, 'H'},    {"id", required_argument, NULL, 'i'},
        {"at", required_argument, NULL, 'a'},        {"delay", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'},   {"max-attempts", required_argument, NULL, 'm'},
        {"deadline", required_argument, NULL, 'D'},  {"backoff", required_argument, NULL, 'b'},
        {"wait", no_argument, NULL, 'w'},            {"wait-timeout", required_argument, NULL, 'W'},
        {"from-file", required_argument, NULL, 'f'}, {"partial", no_argument, NULL, 'P'}, CLI_COMMON_OPTS,
    };
    submit_opts o = {0};
    int c, rc = CLI_OK;
    int64_t ms;
    jet_priority prio;
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "q:p:H:wf:h", opts)) != -1) {
        switch (c) {
        case 'q':
            if (!jet_name_valid(optarg))
                rc = cli_usage_error(ctx, usage, "--queue \"%s\": 1-64 characters of a-z 0-9 _ -", optarg);
            o.queue = optarg;
            break;
        case 'p':
            if (!jet_priority_parse(optarg, &prio))
                rc = cli_usage_error(ctx, usage, "--priority \"%s\": one of high, normal, low", optarg);
            o.priority = optarg;
            break;
        case 'H':
            if (!cli_add_header(ctx, usage, &o.headers, optarg))
                rc = CLI_USAGE;
            break;
        case 'i':
            if (!jet_task_id_valid(optarg))
                rc = cli_usage_error(ctx, usage, "--id \"%s\": 1-128 characters of A-Z a-z 0-9 _ -", optarg);
            o.id = optarg;
            break;
        case 'a':
        case 'D':
            if (jet_rfc3339_parse(optarg, &ms, NULL) != JET_OK)
                rc = cli_usage_error(ctx, usage, "--%s \"%s\": an RFC 3339 time like 2026-12-02T04:00:00Z",
                                     c == 'a' ? "at" : "deadline", optarg);
            *(c == 'a' ? &o.at : &o.deadline) = optarg;
            break;
        case 'd':
        case 't':
        case 'W':
            if (jet_duration_parse(optarg, &ms, NULL) != JET_OK)
                rc = cli_usage_error(ctx, usage, "--%s \"%s\": a duration like 30s, 10m, 1h30m",
                                     c == 'd' ? "delay" : c == 't' ? "timeout" : "wait-timeout", optarg);
            if (c == 'd')
                o.delay = optarg;
            else if (c == 't')
                o.timeout = optarg;
            else
                o.wait_timeout_ms = ms;
            break;
        case 'm':
            if (!cli_int_arg(optarg, 1, 1000000, &o.max_attempts))
                rc = cli_usage_error(ctx, usage, "--max-attempts \"%s\": a whole number from 1", optarg);
            break;
        case 'b': o.backoff = optarg; break;
        case 'w': o.wait = true; break;
        case 'f': o.from_file = optarg; break;
        case 'P': o.partial = true; break;
        case 'h': json_decref(o.headers); return cli_help(usage);
        default: rc = CLI_USAGE; fputs(usage, stderr); break;
        }
        if (rc != CLI_OK) {
            json_decref(o.headers);
            return rc;
        }
    }
    int npos = argc - optind;
    if (o.at && o.delay)
        rc = cli_usage_error(ctx, usage, "--at and --delay exclude each other");
    else if (o.partial && !o.from_file)
        rc = cli_usage_error(ctx, usage, "--partial goes with --from-file");
    else if (o.from_file && (o.wait || o.id || npos > 1))
        rc = cli_usage_error(ctx, usage, "--from-file takes at most a default HANDLER, and no --wait or --id");
    else if (!o.from_file && npos < 1)
        rc = cli_usage_error(ctx, usage, "missing HANDLER");
    else if (!o.from_file && npos > 2)
        rc = cli_usage_error(ctx, usage, "unexpected argument \"%s\" (quote the payload)", argv[optind + 2]);
    else if (npos >= 1 && !jet_name_valid(argv[optind]))
        rc = cli_usage_error(ctx, usage, "HANDLER \"%s\": 1-64 characters of a-z 0-9 _ -", argv[optind]);
    if (rc == CLI_OK) {
        const char *handler = npos >= 1 ? argv[optind] : NULL;
        rc = o.from_file ? submit_file(ctx, &o, handler) : submit_one(ctx, &o, handler, npos == 2 ? argv[optind + 1] : NULL);
    }
    json_decref(o.headers);
    return rc;
}
