/* jetbench: jetsched's end-to-end benchmark against the raw JetStream
 * ceiling measured in the same run with the same client library (libnats).
 * Run through bench/run, which builds, starts throwaway servers
 * (tests/harness/with-servers), prepares the schema and NATS objects and
 * calls this program. bench/README.md describes every row and the method.
 *
 *   (a) raw JetStream: async publish, pull-and-ack from a backlog, both at
 *       once (the ceiling), and batch-1 pulls (agentd's pattern) for context
 *   (b) jetsched end to end: publish -> agentd -> noop -> history -> ack
 *   (c) submit-to-start latency at 10% and 50% of the ceiling rate
 *   (d) cron fire lag: 1,000 schedules every second, steady state and a leader kill (jetbench_cron.c)
 *   (e) RSS of agentd (idle, under load), nats-server and this client
 *   (g) 64 KiB payloads: raw JetStream and jetsched (native noop, history on) in msg/s and MB/s
 * and at the end the capacity table: tasks/s per fully used core of agentd,
 * nats-server and PostgreSQL, from the CPU per task of the runs above. */
#include "jetbench.h"
#include <jetsched/natsconn.h>

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---- options ---- */

static struct {
    const char *build, *src, *out;
    const char *compare;      /* a second build whose agentd is measured too (A/B in one run) */
    long n;                   /* messages per throughput measurement */
    int payload;
    int window;               /* async publish window */
    int batch;                /* raw pull batch */
    int history_batch;        /* agentd history.batch_size; 0: agentd's default */
    int conc[8], nconc;
    long large_n;             /* messages of the (g) rows; 0: not run */
    int large_payload;        /* their payload (65536) */
    double lat_seconds;
    bool quick;
    bool native_only;         /* only the native noop, history on (and the compare build's): an A/B of agentd */
    bool api_only;            /* only (f): schedulerd's API and bursts against raw async publish */
    bool large_only;          /* only (g): large payloads, raw and jetsched at the first --concurrency */
    bool cron_only;           /* only (d): cron fire lag (steady state, leader kill) against raw async publish */
    json_t *meta;
} opt = {.n = 100000, .payload = 128, .window = 4096, .batch = 256, .lat_seconds = 8, .large_n = -1,
         .large_payload = 65536};

static void usage(void)
{
    fprintf(stderr,
            "usage: jetbench --build DIR --src DIR [--out FILE] [--n N] [--payload BYTES] [--window N]\n"
            "                [--batch N] [--concurrency 32,128] [--lat-seconds S] [--quick] [--meta KEY=VALUE]...\n"
            "                [--compare-build DIR] [--history-batch N] [--native-only] [--api-only]\n"
            "                [--cron-only] [--large-only] [--large-n N] [--large-payload BYTES]\n"
            "Runs inside tests/harness/with-servers --nats --pg (use bench/run).\n");
    exit(2);
}

static void parse_conc(const char *s)
{
    opt.nconc = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && opt.nconc < 8; t = strtok_r(NULL, ",", &save)) {
        int c = atoi(t);
        if (c < 1 || c > 4096)
            jb_die("bad concurrency %s", t);
        opt.conc[opt.nconc++] = c;
    }
    if (!opt.nconc)
        usage();
}

static void parse_args(int argc, char **argv)
{
    opt.meta = json_object();
    bool n_set = false, lat_set = false, conc_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
        if (ARG("--build"))
            opt.build = v;
        else if (ARG("--src"))
            opt.src = v;
        else if (ARG("--compare-build"))
            opt.compare = v;
        else if (ARG("--out"))
            opt.out = v;
        else if (ARG("--n"))
            opt.n = atol(v), n_set = true;
        else if (ARG("--payload"))
            opt.payload = atoi(v);
        else if (ARG("--large-n"))
            opt.large_n = atol(v);
        else if (ARG("--large-payload"))
            opt.large_payload = atoi(v);
        else if (ARG("--window"))
            opt.window = atoi(v);
        else if (ARG("--history-batch"))
            opt.history_batch = atoi(v);
        else if (ARG("--batch"))
            opt.batch = atoi(v);
        else if (ARG("--concurrency"))
            parse_conc(v), conc_set = true;
        else if (ARG("--lat-seconds"))
            opt.lat_seconds = atof(v), lat_set = true;
        else if (ARG("--meta")) {
            const char *eq = strchr(v, '=');
            if (!eq)
                usage();
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(eq - v), v);
            json_object_set_new(opt.meta, key, json_string(eq + 1));
        } else if (!strcmp(a, "--quick"))
            opt.quick = true;
        else if (!strcmp(a, "--native-only"))
            opt.native_only = true;
        else if (!strcmp(a, "--api-only"))
            opt.api_only = true;
        else if (!strcmp(a, "--large-only"))
            opt.large_only = true;
        else if (!strcmp(a, "--cron-only"))
            opt.cron_only = true;
        else
            usage();
#undef ARG
    }
    if (!opt.build || !opt.src)
        usage();
    if (opt.quick) {
        if (!n_set)
            opt.n = 5000;
        if (!lat_set)
            opt.lat_seconds = 2;
    }
    if (!conc_set)
        parse_conc("32,128");
    /* (g): a fixed count, not --n: 20,000 x 64 KiB = 1.3 GB runs a few seconds (100,000 would be 6.5 GB). */
    if (opt.large_n < 0)
        opt.large_n = opt.quick ? 1000 : 20000;
    if (opt.n < 100 || opt.payload < 16 || opt.payload > 1 << 20 || opt.window < 1 || opt.batch < 1 ||
        opt.lat_seconds <= 0 || (opt.large_n > 0 && opt.large_n < 100) || opt.large_payload < 16 ||
        opt.large_payload > 1 << 20)
        jb_die("option out of range");
}

/* ---- the report: rows for the table, and the same in JSON ---- */

typedef struct row {
    char section[4];
    char label[96];
    char value[48];
    char vs[24];              /* ratio to the ceiling */
    char target[40];
    char verdict[12];         /* "met", "MISSED", "" */
    char note[160];
    json_t *j;
} row;

static row rows[64];
static int nrows;
static double ceiling = NAN;  /* raw end-to-end msgs/s */

static row *add_row(const char *section, const char *id, const char *label)
{
    if (nrows == 64)
        jb_die("too many rows");
    row *r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->section, sizeof r->section, "%s", section);
    snprintf(r->label, sizeof r->label, "%s", label);
    r->j = json_pack("{s:s,s:s,s:s}", "id", id, "section", section, "label", label);
    return r;
}

static void row_rate(row *r, double rate)
{
    if (isnan(rate)) {
        snprintf(r->value, sizeof r->value, "n/a");
        json_object_set_new(r->j, "value", json_null());
    } else {
        snprintf(r->value, sizeof r->value, "%.0f msg/s", rate);
        json_object_set_new(r->j, "value", json_real(round(rate)));
    }
    json_object_set_new(r->j, "unit", json_string("msg/s"));
    if (!isnan(rate) && !isnan(ceiling) && ceiling > 0) {
        snprintf(r->vs, sizeof r->vs, "%.0f%%", 100.0 * rate / ceiling);
        json_object_set_new(r->j, "ratio_to_ceiling", json_real(round(rate / ceiling * 1000) / 1000));
    } else {
        snprintf(r->vs, sizeof r->vs, "-");
        json_object_set_new(r->j, "ratio_to_ceiling", json_null());
    }
}

static void row_note(row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row_note(row *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof r->note, fmt, ap);
    va_end(ap);
    json_object_set_new(r->j, "note", json_string(r->note));
}

static void row_target(row *r, const char *target, int met)
{
    snprintf(r->target, sizeof r->target, "%s", target);
    snprintf(r->verdict, sizeof r->verdict, "%s", met < 0 ? "n/a" : met ? "met" : "MISSED");
    json_object_set_new(r->j, "target", json_string(target));
    json_object_set_new(r->j, "target_met", met < 0 ? json_null() : json_boolean(met));
}

static void row_na(row *r, const char *why)
{
    snprintf(r->value, sizeof r->value, "n/a");
    snprintf(r->vs, sizeof r->vs, "-");
    json_object_set_new(r->j, "value", json_null());
    json_object_set_new(r->j, "available", json_false());
    row_note(r, "%s", why);
}

static void row_mem(row *r, long kb)
{
    if (kb < 0) {
        row_na(r, "process not found");
        return;
    }
    snprintf(r->value, sizeof r->value, "%.1f MiB", (double)kb / 1024.0);
    snprintf(r->vs, sizeof r->vs, "-");
    json_object_set_new(r->j, "value", json_real(round((double)kb / 102.4) / 10));
    json_object_set_new(r->j, "unit", json_string("MiB"));
    json_object_set_new(r->j, "kb", json_integer(kb));
}

/* ---- environment ---- */

static const char *nats_url, *pg_dsn, *state_dir;
static char workdir[512];
static natsConnection *pub_nc, *cons_nc;
static jsCtx *js;
static PGconn *pg;
static pid_t nats_pid, pg_pid;
static char payload[1 << 20], large_payload[1 << 20];
static bool have_history_key, have_lua;
static char lua_dir[600];

static natsConnection *connect_nats(void)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, nats_url);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectBufSize(o, 8 * 1024 * 1024);
    if (natsConnection_Connect(&nc, o) != NATS_OK)
        jb_die("cannot connect to %s", nats_url);
    natsOptions_Destroy(o);
    return nc;
}

static bool schema_has(const char *key)
{
    char cmd[800], line[512];
    snprintf(cmd, sizeof cmd, "'%s/agentd/agentd' --print-schema 2>/dev/null", opt.build);
    FILE *p = popen(cmd, "r");
    bool found = false;
    size_t kl = strlen(key);
    while (p && fgets(line, sizeof line, p))
        if (!strncmp(line, key, kl) && line[kl] == ' ')
            found = true;
    if (p)
        pclose(p);
    return found;
}

/* A JSON-looking body of exactly len bytes. */
static void fill_payload(char *buf, int len)
{
    int p = snprintf(buf, (size_t)len, "{\"bench\":\"");
    while (p < len - 2)
        buf[p++] = 'x';
    buf[p++] = '"';
    buf[p++] = '}';
}

static void setup(void)
{
    nats_url = getenv("JETSCHED_TEST_NATS_URL");
    pg_dsn = getenv("JETSCHED_TEST_PG_DSN");
    state_dir = getenv("JETSCHED_TEST_STATE");
    if (!nats_url || !pg_dsn || !state_dir)
        jb_die("run under tests/harness/with-servers --nats --pg (use bench/run)");
    setenv("JETSCHED_NATS_URL", nats_url, 1);
    setenv("JETSCHED_PG_DSN", pg_dsn, 1);
    snprintf(workdir, sizeof workdir, "%s/jetbench", state_dir);
    mkdir(workdir, 0755);
    pub_nc = connect_nats();
    cons_nc = connect_nats();
    js = jb_js_context(pub_nc, opt.window);
    pg = jb_pg_connect(pg_dsn);
    char path[700];
    snprintf(path, sizeof path, "%s/nats/nats.pid", state_dir);
    nats_pid = jb_read_pidfile(path);
    snprintf(path, sizeof path, "%s/pg/data/postmaster.pid", state_dir);
    pg_pid = jb_read_pidfile(path);
    fill_payload(payload, opt.payload);
    fill_payload(large_payload, opt.large_payload);
    have_history_key = schema_has("history.enabled");
    char script[700];
    snprintf(script, sizeof script, "%s/scripts/lua/noop.lua", opt.src);
    have_lua = access(script, R_OK) == 0 && schema_has("agent.lua_dir");
    if (have_lua) {
        /* Served as handler "lua_noop" so that it cannot be confused with the native noop. */
        snprintf(lua_dir, sizeof lua_dir, "%s/lua", workdir);
        mkdir(lua_dir, 0755);
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/lua_noop.lua'", script, lua_dir);
        if (system(cmd) != 0)
            jb_die("cannot copy %s", script);
    }
}

/* ---- (a) raw JetStream ---- */

#define RAW_SUBJECT "jetsched.task.rawjs.normal"
#define RAW_CONSUMER "q_rawjs_normal"

static jb_cons_spec raw_spec(long target, int batch, int window)
{
    return (jb_cons_spec){.nc = cons_nc, .stream = TASK_STREAM, .consumer = RAW_CONSUMER, .batch = batch,
                          .window = window, .expires_ms = 5000, .target = target};
}

static double secs(int64_t a, int64_t b) { return (double)(b - a) / 1e9; }

static void wait_empty_or_die(int64_t base, const char *what)
{
    if (!jb_wait_stream(js, TASK_STREAM, base, 10, 60000))
        jb_die("%s: the task stream did not return to %lld messages", what, (long long)base);
}

static struct {
    double publish, consume, e2e;
    double b1[8];
    int window_used;
    double cpu_nats_us, cpu_client_us; /* per message, end to end phase (mean of the 3) */
    double e2e_runs[3];
    int n_e2e;
} raw;

static void run_ceiling(void);

static void run_raw(void)
{
    long n = opt.n;
    int64_t base = jb_stream_msgs(js, TASK_STREAM);
    int window = opt.batch * 3 > 1000 ? 1000 : opt.batch * 3; /* below the consumers' MaxAckPending (1000) */
    raw.window_used = window;
    jb_pub_result pr;

    /* Publish only: N messages into a backlog. */
    jb_log("(a) raw publish of %ld messages", n);
    jb_pub_spec ps = {RAW_SUBJECT, "noop", "rawpub-", payload, opt.payload, n, 0, NULL};
    long ok = jb_publish(js, &ps, &pr);
    if (ok != n)
        jb_die("raw publish: %ld of %ld acknowledged", ok, n);
    raw.publish = (double)n / secs(pr.start_ns, pr.end_ns);

    /* Consume only: pull and ack the backlog. */
    jb_log("(a) raw pull-and-ack of the backlog");
    jb_cons_spec cs = raw_spec(n, opt.batch, window);
    jb_consumer *c = jb_consumer_start(&cs);
    int64_t first = 0, last = 0;
    long got = jb_consumer_join(c, 120000, &first, &last, NULL);
    if (got != n)
        jb_die("raw consume: %ld of %ld", got, n);
    int64_t empty = jb_wait_stream(js, TASK_STREAM, base, 2, 60000);
    if (!empty)
        jb_die("raw consume: the stream did not empty");
    raw.consume = (double)n / secs(first, empty);

    raw.window_used = window;
    /* Batch-1 pull requests, `c` outstanding: the pattern agentd uses. */
    for (int k = 0; k < opt.nconc; k++) {
        long m = n / 2;
        char prefix[32];
        snprintf(prefix, sizeof prefix, "rawb1c%d-", opt.conc[k]);
        jb_log("(a) raw batch-1 pulls, %d outstanding, %ld messages", opt.conc[k], m);
        jb_pub_spec p1 = {RAW_SUBJECT, "noop", prefix, payload, opt.payload, m, 0, NULL};
        if (jb_publish(js, &p1, &pr) != m)
            jb_die("raw publish for batch-1 failed");
        jb_cons_spec c1 = raw_spec(m, 1, opt.conc[k]);
        c = jb_consumer_start(&c1);
        got = jb_consumer_join(c, 180000, &first, &last, NULL);
        empty = jb_wait_stream(js, TASK_STREAM, base, 2, 60000);
        raw.b1[k] = got == m && empty ? (double)m / secs(first, empty) : NAN;
    }

    run_ceiling();
    run_ceiling();
}

/* End to end: publish and pull-and-ack at the same time. Measured three
 * times (twice here, once after the jetsched throughput runs); the ceiling is
 * the median, so that one disturbed measurement on a shared machine does not
 * move every ratio. */
static void run_ceiling(void)
{
    long n = opt.n;
    int k = raw.n_e2e;
    int64_t base = jb_stream_msgs(js, TASK_STREAM), first = 0, last = 0;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rawe2e%d-", k);
    jb_log("(a) raw end to end (publish and consume at once), %ld messages, measurement %d of 3", n, k + 1);
    jb_cons_spec ce = raw_spec(n, opt.batch, raw.window_used);
    double c_nats = jb_cpu_ms(nats_pid), c_self = jb_cpu_ms(getpid());
    jb_consumer *c = jb_consumer_start(&ce);
    jb_pub_spec pe = {RAW_SUBJECT, "noop", prefix, payload, opt.payload, n, 0, NULL};
    jb_pub_result pr;
    long ok = jb_publish(js, &pe, &pr);
    long got = jb_consumer_join(c, 120000, &first, &last, NULL);
    int64_t empty = jb_wait_stream(js, TASK_STREAM, base, 2, 60000);
    if (ok != n || got != n || !empty)
        jb_die("raw end to end: published %ld, consumed %ld of %ld", ok, got, n);
    raw.e2e_runs[k] = (double)n / secs(pr.start_ns, empty);
    raw.cpu_nats_us += (jb_cpu_ms(nats_pid) - c_nats) * 1000.0 / (double)n / 3;
    raw.cpu_client_us += (jb_cpu_ms(getpid()) - c_self) * 1000.0 / (double)n / 3;
    raw.n_e2e++;
    double v[3];
    memcpy(v, raw.e2e_runs, sizeof v);
    int m = raw.n_e2e;
    for (int i = 1; i < m; i++) /* insertion sort of at most 3 */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    raw.e2e = m == 2 ? (v[0] + v[1]) / 2 : v[m / 2];
    ceiling = raw.e2e;
    wait_empty_or_die(base, "raw");
}

/* ---- (b) jetsched end to end ---- */

typedef struct e2e {
    bool ran, ok, unavailable;
    char why[200];
    int conc, history;
    bool lua;
    long n;                   /* tasks */
    int payload_len;
    double rate, seconds;
    long succeeded;
    long idle_rss_kb, peak_rss_kb, hwm_kb, after_rss_kb;
    double cpu_agent_ms, cpu_nats_ms, cpu_pg_ms, cpu_client_ms;
    double agent_cs_per_task;  /* agentd context switches per task */
    double per_pull, per_query; /* tasks per pull request / per admission query (0: agentd has no such metric) */
} e2e;

/* The sum of every series of counter `name` in a /metrics page (0 when absent):
 * lines "name{labels} value" or "name value". */
static double metric_sum(const char *page, const char *name)
{
    double sum = 0;
    size_t nl = strlen(name);
    for (const char *l = page; *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        if (len > nl && strncmp(l, name, nl) == 0 && (l[nl] == '{' || l[nl] == ' ')) {
            const char *v = l + len;
            while (v > l && v[-1] != ' ')
                v--;
            sum += atof(v);
        }
        l += len + (end ? 1 : 0);
    }
    return sum;
}

/* Batching achieved by agentd in a run: tasks per pull request and per
 * admission query, from its /metrics. */
static void batching_of(const jb_agent *ag, e2e *r)
{
    static char page[1 << 18];
    if (th_http_get(ag->http_port, "/metrics", page, sizeof page) != 200)
        return;
    double tasks = metric_sum(page, "jetsched_agent_admission_tasks_total");
    double pulls = metric_sum(page, "jetsched_agent_pull_requests_total");
    double queries = metric_sum(page, "jetsched_agent_admission_queries_total");
    r->per_pull = pulls > 0 ? tasks / pulls : 0;
    r->per_query = queries > 0 ? tasks / queries : 0;
}

static int run_counter;

static void truncate_history(void)
{
    jb_pg_exec(pg, "TRUNCATE tasks, task_attempts CASCADE");
}

static jb_agent_spec agent_spec(const char *name, int conc, int history, bool lua, const char *build)
{
    return (jb_agent_spec){.build = build ? build : opt.build, .workdir = workdir, .name = name, .queue = "bench",
                           .concurrency = conc, .history = have_history_key ? history : -1,
                           .lua_dir = lua ? lua_dir : NULL, .batch_size = opt.history_batch};
}

/* Why a run that did not finish failed, from PostgreSQL and the DLQ. */
static void explain_failure(e2e *r, int64_t dlq0)
{
    int64_t dlq = jb_stream_msgs(js, DLQ_STREAM) - dlq0;
    char *err = jb_pg_text(pg, "SELECT coalesce(error, '') FROM tasks WHERE status NOT IN ('succeeded', 'running') "
                               "AND error IS NOT NULL LIMIT 1");
    char *by = jb_pg_text(pg, "SELECT string_agg(status || '=' || n, ', ') FROM (SELECT status, count(*) n FROM "
                              "tasks GROUP BY 1 ORDER BY 1) s");
    snprintf(r->why, sizeof r->why, "%s; %lld dead-lettered; %.80s", by[0] ? by : "no history rows",
             (long long)dlq, err);
    free(err);
    free(by);
}

/* With JETBENCH_PERF_DIR (bench/run --perf DIR): `perf record` on agentd
 * during a throughput run (JETBENCH_PERF_ARGS, default "-g"); with
 * JETBENCH_STRACE_DIR instead: `strace -c -f` (syscall counts of every
 * agentd thread into DIR/<run>.strace). The figures of such a run include
 * the tool's overhead (strace's is large: counts only). */
static pid_t perf_start(pid_t target, const char *name)
{
    const char *dir = getenv("JETBENCH_PERF_DIR");
    const char *sdir = getenv("JETBENCH_STRACE_DIR");
    char cmd[1200];
    if (dir && *dir) {
        const char *args = getenv("JETBENCH_PERF_ARGS");
        snprintf(cmd, sizeof cmd, "exec perf record %s -p %d -o '%s/%s.perf.data' >/dev/null 2>&1",
                 args && *args ? args : "-g", (int)target, dir, name);
    } else if (sdir && *sdir) {
        snprintf(cmd, sizeof cmd, "exec strace -c -f -p %d -o '%s/%s.strace' >/dev/null 2>&1", (int)target, sdir,
                 name);
    } else {
        return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    jb_sleep_ms(700); /* perf attaches */
    return pid;
}

static void perf_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGINT);
    waitpid(pid, NULL, 0);
}

/* Publishes one task and waits until it left the stream; false (with the
 * reason) when it was dead-lettered or did not finish in 15 s. */
static bool probe(const char *handler, const char *body, int body_len, const char *prefix, int64_t base,
                  int64_t dlq0, char *why, size_t len)
{
    char id[64];
    snprintf(id, sizeof id, "%sprobe-", prefix);
    jb_pub_spec ps = {"jetsched.task.bench.normal", handler, id, body, body_len, 1, 0, NULL};
    jb_pub_result pr;
    if (jb_publish(js, &ps, &pr) != 1) {
        snprintf(why, len, "the probe task could not be published");
        return false;
    }
    if (!jb_wait_stream(js, TASK_STREAM, base, 20, 15000)) {
        snprintf(why, len, "a probe task with handler %s did not finish in 15 s", handler);
        js_PurgeStream(js, TASK_STREAM, NULL, NULL);
        return false;
    }
    if (jb_stream_msgs(js, DLQ_STREAM) == dlq0)
        return true;
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    const char *reason = NULL, *error = NULL;
    if (js_GetLastMsg(&m, js, DLQ_STREAM, "jetsched.dlq.bench", NULL, &jerr) == NATS_OK) {
        natsMsgHeader_Get(m, "Jetsched-Dead-Reason", &reason);
        natsMsgHeader_Get(m, "Jetsched-Last-Error", &error);
    }
    snprintf(why, len, "agentd dead-lettered a %s task: %s%s%s", handler, reason ? reason : "?", error ? ": " : "",
             error ? error : "");
    natsMsg_Destroy(m);
    return false;
}

/* The tasks of one throughput run: n tasks of `len` bytes, published through
 * `pjs` (its async window). */
typedef struct load {
    long n;
    const char *body;
    int len;
    jsCtx *pjs;
    const char *tag;          /* "" or "-64k": agent names */
} load;

static e2e run_e2e_load(int conc, int history, bool lua, const char *build, const load *L);

static e2e run_e2e(int conc, int history, bool lua, const char *build)
{
    load L = {opt.n, payload, opt.payload, js, ""};
    return run_e2e_load(conc, history, lua, build, &L);
}

static e2e run_e2e_load(int conc, int history, bool lua, const char *build, const load *L)
{
    e2e r = {.ran = true, .conc = conc, .history = history, .lua = lua, .n = L->n, .payload_len = L->len};
    long n = L->n;
    char name[64], prefix[32];
    int k = ++run_counter;
    snprintf(name, sizeof name, "bench-%d-%s-%s-c%d%s%s", k, lua ? "lua" : "native", history ? "hist" : "nohist",
             conc, build ? "-compare" : "", L->tag);
    snprintf(prefix, sizeof prefix, "e%d-", k);
    jb_log("(%s) %s noop, history %s, concurrency %d: %ld tasks of %d B", L->tag[0] ? "g" : "b",
           lua ? "Lua" : "native", history ? "on" : "off", conc, n, L->len);
    truncate_history();
    int64_t base = jb_stream_msgs(js, TASK_STREAM), dlq0 = jb_stream_msgs(js, DLQ_STREAM);
    jb_agent ag;
    jb_agent_spec as = agent_spec(name, conc, history, lua, build);
    jb_agent_start(&ag, &as);
    jb_sleep_ms(1000);
    r.idle_rss_kb = jb_proc_mem(ag.pid).rss_kb;
    /* One probe task first: a handler agentd cannot serve (a Lua noop before
     * the Lua host exists) is reported as unavailable at once. */
    if (!probe(lua ? "lua_noop" : "noop", L->body, L->len, prefix, base, dlq0, r.why, sizeof r.why)) {
        r.unavailable = true;
        jb_agent_stop(&ag, 30000);
        jb_log("    not available: %s", r.why);
        return r;
    }
    truncate_history();
    dlq0 = jb_stream_msgs(js, DLQ_STREAM);
    jb_sampler_watch(0, ag.pid);
    double c_agent = jb_cpu_ms(ag.pid), c_nats = jb_cpu_ms(nats_pid), c_pg = jb_cpu_ms_tree(pg_pid),
           c_self = jb_cpu_ms(getpid());
    long cs0 = jb_ctx_switches(ag.pid);

    pid_t perf = perf_start(ag.pid, name);
    jb_pub_spec ps = {"jetsched.task.bench.normal", lua ? "lua_noop" : "noop", prefix, L->body, L->len, n, 0, NULL};
    jb_pub_result pr;
    long ok = jb_publish(L->pjs, &ps, &pr);
    if (ok != n) {
        snprintf(r.why, sizeof r.why, "only %ld of %ld publishes acknowledged", ok, n);
        perf_stop(perf);
        jb_agent_stop(&ag, 30000);
        return r;
    }
    /* Done = the task stream is back to its size before the run (every task
     * acked) and, with history, PostgreSQL has n succeeded rows. A run that
     * stops making progress for 15 s is abandoned. */
    int64_t last_change = jb_now_ns(), prev = -1, done_ns = 0;
    for (;;) {
        int64_t msgs = jb_stream_msgs(js, TASK_STREAM);
        int64_t now = jb_now_ns();
        if (msgs != prev) {
            prev = msgs;
            last_change = now;
        }
        if (msgs == base) {
            if (!history || !have_history_key) {
                done_ns = now;
                break;
            }
            long s = jb_pg_long(pg, "SELECT count(*) FROM tasks WHERE status = 'succeeded'");
            if (s >= n) {
                done_ns = jb_now_ns();
                break;
            }
            /* held tasks (throttled by a limit, a waiting workflow node) are not failures */
            long bad = jb_pg_long(pg, "SELECT count(*) FROM tasks WHERE status NOT IN ('succeeded', 'running', "
                                      "'queued', 'retrying', 'throttled', 'waiting')");
            if (bad > 0 && s + bad >= n) {
                snprintf(r.why, sizeof r.why, "%ld of %ld tasks did not succeed", bad, n);
                break;
            }
        }
        if (!jb_agent_alive(&ag)) {
            snprintf(r.why, sizeof r.why, "agentd died during the run (log %.150s)", ag.log);
            break;
        }
        if (now - last_change > 15000000000LL) {
            snprintf(r.why, sizeof r.why, "no progress for 15 s");
            break;
        }
        jb_sleep_ms(msgs == base ? 20 : 10);
    }
    perf_stop(perf);
    r.agent_cs_per_task = (double)(jb_ctx_switches(ag.pid) - cs0) / (double)n;
    batching_of(&ag, &r);
    r.cpu_agent_ms = jb_cpu_ms(ag.pid) - c_agent;
    r.cpu_nats_ms = jb_cpu_ms(nats_pid) - c_nats;
    r.cpu_pg_ms = jb_cpu_ms_tree(pg_pid) - c_pg;
    r.cpu_client_ms = jb_cpu_ms(getpid()) - c_self;
    r.peak_rss_kb = jb_sampler_max_kb(0);
    r.hwm_kb = jb_proc_mem(ag.pid).hwm_kb;
    if (done_ns) {
        r.seconds = secs(pr.start_ns, done_ns);
        r.rate = (double)n / r.seconds;
        r.ok = true;
        if (history && have_history_key) {
            r.succeeded = jb_pg_long(pg, "SELECT count(*) FROM tasks WHERE status = 'succeeded'");
            long att = jb_pg_long(pg, "SELECT count(*) FROM task_attempts WHERE status = 'succeeded'");
            if (att != n)
                jb_log("warning: %ld succeeded attempt rows for %ld tasks", att, n);
        }
        int64_t dlq = jb_stream_msgs(js, DLQ_STREAM) - dlq0;
        if (dlq > 0) {
            r.ok = false;
            snprintf(r.why, sizeof r.why, "%lld tasks dead-lettered", (long long)dlq);
        }
    } else if (!r.why[0]) {
        snprintf(r.why, sizeof r.why, "did not finish");
    }
    if (!r.ok && history && have_history_key) {
        char keep[200];
        snprintf(keep, sizeof keep, "%s", r.why);
        explain_failure(&r, dlq0);
        char both[200];
        snprintf(both, sizeof both, "%.60s: %.130s", keep, r.why);
        snprintf(r.why, sizeof r.why, "%s", both);
    }
    jb_sleep_ms(2000);
    r.after_rss_kb = jb_proc_mem(ag.pid).rss_kb;
    jb_sampler_watch(0, 0);
    jb_agent_stop(&ag, 60000);
    /* Leave nothing behind for the next run (a failed run may leave tasks). */
    int64_t left = jb_stream_msgs(js, TASK_STREAM) - base;
    if (left > 0) {
        jb_log("purging %lld tasks left in the stream", (long long)left);
        js_PurgeStream(js, TASK_STREAM, NULL, NULL);
    }
    if (r.ok)
        jb_log("    %.0f tasks/s (%.2f s)", r.rate, r.seconds);
    else
        jb_log("    failed: %s", r.why);
    return r;
}

/* ---- (c) start latency ---- */

typedef struct latrun {
    bool ran;
    double rate, achieved;    /* offered rate, and the rate the paced publisher kept */
    long n;
    jb_lat lat;
    char note[160];
    double cpu_agent_us, cpu_nats_us, cpu_pg_us; /* jetsched runs: CPU per task over the paced run and its drain */
} latrun;

static struct {
    const char *prefix;
    int64_t *recv;
    long cap;
    size_t plen;
    _Atomic long got;
} ev;

static void on_event(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    int64_t now = jb_now_ns();
    const char *subj = natsMsg_GetSubject(m);
    const char *id = strrchr(subj, '.');
    const char *data = natsMsg_GetData(m);
    if (id && ev.prefix && !strncmp(id + 1, ev.prefix, ev.plen) && data &&
        strstr(data, "\"status\":\"running\"") != NULL) {
        long i = strtol(id + 1 + ev.plen, NULL, 10);
        if (i >= 0 && i < ev.cap && ev.recv[i] == 0) {
            ev.recv[i] = now;
            atomic_fetch_add(&ev.got, 1);
        }
    }
    natsMsg_Destroy(m);
}

static long lat_count(double rate)
{
    long n = (long)(rate * opt.lat_seconds);
    return n < 50 ? 50 : n;
}

/* Raw JetStream: publish time -> the raw consumer receiving the message. */
static latrun run_latency_raw(double rate, const char *prefix)
{
    latrun lr = {.ran = true, .rate = rate, .n = lat_count(rate)};
    int64_t *sent = calloc((size_t)lr.n, sizeof *sent), *recv = calloc((size_t)lr.n, sizeof *recv);
    int64_t base = jb_stream_msgs(js, TASK_STREAM);
    jb_log("(c) raw latency at %.0f msg/s for %.0f s", rate, opt.lat_seconds);
    jb_cons_spec cs = raw_spec(lr.n, opt.batch, raw.window_used);
    cs.id_prefix = prefix;
    cs.recv_ns = recv;
    cs.recv_cap = lr.n;
    jb_consumer *c = jb_consumer_start(&cs);
    jb_sleep_ms(200); /* the pull requests are waiting on the server */
    jb_pub_spec ps = {RAW_SUBJECT, "noop", prefix, payload, opt.payload, lr.n, rate, sent};
    jb_pub_result pr;
    jb_publish(js, &ps, &pr);
    lr.achieved = lr.n > 1 ? (double)(lr.n - 1) / secs(sent[0], sent[lr.n - 1]) : rate;
    jb_consumer_join(c, 60000, NULL, NULL, NULL);
    jb_wait_stream(js, TASK_STREAM, base, 10, 30000);
    lr.lat = jb_latency(sent, recv, lr.n);
    free(sent);
    free(recv);
    return lr;
}

/* Runs 1000 tasks through a fresh agent before a latency measurement, so
 * that one-time start-up costs (the history writer connects to PostgreSQL
 * on its first record) stay out of the steady-state figures. */
static void warm_up(const char *prefix)
{
    int64_t base = jb_stream_msgs(js, TASK_STREAM);
    jb_pub_spec ps = {"jetsched.task.bench.normal", "noop", prefix, payload, opt.payload, 1000, 0, NULL};
    jb_pub_result pr;
    jb_publish(js, &ps, &pr);
    if (!jb_wait_stream(js, TASK_STREAM, base, 10, 60000))
        jb_log("warning: the warm-up tasks did not finish");
    jb_sleep_ms(500);
}

/* jetsched: publish time -> the "running" live event reaching this client. */
static latrun run_latency_agent(double rate, double capacity, const char *prefix, pid_t agent_pid)
{
    latrun lr = {.ran = true, .rate = rate, .n = lat_count(rate)};
    int64_t *sent = calloc((size_t)lr.n, sizeof *sent), *recv = calloc((size_t)lr.n, sizeof *recv);
    int64_t base = jb_stream_msgs(js, TASK_STREAM);
    jb_log("(c) jetsched latency at %.0f msg/s for %.0f s", rate, opt.lat_seconds);
    ev.prefix = prefix;
    ev.plen = strlen(prefix);
    ev.recv = recv;
    ev.cap = lr.n;
    atomic_store(&ev.got, 0);
    double c_agent = jb_cpu_ms(agent_pid), c_nats = jb_cpu_ms(nats_pid), c_pg = jb_cpu_ms_tree(pg_pid);
    jb_pub_spec ps = {"jetsched.task.bench.normal", "noop", prefix, payload, opt.payload, lr.n, rate, sent};
    jb_pub_result pr;
    jb_publish(js, &ps, &pr);
    lr.achieved = lr.n > 1 ? (double)(lr.n - 1) / secs(sent[0], sent[lr.n - 1]) : rate;
    /* Wait for the stragglers: at most as long as the backlog takes at the measured capacity. */
    double drain_s = capacity > 0 ? (double)lr.n / capacity : 60;
    int64_t until = jb_now_ns() + (int64_t)((10 + 2 * drain_s) * 1e9);
    while (atomic_load(&ev.got) < lr.n && jb_now_ns() < until)
        jb_sleep_ms(20);
    jb_wait_stream(js, TASK_STREAM, base, 20, 30000);
    natsConnection_Flush(cons_nc);
    ev.prefix = NULL;
    lr.cpu_agent_us = (jb_cpu_ms(agent_pid) - c_agent) * 1000.0 / (double)lr.n;
    lr.cpu_nats_us = (jb_cpu_ms(nats_pid) - c_nats) * 1000.0 / (double)lr.n;
    lr.cpu_pg_us = (jb_cpu_ms_tree(pg_pid) - c_pg) * 1000.0 / (double)lr.n;
    lr.lat = jb_latency(sent, recv, lr.n);
    const char *dump = getenv("JETBENCH_LATENCY_DUMP"); /* debugging: "<index> <sent ms> <latency ms>" lines */
    if (dump && *dump) {
        char path[700];
        snprintf(path, sizeof path, "%s.%s", dump, prefix);
        FILE *f = fopen(path, "w");
        for (long i = 0; f && i < lr.n; i++)
            fprintf(f, "%ld %.3f %.3f\n", i, (double)(sent[i] - sent[0]) / 1e6,
                    recv[i] ? (double)(recv[i] - sent[i]) / 1e6 : -1.0);
        if (f)
            fclose(f);
    }
    if (capacity > 0 && rate > capacity)
        snprintf(lr.note, sizeof lr.note, "offered %.0f/s > agentd capacity %.0f/s: a backlog builds up", rate,
                 capacity);
    free(sent);
    free(recv);
    return lr;
}

/* ---- the report ---- */

static void print_table(FILE *f)
{
    fprintf(f, "\n%-2s %-62s %22s %-10s %-26s %-7s %s\n", "", "figure", "value", "vs ceiling", "target", "", "note");
    const char *sec = "";
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        if (strcmp(sec, r->section)) {
            fputc('\n', f);
            sec = r->section;
        }
        fprintf(f, "%-2s %-62s %22s %-10s %-26s %-7s %s\n", r->section, r->label, r->value, r->vs, r->target,
                r->verdict, r->note);
    }
    fputc('\n', f);
}

static void lat_rows(const char *id, const char *what, const latrun *lr, const latrun *rawlr, bool target)
{
    char label[96], rid[64];
    snprintf(label, sizeof label, "%s @%.0f/s: p50 / p99 / p99.9", what, lr->rate);
    snprintf(rid, sizeof rid, "%s", id);
    row *r = add_row("c", rid, label);
    if (!lr->ran || lr->lat.n == 0) {
        row_na(r, lr->ran ? "no task started" : "not run");
        return;
    }
    snprintf(r->value, sizeof r->value, "%.2f/%.2f/%.2f ms", lr->lat.p50, lr->lat.p99, lr->lat.p999);
    json_object_set_new(r->j, "unit", json_string("ms"));
    json_object_set_new(r->j, "rate", json_real(round(lr->rate)));
    json_object_set_new(r->j, "achieved_rate", json_real(round(lr->achieved)));
    json_object_set_new(r->j, "samples", json_integer(lr->lat.n));
    json_object_set_new(r->j, "missing", json_integer(lr->lat.missing));
    json_object_set_new(r->j, "p50_ms", json_real(round(lr->lat.p50 * 1000) / 1000));
    json_object_set_new(r->j, "p99_ms", json_real(round(lr->lat.p99 * 1000) / 1000));
    json_object_set_new(r->j, "p999_ms", json_real(round(lr->lat.p999 * 1000) / 1000));
    json_object_set_new(r->j, "max_ms", json_real(round(lr->lat.max * 1000) / 1000));
    json_object_set_new(r->j, "mean_ms", json_real(round(lr->lat.mean * 1000) / 1000));
    if (rawlr && rawlr->lat.n > 0 && rawlr->lat.p99 > 0) {
        snprintf(r->vs, sizeof r->vs, "x%.1f p99", lr->lat.p99 / rawlr->lat.p99);
        json_object_set_new(r->j, "p99_ratio_to_raw", json_real(round(lr->lat.p99 / rawlr->lat.p99 * 100) / 100));
    } else {
        snprintf(r->vs, sizeof r->vs, "-");
    }
    if (target)
        row_target(r, "p99 <= 10 ms", lr->lat.p99 <= 10.0);
    if (rawlr) /* a jetsched run: its CPU per task at this paced rate */
        json_object_set_new(r->j, "cpu_us_per_task",
                            json_pack("{s:f,s:f,s:f}", "agentd", round(lr->cpu_agent_us * 10) / 10, "nats_server",
                                      round(lr->cpu_nats_us * 10) / 10, "postgres", round(lr->cpu_pg_us * 10) / 10));
    char note[160];
    int k = snprintf(note, sizeof note, "%ld samples, max %.1f ms", lr->lat.n, lr->lat.max);
    if (lr->achieved < 0.97 * lr->rate)
        k += snprintf(note + k, sizeof note - (size_t)k, ", publisher kept only %.0f/s", lr->achieved);
    if (lr->lat.missing)
        k += snprintf(note + k, sizeof note - (size_t)k, ", %ld MISSING", lr->lat.missing);
    if (lr->note[0])
        snprintf(note + k, sizeof note - (size_t)k, "; %s", lr->note);
    row_note(r, "%s", note);
}

static void e2e_row(const char *id, const char *label, const e2e *r, bool is_best)
{
    row *w = add_row("b", id, label);
    if (!r->ran) {
        row_na(w, "not run");
        return;
    }
    json_object_set_new(w->j, "concurrency", json_integer(r->conc));
    json_object_set_new(w->j, "history", json_boolean(r->history));
    if (r->unavailable) {
        row_na(w, "");
        row_note(w, "not available: %s", r->why);
        return;
    }
    if (!r->ok) {
        row_rate(w, NAN);
        json_object_set_new(w->j, "available", json_false());
        row_note(w, "FAILED: %s", r->why);
        return;
    }
    row_rate(w, r->rate);
    json_object_set_new(w->j, "seconds", json_real(round(r->seconds * 1000) / 1000));
    double us = 1000.0 / (double)r->n; /* CPU ms over the run -> us per task */
    json_object_set_new(w->j, "cpu_us_per_task",
                        json_pack("{s:f,s:f,s:f,s:f}", "agentd", round(r->cpu_agent_ms * us * 10) / 10,
                                  "nats_server", round(r->cpu_nats_ms * us * 10) / 10, "postgres",
                                  round(r->cpu_pg_ms * us * 10) / 10, "client", round(r->cpu_client_ms * us * 10) / 10));
    json_object_set_new(w->j, "agentd_context_switches_per_task", json_real(round(r->agent_cs_per_task * 100) / 100));
    if (raw.cpu_nats_us > 0) /* issue 14's CPU budget: ratios to raw nats-server's CPU per message, same run */
        json_object_set_new(w->j, "cpu_ratio_to_raw_nats",
                            json_pack("{s:f,s:f,s:f}", "agentd", round(r->cpu_agent_ms * us / raw.cpu_nats_us * 100) / 100,
                                      "nats_server", round(r->cpu_nats_ms * us / raw.cpu_nats_us * 100) / 100,
                                      "postgres", round(r->cpu_pg_ms * us / raw.cpu_nats_us * 100) / 100));
    row_note(w, "%sCPU us/task: agentd %.0f, nats %.0f, pg %.0f, client %.0f; agentd %.1f ctx sw/task",
             is_best ? "best; " : "", r->cpu_agent_ms * us, r->cpu_nats_ms * us, r->cpu_pg_ms * us,
             r->cpu_client_ms * us, r->agent_cs_per_task);
}

/* (d): one row for steady state, one for the fires due during a leader kill. */
static void cron_lat_row(const char *id, const char *label, const jb_lat *l, const char *target, bool met)
{
    row *r = add_row("d", id, label);
    snprintf(r->value, sizeof r->value, "p50 %.1f / p99 %.1f ms", l->p50, l->p99);
    snprintf(r->vs, sizeof r->vs, "-");
    json_object_set_new(r->j, "unit", json_string("ms"));
    json_object_set_new(r->j, "value", json_real(round(l->p99 * 100) / 100));
    json_object_set_new(r->j, "p50_ms", json_real(round(l->p50 * 100) / 100));
    json_object_set_new(r->j, "p99_ms", json_real(round(l->p99 * 100) / 100));
    json_object_set_new(r->j, "max_ms", json_real(round(l->max * 100) / 100));
    json_object_set_new(r->j, "fires", json_integer(l->n));
    json_object_set_new(r->j, "missing", json_integer(l->missing));
    row_target(r, target, met);
}

/* Issue 15's bound on a burst's fire lag: p99 <= max(10 ms, 1.25 x N / R),
 * N fires due at once, R raw async publish's rate in the same run (10 ms
 * when R was not measured). */
static double cron_bound_ms(long n, double R)
{
    return R > 0 ? fmax(10.0, 1.25 * (double)n / R * 1000.0) : 10.0;
}

static void cron_rows(const jb_cron_result *c, double R)
{
    if (!c->ran) {
        row_na(add_row("d", "cron_fire_lag", "cron fire lag"), "not available: schedulerd is not built");
        return;
    }
    if (!c->ok) {
        row *r = add_row("d", "cron_fire_lag", "cron fire lag");
        row_na(r, "");
        row_note(r, "FAILED: %s", c->why);
        return;
    }
    char label[96], target[64];
    snprintf(label, sizeof label, "cron fire lag, %d schedules every second, steady state", c->schedules);
    double bound = cron_bound_ms(c->schedules, R);
    snprintf(target, sizeof target, "p99 <= %.1f ms = max(10, 1.25 N/R)", bound);
    cron_lat_row("cron_fire_lag", label, &c->steady, target, c->steady.p99 <= bound);
    row *r = &rows[nrows - 1];
    json_object_set_new(r->j, "target_p99_ms", json_real(round(bound * 10) / 10));
    json_object_set_new(r->j, "burst_first_ms", json_real(round(c->burst_first_ms * 10) / 10));
    json_object_set_new(r->j, "burst_last_ms", json_real(round(c->burst_last_ms * 10) / 10));
    json_object_set_new(r->j, "commit_p99_ms", json_real(c->steady_commit_p99_ms));
    row_note(r, "max %.0f ms, %ld fires, %ld missing; per second the first task is out at %.0f ms, the last at "
             "%.0f ms; fire rows committed (created_at - fire time, p99) %+.0f ms: negative = ahead of the due "
             "time (fire-ahead plan)",
             c->steady.max, c->steady.n, c->steady.missing, c->burst_first_ms, c->burst_last_ms,
             c->steady_commit_p99_ms);
    snprintf(target, sizeof target, "max <= TTL + 1 s = %d ms", c->ttl_ms + 1000);
    cron_lat_row("cron_fire_lag_leader_kill", "cron fire lag, fires due during a leader kill -9", &c->kill, target,
                 c->kill.n > 0 && c->kill.max <= c->ttl_ms + 1000);
    r = &rows[nrows - 1];
    json_object_set_new(r->j, "takeover_ms", json_real(round(c->takeover_ms)));
    json_object_set_new(r->j, "leader_ttl_ms", json_integer(c->ttl_ms));
    json_object_set_new(r->j, "fires_expected", json_integer(c->fires_expected));
    json_object_set_new(r->j, "fires_missed", json_integer(c->fires_missed));
    json_object_set_new(r->j, "catchup_ms", json_real(round(c->catchup_ms)));
    json_object_set_new(r->j, "tick", c->tick ? json_string(c->tick) : json_null());
    row_note(r, "max %.0f ms over %ld fires; TTL %d ms, new leader after %.0f ms; whole run: %ld of %ld fires "
             "missing after %.0f ms of catch-up, %ld published twice",
             c->kill.max, c->kill.n, c->ttl_ms, c->takeover_ms, c->fires_missed, c->fires_expected, c->catchup_ms,
             c->republished);
}

/* ---- (g) large payloads ---- */

static struct {
    bool ran;
    int pub_window, batch, window; /* bounded in bytes: 16 MiB published, 12 MiB requested unacked */
    double raw_runs[2], raw;       /* msg/s before and after the jetsched run; raw = the better of the two */
    double raw_cpu_nats_us, raw_cpu_client_us; /* per message, mean */
    char why[200];                 /* why a raw measurement failed */
    e2e js;                        /* native noop, history on */
} large;

/* Raw JetStream with the large payload, publish and pull-and-ack at once
 * (the ceiling's method); NAN with large.why when it failed. */
static double run_raw_large(jsCtx *pjs, int k, long n)
{
    int64_t base = jb_stream_msgs(js, TASK_STREAM);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rawlg%d-", k + 1);
    if (k >= 0)
        jb_log("(g) raw end to end, %ld messages of %d B, measurement %d of 2", n, opt.large_payload, k + 1);
    else
        jb_log("(g) warm-up: %ld messages of %d B through the raw consumer", n, opt.large_payload);
    jb_cons_spec ce = raw_spec(n, large.batch, large.window);
    double c_nats = jb_cpu_ms(nats_pid), c_self = jb_cpu_ms(getpid());
    jb_consumer *c = jb_consumer_start(&ce);
    jb_pub_spec pe = {RAW_SUBJECT, "noop", prefix, large_payload, opt.large_payload, n, 0, NULL};
    jb_pub_result pr;
    long ok = jb_publish(pjs, &pe, &pr);
    long got = jb_consumer_join(c, ok == n ? 120000 : 5000, NULL, NULL, NULL);
    int64_t empty = jb_wait_stream(js, TASK_STREAM, base, 2, ok == n ? 60000 : 2000);
    if (ok != n || got != n || !empty) {
        snprintf(large.why, sizeof large.why, "raw: %ld of %ld published, %ld consumed (publish errors in the log)",
                 ok, n, got);
        jb_log("(g) %s", large.why);
        js_PurgeStream(js, TASK_STREAM, NULL, NULL);
        return NAN;
    }
    double cpu = (jb_cpu_ms(nats_pid) - c_nats) * 1000.0 / (double)n;
    double self = (jb_cpu_ms(getpid()) - c_self) * 1000.0 / (double)n; /* publisher and consumer */
    if (k < 0)
        return 0;
    large.raw_cpu_nats_us = large.raw_cpu_nats_us > 0 ? (large.raw_cpu_nats_us + cpu) / 2 : cpu;
    large.raw_cpu_client_us = large.raw_cpu_client_us > 0 ? (large.raw_cpu_client_us + self) / 2 : self;
    double rate = (double)n / secs(pr.start_ns, empty);
    jb_log("    %.0f msg/s, %.0f MB/s", rate, rate * opt.large_payload / 1e6);
    return rate;
}

/* raw, jetsched (native noop, history on, concurrency bc), raw again. */
static void run_large(int bc)
{
    int len = opt.large_payload;
    large.ran = true;
    large.pub_window = (16 << 20) / len;
    large.pub_window = large.pub_window > opt.window ? opt.window : large.pub_window < 16 ? 16 : large.pub_window;
    large.window = (12 << 20) / len;
    large.window = large.window > raw.window_used ? raw.window_used : large.window < 3 ? 3 : large.window;
    large.batch = large.window / 3 > opt.batch ? opt.batch : large.window / 3;
    const char *pull = getenv("JETBENCH_LARGE_PULL"); /* "batch,window": the raw consumer's, for experiments */
    if (pull && sscanf(pull, "%d,%d", &large.batch, &large.window) != 2)
        jb_die("JETBENCH_LARGE_PULL: want batch,window");
    jsCtx *pjs = jb_js_context(pub_nc, large.pub_window);
    /* The first large messages of a run cost more (the file store's new blocks, the page cache): not measured;
     * and the servers settle first after the 100,000-task runs (nats-server and PostgreSQL clean up behind them). */
    jb_sleep_ms(2000);
    if (isnan(run_raw_large(pjs, -1, opt.large_n / 10 < 100 ? 100 : opt.large_n / 10))) {
        large.raw_runs[0] = large.raw_runs[1] = large.raw = NAN;
        large.js = (e2e){.ran = true, .n = opt.large_n, .payload_len = len};
        snprintf(large.js.why, sizeof large.js.why, "not run: %.180s", large.why);
        jb_js_context_destroy(pjs);
        return;
    }
    large.raw_runs[0] = run_raw_large(pjs, 0, opt.large_n);
    load L = {opt.large_n, large_payload, len, pjs, "-64k"};
    large.js = run_e2e_load(bc, 1, false, NULL, &L);
    large.raw_runs[1] = run_raw_large(pjs, 1, opt.large_n);
    /* The better of the two, as the ceiling is the median of three: one measurement disturbed by the shared
     * machine (or by what the earlier runs left to clean up) does not set the reference. */
    large.raw = NAN;
    for (int i = 0; i < 2; i++)
        if (!isnan(large.raw_runs[i]) && (isnan(large.raw) || large.raw_runs[i] > large.raw))
            large.raw = large.raw_runs[i];
    jb_js_context_destroy(pjs);
}

static void size_name(char *out, size_t cap, int bytes)
{
    if (bytes % 1024 == 0)
        snprintf(out, cap, "%d KiB", bytes / 1024);
    else
        snprintf(out, cap, "%d B", bytes);
}

static void large_value(row *r, double rate)
{
    double mb = rate * opt.large_payload / 1e6;
    snprintf(r->value, sizeof r->value, "%.0f msg/s %.0f MB/s", rate, mb);
    json_object_set_new(r->j, "mb_per_s", json_real(round(mb * 10) / 10));
    json_object_set_new(r->j, "payload_bytes", json_integer(opt.large_payload));
    json_object_set_new(r->j, "n", json_integer(opt.large_n));
}

static void large_rows(int bc)
{
    char sz[32], label[96];
    size_name(sz, sizeof sz, opt.large_payload);
    snprintf(label, sizeof label, "raw JetStream, %s: publish + pull-and-ack at once", sz);
    row *r = add_row("g", "raw_e2e_large", label);
    if (isnan(large.raw)) {
        row_na(r, "");
        row_note(r, "FAILED: %s", large.why);
    } else {
        row_rate(r, large.raw);
        large_value(r, large.raw);
        snprintf(r->vs, sizeof r->vs, "=RAW %.12s", sz);
        json_object_set_new(r->j, "measurements", json_pack("[o,o]", isnan(large.raw_runs[0]) ? json_null() :
                                                            json_real(round(large.raw_runs[0])),
                                                            isnan(large.raw_runs[1]) ? json_null() :
                                                            json_real(round(large.raw_runs[1]))));
        json_object_set_new(r->j, "cpu_us_per_msg", json_pack("{s:f,s:f}", "nats_server",
                                                               round(large.raw_cpu_nats_us * 10) / 10, "client",
                                                               round(large.raw_cpu_client_us * 10) / 10));
        row_note(r, "better of 2 (%.0f, %.0f; before and after jetsched); N %ld; batch %d, <= %d requested, publish "
                 "window %d; CPU us/msg: nats %.0f, client %.0f", large.raw_runs[0], large.raw_runs[1], opt.large_n,
                 large.batch, large.window, large.pub_window, large.raw_cpu_nats_us, large.raw_cpu_client_us);
    }
    snprintf(label, sizeof label, "jetsched, %s: native noop, history on, concurrency %d", sz, bc);
    e2e_row("jetsched_native_history_large", label, &large.js, false);
    r = &rows[nrows - 1];
    snprintf(r->section, sizeof r->section, "g");
    json_object_set_new(r->j, "section", json_string("g"));
    if (large.js.ok) {
        large_value(r, large.js.rate);
        if (!isnan(large.raw) && large.raw > 0) {
            double q = large.js.rate / large.raw;
            snprintf(r->vs, sizeof r->vs, "%.0f%% of raw", 100 * q);
            json_object_set_new(r->j, "ratio_to_raw_large", json_real(round(q * 1000) / 1000));
        }
        snprintf(r->target, sizeof r->target, "reported: vs raw, same size");
        json_object_set_new(r->j, "target", json_string(r->target));
    }
}

/* ---- the capacity table ---- */

/* tasks/s per fully used core = 1e6 / CPU us per task, for agentd,
 * nats-server and PostgreSQL, from the runs of this benchmark. */
typedef struct cap_line {
    const char *id, *what;
    double agent_us, nats_us, pg_us; /* CPU per task; NAN: not measured */
} cap_line;

static double per_core(double us) { return us > 0.05 ? 1e6 / us : NAN; }

static void fmt_rate(char *out, size_t cap, double v)
{
    if (isnan(v))
        snprintf(out, cap, "-");
    else if (v >= 1e6)
        snprintf(out, cap, ">1,000,000");
    else if ((v = round(v)) >= 1000)
        snprintf(out, cap, "%d,%03d", (int)(v / 1000), (int)v % 1000);
    else
        snprintf(out, cap, "%.0f", v);
}

static json_t *capacity_report(const cap_line *lines, int nl, double example_rate)
{
    json_t *out = json_object(), *arr = json_array();
    printf("capacity: tasks/s per fully used core = 1e6 / CPU us per task (noop handler; PostgreSQL fsync on)\n");
    printf("  %-46s %12s %12s %12s   %s\n", "run", "agentd", "nats-server", "PostgreSQL", "CPU us/task a/n/p");
    for (int i = 0; i < nl; i++) {
        const cap_line *c = &lines[i];
        if (isnan(c->agent_us) && isnan(c->nats_us))
            continue;
        char a[16], n[16], p[16];
        fmt_rate(a, sizeof a, per_core(c->agent_us));
        fmt_rate(n, sizeof n, per_core(c->nats_us));
        fmt_rate(p, sizeof p, per_core(c->pg_us));
        char ua[16] = "-", un[16] = "-", up[16] = "-";
        if (!isnan(c->agent_us))
            snprintf(ua, sizeof ua, "%.0f", c->agent_us);
        if (!isnan(c->nats_us))
            snprintf(un, sizeof un, "%.0f", c->nats_us);
        if (!isnan(c->pg_us))
            snprintf(up, sizeof up, "%.0f", c->pg_us);
        printf("  %-46s %12s %12s %12s   %s / %s / %s\n", c->what, a, n, p, ua, un, up);
        json_t *o = json_object(), *pc = json_object(), *us = json_object();
        const double v[3] = {c->agent_us, c->nats_us, c->pg_us};
        const char *k[3] = {"agentd", "nats_server", "postgres"};
        for (int j = 0; j < 3; j++) {
            double t = per_core(v[j]);
            json_object_set_new(pc, k[j], isnan(t) ? json_null() : json_real(round(t)));
            json_object_set_new(us, k[j], isnan(v[j]) ? json_null() : json_real(round(v[j] * 10) / 10));
        }
        json_object_set_new(o, "id", json_string(c->id));
        json_object_set_new(o, "what", json_string(c->what));
        json_object_set_new(o, "tasks_per_s_per_core", pc);
        json_object_set_new(o, "cpu_us_per_task", us);
        json_array_append_new(arr, o);
    }
    /* The worked example: the first line (native noop, history on, at full load). */
    const cap_line *c = &lines[0];
    if (!isnan(c->agent_us)) {
        double a = example_rate * c->agent_us / 1e6, n = example_rate * c->nats_us / 1e6,
               p = example_rate * c->pg_us / 1e6;
        printf("  e.g. %.0f tasks/s of %s needs about %.2f cores of agentd, %.2f of nats-server, %.2f of PostgreSQL "
               "(plus the handlers' own CPU and the publishers')\n", example_rate, c->what, a, n, p);
        json_object_set_new(out, "example", json_pack("{s:f,s:s,s:{s:f,s:f,s:f}}", "tasks_per_s", example_rate,
                                                      "run", c->id, "cores", "agentd", round(a * 100) / 100,
                                                      "nats_server", round(n * 100) / 100, "postgres",
                                                      round(p * 100) / 100));
    }
    json_object_set_new(out, "basis", json_string("tasks/s per fully used core = 1e6 / CPU microseconds per task "
                                                  "(user + system from /proc over the run); noop handler"));
    json_object_set_new(out, "lines", arr);
    return out;
}

static cap_line cap_of(const e2e *r, const char *id, const char *what)
{
    cap_line c = {id, what, NAN, NAN, NAN};
    if (r->ran && r->ok && r->n > 0) {
        c.agent_us = r->cpu_agent_ms * 1000.0 / (double)r->n;
        c.nats_us = r->cpu_nats_ms * 1000.0 / (double)r->n;
        c.pg_us = r->cpu_pg_ms * 1000.0 / (double)r->n;
    }
    return c;
}

/* --large-only: (g) alone at the first --concurrency, one line each, no JSON. */
static int large_only_report(void)
{
    double l0[3] = {0}, l1[3] = {0};
    getloadavg(l0, 3);
    raw.window_used = opt.batch * 3 > 1000 ? 1000 : opt.batch * 3;
    if (opt.large_n <= 0)
        jb_die("--large-only needs --large-n > 0");
    run_large(opt.conc[0]);
    getloadavg(l1, 3);
    jb_sampler_stop();
    const e2e *j = &large.js;
    printf("\nlarge payloads (g): %ld messages of %d B, load average %.1f -> %.1f (1 min)\n", opt.large_n,
           opt.large_payload, l0[0], l1[0]);
    printf("  raw JetStream, publish + pull-and-ack at once: %.0f msg/s, %.0f MB/s (%.0f, %.0f; batch %d, <= %d "
           "requested, publish window %d; CPU us/msg: nats-server %.0f, this client %.0f)\n", large.raw,
           large.raw * opt.large_payload / 1e6, large.raw_runs[0], large.raw_runs[1], large.batch, large.window,
           large.pub_window, large.raw_cpu_nats_us, large.raw_cpu_client_us);
    if (j->ok)
        printf("  jetsched, native noop, history on, concurrency %d: %.0f msg/s, %.0f MB/s, %.0f%% of raw (CPU us/task: "
               "agentd %.0f, nats-server %.0f, PostgreSQL %.0f)\n", j->conc, j->rate, j->rate * opt.large_payload / 1e6,
               100 * j->rate / large.raw, j->cpu_agent_ms * 1000 / (double)j->n, j->cpu_nats_ms * 1000 / (double)j->n,
               j->cpu_pg_ms * 1000 / (double)j->n);
    else
        printf("  jetsched, native noop, history on: FAILED: %s\n", j->why);
    jb_js_context_destroy(js);
    natsConnection_Destroy(pub_nc);
    natsConnection_Destroy(cons_nc);
    PQfinish(pg);
    nats_Close();
    return j->ok && !isnan(large.raw) ? 0 : 3;
}

/* --native-only: the native noop with history at each concurrency and, with
 * --compare-build, the other agentd at the best one; one line each. */
static int native_only_report(const e2e *native, int bc)
{
    e2e cmp = {0};
    if (opt.compare)
        cmp = run_e2e(bc, 1, false, opt.compare);
    jb_sampler_stop();
    int rc = 0;
    for (int k = 0; k <= opt.nconc; k++) {
        const e2e *e = k < opt.nconc ? &native[k] : &cmp;
        if (!e->ran)
            continue;
        if (!e->ok)
            rc = 3;
        double n = e->succeeded > 0 ? (double)e->succeeded : 1;
        printf("%s agentd: native noop, history on, concurrency %d: %s %.0f msg/s, agentd CPU %.1f us/task, "
               "%.2f cs/task, nats-server %.1f us/task, PostgreSQL %.1f us/task, tasks per pull request %.1f, "
               "per admission query %.1f\n",
               k < opt.nconc ? "this" : "COMPARE", e->conc, e->ok ? "" : "FAILED", e->rate, e->cpu_agent_ms * 1000 / n,
               e->agent_cs_per_task, e->cpu_nats_ms * 1000 / n, e->cpu_pg_ms * 1000 / n, e->per_pull, e->per_query);
    }
    jb_js_context_destroy(js);
    natsConnection_Destroy(pub_nc);
    natsConnection_Destroy(cons_nc);
    PQfinish(pg);
    nats_Close();
    return rc;
}

/* JETBENCH_AGENT_AB=K with --native-only --compare-build D: an A/B of an
 * agentd change in K alternating rounds against one ceiling: each round
 * runs both agentds (the order swapped every round) with history on and off
 * at the first --concurrency (not with JETBENCH_AGENT_AB_LATENCY_ONLY=1),
 * then each at 10 % of the ceiling for start
 * latency, with agentd's own split of the start from its /metrics
 * histograms over that latency run (stored -> started, pulled -> started,
 * finished -> recorded -> acked: the share of tasks within each bucket). */
static const double ab_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05};
#define AB_NLE (sizeof ab_le / sizeof ab_le[0])

/* The cumulative counts of histogram `name` at each bound of ab_le, and its
 * total count (summed over label sets). */
static void ab_hist(const char *page, const char *name, double cum[AB_NLE], double *count)
{
    char key[160];
    for (size_t b = 0; b < AB_NLE; b++) {
        cum[b] = 0;
        snprintf(key, sizeof key, "%s_bucket", name);
        size_t kl = strlen(key);
        char want[32];
        snprintf(want, sizeof want, "le=\"%g\"", ab_le[b]);
        for (const char *l = page; *l;) {
            const char *end = strchr(l, '\n');
            size_t len = end ? (size_t)(end - l) : strlen(l);
            if (len > kl && !strncmp(l, key, kl) && l[kl] == '{') {
                const char *le = strstr(l, want);
                if (le && le < l + len) {
                    const char *v = l + len;
                    while (v > l && v[-1] != ' ')
                        v--;
                    cum[b] += atof(v);
                }
            }
            l += len + (end ? 1 : 0);
        }
    }
    snprintf(key, sizeof key, "%s_count", name);
    *count = metric_sum(page, key);
}

static void ab_split(const char *before, const char *after)
{
    static const char *const names[][2] = {
        {"jetsched_agent_task_start_latency_seconds", "stored->started"},
        {"jetsched_agent_start_delay_seconds", "pulled->started"},
        {"jetsched_agent_record_seconds", "finished->recorded"},
        {"jetsched_agent_ack_seconds", "recorded->acked"}};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        double c0[AB_NLE], c1[AB_NLE], n0, n1;
        ab_hist(before, names[k][0], c0, &n0);
        ab_hist(after, names[k][0], c1, &n1);
        double n = n1 - n0;
        printf("      %-19s n=%-6.0f", names[k][1], n);
        for (size_t b = 0; b < AB_NLE && n > 0; b++)
            printf(" <=%gms %.2f%%", ab_le[b] * 1000, 100 * (c1[b] - c0[b]) / n);
        printf("\n");
    }
}

static int agent_ab_report(int rounds)
{
    static char before[1 << 18], after[1 << 18];
    int conc = opt.conc[0];
    raw.window_used = opt.batch * 3 > 1000 ? 1000 : opt.batch * 3; /* as run_raw */
    run_ceiling();
    double rate = ceiling * 0.10;
    printf("agent A/B: ceiling %.0f msg/s, concurrency %d, %d rounds, latency at %.0f/s for %.0f s\n", ceiling, conc,
           rounds, rate, opt.lat_seconds);
    latrun raw10 = run_latency_raw(rate, "abraw-");
    printf("  raw JetStream at 10 %%: p50 %.2f p99 %.2f p99.9 %.2f ms\n", raw10.lat.p50, raw10.lat.p99,
           raw10.lat.p999);
    natsSubscription *evsub = NULL;
    if (natsConnection_Subscribe(&evsub, cons_nc, "jetsched.event.bench.>", on_event, NULL) != NATS_OK)
        jb_die("cannot subscribe to live events");
    natsSubscription_SetPendingLimits(evsub, -1, -1);
    natsConnection_Flush(cons_nc);
    for (int r = 0; r < rounds; r++) {
        for (int side = 0; side < 2; side++) {
            bool cmp = (side + r) % 2 == 1;
            const char *build = cmp ? opt.compare : NULL, *tag = cmp ? "COMPARE" : "this";
            const char *lat_only = getenv("JETBENCH_AGENT_AB_LATENCY_ONLY");
            for (int h = 1; h >= 0 && !(lat_only && *lat_only == '1'); h--) {
                e2e e = run_e2e(conc, h, false, build);
                double n = e.n > 0 ? (double)e.n : 1;
                printf("  round %d %-7s history %-3s %6.0f tasks/s %3.0f %% of ceiling  agentd %.1f us/task  %.2f cs/task  "
                       "nats %.1f  PostgreSQL %.1f  per pull %.1f  per query %.1f%s\n", r + 1, tag, h ? "on" : "off",
                       e.rate, 100 * e.rate / ceiling, e.cpu_agent_ms * 1000 / n, e.agent_cs_per_task,
                       e.cpu_nats_ms * 1000 / n, e.cpu_pg_ms * 1000 / n, e.per_pull, e.per_query,
                       e.ok ? "" : "  FAILED");
            }
            truncate_history();
            char lname[64], prefix[32];
            snprintf(lname, sizeof lname, "bench-ab-lat-%d-%s", r + 1, tag);
            snprintf(prefix, sizeof prefix, "ab%d%c-", r + 1, cmp ? 'c' : 't');
            jb_agent lag;
            jb_agent_spec las = agent_spec(lname, conc, 1, false, build);
            jb_agent_start(&lag, &las);
            warm_up(cmp ? "abwc-" : "abwt-");
            if (th_http_get(lag.http_port, "/metrics", before, sizeof before) != 200)
                before[0] = '\0';
            latrun lr = run_latency_agent(rate, 0, prefix, lag.pid);
            if (th_http_get(lag.http_port, "/metrics", after, sizeof after) != 200)
                after[0] = '\0';
            jb_agent_stop(&lag, 60000);
            printf("  round %d %-7s start latency at 10 %%: p50 %.2f p99 %.2f p99.9 %.2f max %.1f ms (%ld missing)  "
                   "agentd %.1f us/task\n", r + 1, tag, lr.lat.p50, lr.lat.p99, lr.lat.p999, lr.lat.max, lr.lat.missing,
                   lr.cpu_agent_us);
            ab_split(before, after);
        }
    }
    natsSubscription_Unsubscribe(evsub);
    natsSubscription_Destroy(evsub);
    jb_sampler_stop();
    jb_js_context_destroy(js);
    natsConnection_Destroy(pub_nc);
    natsConnection_Destroy(cons_nc);
    PQfinish(pg);
    nats_Close();
    return 0;
}

/* --api-only: (f) alone, one line each, with the load average (the machine
 * is shared: the figures mean little without it). */
static int api_only_report(void)
{
    double l0[3] = {0}, l1[3] = {0};
    getloadavg(l0, 3);
    jb_api_spec sp = {.build = opt.build, .workdir = workdir, .payload = payload, .n = opt.n,
                      .lat_seconds = opt.lat_seconds, .schedules = opt.quick ? 1000 : 10000,
                      .delayed = opt.quick ? 10000 : 100000, .nats_pid = nats_pid, .pg_pid = pg_pid};
    jb_api_result r = jb_api_run(&sp, pg, pub_nc, cons_nc, js);
    getloadavg(l1, 3);
    double R = r.raw_rate;
    printf("\njetsched API benchmark (f): N = %ld tasks per throughput figure, payload %d B, load average %.1f -> %.1f "
           "(1 min)\n", opt.n, opt.payload, l0[0], l1[0]);
    printf("  raw JetStream async publish (R)               %8.0f msg/s\n", R);
    printf("  task.submit, 64 in flight, one client         %8.0f tasks/s  %3.0f%% of R  target >= 10,000/s: %s  "
           "(schedulerd CPU %.0f us/task, %.1f submits per group commit, %ld errors)\n", r.submit_rate,
           100 * r.submit_rate / R, r.submit_rate >= 10000 ? "met" : "MISSED", r.submit_cpu_us, r.mean_group,
           r.submit_errors);
    printf("      CPU per task.submit: schedulerd %.0f us, PostgreSQL %.0f us, nats-server %.0f us, this client %.0f us\n",
           r.submit_cpu_us, r.submit_cpu_pg_us, r.submit_cpu_nats_us, r.submit_cpu_client_us);
    printf("  task.submit_many, 1,000 per request, 4 in flight %5.0f tasks/s  %3.0f%% of R  target >= 35%%: %s  "
           "(%ld errors)\n", r.many_rate, 100 * r.many_rate / R, r.many_rate >= 0.35 * R ? "met" : "MISSED",
           r.many_errors);
    printf("  task.submit one at a time at %.0f/s (10%%)       p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%ld missing)\n",
           r.paced_rate, r.paced.p50, r.paced.p99, r.paced.max, r.paced.missing);
    double bound = cron_bound_ms(sp.schedules, R);
    printf("  %ld schedules due in the same second          last fire %.1f ms  p50 %.1f  p99 %.1f ms  target p99 <= "
           "%.1f ms (max(10 ms, 1.25 N/R)): %s  (%ld missing)\n", sp.schedules, r.cron.max, r.cron.p50, r.cron.p99,
           bound, r.cron.missing == 0 && r.cron.p99 <= bound ? "met" : "MISSED", r.cron.missing);
    printf("  %ld delayed tasks due at one instant         last published %.0f ms after  %.0f tasks/s  %3.0f%% of R  "
           "(p50 %.0f ms, %ld missing; insert took %.1f s)\n", sp.delayed, r.delayed.max, r.delayed_rate,
           100 * r.delayed_rate / R, r.delayed.p50, r.delayed.missing, r.delayed_insert_s);
    if (r.first_error[0])
        printf("  first error reply: %s\n", r.first_error);
    printf("  schedulerd peak RSS %.1f MiB\n", r.sched_rss_kb / 1024.0);
    jb_js_context_destroy(js);
    natsConnection_Destroy(pub_nc);
    natsConnection_Destroy(cons_nc);
    PQfinish(pg);
    nats_Close();
    return r.ok ? 0 : 3;
}

/* --cron-only: (d) alone with its ceiling (raw async publish of N in the
 * same run), one line each with the load average: the steady-state p99
 * against max(10 ms, 1.25 x N / R), N = the fires due at once. */
static int cron_only_report(void)
{
    double l0[3] = {0}, l1[3] = {0};
    getloadavg(l0, 3);
    js_PurgeStream(js, TASK_STREAM, NULL, NULL);
    jb_pub_spec ps = {.subject = RAW_SUBJECT, .handler = "noop", .id_prefix = "cronraw-", .payload = payload,
                      .payload_len = opt.payload, .n = opt.n};
    jb_pub_result pr;
    long acked = jb_publish(js, &ps, &pr);
    double R = acked / ((double)(pr.end_ns - pr.start_ns) / 1e9);
    js_PurgeStream(js, TASK_STREAM, NULL, NULL);
    jb_log("(d) raw async publish %.0f msg/s", R);
    char sched_bin[700];
    snprintf(sched_bin, sizeof sched_bin, "%s/scheduler/schedulerd", opt.build);
    if (access(sched_bin, X_OK) != 0)
        jb_die("%s is not built", sched_bin);
    jb_cron_spec cs = {.build = opt.build, .workdir = workdir, .schedules = 1000,
                       .steady_s = opt.quick ? 5 : 20, .after_kill_s = opt.quick ? 5 : 8};
    jb_cron_result c = jb_cron_run(&cs, pg, cons_nc, js);
    getloadavg(l1, 3);
    double bound = cron_bound_ms(c.schedules, R);
    printf("\njetsched cron benchmark (d): %d schedules every second, load average %.1f -> %.1f (1 min)\n",
           c.schedules, l0[0], l1[0]);
    printf("  raw JetStream async publish (R)   %8.0f msg/s\n", R);
    if (!c.ok) {
        printf("  FAILED: %s\n", c.why);
    } else {
        printf("  steady state                      p50 %.1f ms  p99 %.1f ms  max %.1f ms  target p99 <= %.1f ms "
               "(max(10 ms, 1.25 N/R)): %s  (%ld fires, %ld missing; per second first/last out %.0f/%.0f ms)\n",
               c.steady.p50, c.steady.p99, c.steady.max, bound, c.steady.p99 <= bound ? "met" : "MISSED",
               c.steady.n, c.steady.missing, c.burst_first_ms, c.burst_last_ms);
        printf("  leader kill -9 (TTL %d ms)        max %.0f ms  target <= %d ms: %s  (takeover %.0f ms; %ld of %ld "
               "fires missing, %ld published twice)\n",
               c.ttl_ms, c.kill.max, c.ttl_ms + 1000, c.kill.n > 0 && c.kill.max <= c.ttl_ms + 1000 ? "met" : "MISSED",
               c.takeover_ms, c.fires_missed, c.fires_expected, c.republished);
    }
    printf("  schedulerd leader RSS idle / peak %.1f / %.1f MiB\n", c.rss_idle_kb / 1024.0, c.rss_peak_kb / 1024.0);
    jb_js_context_destroy(js);
    natsConnection_Destroy(pub_nc);
    natsConnection_Destroy(cons_nc);
    PQfinish(pg);
    nats_Close();
    return c.ok ? 0 : 3;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* the raw JetStream clients use libnats with the lock spinning jetsched's
     * daemons use (none unless JETSCHED_NATS_LOCK_SPIN) */
    jet_nats_lib_open();
    setup();
    jb_sampler_start();
    int64_t t_start = jb_now_ns();
    double load0[3] = {0};
    getloadavg(load0, 3);
    jb_mem nats_idle = jb_proc_mem(nats_pid);
    if (opt.api_only)
        return api_only_report();
    if (opt.large_only)
        return large_only_report();
    if (opt.cron_only)
        return cron_only_report();

    const char *ab = getenv("JETBENCH_AGENT_AB");
    if (opt.native_only && opt.compare && ab && atoi(ab) > 0)
        return agent_ab_report(atoi(ab));

    /* (a) */
    if (!opt.native_only)
        run_raw();

    /* (b) native noop with history, at each concurrency; the best is used for the rest. */
    e2e native[8] = {0};
    int best = 0;
    for (int k = 0; k < opt.nconc; k++) {
        native[k] = run_e2e(opt.conc[k], 1, false, NULL);
        if (native[k].ok && (!native[best].ok || native[k].rate > native[best].rate))
            best = k;
    }
    int bc = opt.conc[best];
    if (opt.native_only)
        return native_only_report(native, bc);
    e2e nohist = {0}, lua = {0}, lua_nohist = {0};
    if (have_history_key)
        nohist = run_e2e(bc, 0, false, NULL);
    if (have_lua) {
        lua = run_e2e(bc, 1, true, NULL);
        if (have_history_key && !lua.unavailable)
            lua_nohist = run_e2e(bc, 0, true, NULL);
    }
    e2e cmp_hist = {0}, cmp_nohist = {0};
    if (opt.compare) {
        cmp_hist = run_e2e(bc, 1, false, opt.compare);
        if (have_history_key)
            cmp_nohist = run_e2e(bc, 0, false, opt.compare);
    }

    /* (g) large payloads, at the best concurrency */
    if (opt.large_n > 0)
        run_large(bc);

    run_ceiling(); /* the third measurement of the ceiling, between (b) and (c) */

    /* (c) at 10% and 50% of the ceiling: raw JetStream, then agentd (native noop, history on). */
    double capacity = native[best].ok ? native[best].rate : 0;
    latrun raw10 = run_latency_raw(ceiling * 0.10, "lraw10-");
    latrun raw50 = run_latency_raw(ceiling * 0.50, "lraw50-");
    truncate_history();
    natsSubscription *evsub = NULL;
    if (natsConnection_Subscribe(&evsub, cons_nc, "jetsched.event.bench.>", on_event, NULL) != NATS_OK)
        jb_die("cannot subscribe to live events");
    natsSubscription_SetPendingLimits(evsub, -1, -1);
    natsConnection_Flush(cons_nc);
    char lname[64];
    snprintf(lname, sizeof lname, "bench-latency-c%d", bc);
    jb_agent lag;
    jb_agent_spec las = agent_spec(lname, bc, 1, false, NULL);
    jb_agent_start(&lag, &las);
    warm_up("warm1-");
    latrun js10 = run_latency_agent(ceiling * 0.10, capacity, "lat10-", lag.pid);
    jb_sleep_ms(1000);
    latrun js50 = run_latency_agent(ceiling * 0.50, capacity, "lat50-", lag.pid);
    jb_sleep_ms(2000);
    long lat_after_kb = jb_proc_mem(lag.pid).rss_kb;
    jb_agent_stop(&lag, 60000);
    latrun nohist10 = {0};
    if (have_history_key) {
        snprintf(lname, sizeof lname, "bench-latency-c%d-nohist", bc);
        las = agent_spec(lname, bc, 0, false, NULL);
        jb_agent_start(&lag, &las);
        warm_up("warm2-");
        nohist10 = run_latency_agent(ceiling * 0.10, nohist.ok ? nohist.rate : 0, "lnh10-", lag.pid);
        jb_agent_stop(&lag, 60000);
    }
    latrun cmp10 = {0};
    if (opt.compare) {
        truncate_history();
        snprintf(lname, sizeof lname, "bench-latency-c%d-compare", bc);
        las = agent_spec(lname, bc, 1, false, opt.compare);
        jb_agent_start(&lag, &las);
        warm_up("warm3-");
        cmp10 = run_latency_agent(ceiling * 0.10, cmp_hist.ok ? cmp_hist.rate : 0, "lcmp10-", lag.pid);
        jb_agent_stop(&lag, 60000);
    }
    natsSubscription_Unsubscribe(evsub);
    natsSubscription_Destroy(evsub);

    /* (d) */
    jb_cron_result cron = {0};
    char sched_bin[700];
    snprintf(sched_bin, sizeof sched_bin, "%s/scheduler/schedulerd", opt.build);
    if (access(sched_bin, X_OK) == 0) {
        jb_cron_spec cs = {.build = opt.build, .workdir = workdir, .schedules = 1000,
                           .steady_s = opt.quick ? 5 : 20, .after_kill_s = opt.quick ? 5 : 8};
        cron = jb_cron_run(&cs, pg, cons_nc, js);
    }

    /* (e) */
    jb_mem nats_end = jb_proc_mem(nats_pid), self = jb_proc_mem(getpid());
    jb_sampler_stop();
    double total_s = secs(t_start, jb_now_ns());

    /* ---- rows ---- */
    char label[96];
    row *r;
    r = add_row("a", "raw_publish", "raw JetStream: async publish");
    row_rate(r, raw.publish);
    row_note(r, "js_PublishMsgAsync, window %d, %d B + 2 headers", opt.window, opt.payload);
    r = add_row("a", "raw_consume", "raw JetStream: pull-and-ack of a backlog");
    row_rate(r, raw.consume);
    row_note(r, "raw pull requests batch %d, <= %d requested, +ACK each", opt.batch, raw.window_used);
    for (int k = 0; k < opt.nconc; k++) {
        char id[48];
        snprintf(id, sizeof id, "raw_consume_batch1_c%d", opt.conc[k]);
        snprintf(label, sizeof label, "raw JetStream: pull-and-ack, batch-1 pulls x%d (agentd's way)", opt.conc[k]);
        r = add_row("a", id, label);
        row_rate(r, raw.b1[k]);
        row_note(r, "context: what agentd's pull pattern allows");
    }
    r = add_row("a", "raw_e2e", "raw JetStream: publish + pull-and-ack at once = CEILING");
    row_rate(r, raw.e2e);
    row_note(r, "median of 3 (%.0f, %.0f, %.0f); N / (first publish .. stream empty); CPU us/msg: nats %.0f, "
             "client %.0f", raw.e2e_runs[0], raw.e2e_runs[1], raw.e2e_runs[2], raw.cpu_nats_us, raw.cpu_client_us);
    json_object_set_new(r->j, "measurements", json_pack("[f,f,f]", round(raw.e2e_runs[0]), round(raw.e2e_runs[1]),
                                                        round(raw.e2e_runs[2])));
    json_object_set_new(r->j, "cpu_us_per_msg", json_pack("{s:f,s:f}", "nats_server", round(raw.cpu_nats_us * 10) / 10,
                                                           "client", round(raw.cpu_client_us * 10) / 10));

    for (int k = 0; k < opt.nconc; k++) {
        char id[48];
        snprintf(id, sizeof id, "jetsched_native_history_c%d", opt.conc[k]);
        snprintf(label, sizeof label, "jetsched: native noop, history on, concurrency %d", opt.conc[k]);
        e2e_row(id, label, &native[k], k == best && opt.nconc > 1);
        if (k == best) {
            r = &rows[nrows - 1];
            json_object_set_new(r->j, "best", json_true());
            if (native[k].ok)
                row_target(r, ">= 60% of ceiling", native[k].rate >= 0.6 * ceiling);
            else
                row_target(r, ">= 60% of ceiling", 0);
        }
    }
    snprintf(label, sizeof label, "jetsched: native noop, history off, concurrency %d", bc);
    if (have_history_key) {
        e2e_row("jetsched_native_nohistory", label, &nohist, false);
        if (nohist.ok)
            row_target(&rows[nrows - 1], ">= 80% of ceiling", nohist.rate >= 0.8 * ceiling);
    } else
        row_na(add_row("b", "jetsched_native_nohistory", label), "agentd has no history.enabled key");
    if (opt.compare) {
        snprintf(label, sizeof label, "COMPARE build: native noop, history on, concurrency %d", bc);
        e2e_row("compare_native_history", label, &cmp_hist, false);
        r = &rows[nrows - 1];
        json_object_set_new(r->j, "build", json_string(opt.compare));
        if (cmp_hist.ok)
            row_target(r, ">= 60% of ceiling", cmp_hist.rate >= 0.6 * ceiling);
        if (have_history_key) {
            snprintf(label, sizeof label, "COMPARE build: native noop, history off, concurrency %d", bc);
            e2e_row("compare_native_nohistory", label, &cmp_nohist, false);
            json_object_set_new(rows[nrows - 1].j, "build", json_string(opt.compare));
        }
    }
    snprintf(label, sizeof label, "jetsched: Lua noop, history on, concurrency %d", bc);
    if (have_lua) {
        e2e_row("jetsched_lua_history", label, &lua, false);
        r = &rows[nrows - 1];
        if (lua.ok && native[best].ok) {
            double q = lua.rate / native[best].rate;
            json_object_set_new(r->j, "ratio_to_native", json_real(round(q * 1000) / 1000));
            char t[40];
            snprintf(t, sizeof t, ">= 90%% of native (%.0f%%)", 100 * q);
            row_target(r, t, q >= 0.9);
        } else {
            row_target(r, ">= 90% of native", lua.unavailable ? -1 : 0);
        }
    } else {
        row_na(add_row("b", "jetsched_lua_history", label),
               "not available: needs scripts/lua/noop.lua and agentd's agent.lua_dir");
    }
    snprintf(label, sizeof label, "jetsched: Lua noop, history off, concurrency %d", bc);
    if (have_lua && have_history_key && lua.unavailable) {
        r = add_row("b", "jetsched_lua_nohistory", label);
        row_na(r, "");
        row_note(r, "not available: %s", lua.why);
    } else if (have_lua && have_history_key) {
        e2e_row("jetsched_lua_nohistory", label, &lua_nohist, false);
        if (lua_nohist.ok && nohist.ok) { /* against the native noop with history off */
            double q = lua_nohist.rate / nohist.rate;
            json_object_set_new(rows[nrows - 1].j, "ratio_to_native", json_real(round(q * 1000) / 1000));
            char t[40];
            snprintf(t, sizeof t, ">= 90%% of native (%.0f%%)", 100 * q);
            row_target(&rows[nrows - 1], t, q >= 0.9);
        }
    } else
        row_na(add_row("b", "jetsched_lua_nohistory", label),
               have_lua ? "agentd has no history.enabled key" : "not available: no Lua noop");

    lat_rows("latency_raw_10", "start latency, raw JetStream", &raw10, NULL, false);
    lat_rows("latency_jetsched_10", "start latency, jetsched", &js10, &raw10, true);
    if (have_history_key)
        lat_rows("latency_jetsched_nohistory_10", "start latency, jetsched history off", &nohist10, &raw10, false);
    if (opt.compare)
        lat_rows("latency_compare_10", "start latency, COMPARE build", &cmp10, &raw10, true);
    lat_rows("latency_raw_50", "start latency, raw JetStream", &raw50, NULL, false);
    lat_rows("latency_jetsched_50", "start latency, jetsched", &js50, &raw50, false);

    cron_rows(&cron, raw.publish);

    const e2e *nb = &native[best];
    snprintf(label, sizeof label, "RSS agentd idle (ready + 1 s), concurrency %d", bc);
    r = add_row("e", "rss_agentd_idle", label);
    row_mem(r, nb->idle_rss_kb);
    row_target(r, "<= 16 MiB", nb->idle_rss_kb >= 0 && nb->idle_rss_kb <= 16 * 1024);
    for (int k = 0; k < opt.nconc; k++)
        if (k != best && native[k].ran) {
            r = &rows[nrows - 1];
            char extra[160];
            snprintf(extra, sizeof extra, "concurrency %d: %.1f MiB", opt.conc[k], native[k].idle_rss_kb / 1024.0);
            row_note(r, "%s", extra);
        }
    r = add_row("e", "rss_agentd_load_peak", "RSS agentd under load: peak VmRSS (VmHWM)");
    row_mem(r, nb->peak_rss_kb);
    row_note(r, "VmHWM %.1f MiB; native noop, history on, c=%d", nb->hwm_kb / 1024.0, bc);
    r = add_row("e", "rss_agentd_after_load", "RSS agentd idle again after the load");
    row_mem(r, nb->after_rss_kb);
    row_note(r, "2 s after the run; after the latency runs: %.1f MiB", lat_after_kb / 1024.0);
    r = add_row("e", "rss_nats_idle", "RSS nats-server before the benchmark");
    row_mem(r, nats_idle.rss_kb);
    r = add_row("e", "rss_nats_peak", "RSS nats-server peak (VmHWM)");
    row_mem(r, nats_end.hwm_kb);
    r = add_row("e", "rss_client_peak", "RSS this benchmark client peak (VmHWM)");
    row_mem(r, self.hwm_kb);
    r = add_row("e", "rss_schedulerd_idle", "RSS schedulerd leader idle (ready + 1 s, no schedules)");
    if (cron.ran)
        row_mem(r, cron.rss_idle_kb);
    else
        row_na(r, "schedulerd not built");
    r = add_row("e", "rss_schedulerd_load_peak", "RSS schedulerd leader peak, 1,000 schedules every second");
    if (cron.ran)
        row_mem(r, cron.rss_peak_kb);
    else
        row_na(r, "schedulerd not built");

    if (large.ran)
        large_rows(bc);

    /* ---- output ---- */
    printf("\njetsched benchmark: N = %ld messages per throughput figure, payload %d B, ceiling %.0f msg/s, "
           "%.0f s in all\n", opt.n, opt.payload, ceiling, total_s);
    print_table(stdout);
    char lbl[5][96], sz[32];
    size_name(sz, sizeof sz, opt.large_payload);
    snprintf(lbl[0], sizeof lbl[0], "native noop, history on, c=%d, full load", bc);
    snprintf(lbl[1], sizeof lbl[1], "native noop, history on, c=%d, at 10%% load", bc);
    snprintf(lbl[2], sizeof lbl[2], "native noop, history off, c=%d, full load", bc);
    snprintf(lbl[3], sizeof lbl[3], "Lua noop, history on, c=%d, full load", bc);
    snprintf(lbl[4], sizeof lbl[4], "native noop %s, history on, full load", sz);
    cap_line caps[] = {
        cap_of(&native[best], "native_history", lbl[0]),
        {"native_history_10pct", lbl[1], js10.ran && js10.lat.n ? js10.cpu_agent_us : NAN,
         js10.ran && js10.lat.n ? js10.cpu_nats_us : NAN, js10.ran && js10.lat.n ? js10.cpu_pg_us : NAN},
        cap_of(&nohist, "native_nohistory", lbl[2]),
        cap_of(&lua, "lua_history", lbl[3]),
        cap_of(&large.js, "native_history_large", lbl[4]),
        {"raw_jetstream", "raw JetStream (nats-server per message, ceiling)", NAN, raw.cpu_nats_us, NAN},
    };
    json_t *cap_json = capacity_report(caps, (int)(sizeof caps / sizeof *caps), 5000);
    putchar('\n');

    json_t *doc = json_object();
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(doc, "schema", json_string("jetsched-bench-e2e/1"));
    json_object_set_new(doc, "when", json_string(when));
    struct utsname u;
    uname(&u);
    json_object_set_new(opt.meta, "kernel", json_string(u.release));
    json_object_set_new(opt.meta, "nproc", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(opt.meta, "libnats", json_string(nats_GetVersion()));
    char *pgv = jb_pg_text(pg, "SHOW server_version");
    json_object_set_new(opt.meta, "postgresql", json_string(pgv));
    free(pgv);
    json_object_set_new(doc, "machine", opt.meta);
    json_object_set_new(doc, "params",
                        json_pack("{s:I,s:i,s:i,s:i,s:i,s:f,s:b,s:i,s:o}", "n", (json_int_t)opt.n, "payload_bytes",
                                  opt.payload, "publish_window", opt.window, "pull_batch", opt.batch,
                                  "pull_window", raw.window_used, "latency_seconds", opt.lat_seconds, "quick",
                                  opt.quick, "best_concurrency", bc, "history_batch_size",
                                  opt.history_batch ? json_integer(opt.history_batch) : json_null()));
    json_object_set_new(json_object_get(doc, "params"), "large_n", json_integer(opt.large_n));
    json_object_set_new(json_object_get(doc, "params"), "large_payload_bytes", json_integer(opt.large_payload));
    json_object_set_new(doc, "ceiling_msgs_per_s", isnan(ceiling) ? json_null() : json_real(round(ceiling)));
    json_object_set_new(doc, "seconds", json_real(round(total_s)));
    double load1[3] = {0};
    getloadavg(load1, 3); /* the machine is shared: a run's figures mean little without it */
    json_object_set_new(doc, "load_average", json_pack("{s:f,s:f}", "before", round(load0[0] * 100) / 100, "after",
                                                       round(load1[0] * 100) / 100));
    json_t *arr = json_array();
    for (int i = 0; i < nrows; i++)
        json_array_append_new(arr, rows[i].j);
    json_object_set_new(doc, "rows", arr);
    json_object_set_new(doc, "capacity", cap_json);
    if (opt.out) {
        if (json_dump_file(doc, opt.out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
            jb_die("cannot write %s", opt.out);
        printf("JSON: %s\n", opt.out);
    }
    json_decref(doc);

    /* A run that could not finish is an error (a missed target is not). */
    int rc = 0;
    const e2e *all[] = {&native[0], &native[1], &native[2], &native[3], &native[4], &native[5], &native[6],
                        &native[7], &nohist, &lua, &lua_nohist, &cmp_hist, &cmp_nohist, &large.js};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]->ran && !all[i]->ok && !all[i]->unavailable) {
            jb_log("a jetsched run failed: %s", all[i]->why);
            rc = 3;
        }

    if (large.ran && isnan(large.raw)) {
        jb_log("the raw large-payload run failed: %s", large.why);
        rc = 3;
    }
    if (cron.ran && !cron.ok) {
        jb_log("the cron fire lag run failed: %s", cron.why);
        rc = 3;
    }

    jb_js_context_destroy(js);
    natsConnection_Destroy(pub_nc);
    natsConnection_Destroy(cons_nc);
    PQfinish(pg);
    nats_Close();
    return rc;
}
