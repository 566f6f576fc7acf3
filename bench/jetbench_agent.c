/* jetbench: agentd processes, PostgreSQL helpers, /proc memory, statistics. */
#include "jetbench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time and errors ---- */

int64_t jb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void jb_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void jb_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "jetbench: FATAL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void jb_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "jetbench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- agentd ---- */


static void show_log(const jb_agent *ag, int lines)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2", lines, ag->log);
    if (system(cmd) != 0) {
    }
}

void jb_agent_start(jb_agent *ag, const jb_agent_spec *s)
{
    memset(ag, 0, sizeof *ag);
    ag->http_port = th_free_port();
    snprintf(ag->conf, sizeof ag->conf, "%s/%s.conf", s->workdir, s->name);
    snprintf(ag->log, sizeof ag->log, "%s/%s.log", s->workdir, s->name);
    FILE *f = fopen(ag->conf, "w");
    if (!f)
        jb_die("cannot write %s", ag->conf);
    fprintf(f, "# written by jetbench\nlog = { level = \"warn\"; };\n");
    fprintf(f, "agent = { id = \"%s\"; heartbeat = \"5s\"; plugin_dir = \"", s->name);
    if (s->plugin_dir)
        fprintf(f, "%s\";", s->plugin_dir);
    else
        fprintf(f, "%s/plugins\";", s->build);
    if (s->lua_dir)
        fprintf(f, " lua_dir = \"%s\";", s->lua_dir);
    fprintf(f, " };\nhttp = { listen = \"127.0.0.1:%d\"; };\n", ag->http_port);
    fprintf(f, "queues = ( { name = \"%s\"; concurrency = %d; } );\n", s->queue, s->concurrency);
    if (s->history >= 0 || s->batch_size > 0) {
        fprintf(f, "history = {");
        if (s->history >= 0)
            fprintf(f, " enabled = %s;", s->history ? "true" : "false");
        if (s->batch_size > 0)
            fprintf(f, " batch_size = %d;", s->batch_size);
        fprintf(f, " };\n");
    }
    fclose(f);
    char bin[700];
    snprintf(bin, sizeof bin, "%s/agentd/agentd", s->build);
    jb_daemon_spawn(ag, bin, s->name);
}

void jb_daemon_spawn(jb_agent *d, const char *bin, const char *name)
{
    const char *prog = strrchr(bin, '/') ? strrchr(bin, '/') + 1 : bin;
    pid_t pid = th_spawn_daemon(bin, prog, d->conf, d->log);
    if (pid < 0)
        jb_die("fork failed");
    d->pid = pid;
    char body[1024];
    for (int64_t until = jb_now_ns() + 30000000000LL; jb_now_ns() < until; jb_sleep_ms(50)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            show_log(d, 30);
            jb_die("%s (%s) exited during start-up (status %d); config %s", prog, name, st, d->conf);
        }
        if (th_http_get(d->http_port, "/readyz", body, sizeof body) == 200)
            return;
    }
    show_log(d, 30);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    jb_die("%s (%s) not ready after 30 s (log %s)", prog, name, d->log);
}

bool jb_agent_alive(jb_agent *ag)
{
    if (ag->pid <= 0)
        return false;
    return waitpid(ag->pid, NULL, WNOHANG) == 0;
}

int jb_agent_stop(jb_agent *ag, int timeout_ms)
{
    if (ag->pid <= 0)
        return -1;
    kill(ag->pid, SIGTERM);
    int st = 0;
    for (int64_t until = jb_now_ns() + (int64_t)timeout_ms * 1000000;; jb_sleep_ms(20)) {
        if (waitpid(ag->pid, &st, WNOHANG) == ag->pid)
            break;
        if (jb_now_ns() > until) {
            jb_log("agentd %d did not exit %d ms after SIGTERM; killing it", (int)ag->pid, timeout_ms);
            kill(ag->pid, SIGKILL);
            waitpid(ag->pid, &st, 0);
            break;
        }
    }
    ag->pid = 0;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code != 0) {
        jb_log("agentd exited with %d; the end of its log:", code);
        show_log(ag, 15);
    }
    return code;
}

/* ---- PostgreSQL ---- */

PGconn *jb_pg_connect(const char *dsn)
{
    PGconn *pg = PQconnectdb(dsn);
    if (PQstatus(pg) != CONNECTION_OK)
        jb_die("cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
    return pg;
}

static PGresult *query(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        jb_die("query failed: %s: %s", sql, PQerrorMessage(pg));
    return r;
}

void jb_pg_exec(PGconn *pg, const char *sql) { PQclear(query(pg, sql)); }

void jb_pg_exec_retry(PGconn *pg, const char *sql)
{
    for (int attempt = 1;; attempt++) {
        PGresult *r = PQexec(pg, sql);
        ExecStatusType st = PQresultStatus(r);
        const char *f = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        char state[8];
        snprintf(state, sizeof state, "%s", f ? f : "");
        PQclear(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            return;
        if ((strcmp(state, "40P01") && strcmp(state, "40001")) || attempt == 10)
            jb_die("query failed: %s: %s", sql, PQerrorMessage(pg));
        jb_log("%s: SQLSTATE %s (deadlock or serialization failure), retrying", sql, state);
        jb_sleep_ms(50 * attempt);
    }
}

long jb_pg_long(PGconn *pg, const char *sql)
{
    PGresult *r = query(pg, sql);
    long v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

char *jb_pg_text(PGconn *pg, const char *sql)
{
    PGresult *r = query(pg, sql);
    char *s = strdup(PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return s;
}

/* ---- /proc ---- */

jb_mem jb_proc_mem(pid_t pid)
{
    jb_mem m = {-1, -1};
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return m;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6))
            m.rss_kb = atol(line + 6);
        else if (!strncmp(line, "VmHWM:", 6))
            m.hwm_kb = atol(line + 6);
    }
    fclose(f);
    return m;
}

pid_t jb_read_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

#define SLOTS 4
static _Atomic int sampled_pid[SLOTS];
static _Atomic long sampled_max[SLOTS];
static _Atomic bool sampler_stop;
static pthread_t sampler_thread;

static void *sampler_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&sampler_stop)) {
        for (int i = 0; i < SLOTS; i++) {
            int pid = atomic_load(&sampled_pid[i]);
            if (pid <= 0)
                continue;
            jb_mem m = jb_proc_mem(pid);
            if (m.rss_kb > atomic_load(&sampled_max[i]))
                atomic_store(&sampled_max[i], m.rss_kb);
        }
        jb_sleep_ms(50);
    }
    return NULL;
}

void jb_sampler_start(void)
{
    atomic_store(&sampler_stop, false);
    if (pthread_create(&sampler_thread, NULL, sampler_main, NULL) != 0)
        jb_die("cannot start the RSS sampler");
}

void jb_sampler_watch(int slot, pid_t pid)
{
    atomic_store(&sampled_max[slot], -1);
    atomic_store(&sampled_pid[slot], (int)pid);
}

long jb_sampler_max_kb(int slot) { return atomic_load(&sampled_max[slot]); }

void jb_sampler_stop(void)
{
    atomic_store(&sampler_stop, true);
    pthread_join(sampler_thread, NULL);
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
    if (n == 0)
        return NAN;
    long k = (long)ceil(p / 100.0 * (double)n) - 1; /* nearest rank */
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k];
}

jb_lat jb_latency(const int64_t *sent_ns, const int64_t *recv_ns, long n)
{
    jb_lat l = {0};
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    double sum = 0;
    for (long i = 0; i < n; i++) {
        if (!sent_ns[i])
            continue;
        if (!recv_ns[i]) {
            l.missing++;
            continue;
        }
        v[l.n] = (double)(recv_ns[i] - sent_ns[i]) / 1e6;
        sum += v[l.n++];
    }
    qsort(v, (size_t)l.n, sizeof *v, cmp_double);
    l.p50 = pct(v, l.n, 50);
    l.p99 = pct(v, l.n, 99);
    l.p999 = pct(v, l.n, 99.9);
    l.max = l.n ? v[l.n - 1] : NAN;
    l.mean = l.n ? sum / (double)l.n : NAN;
    free(v);
    return l;
}

/* ---- CPU time ---- */

static bool proc_stat(pid_t pid, long *ppid, double *cpu_ms)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    if (!p)
        return false;
    char state;
    long pp;
    unsigned long utime, stime;
    if (sscanf(p + 2, "%c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &pp, &utime, &stime) != 4)
        return false;
    if (ppid)
        *ppid = pp;
    if (cpu_ms)
        *cpu_ms = (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    return true;
}

double jb_cpu_ms(pid_t pid)
{
    double ms = 0;
    return pid > 0 && proc_stat(pid, NULL, &ms) ? ms : 0;
}

double jb_cpu_ms_tree(pid_t parent)
{
    if (parent <= 0)
        return 0;
    double total = jb_cpu_ms(parent);
    DIR *d = opendir("/proc");
    if (!d)
        return total;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        long pp = 0;
        double ms = 0;
        if (proc_stat((pid_t)pid, &pp, &ms) && pp == parent)
            total += ms;
    }
    closedir(d);
    return total;
}

long jb_ctx_switches(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[400], line[256];
        snprintf(path, sizeof path, "%s/%s/status", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "voluntary_ctxt_switches:", 24))
                total += atol(line + 24);
            else if (!strncmp(line, "nonvoluntary_ctxt_switches:", 27))
                total += atol(line + 27);
        fclose(f);
    }
    closedir(d);
    return total;
}
