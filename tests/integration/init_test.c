/* tests/integration/init_test.c — `jetsched init` against a real nats-server
 * (run under tests/harness/with-servers --nats). One scenario per ctest test,
 * named by argv[1]:
 *   twice                first run creates every object with the right
 *                        settings; second runs (human and --json) report
 *                        every object unchanged and change nothing
 *   prefix               custom nats.prefix, queues, --queue, ack wait, TTLs
 *   conflict_retention   existing task stream with limits retention: exit 1
 *   conflict_duplicates  existing task stream with another duplicate window
 *   conflict_consumer    existing consumers with another AckWait / MaxDeliver
 *   conflict_overlap     another stream already owns the task subjects
 *   nats_down            unreachable NATS: exit 3 with a clear message
 *   race                 concurrent `jetsched init` runs all succeed
 * The objects are inspected with libnats; the JetStream API requests the
 * CLI makes are watched on $JS.API.> to prove that nothing is created,
 * updated or deleted when nothing should be. */
#include "harness.h"

#include <jansson.h>
#include <nats/nats.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEC_NS INT64_C(1000000000)
#define MIN_NS (60 * SEC_NS)
#define HOUR_NS (60 * MIN_NS)
#define DAY_NS (24 * HOUR_NS)
#define CLI_TIMEOUT_MS 60000

static int failures;
static const char *nats_url;
static char *tmp;
static natsConnection *nc;
static jsCtx *js;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            failures++;                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
        }                                                             \
    } while (0)

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FATAL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ------------------------------------------------------------------ running the CLI */

typedef struct run_result {
    int rc; /* exit status, or 128 + signal */
    char *out, *err;
} run_result;

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    fclose(f);
    if (!buf)
        die("out of memory");
    buf[len] = '\0';
    return buf;
}

/* Starts `jetsched <args...>` with JETSCHED_NATS_URL=url; output goes to files
 * named after `tag` in the temp dir. Returns the child pid. */
static pid_t cli_start(const char *url, const char *tag, const char *const *args)
{
    char cli[4096], out[4096], err[4096];
    snprintf(cli, sizeof cli, "%s/cli/jetsched", th_require_env("JETSCHED_BUILD_DIR"));
    snprintf(out, sizeof out, "%s/%s.out", tmp, tag);
    snprintf(err, sizeof err, "%s/%s.err", tmp, tag);
    const char *argv[32] = {cli};
    size_t n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(126);
        setenv("JETSCHED_NATS_URL", url, 1);
        unsetenv("JETSCHED_CONFIG");
        execv(cli, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", cli, strerror(errno));
        _exit(127);
    }
    return pid;
}

static void cli_wait(pid_t pid, const char *tag, run_result *r)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            die("waitpid: %s", strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > CLI_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            die("jetsched (%s) did not finish within %d ms", tag, CLI_TIMEOUT_MS);
        }
        usleep(10000);
    }
    r->rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.out", tmp, tag);
    r->out = slurp(path);
    snprintf(path, sizeof path, "%s/%s.err", tmp, tag);
    r->err = slurp(path);
    fprintf(stderr, "--- jetsched (%s) exit %d\n%s%s", tag, r->rc, r->out, r->err);
}

static void cli_run(const char *url, const char *tag, const char *const *args, run_result *r)
{
    cli_wait(cli_start(url, tag, args), tag, r);
}

/* Writes a configuration file in the temp dir and returns its path (valid
 * for the next 7 calls). */
static const char *write_config(const char *name, const char *text)
{
    static char paths[8][4096];
    static unsigned next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die("write %s: %s", path, strerror(errno));
    return path;
}

/* ------------------------------------------------------------------ watching the JetStream API */

typedef struct api_watch {
    natsSubscription *sub;
} api_watch;

static void watch_start(api_watch *w)
{
    if (natsConnection_SubscribeSync(&w->sub, nc, "$JS.API.>") != NATS_OK ||
        natsConnection_FlushTimeout(nc, 5000) != NATS_OK)
        die("subscribe $JS.API.>: %s", nats_GetLastError(NULL));
}

/* Stops watching; returns how many requests were seen and how many of them
 * create, update, delete or purge something (the first ones listed). */
static int watch_stop(api_watch *w, int *mutating, char *first, size_t len)
{
    int total = 0;
    *mutating = 0;
    if (first && len)
        first[0] = '\0';
    natsConnection_FlushTimeout(nc, 5000);
    natsMsg *m = NULL;
    while (natsSubscription_NextMsg(&m, w->sub, 300) == NATS_OK) {
        const char *subj = natsMsg_GetSubject(m);
        total++;
        if (strstr(subj, "CREATE") || strstr(subj, "UPDATE") || strstr(subj, "DELETE") || strstr(subj, "PURGE")) {
            if (first && strlen(first) + strlen(subj) + 3 < len) {
                strcat(first, subj);
                strcat(first, " ");
            }
            (*mutating)++;
        }
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(w->sub);
    w->sub = NULL;
    return total;
}

/* ------------------------------------------------------------------ inspecting objects */

static jsStreamInfo *stream_info(const char *name)
{
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus s = js_GetStreamInfo(&si, js, name, NULL, &je);
    if (s == NATS_OK)
        return si;
    if (s != NATS_NOT_FOUND && je != 10059)
        die("stream info %s: %s", name, nats_GetLastError(NULL));
    return NULL;
}

static jsConsumerInfo *consumer_info(const char *stream, const char *name)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode je = 0;
    natsStatus s = js_GetConsumerInfo(&ci, js, stream, name, NULL, &je);
    if (s == NATS_OK)
        return ci;
    if (s != NATS_NOT_FOUND && je != 10014 && je != 10059)
        die("consumer info %s/%s: %s", stream, name, nats_GetLastError(NULL));
    return NULL;
}

typedef struct want_stream {
    const char *name, *subject;
    jsRetentionPolicy retention;
    jsDiscardPolicy discard;
    int64_t dup_ns, max_age_ns, max_msgs, max_bytes;
    int32_t max_msg_size;
} want_stream;

static void expect_stream(const want_stream *w)
{
    jsStreamInfo *si = stream_info(w->name);
    CHECK(si, "stream %s does not exist", w->name);
    if (!si)
        return;
    const jsStreamConfig *c = si->Config;
    CHECK(c->SubjectsLen == 1 && strcmp(c->Subjects[0], w->subject) == 0, "stream %s: subjects (want %s)", w->name,
          w->subject);
    CHECK(c->Retention == w->retention, "stream %s: retention %d, want %d", w->name, c->Retention, w->retention);
    CHECK(c->Storage == js_FileStorage, "stream %s: storage is not file", w->name);
    CHECK(c->Replicas == 1, "stream %s: replicas %" PRId64, w->name, c->Replicas);
    CHECK(c->Discard == w->discard, "stream %s: discard %d, want %d", w->name, c->Discard, w->discard);
    CHECK(c->Duplicates == w->dup_ns, "stream %s: duplicates %" PRId64 " ns, want %" PRId64, w->name, c->Duplicates,
          w->dup_ns);
    CHECK(c->MaxAge == w->max_age_ns, "stream %s: max age %" PRId64 " ns, want %" PRId64, w->name, c->MaxAge,
          w->max_age_ns);
    CHECK(c->MaxMsgs == w->max_msgs, "stream %s: max msgs %" PRId64 ", want %" PRId64, w->name, c->MaxMsgs,
          w->max_msgs);
    CHECK(c->MaxBytes == w->max_bytes, "stream %s: max bytes %" PRId64 ", want %" PRId64, w->name, c->MaxBytes,
          w->max_bytes);
    CHECK(c->MaxMsgSize == w->max_msg_size, "stream %s: max msg size %d, want %d", w->name, (int)c->MaxMsgSize,
          (int)w->max_msg_size);
    jsStreamInfo_Destroy(si);
}

static void expect_kv(const char *bucket, int64_t ttl_ns)
{
    char stream[128];
    snprintf(stream, sizeof stream, "KV_%s", bucket);
    jsStreamInfo *si = stream_info(stream);
    CHECK(si, "kv bucket %s (stream %s) does not exist", bucket, stream);
    if (si) {
        CHECK(si->Config->MaxAge == ttl_ns, "kv %s: TTL %" PRId64 " ns, want %" PRId64, bucket, si->Config->MaxAge,
              ttl_ns);
        CHECK(si->Config->MaxMsgsPerSubject == 1, "kv %s: history %" PRId64 ", want 1", bucket,
              si->Config->MaxMsgsPerSubject);
        CHECK(si->Config->Storage == js_FileStorage, "kv %s: storage is not file", bucket);
        CHECK(si->Config->Replicas == 1, "kv %s: replicas %" PRId64, bucket, si->Config->Replicas);
        jsStreamInfo_Destroy(si);
    }
    /* And libnats opens it as a bucket with that TTL. */
    kvStore *kv = NULL;
    kvStatus *st = NULL;
    CHECK(js_KeyValue(&kv, js, bucket) == NATS_OK, "js_KeyValue(%s): %s", bucket, nats_GetLastError(NULL));
    if (kv && kvStore_Status(&st, kv) == NATS_OK) {
        CHECK(kvStatus_TTL(st) == ttl_ns, "kv %s: status TTL %" PRId64, bucket, kvStatus_TTL(st));
        CHECK(kvStatus_History(st) == 1, "kv %s: status history %" PRId64, bucket, kvStatus_History(st));
    }
    kvStatus_Destroy(st);
    kvStore_Destroy(kv);
}

static void expect_consumer(const char *stream, const char *name, const char *filter, int64_t ack_wait_ns,
                            int64_t max_ack_pending)
{
    jsConsumerInfo *ci = consumer_info(stream, name);
    CHECK(ci, "consumer %s/%s does not exist", stream, name);
    if (!ci)
        return;
    const jsConsumerConfig *c = ci->Config;
    CHECK(c->Durable && strcmp(c->Durable, name) == 0, "consumer %s: not durable", name);
    CHECK(c->DeliverSubject == NULL || c->DeliverSubject[0] == '\0', "consumer %s: not a pull consumer", name);
    CHECK(c->FilterSubject && strcmp(c->FilterSubject, filter) == 0, "consumer %s: filter %s, want %s", name,
          c->FilterSubject ? c->FilterSubject : "(none)", filter);
    CHECK(c->AckPolicy == js_AckExplicit, "consumer %s: ack policy %d", name, c->AckPolicy);
    CHECK(c->AckWait == ack_wait_ns, "consumer %s: ack wait %" PRId64 " ns, want %" PRId64, name, c->AckWait,
          ack_wait_ns);
    CHECK(c->MaxDeliver == -1, "consumer %s: max deliver %" PRId64 ", want -1", name, c->MaxDeliver);
    CHECK(c->BackOffLen == 0, "consumer %s: has a backoff", name);
    CHECK(c->MaxAckPending == max_ack_pending, "consumer %s: max ack pending %" PRId64 ", want %" PRId64, name,
          c->MaxAckPending, max_ack_pending);
    CHECK(c->DeliverPolicy == js_DeliverAll, "consumer %s: deliver policy %d", name, c->DeliverPolicy);
    jsConsumerInfo_Destroy(ci);
}

static void expect_queue(const char *prefix, const char *stream, const char *queue, int64_t ack_wait_ns,
                         int64_t max_ack_pending)
{
    static const char *const prios[] = {"high", "normal", "low"};
    for (int i = 0; i < 3; i++) {
        char name[128], filter[160];
        snprintf(name, sizeof name, "q_%s_%s", queue, prios[i]);
        snprintf(filter, sizeof filter, "%s.task.%s.%s", prefix, queue, prios[i]);
        expect_consumer(stream, name, filter, ack_wait_ns, max_ack_pending);
    }
}

/* A one-line fingerprint of an object: creation time plus every setting. */
static char *snap_stream(const char *name)
{
    jsStreamInfo *si = stream_info(name);
    char *s = NULL;
    if (!si)
        return strdup("(missing)");
    const jsStreamConfig *c = si->Config;
    if (asprintf(&s,
                 "stream %s created=%" PRId64 " subj=%s ret=%d sto=%d rep=%" PRId64 " disc=%d dup=%" PRId64
                 " age=%" PRId64 " msgs=%" PRId64 " bytes=%" PRId64 " size=%d per_subj=%" PRId64 " desc=%s",
                 name, si->Created, c->SubjectsLen ? c->Subjects[0] : "", c->Retention, c->Storage, c->Replicas,
                 c->Discard, c->Duplicates, c->MaxAge, c->MaxMsgs, c->MaxBytes, (int)c->MaxMsgSize,
                 c->MaxMsgsPerSubject, c->Description ? c->Description : "") < 0)
        die("out of memory");
    jsStreamInfo_Destroy(si);
    return s;
}

static char *snap_consumer(const char *stream, const char *name)
{
    jsConsumerInfo *ci = consumer_info(stream, name);
    char *s = NULL;
    if (!ci)
        return strdup("(missing)");
    const jsConsumerConfig *c = ci->Config;
    if (asprintf(&s,
                 "consumer %s/%s created=%" PRId64 " filter=%s ack=%d wait=%" PRId64 " maxdel=%" PRId64
                 " backoff=%d pending=%" PRId64 " deliver=%d desc=%s",
                 stream, name, ci->Created, c->FilterSubject ? c->FilterSubject : "", c->AckPolicy, c->AckWait,
                 c->MaxDeliver, c->BackOffLen, c->MaxAckPending, c->DeliverPolicy,
                 c->Description ? c->Description : "") < 0)
        die("out of memory");
    jsConsumerInfo_Destroy(ci);
    return s;
}

/* Every object of prefix `p` (upper-case stream prefix `P`) and queue `q`. */
#define N_OBJS 10
typedef struct snapshot {
    char *line[N_OBJS];
} snapshot;

static void snap_take(snapshot *s, const char *p, const char *P, const char *q)
{
    static const char *const streams[] = {"%s_TASKS", "%s_DLQ"};
    static const char *const kvs[] = {"KV_%s_leader", "KV_%s_agents", "KV_%s_cancel", "KV_%s_checkpoints",
                                      "KV_%s_control"};
    static const char *const prios[] = {"high", "normal", "low"};
    char name[160], stream[160];
    int k = 0;
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, streams[i], P);
        s->line[k++] = snap_stream(name);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, kvs[i], p);
        s->line[k++] = snap_stream(name);
    }
    snprintf(stream, sizeof stream, "%s_TASKS", P);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "q_%s_%s", q, prios[i]);
        s->line[k++] = snap_consumer(stream, name);
    }
}

static void snap_expect_same(const snapshot *a, const snapshot *b, const char *when)
{
    for (int i = 0; i < N_OBJS; i++)
        CHECK(strcmp(a->line[i], b->line[i]) == 0, "%s: object changed:\n  before: %s\n  after:  %s", when,
              a->line[i], b->line[i]);
}

static void snap_free(snapshot *s)
{
    for (int i = 0; i < N_OBJS; i++)
        free(s->line[i]);
}

static void expect_contains(const char *hay, const char *needle, const char *what)
{
    CHECK(strstr(hay, needle) != NULL, "%s does not contain \"%s\"", what, needle);
}

static int count_lines(const char *s, const char *start)
{
    int n = 0;
    size_t len = strlen(start);
    for (const char *p = s; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, start, len) == 0)
            n++;
    return n;
}

/* Stream config shared by conflict scenarios: everything jetsched would set. */
static void jetsched_tasks_config(jsStreamConfig *sc, const char **subjects)
{
    jsStreamConfig_Init(sc);
    subjects[0] = "jetsched.task.>";
    sc->Name = "JETSCHED_TASKS";
    sc->Subjects = subjects;
    sc->SubjectsLen = 1;
    sc->Retention = js_WorkQueuePolicy;
    sc->Storage = js_FileStorage;
    sc->Replicas = 1;
    sc->Discard = js_DiscardNew;
    sc->Duplicates = 2 * MIN_NS;
    sc->MaxMsgs = 10000000;
    sc->MaxBytes = 64 * 1048576;
    sc->MaxMsgSize = 1048576;
}

static void add_stream(jsStreamConfig *sc)
{
    jsStreamInfo *si = NULL;
    if (js_AddStream(&si, js, sc, NULL, NULL) != NATS_OK)
        die("add stream %s: %s", sc->Name, nats_GetLastError(NULL));
    jsStreamInfo_Destroy(si);
}

static const char *base_config(void)
{
    /* Defaults except max_bytes, kept small so any test machine has room. */
    return write_config("base.conf", "jetstream = { max_bytes = 67108864; };\n");
}

/* ------------------------------------------------------------------ scenarios */

static void expect_default_objects(void)
{
    want_stream tasks = {"JETSCHED_TASKS", "jetsched.task.>", js_WorkQueuePolicy, js_DiscardNew, 2 * MIN_NS, 0,
                         10000000, 64 * 1048576, 1048576};
    want_stream dlq = {"JETSCHED_DLQ", "jetsched.dlq.>", js_LimitsPolicy, js_DiscardOld, 2 * MIN_NS, 14 * DAY_NS,
                       -1, -1, -1};
    expect_stream(&tasks);
    expect_stream(&dlq);
    expect_kv("jetsched_leader", 10 * SEC_NS);
    expect_kv("jetsched_agents", 15 * SEC_NS);
    expect_kv("jetsched_cancel", 24 * HOUR_NS);
    expect_kv("jetsched_checkpoints", 7 * DAY_NS);
    expect_kv("jetsched_control", 0); /* queue pauses: no TTL */
    expect_queue("jetsched", "JETSCHED_TASKS", "default", 30 * SEC_NS, 1000);
}

static void check_json_unchanged(const char *out)
{
    static const char *const names[N_OBJS][2] = {
        {"stream", "JETSCHED_TASKS"}, {"stream", "JETSCHED_DLQ"},        {"kv", "jetsched_leader"},
        {"kv", "jetsched_agents"},    {"kv", "jetsched_cancel"},         {"kv", "jetsched_checkpoints"},
        {"kv", "jetsched_control"},
        {"consumer", "q_default_high"}, {"consumer", "q_default_normal"}, {"consumer", "q_default_low"}};
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je);
    CHECK(doc, "--json output is not JSON: %s", je.text);
    json_t *objs = json_object_get(doc, "objects");
    CHECK(json_is_array(objs) && json_array_size(objs) == N_OBJS, "--json: \"objects\" is not an array of %d",
          N_OBJS);
    for (size_t i = 0; json_is_array(objs) && i < json_array_size(objs) && i < N_OBJS; i++) {
        json_t *o = json_array_get(objs, i);
        const char *kind = json_string_value(json_object_get(o, "kind"));
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *outcome = json_string_value(json_object_get(o, "outcome"));
        CHECK(kind && strcmp(kind, names[i][0]) == 0, "--json object %zu: kind %s, want %s", i, kind ? kind : "-",
              names[i][0]);
        CHECK(name && strcmp(name, names[i][1]) == 0, "--json object %zu: name %s, want %s", i, name ? name : "-",
              names[i][1]);
        CHECK(outcome && strcmp(outcome, "unchanged") == 0, "--json object %zu: outcome %s", i,
              outcome ? outcome : "-");
    }
    json_decref(doc);
}

static void scenario_twice(void)
{
    const char *cfg = base_config();
    run_result r;
    api_watch w;
    int mutating;
    char seen[2048];

    CHECK(stream_info("JETSCHED_TASKS") == NULL, "JETSCHED_TASKS exists before the first run");
    cli_run(nats_url, "first", (const char *[]){"--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 0, "first run: exit %d, want 0", r.rc);
    CHECK(count_lines(r.out, "created ") == N_OBJS, "first run: want %d \"created\" lines", N_OBJS);
    expect_contains(r.out, "created stream JETSCHED_TASKS\n", "first run output");
    expect_contains(r.out, "created consumer q_default_low\n", "first run output");
    run_free(&r);
    expect_default_objects();

    snapshot before, after;
    snap_take(&before, "jetsched", "JETSCHED", "default");

    watch_start(&w);
    cli_run(nats_url, "second", (const char *[]){"--config", cfg, "init", NULL}, &r);
    int total = watch_stop(&w, &mutating, seen, sizeof seen);
    CHECK(r.rc == 0, "second run: exit %d, want 0", r.rc);
    CHECK(count_lines(r.out, "ok      ") == N_OBJS, "second run: want %d \"ok ... (unchanged)\" lines", N_OBJS);
    expect_contains(r.out, "ok      stream JETSCHED_TASKS (unchanged)\n", "second run output");
    expect_contains(r.out, "ok      kv bucket jetsched_leader (unchanged)\n", "second run output");
    CHECK(total >= N_OBJS, "second run: only %d JetStream API requests seen (the watch does not work?)", total);
    CHECK(mutating == 0, "second run made %d changing API requests: %s", mutating, seen);
    run_free(&r);

    watch_start(&w);
    cli_run(nats_url, "third-json", (const char *[]){"--json", "--config", cfg, "init", NULL}, &r);
    watch_stop(&w, &mutating, seen, sizeof seen);
    CHECK(r.rc == 0, "--json run: exit %d, want 0", r.rc);
    CHECK(mutating == 0, "--json run made %d changing API requests: %s", mutating, seen);
    check_json_unchanged(r.out);
    run_free(&r);

    snap_take(&after, "jetsched", "JETSCHED", "default");
    snap_expect_same(&before, &after, "after the second and third runs");
    snap_free(&before);
    snap_free(&after);
    expect_default_objects();

    /* Upgrade: a deployment made before jetsched_control existed gets the
     * bucket from the next init, everything else unchanged. */
    CHECK(js_DeleteStream(js, "KV_jetsched_control", NULL, NULL) == NATS_OK, "delete KV_jetsched_control");
    cli_run(nats_url, "upgrade", (const char *[]){"--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 0, "upgrade run: exit %d, want 0", r.rc);
    CHECK(count_lines(r.out, "created ") == 1 && count_lines(r.out, "ok      ") == N_OBJS - 1,
          "upgrade run: want 1 created and %d unchanged", N_OBJS - 1);
    expect_contains(r.out, "created kv bucket jetsched_control\n", "upgrade run output");
    run_free(&r);
    expect_default_objects();
}

static void scenario_prefix(void)
{
    const char *cfg = write_config("acme.conf",
                                   "nats = { prefix = \"acme\"; };\n"
                                   "jetstream = {\n"
                                   "  max_bytes = 67108864; max_msgs = 5000; max_msg_size = 65536;\n"
                                   "  duplicate_window = \"90s\"; ack_wait = \"45s\"; max_ack_pending = 64;\n"
                                   "  dlq_max_age = \"3d\"; leader_ttl = \"5s\"; agent_ttl = \"20s\";\n"
                                   "  cancel_ttl = \"2h\"; checkpoint_ttl = \"1d\";\n"
                                   "  queues = [ \"emails\", \"reports\" ];\n"
                                   "};\n");
    run_result r;
    cli_run(nats_url, "acme", (const char *[]){"--config", cfg, "init", "--queue", "bulk", "--queue", "emails", NULL},
            &r);
    CHECK(r.rc == 0, "acme run: exit %d, want 0", r.rc);
    CHECK(count_lines(r.out, "created ") == 7 + 9, "acme run: want 16 \"created\" lines (queue emails once)");
    expect_contains(r.out, "created stream ACME_TASKS\n", "acme output");
    expect_contains(r.out, "created kv bucket acme_checkpoints\n", "acme output");
    expect_contains(r.out, "created consumer q_bulk_normal\n", "acme output");
    run_free(&r);

    want_stream tasks = {"ACME_TASKS", "acme.task.>", js_WorkQueuePolicy, js_DiscardNew, 90 * SEC_NS, 0,
                         5000, 64 * 1048576, 65536};
    want_stream dlq = {"ACME_DLQ", "acme.dlq.>", js_LimitsPolicy, js_DiscardOld, 2 * MIN_NS, 3 * DAY_NS, -1, -1, -1};
    expect_stream(&tasks);
    expect_stream(&dlq);
    expect_kv("acme_leader", 5 * SEC_NS);
    expect_kv("acme_agents", 20 * SEC_NS);
    expect_kv("acme_cancel", 2 * HOUR_NS);
    expect_kv("acme_checkpoints", DAY_NS);
    expect_kv("acme_control", 0);
    expect_queue("acme", "ACME_TASKS", "emails", 45 * SEC_NS, 64);
    expect_queue("acme", "ACME_TASKS", "reports", 45 * SEC_NS, 64);
    expect_queue("acme", "ACME_TASKS", "bulk", 45 * SEC_NS, 64);
    CHECK(consumer_info("ACME_TASKS", "q_default_high") == NULL, "queue default was created though not configured");
    CHECK(stream_info("JETSCHED_TASKS") == NULL, "JETSCHED_TASKS was created for prefix acme");

    /* The default prefix lives beside it; rerunning acme changes nothing. */
    cli_run(nats_url, "default", (const char *[]){"--config", base_config(), "init", NULL}, &r);
    CHECK(r.rc == 0, "default-prefix run beside acme: exit %d, want 0", r.rc);
    run_free(&r);
    expect_default_objects();

    snapshot before, after;
    snap_take(&before, "acme", "ACME", "bulk");
    api_watch w;
    int mutating;
    char seen[2048];
    watch_start(&w);
    cli_run(nats_url, "acme-again", (const char *[]){"--config", cfg, "init", "--queue", "bulk", NULL}, &r);
    watch_stop(&w, &mutating, seen, sizeof seen);
    CHECK(r.rc == 0, "acme rerun: exit %d, want 0", r.rc);
    CHECK(count_lines(r.out, "ok      ") == 16 && count_lines(r.out, "created ") == 0,
          "acme rerun: want 16 unchanged objects");
    CHECK(mutating == 0, "acme rerun made %d changing API requests: %s", mutating, seen);
    run_free(&r);
    snap_take(&after, "acme", "ACME", "bulk");
    snap_expect_same(&before, &after, "acme rerun");
    snap_free(&before);
    snap_free(&after);

    /* An unusable prefix is refused before anything is touched. */
    cli_run(nats_url, "bad-prefix",
            (const char *[]){"--config", write_config("bad.conf", "nats = { prefix = \"a.b\"; };\n"), "init", NULL},
            &r);
    CHECK(r.rc == 1, "prefix a.b: exit %d, want 1", r.rc);
    expect_contains(r.err, "nats.prefix \"a.b\"", "prefix a.b error");
    run_free(&r);
}

/* Runs init expecting a refusal that changes nothing; returns stderr (free it). */
static char *expect_refusal(const char *tag, const char *cfg, const snapshot *before)
{
    run_result r;
    api_watch w;
    int mutating;
    char seen[2048];
    watch_start(&w);
    cli_run(nats_url, tag, (const char *[]){"--config", cfg, "init", NULL}, &r);
    watch_stop(&w, &mutating, seen, sizeof seen);
    CHECK(r.rc == 1, "%s: exit %d, want 1", tag, r.rc);
    CHECK(mutating == 0, "%s: %d changing API requests despite the conflict: %s", tag, mutating, seen);
    CHECK(count_lines(r.out, "created ") == 0, "%s: reported creating objects despite the conflict", tag);
    expect_contains(r.err, "refusing to change it", tag);
    snapshot after;
    snap_take(&after, "jetsched", "JETSCHED", "default");
    snap_expect_same(before, &after, tag);
    snap_free(&after);
    char *err = r.err;
    r.err = NULL;
    run_free(&r);
    return err;
}

static void scenario_conflict_stream(bool retention)
{
    jsStreamConfig sc;
    const char *subjects[1];
    jetsched_tasks_config(&sc, subjects);
    if (retention)
        sc.Retention = js_LimitsPolicy;
    else
        sc.Duplicates = MIN_NS;
    add_stream(&sc);
    snapshot before;
    snap_take(&before, "jetsched", "JETSCHED", "default");
    char *err = expect_refusal(retention ? "limits-stream" : "dup-stream", base_config(), &before);
    if (retention)
        expect_contains(err, "stream JETSCHED_TASKS: retention is \"limits\", jetsched needs \"workqueue\"",
                        "refusal message");
    else
        expect_contains(err, "stream JETSCHED_TASKS: duplicate window is 1m, jetsched needs 2m "
                             "(jetstream.duplicate_window)", "refusal message");
    free(err);
    /* Nothing else was created either (the check pass comes first). */
    CHECK(stream_info("JETSCHED_DLQ") == NULL, "JETSCHED_DLQ was created despite the conflict");
    CHECK(stream_info("KV_jetsched_leader") == NULL, "bucket jetsched_leader was created despite the conflict");
    snap_free(&before);

    /* With the matching setting the same stream is accepted as it is. */
    const char *ok_cfg = retention ? NULL
                                   : write_config("dup1m.conf", "jetstream = { max_bytes = 67108864; "
                                                                "duplicate_window = \"1m\"; };\n");
    if (ok_cfg) {
        run_result r;
        cli_run(nats_url, "dup-matching", (const char *[]){"--config", ok_cfg, "init", NULL}, &r);
        CHECK(r.rc == 0, "duplicate_window = 1m: exit %d, want 0", r.rc);
        expect_contains(r.out, "ok      stream JETSCHED_TASKS (unchanged)\n", "duplicate_window = 1m output");
        run_free(&r);
    }
}

static void scenario_conflict_overlap(void)
{
    jsStreamConfig sc;
    const char *subjects[1] = {"jetsched.>"};
    jsStreamConfig_Init(&sc);
    sc.Name = "OTHER";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    add_stream(&sc);
    run_result r;
    cli_run(nats_url, "overlap", (const char *[]){"--config", base_config(), "init", NULL}, &r);
    CHECK(r.rc == 1, "overlapping stream: exit %d, want 1", r.rc);
    expect_contains(r.err, "stream JETSCHED_TASKS: its subjects \"jetsched.task.>\" overlap those of the existing "
                           "stream OTHER", "overlap message");
    run_free(&r);
    CHECK(stream_info("JETSCHED_TASKS") == NULL, "JETSCHED_TASKS exists despite the overlap");
    jsStreamInfo *si = stream_info("OTHER");
    CHECK(si && si->Config->SubjectsLen == 1 && strcmp(si->Config->Subjects[0], "jetsched.>") == 0,
          "stream OTHER was changed");
    jsStreamInfo_Destroy(si);
}

static void replace_consumer(const char *name, int64_t ack_wait_ns, int64_t max_deliver)
{
    char filter[128];
    snprintf(filter, sizeof filter, "jetsched.task.default.%s", name + strlen("q_default_"));
    if (js_DeleteConsumer(js, "JETSCHED_TASKS", name, NULL, NULL) != NATS_OK)
        die("delete consumer %s: %s", name, nats_GetLastError(NULL));
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = name;
    cc.FilterSubject = filter;
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = ack_wait_ns;
    cc.MaxDeliver = max_deliver;
    cc.MaxAckPending = 1000;
    jsConsumerInfo *ci = NULL;
    if (js_AddConsumer(&ci, js, "JETSCHED_TASKS", &cc, NULL, NULL) != NATS_OK)
        die("add consumer %s: %s", name, nats_GetLastError(NULL));
    jsConsumerInfo_Destroy(ci);
}

static void scenario_conflict_consumer(void)
{
    const char *cfg = base_config();
    run_result r;
    cli_run(nats_url, "setup", (const char *[]){"--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 0, "setup run: exit %d, want 0", r.rc);
    run_free(&r);
    replace_consumer("q_default_normal", 10 * SEC_NS, -1);
    replace_consumer("q_default_low", 30 * SEC_NS, 5);

    snapshot before;
    snap_take(&before, "jetsched", "JETSCHED", "default");
    char *err = expect_refusal("consumer-conflict", cfg, &before);
    expect_contains(err,
                    "consumer JETSCHED_TASKS/q_default_normal: ack wait is 10s, jetsched needs 30s "
                    "(jetstream.ack_wait); refusing to change it (delete or fix the consumer by hand)",
                    "refusal message");
    expect_contains(err, "consumer JETSCHED_TASKS/q_default_low: max deliver is 5, jetsched needs unlimited",
                    "refusal message");
    CHECK(strstr(err, "q_default_high") == NULL, "the matching consumer q_default_high is named as a conflict");
    free(err);
    snap_free(&before);

    /* --json carries the error too. */
    cli_run(nats_url, "consumer-conflict-json", (const char *[]){"--json", "--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 1, "--json conflict: exit %d, want 1", r.rc);
    json_t *doc = json_loads(r.out, 0, NULL);
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    CHECK(code && strcmp(code, "conflict") == 0, "--json conflict: error.code is %s", code ? code : "missing");
    json_decref(doc);
    run_free(&r);

    /* Fixed by hand (deleted), the next run recreates it as configured. */
    if (js_DeleteConsumer(js, "JETSCHED_TASKS", "q_default_normal", NULL, NULL) != NATS_OK ||
        js_DeleteConsumer(js, "JETSCHED_TASKS", "q_default_low", NULL, NULL) != NATS_OK)
        die("delete consumers: %s", nats_GetLastError(NULL));
    cli_run(nats_url, "after-fix", (const char *[]){"--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 0, "after deleting the consumers: exit %d, want 0", r.rc);
    expect_contains(r.out, "created consumer q_default_normal\n", "after-fix output");
    run_free(&r);
    expect_queue("jetsched", "JETSCHED_TASKS", "default", 30 * SEC_NS, 1000);
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("socket: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void scenario_nats_down(void)
{
    const char *cfg = base_config();
    run_result r;
    char url[128], want[192];
    int port = closed_port();

    snprintf(url, sizeof url, "nats://scott:tiger-secret@127.0.0.1:%d", port);
    cli_run(url, "closed-port", (const char *[]){"--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 3, "closed port: exit %d, want 3", r.rc);
    snprintf(want, sizeof want, "cannot reach NATS at nats://scott:<redacted>@127.0.0.1:%d (nats.url)", port);
    expect_contains(r.err, want, "closed-port message");
    CHECK(strstr(r.err, "tiger-secret") == NULL && strstr(r.out, "tiger-secret") == NULL,
          "the password in nats.url was printed");
    CHECK(r.out[0] == '\0', "closed port: unexpected output on stdout");
    run_free(&r);

    cli_run(url, "closed-port-json", (const char *[]){"--json", "--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 3, "closed port --json: exit %d, want 3", r.rc);
    expect_contains(r.out, "\"unavailable\"", "--json output");
    run_free(&r);

    /* The real server, stopped. */
    CHECK(th_ctl("nats stop") == 0, "could not stop nats-server");
    cli_run(nats_url, "stopped", (const char *[]){"--config", cfg, "init", NULL}, &r);
    CHECK(r.rc == 3, "stopped server: exit %d, want 3", r.rc);
    expect_contains(r.err, "cannot reach NATS at ", "stopped-server message");
    run_free(&r);
    CHECK(th_ctl("nats start") == 0, "could not restart nats-server");
}

static void scenario_race(void)
{
    enum { ROUNDS = 3, PROCS = 3 };
    for (int round = 0; round < ROUNDS; round++) {
        char conf[64], text[256], tag[PROCS][32], P[16], p[16];
        snprintf(p, sizeof p, "race%d", round);
        snprintf(P, sizeof P, "RACE%d", round);
        snprintf(conf, sizeof conf, "race%d.conf", round);
        snprintf(text, sizeof text, "nats = { prefix = \"%s\"; };\njetstream = { max_bytes = 67108864; };\n", p);
        const char *cfg = write_config(conf, text);
        pid_t pids[PROCS];
        for (int i = 0; i < PROCS; i++) {
            snprintf(tag[i], sizeof tag[i], "race%d-%d", round, i);
            pids[i] = cli_start(nats_url, tag[i], (const char *[]){"--config", cfg, "init", NULL});
        }
        for (int i = 0; i < PROCS; i++) {
            run_result r;
            cli_wait(pids[i], tag[i], &r);
            CHECK(r.rc == 0, "%s: exit %d, want 0 (concurrent init)", tag[i], r.rc);
            CHECK(count_lines(r.out, "created ") + count_lines(r.out, "ok      ") == N_OBJS,
                  "%s: want %d objects reported", tag[i], N_OBJS);
            run_free(&r);
        }
        char tasks[32], kv[48];
        snprintf(tasks, sizeof tasks, "%s_TASKS", P);
        snprintf(kv, sizeof kv, "%s_leader", p);
        jsStreamInfo *si = stream_info(tasks);
        CHECK(si && si->Config->Retention == js_WorkQueuePolicy, "%s missing or wrong after the race", tasks);
        jsStreamInfo_Destroy(si);
        expect_kv(kv, 10 * SEC_NS);
        char filter[64];
        snprintf(filter, sizeof filter, "%s.task.default.low", p);
        expect_consumer(tasks, "q_default_low", filter, 30 * SEC_NS, 1000);

        run_result r;
        cli_run(nats_url, "race-after", (const char *[]){"--config", cfg, "init", NULL}, &r);
        CHECK(r.rc == 0 && count_lines(r.out, "ok      ") == N_OBJS, "after the race: want every object unchanged");
        run_free(&r);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: init_test twice|prefix|conflict_retention|conflict_duplicates|conflict_consumer|"
            "conflict_overlap|nats_down|race");
    th_require_env("JETSCHED_BUILD_DIR");
    nats_url = th_require_env("JETSCHED_TEST_NATS_URL");
    tmp = th_tmpdir();
    if (natsConnection_ConnectTo(&nc, nats_url) != NATS_OK || natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        die("connect to %s: %s", nats_url, nats_GetLastError(NULL));

    const char *s = argv[1];
    if (strcmp(s, "twice") == 0)
        scenario_twice();
    else if (strcmp(s, "prefix") == 0)
        scenario_prefix();
    else if (strcmp(s, "conflict_retention") == 0)
        scenario_conflict_stream(true);
    else if (strcmp(s, "conflict_duplicates") == 0)
        scenario_conflict_stream(false);
    else if (strcmp(s, "conflict_consumer") == 0)
        scenario_conflict_consumer();
    else if (strcmp(s, "conflict_overlap") == 0)
        scenario_conflict_overlap();
    else if (strcmp(s, "nats_down") == 0)
        scenario_nats_down();
    else if (strcmp(s, "race") == 0)
        scenario_race();
    else
        die("unknown scenario %s", s);

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    free(tmp);
    if (failures) {
        fprintf(stderr, "init_test %s: %d check(s) failed\n", s, failures);
        return 1;
    }
    fprintf(stderr, "init_test %s: ok\n", s);
    return 0;
}
