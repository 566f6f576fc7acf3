/* Support for agentd/CLI integration tests; see agent_support.h. */
#include "agent_support.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int ts_passes, ts_failures;
static natsConnection *nc;
static jsCtx *js;
static PGconn *pg;

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

int64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        die("command failed (%d): %s", rc, cmd);
}

void ts_setup(const char *queues)
{
    const char *url = th_require_env("JETSCHED_TEST_NATS_URL");
    const char *dsn = th_require_env("JETSCHED_TEST_PG_DSN");
    const char *build = th_require_env("JETSCHED_BUILD_DIR");
    const char *src = th_require_env("JETSCHED_SOURCE_DIR");
    setenv("JETSCHED_NATS_URL", url, 1);
    setenv("JETSCHED_PG_DSN", dsn, 1);
    setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0", 0);
    run("%s/cli/jetsched migrate --sql-dir %s/sql >/dev/null", build, src);
    char q[512];
    snprintf(q, sizeof q, "%s", queues);
    char args[1024] = "";
    for (char *save = NULL, *t = strtok_r(q, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        strcat(args, " --queue ");
        strcat(args, t);
    }
    run("%s/cli/jetsched init%s >/dev/null", build, args);
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
        die("cannot connect to %s", url);
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        die("no JetStream context");
    pg = PQconnectdb(dsn);
    if (PQstatus(pg) != CONNECTION_OK)
        die("cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
}

int ts_finish(void)
{
    printf("%d passed, %d failed\n", ts_passes, ts_failures);
    if (pg && PQstatus(pg) == CONNECTION_OK)
        PQfinish(pg);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return ts_failures ? 1 : 0;
}

natsConnection *ts_nats(void) { return nc; }
jsCtx *ts_js(void) { return js; }
PGconn *ts_pg(void) { return pg; }

void ts_reconnect_pg(void)
{
    for (int i = 0; i < 100; i++) {
        pg = PQconnectdb(th_require_env("JETSCHED_TEST_PG_DSN"));
        if (PQstatus(pg) == CONNECTION_OK)
            return;
        PQfinish(pg);
        ts_sleep_ms(100);
    }
    die("cannot reconnect to PostgreSQL");
}

int ts_agent_http(const ts_agent *ag, const char *path, char *buf, size_t len)
{
    return th_http_get(ag->http_port, path, buf, len);
}

void ts_agent_spawn(ts_agent *ag, const char *name, const char *conf_body)
{
    char *dir = th_tmpdir();
    const char *build = th_require_env("JETSCHED_BUILD_DIR");
    memset(ag, 0, sizeof *ag);
    ag->http_port = th_free_port();
    snprintf(ag->conf, sizeof ag->conf, "%s/%s.conf", dir, name);
    snprintf(ag->log, sizeof ag->log, "%s/%s.log", dir, name);
    FILE *f = fopen(ag->conf, "w");
    fprintf(f, "agent = { id = \"%s\"; plugin_dir = \"%s/plugins\"; heartbeat = \"1s\"; };\n", name, build);
    fprintf(f, "http = { listen = \"127.0.0.1:%d\"; };\n%s\n", ag->http_port, conf_body ? conf_body : "");
    fclose(f);
    free(dir);
    char bin[600];
    snprintf(bin, sizeof bin, "%s/agentd/agentd", build);
    ag->pid = th_spawn_daemon(bin, "agentd", ag->conf, ag->log);
}

void ts_agent_start(ts_agent *ag, const char *name, const char *conf_body)
{
    ts_agent_spawn(ag, name, conf_body);
    pid_t pid = ag->pid;
    char body[512];
    for (int64_t until = ts_now_ms() + 30000; ts_now_ms() < until; ts_sleep_ms(100)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char cmd[700];
            snprintf(cmd, sizeof cmd, "grep -v '^    #' %s | head -40 >&2", ag->log);
            if (system(cmd) != 0) {
            }
            die("agentd %s exited during start-up (status %d)", name, st);
        }
        if (ts_agent_http(ag, "/readyz", body, sizeof body) == 200)
            return;
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "grep -v '^    #' %s | head -40 >&2; curl -s 127.0.0.1:%d/readyz >&2", ag->log,
             ag->http_port);
    if (system(cmd) != 0) {
    }
    kill(pid, SIGKILL);
    die("agentd %s not ready after 30 s (log %s)", name, ag->log);
}

int ts_agent_stop(ts_agent *ag, int sig, int timeout_ms)
{
    if (ag->pid <= 0)
        return -1;
    kill(ag->pid, sig);
    int st = 0;
    for (int64_t until = ts_now_ms() + timeout_ms;; ts_sleep_ms(20)) {
        pid_t r = waitpid(ag->pid, &st, WNOHANG);
        if (r == ag->pid)
            break;
        if (ts_now_ms() > until) {
            fprintf(stderr, "agent %d did not exit after %d ms; killing it; its log:\n", ag->pid, timeout_ms);
            char cmd[700];
            snprintf(cmd, sizeof cmd, "grep -v '^    #' %s | tail -25 >&2", ag->log);
            if (system(cmd) != 0) {
            }
            kill(ag->pid, SIGKILL);
            waitpid(ag->pid, &st, 0);
            break;
        }
    }
    ag->pid = 0;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code != 0 && sig != SIGKILL) {
        fprintf(stderr, "agent exited with %d; the end of its log:\n", code);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "grep -v '^    #' %s | tail -15 >&2", ag->log);
        if (system(cmd) != 0) {
        }
    }
    return code;
}

bool ts_log_contains(const ts_agent *ag, const char *text)
{
    FILE *f = fopen(ag->log, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

void ts_publish(const char *queue, const char *prio, const char *handler, const char *id, const void *payload,
                int len, const char *const *headers)
{
    char subject[256];
    snprintf(subject, sizeof subject, "jetsched.task.%s.%s", queue, prio);
    natsMsg *m = NULL;
    natsMsg_Create(&m, subject, NULL, payload, len);
    if (handler)
        natsMsgHeader_Set(m, "Jetsched-Handler", handler);
    if (id)
        natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    for (size_t i = 0; headers && headers[i]; i++) {
        char name[256];
        const char *colon = strchr(headers[i], ':');
        snprintf(name, sizeof name, "%.*s", (int)(colon - headers[i]), headers[i]);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        natsMsgHeader_Add(m, name, v);
    }
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_PublishMsg(&pa, js, m, NULL, &jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    if (s != NATS_OK)
        die("publish to %s failed: %s (%d)", subject, natsStatus_GetText(s), (int)jerr);
}

static PGresult *query(const char *fmt, va_list ap)
{
    char sql[4096];
    vsnprintf(sql, sizeof sql, fmt, ap);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "query failed: %s: %s", sql, PQerrorMessage(pg));
        PQclear(r);
        PQreset(pg);
        return NULL;
    }
    return r;
}

char *ts_pg_text(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = query(fmt, ap);
    va_end(ap);
    char *s = strdup(r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return s;
}

long ts_pg_long(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = query(fmt, ap);
    va_end(ap);
    long v = r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

long ts_wait_long(long want, int timeout_ms, const char *fmt, ...)
{
    long v = -1;
    for (int64_t until = ts_now_ms() + timeout_ms;;) {
        va_list ap;
        va_start(ap, fmt);
        PGresult *r = query(fmt, ap);
        va_end(ap);
        v = r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atol(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (v == want || ts_now_ms() > until)
            return v;
        ts_sleep_ms(100);
    }
}

uint64_t ts_stream_msgs(const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, js, stream, NULL, &jerr) != NATS_OK)
        die("stream info %s failed", stream);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

void ts_drain_round(ts_agent *a, const char *name, const char *conf, const char *queue, const char *handler,
                    const char *prefix, int round, bool rows, const char *const *headers)
{
    static const char *lanes[] = {"high", "normal", "low"};
    for (int l = 0; rows && l < 3; l++)
        CHECK(ts_pg_long("INSERT INTO tasks (id, queue, handler, priority, status, dispatched_at) VALUES "
                         "('%s-%d-%d', '%s', '%s', '%s', 'queued', now()) RETURNING 1",
                         prefix, round, l, queue, handler, lanes[l]) == 1, "task row written");
    ts_agent_start(a, name, conf);
    ts_sleep_ms(300); /* idle: one long-poll out per lane */
    kill(a->pid, SIGTERM);
    for (int64_t until = ts_now_ms() + 5000; ts_now_ms() < until && !ts_log_contains(a, "draining"); ts_sleep_ms(2))
        ;
    for (int l = 0; l < 3; l++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d-%d", prefix, round, l);
        ts_publish(queue, lanes[l], handler, id, "", 0, headers);
    }
}
