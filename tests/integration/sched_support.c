/* Support for schedulerd integration tests; see sched_support.h. */
#include "sched_support.h"
#include "harness.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void ss_env(void)
{
    setenv("JETSCHED_JETSTREAM_LEADER_TTL", "3s", 1);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sql", th_require_env("JETSCHED_SOURCE_DIR"));
    setenv("JETSCHED_SQL_DIR", dir, 1);
}

void ss_start(ts_agent *s, const char *id, const char *conf_body)
{
    char *dir = th_tmpdir();
    const char *build = th_require_env("JETSCHED_BUILD_DIR");
    memset(s, 0, sizeof *s);
    s->http_port = th_free_port();
    snprintf(s->conf, sizeof s->conf, "%s/%s.conf", dir, id);
    snprintf(s->log, sizeof s->log, "%s/%s.log", dir, id);
    free(dir);
    FILE *f = fopen(s->conf, "w");
    fprintf(f, "scheduler = { id = \"%s\"; tick = \"100ms\"; };\n", id);
    fprintf(f, "http = { listen = \"127.0.0.1:%d\"; };\n%s\n", s->http_port, conf_body ? conf_body : "");
    fclose(f);
    char bin[600];
    snprintf(bin, sizeof bin, "%s/scheduler/schedulerd", build);
    pid_t pid = th_spawn_daemon(bin, "schedulerd", s->conf, s->log);
    s->pid = pid;
    char body[512];
    for (int64_t until = ts_now_ms() + 30000; ts_now_ms() < until; ts_sleep_ms(100)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char cmd[700];
            snprintf(cmd, sizeof cmd, "head -40 %s >&2", s->log);
            if (system(cmd) != 0) {
            }
            fprintf(stderr, "FATAL: schedulerd %s exited during start-up (status %d)\n", id, st);
            exit(1);
        }
        if (ts_agent_http(s, "/readyz", body, sizeof body) == 200)
            return;
    }
    kill(pid, SIGKILL);
    fprintf(stderr, "FATAL: schedulerd %s not ready after 30 s (log %s)\n", id, s->log);
    exit(1);
}

char *ss_holder(void) { return ts_pg_text("SELECT coalesce(holder, '') FROM scheduler_epoch"); }
long ss_epoch(void) { return ts_pg_long("SELECT epoch FROM scheduler_epoch"); }

char *ss_wait_holder(const char *not, int timeout_ms)
{
    for (int64_t until = ts_now_ms() + timeout_ms;; ts_sleep_ms(50)) {
        char *h = ss_holder();
        if (*h && (!not || strcmp(h, not) != 0))
            return h;
        free(h);
        if (ts_now_ms() > until)
            return strdup("");
    }
}

void ss_agent_with_log(ts_agent *ag, const char *name, const char *file)
{
    char body[1024];
    snprintf(body, sizeof body,
             "exec = { commands = ( { name = \"log\"; argv = [\"/bin/sh\", \"-c\", "
             "\"echo $JETSCHED_TASK_ID >> %s\"]; } ); };\n",
             file);
    ts_agent_start(ag, name, body);
}

int ss_count_lines(const char *file, const char *s)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        n += strcmp(line, s) == 0;
    }
    fclose(f);
    return n;
}

int ss_total_lines(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n++;
    fclose(f);
    return n;
}

double ss_metric(const ts_agent *s, const char *name)
{
    static char buf[1 << 17];
    if (ts_agent_http(s, "/metrics", buf, sizeof buf) != 200)
        return -1;
    size_t nl = strlen(name);
    for (char *p = buf; (p = strstr(p, name)) != NULL; p += nl) {
        if ((p == buf || p[-1] == '\n') && (p[nl] == ' ' || p[nl] == '{')) {
            char *sp = strchr(p, ' ');
            return sp ? atof(sp + 1) : -1;
        }
    }
    return -1;
}
