/* exec: runs allow-listed commands. Each configured command is a handler.
 *
 * {"commands":[{"name":"backup","argv":["/usr/bin/backup","--full"],
 *               "timeout_ms":60000, "kill_grace_ms":2000,
 *               "rlimit_cpu_s":30, "rlimit_as_bytes":1073741824, "rlimit_nofile":256,
 *               "env":["K=V"], "cwd":"/", "permanent_exit_codes":[2],
 *               "max_output_bytes":65536}]}
 *
 * The command runs without a shell, in its own process group, with the task
 * payload on stdin. stdout (capped) becomes the result; the tail of stderr goes
 * into the error of a failed attempt. On timeout (the smaller of the task's
 * and the command's) or cancellation the whole process group gets SIGTERM,
 * then SIGKILL after kill_grace_ms. When the command exits, whatever it left
 * running in its process group is killed too. Exit 0 = JET_SUCCESS, an exit
 * code listed in permanent_exit_codes = JET_FAIL, anything else (75
 * EX_TEMPFAIL, other codes, signals, timeouts) = JET_RETRY.
 *
 * The agent is multi-threaded: the child runs only async-signal-safe calls
 * between fork() and execve(); every fd it must not inherit is close-on-exec;
 * the parent never blocks (poll() with the deadline, non-blocking stdin). */
#include <jetsched/plugin.h>

#include "skeleton.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXEC_DEFAULT_MAX_OUTPUT (64 * 1024)
#define EXEC_STDERR_TAIL 2048           /* bytes of stderr kept for the error message */
#define EXEC_DEFAULT_GRACE_MS 2000      /* SIGTERM -> SIGKILL */
#define EXEC_DRAIN_MS 200               /* after exit: wait this long for the pipes to close */
#define EXEC_POLL_MS 50                 /* cancellation check period */
#define EXEC_REAP_MS 10000              /* give up waiting for a SIGKILLed child after this */
#define EXEC_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define EX_TEMPFAIL_CODE 75

enum { LIM_CPU, LIM_AS, LIM_NOFILE, LIM_COUNT };
static const int lim_resource[LIM_COUNT] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_NOFILE};
static const char *const lim_key[LIM_COUNT] = {"rlimit_cpu_s", "rlimit_as_bytes", "rlimit_nofile"};

typedef struct exec_cmd {
    char *name;
    char **argv;          /* NULL-terminated, argv[0] absolute */
    char **env;           /* NULL-terminated "K=V" */
    bool env_has_path;
    char *cwd;
    int64_t timeout_ms;   /* 0 = only the task's timeout */
    int64_t kill_grace_ms;
    size_t max_output;
    bool lim_set[LIM_COUNT];
    rlim_t lim[LIM_COUNT];
    int *permanent;
    size_t n_permanent;
} exec_cmd;

typedef struct exec_state {
    const jet_host_api *host;
    exec_cmd *cmds;
    size_t n;
    const char **names;   /* NULL-terminated, points into cmds */
} exec_state;

/* ------------------------------------------------------------------ config */

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void free_state(exec_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        exec_cmd *c = &st->cmds[i];
        free(c->name);
        free_strv(c->argv);
        free_strv(c->env);
        free(c->cwd);
        free(c->permanent);
    }
    free(st->cmds);
    free(st->names);
    free(st);
}

/* A JSON array of strings -> NULL-terminated copies. */
static int strv_from_json(const json_t *arr, const char *what, char ***out, char *err, size_t errlen)
{
    if (!json_is_array(arr))
        return plugin_fail(err, errlen, "%s: must be an array of strings", what);
    size_t n = json_array_size(arr);
    char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return plugin_fail(err, errlen, "%s: out of memory", what);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(arr, i);
        if (!json_is_string(s)) {
            free_strv(v);
            return plugin_fail(err, errlen, "%s[%zu]: must be a string", what, i);
        }
        if (strlen(json_string_value(s)) != json_string_length(s)) {
            free_strv(v);
            return plugin_fail(err, errlen, "%s[%zu]: must not contain NUL characters", what, i);
        }
        if (!(v[i] = strdup(json_string_value(s)))) {
            free_strv(v);
            return plugin_fail(err, errlen, "%s: out of memory", what);
        }
    }
    *out = v;
    return 0;
}

static int parse_command(const json_t *obj, size_t idx, exec_cmd *c, char *err, size_t errlen)
{
    char what[96];
    snprintf(what, sizeof what, "commands[%zu]", idx);
    if (!json_is_object(obj))
        return plugin_fail(err, errlen, "%s: must be an object", what);
    static const char *const known[] = {"name", "argv", "timeout_ms", "kill_grace_ms", "rlimit_cpu_s",
                                        "rlimit_as_bytes", "rlimit_nofile", "env", "cwd", "permanent_exit_codes",
                                        "max_output_bytes", NULL};
    const json_t *name = json_object_get(obj, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return plugin_fail(err, errlen, "%s.name: required, a non-empty string (the handler name)", what);
    if (!(c->name = strdup(json_string_value(name))))
        return plugin_fail(err, errlen, "out of memory");
    snprintf(what, sizeof what, "commands[%zu] (%.40s)", idx, c->name);

    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], key) != 0)
            k++;
        if (!known[k])
            return plugin_fail(err, errlen, "%s: unknown key \"%s\"", what, key);
    }

    const json_t *argv = json_object_get(obj, "argv");
    char sub[128];
    snprintf(sub, sizeof sub, "%s.argv", what);
    if (!argv)
        return plugin_fail(err, errlen, "%s: required", sub);
    if (strv_from_json(argv, sub, &c->argv, err, errlen) != 0)
        return -1;
    if (!c->argv[0])
        return plugin_fail(err, errlen, "%s: must not be empty", sub);
    if (c->argv[0][0] != '/')
        return plugin_fail(err, errlen, "%s[0]: \"%s\" must be an absolute path (no PATH search)", sub, c->argv[0]);

    const json_t *env = json_object_get(obj, "env");
    snprintf(sub, sizeof sub, "%s.env", what);
    if (env) {
        if (strv_from_json(env, sub, &c->env, err, errlen) != 0)
            return -1;
        for (size_t i = 0; c->env[i]; i++) {
            const char *eq = strchr(c->env[i], '=');
            if (!eq || eq == c->env[i])
                return plugin_fail(err, errlen, "%s[%zu]: \"%s\" is not of the form NAME=value", sub, i, c->env[i]);
            if (strncmp(c->env[i], "PATH=", 5) == 0)
                c->env_has_path = true;
        }
    } else if (!(c->env = calloc(1, sizeof *c->env))) {
        return plugin_fail(err, errlen, "out of memory");
    }

    const json_t *cwd = json_object_get(obj, "cwd");
    if (cwd && (!json_is_string(cwd) || json_string_value(cwd)[0] != '/'))
        return plugin_fail(err, errlen, "%s.cwd: must be an absolute path", what);
    if (!(c->cwd = strdup(cwd ? json_string_value(cwd) : "/")))
        return plugin_fail(err, errlen, "out of memory");

    bool present;
    int64_t v = 0;
    c->timeout_ms = 0;
    if (plugin_get_int(obj, "timeout_ms", what, 1, INT64_MAX / 4, &present, &v, err, errlen) != 0)
        return -1;
    if (present)
        c->timeout_ms = v;
    c->kill_grace_ms = EXEC_DEFAULT_GRACE_MS;
    if (plugin_get_int(obj, "kill_grace_ms", what, 0, 600000, &present, &v, err, errlen) != 0)
        return -1;
    if (present)
        c->kill_grace_ms = v;
    c->max_output = EXEC_DEFAULT_MAX_OUTPUT;
    if (plugin_get_int(obj, "max_output_bytes", what, 0, 64 * 1024 * 1024, &present, &v, err, errlen) != 0)
        return -1;
    if (present)
        c->max_output = (size_t)v;
    for (int l = 0; l < LIM_COUNT; l++) {
        if (plugin_get_int(obj, lim_key[l], what, 1, INT64_MAX / 4, &present, &v, err, errlen) != 0)
            return -1;
        c->lim_set[l] = present;
        c->lim[l] = (rlim_t)v;
    }

    const json_t *perm = json_object_get(obj, "permanent_exit_codes");
    if (perm) {
        if (!json_is_array(perm))
            return plugin_fail(err, errlen, "%s.permanent_exit_codes: must be an array of exit codes", what);
        c->n_permanent = json_array_size(perm);
        if (!(c->permanent = calloc(c->n_permanent + 1, sizeof *c->permanent)))
            return plugin_fail(err, errlen, "out of memory");
        for (size_t i = 0; i < c->n_permanent; i++) {
            const json_t *x = json_array_get(perm, i);
            if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 255)
                return plugin_fail(err, errlen, "%s.permanent_exit_codes[%zu]: must be an exit code 1-255", what, i);
            if (json_integer_value(x) == EX_TEMPFAIL_CODE)
                return plugin_fail(err, errlen,
                            "%s.permanent_exit_codes[%zu]: 75 (EX_TEMPFAIL) always means \"retry\"", what, i);
            c->permanent[i] = (int)json_integer_value(x);
        }
    }
    return 0;
}

static int parse_command_item(const json_t *obj, size_t idx, void *item, char *err, size_t errlen)
{
    return parse_command(obj, idx, item, err, errlen);
}

static void reaper_acquire(void);

static int exec_init(const jet_host_api *host, const char *config_json, void **state, char *err, size_t errlen)
{
    exec_state *st = calloc(1, sizeof *st);
    if (!st)
        return plugin_fail(err, errlen, "out of memory");
    st->host = host;
    plugin_list list = {0};
    int rc = plugin_parse_list(config_json, "commands", "command", sizeof(exec_cmd), parse_command_item, &list, err,
                               errlen);
    st->cmds = list.items;
    st->n = list.n;
    st->names = list.names;
    if (rc != 0) {
        free_state(st);
        return -1;
    }
    *state = st;
    reaper_acquire();
    return 0;
}

static const char *const *exec_handlers_after_init(void *state) { return ((exec_state *)state)->names; }

/* ------------------------------------------------------------------ orphans
 * agentd is a child subreaper: a process a command started that left its
 * group (`setsid cmd &`) and outlived its parent is re-parented to agentd,
 * and would stay a zombie of agentd until agentd exits. The reaper thread
 * reaps every exited child of this process that is not one of our own
 * commands (those are waited for by pid in exec_run, so their exit status
 * is never taken from them): `kids` holds the pids forked and not yet
 * reaped, updated under kids_mu, which is also held across fork() so a
 * command that exits at once is never seen untracked. */
static pthread_mutex_t kids_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t *kids;
static size_t nkids, capkids;
static pthread_t reaper_thread;
static int reaper_users; /* exec states alive (under kids_mu) */
static _Atomic bool reaper_stop; /* set under kids_mu, read by the reaper thread without it */
#define REAPER_INTERVAL_MS 200

static bool is_kid(pid_t pid)
{
    for (size_t i = 0; i < nkids; i++)
        if (kids[i] == pid)
            return true;
    return false;
}

static void kid_forget(pid_t pid)
{
    pthread_mutex_lock(&kids_mu);
    for (size_t i = 0; i < nkids; i++)
        if (kids[i] == pid) {
            kids[i] = kids[--nkids];
            break;
        }
    pthread_mutex_unlock(&kids_mu);
}

/* Reaps exited children that are not ours (kids_mu held). */
static void reap_orphans(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* Cheap check first: is any child waitable at all? */
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
        return;
    if (!is_kid(si.si_pid)) {
        waitpid(si.si_pid, NULL, WNOHANG);
        return;
    }
    /* The first waitable one is ours (its worker reaps it soon): look for
     * other exited children of ours among the processes. */
    pid_t me = getpid();
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || is_kid((pid_t)pid))
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')'); /* "pid (comm) state ppid ...": comm may hold anything */
        char state = 0;
        long ppid = 0;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && state == 'Z' && ppid == (long)me)
            waitpid((pid_t)pid, NULL, WNOHANG);
    }
    if (d)
        closedir(d);
}

static void *reaper_main(void *arg)
{
    (void)arg;
    while (!reaper_stop) {
        pthread_mutex_lock(&kids_mu);
        reap_orphans();
        pthread_mutex_unlock(&kids_mu);
        struct timespec ts = {0, REAPER_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void reaper_acquire(void)
{
    pthread_mutex_lock(&kids_mu);
    if (reaper_users++ == 0) {
        reaper_stop = false;
        if (pthread_create(&reaper_thread, NULL, reaper_main, NULL) != 0)
            reaper_users = 0;
    }
    pthread_mutex_unlock(&kids_mu);
}

static void reaper_release(void)
{
    pthread_mutex_lock(&kids_mu);
    bool last = reaper_users > 0 && --reaper_users == 0;
    if (last)
        reaper_stop = true;
    pthread_mutex_unlock(&kids_mu);
    if (last) {
        pthread_join(reaper_thread, NULL);
        pthread_mutex_lock(&kids_mu); /* the plugin may be unloaded next: nothing of it stays behind */
        free(kids);
        kids = NULL;
        nkids = capkids = 0;
        pthread_mutex_unlock(&kids_mu);
    }
}

static void exec_shutdown(void *state)
{
    if (state)
        reaper_release();
    free_state(state);
}

/* ------------------------------------------------------------------ running */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* pipe2(O_CLOEXEC) with both ends >= 3, so the child's dup2() onto 0-2 never
 * clobbers another pipe end (the agent may run with 0-2 closed). */
static int make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (fds[i] < 3) {
            int n = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (n < 0) {
                close(fds[0]);
                close(fds[1]);
                return -1;
            }
            close(fds[i]);
            fds[i] = n;
        }
    return 0;
}

enum spawn_stage { ST_SETPGID, ST_DUP2, ST_CHDIR, ST_RLIMIT_CPU, ST_RLIMIT_AS, ST_RLIMIT_NOFILE, ST_FDS, ST_EXEC };
static const char *const stage_name[] = {"setpgid", "dup2", "chdir", "setrlimit(RLIMIT_CPU)",
                                         "setrlimit(RLIMIT_AS)", "setrlimit(RLIMIT_NOFILE)", "close-on-exec",
                                         "execve"};

typedef struct spawn_report {
    int stage;
    int err;
} spawn_report;

typedef struct child_plan {
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int in_fd, out_fd, err_fd, report_fd;
    bool lim_set[LIM_COUNT];
    struct rlimit lim[LIM_COUNT];
    int max_fd;           /* fallback bound when close_range() is unavailable */
    sigset_t empty_mask;
} child_plan;

static void child_fail(const child_plan *p, int stage)
{
    spawn_report r = {stage, errno};
    ssize_t w = write(p->report_fd, &r, sizeof r);
    (void)w;
    _exit(127);
}

/* In the child, between fork() and execve(): async-signal-safe calls only. */
static void child_run(const child_plan *p)
{
    if (setpgid(0, 0) != 0)
        child_fail(p, ST_SETPGID);
    /* Handlers are reset by execve(), ignored signals are not; the parent
     * blocked every signal around fork(), so nothing of the agent runs here. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL); /* EINVAL for libc-reserved signals: fine */
    if (dup2(p->in_fd, 0) < 0 || dup2(p->out_fd, 1) < 0 || dup2(p->err_fd, 2) < 0)
        child_fail(p, ST_DUP2);
    if (chdir(p->cwd) != 0)
        child_fail(p, ST_CHDIR);
    for (int l = 0; l < LIM_COUNT; l++)
        if (p->lim_set[l] && setrlimit(lim_resource[l], &p->lim[l]) != 0)
            child_fail(p, ST_RLIMIT_CPU + l);
    /* Descriptors the agent opened without O_CLOEXEC (sockets of libraries...). */
    if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < p->max_fd; fd++)
            if (fd != p->report_fd)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    sigprocmask(SIG_SETMASK, &p->empty_mask, NULL);
    execve(p->argv[0], p->argv, p->envp);
    child_fail(p, ST_EXEC);
}

static void lim_compute(int resource, rlim_t v, bool cpu, struct rlimit *out)
{
    struct rlimit cur;
    if (getrlimit(resource, &cur) != 0)
        cur.rlim_max = RLIM_INFINITY;
    out->rlim_cur = v;
    out->rlim_max = cpu ? v + 1 : v; /* CPU: SIGXCPU at the soft limit, SIGKILL one second later */
    if (cur.rlim_max != RLIM_INFINITY && out->rlim_max > cur.rlim_max)
        out->rlim_max = cur.rlim_max;
    if (out->rlim_cur > out->rlim_max)
        out->rlim_cur = out->rlim_max;
}

/* Output capture: stdout up to a cap, the last bytes of stderr. */
typedef struct capture {
    char *out;
    size_t out_len, out_cap;
    bool out_truncated;
    char err[2 * EXEC_STDERR_TAIL];
    size_t err_len;
    bool err_truncated;
} capture;

static void capture_out(capture *c, const char *buf, size_t n)
{
    size_t room = c->out_cap - c->out_len;
    if (n > room) {
        c->out_truncated = true;
        n = room;
    }
    if (n) {
        memcpy(c->out + c->out_len, buf, n);
        c->out_len += n;
    }
}

static void capture_err(capture *c, const char *buf, size_t n)
{
    while (n > 0) {
        if (c->err_len == sizeof c->err) {
            memmove(c->err, c->err + c->err_len - EXEC_STDERR_TAIL, EXEC_STDERR_TAIL);
            c->err_len = EXEC_STDERR_TAIL;
            c->err_truncated = true;
        }
        size_t k = sizeof c->err - c->err_len;
        if (k > n)
            k = n;
        memcpy(c->err + c->err_len, buf, k);
        c->err_len += k;
        buf += k;
        n -= k;
    }
}

/* Reads what is available; closes *fd at EOF or error. */
static void drain_fd(int *fd, capture *c, bool is_err)
{
    char buf[16384];
    for (int i = 0; i < 16 && *fd >= 0; i++) {
        ssize_t r = read(*fd, buf, sizeof buf);
        if (r > 0) {
            if (is_err)
                capture_err(c, buf, (size_t)r);
            else
                capture_out(c, buf, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close_fd(fd); /* EOF or error */
    }
}

/* The last lines of stderr, trimmed, NUL-terminated, in buf. */
static const char *stderr_tail(capture *c, char *buf, size_t buflen)
{
    size_t start = c->err_len > EXEC_STDERR_TAIL ? c->err_len - EXEC_STDERR_TAIL : 0;
    bool cut = c->err_truncated || start > 0;
    if (cut) { /* start at a line boundary when there is one */
        const char *nl = memchr(c->err + start, '\n', c->err_len - start);
        if (nl && (size_t)(nl - c->err) + 1 < c->err_len)
            start = (size_t)(nl - c->err) + 1;
    }
    size_t end = c->err_len;
    while (end > start && (c->err[end - 1] == '\n' || c->err[end - 1] == '\r' || c->err[end - 1] == ' '))
        end--;
    size_t n = end - start;
    if (n + 5 > buflen)
        n = buflen - 5;
    size_t o = 0;
    if (cut && n) {
        memcpy(buf, "...", 3);
        o = 3;
    }
    for (size_t i = 0; i < n; i++) /* NULs would cut the message short */
        buf[o + i] = c->err[start + i] ? c->err[start + i] : ' ';
    buf[o + n] = '\0';
    return buf;
}

static bool child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD; /* already reaped by someone else (SIGCHLD ignored?): gone */
    return si.si_pid == pid;
}

static const exec_cmd *find_cmd(const exec_state *st, const char *name)
{
    return plugin_find(&(plugin_list){st->cmds, st->n, st->names}, sizeof *st->cmds, name);
}

static void host_log(const exec_state *st, jet_task_ctx *ctx, jet_log_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void host_log(const exec_state *st, jet_task_ctx *ctx, jet_log_severity sev, const char *fmt, ...)
{
    if (!st->host->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st->host->log(ctx, sev, msg);
}

static char **build_env(const exec_cmd *c, const jet_task *t, char ***owned)
{
    size_t n = 0;
    while (c->env[n])
        n++;
    char **envp = calloc(n + 10, sizeof *envp);
    char **mine = calloc(10, sizeof *mine);
    if (!envp || !mine) {
        free(envp);
        free(mine);
        return NULL;
    }
    size_t k = 0, m = 0;
    if (!c->env_has_path)
        envp[k++] = (char *)EXEC_DEFAULT_PATH;
    for (size_t i = 0; i < n; i++)
        envp[k++] = c->env[i];
    int ok = 1;
#define ADD(...)                                                                                                     \
    do {                                                                                                             \
        char *s_ = NULL;                                                                                             \
        if (asprintf(&s_, __VA_ARGS__) < 0)                                                                          \
            ok = 0;                                                                                                  \
        else                                                                                                         \
            envp[k++] = mine[m++] = s_;                                                                              \
    } while (0)
    ADD("JETSCHED_TASK_ID=%s", t->id ? t->id : "");
    ADD("JETSCHED_HANDLER=%s", t->handler ? t->handler : "");
    ADD("JETSCHED_QUEUE=%s", t->queue ? t->queue : "");
    ADD("JETSCHED_PRIORITY=%s", t->priority ? t->priority : "");
    ADD("JETSCHED_ATTEMPT=%d", t->attempt);
    ADD("JETSCHED_MAX_ATTEMPTS=%d", t->max_attempts);
    if (t->traceparent)
        ADD("TRACEPARENT=%s", t->traceparent);
#undef ADD
    *owned = mine;
    if (!ok) {
        free_strv(mine);
        free(envp);
        return NULL;
    }
    return envp;
}

static bool is_permanent(const exec_cmd *c, int code)
{
    for (size_t i = 0; i < c->n_permanent; i++)
        if (c->permanent[i] == code)
            return true;
    return false;
}

static jet_outcome exec_run(const exec_state *st, const exec_cmd *c, const jet_task *task, jet_task_ctx *ctx)
{
    const jet_host_api *host = st->host;
    int64_t limit = c->timeout_ms;
    if (task->timeout_ms > 0 && (limit == 0 || task->timeout_ms < limit))
        limit = task->timeout_ms;

    capture cap;
    memset(&cap, 0, sizeof cap);
    cap.out_cap = c->max_output;
    cap.out = malloc(cap.out_cap ? cap.out_cap : 1);
    char **owned = NULL;
    char **envp = build_env(c, task, &owned);
    if (!cap.out || !envp) {
        free(cap.out);
        free(envp);
        free_strv(owned);
        return plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: out of memory", c->name);
    }

    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
    if (make_pipe(in) || make_pipe(out) || make_pipe(err) || make_pipe(rep)) {
        int e = errno;
        int *all[] = {in, out, err, rep};
        for (int i = 0; i < 4; i++) {
            close_fd(&all[i][0]);
            close_fd(&all[i][1]);
        }
        free(cap.out);
        free(envp);
        free_strv(owned);
        return plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: pipe: %s", c->name, strerror(e));
    }

    child_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.argv = c->argv;
    plan.envp = envp;
    plan.cwd = c->cwd;
    plan.in_fd = in[0];
    plan.out_fd = out[1];
    plan.err_fd = err[1];
    plan.report_fd = rep[1];
    for (int l = 0; l < LIM_COUNT; l++)
        if ((plan.lim_set[l] = c->lim_set[l]))
            lim_compute(lim_resource[l], c->lim[l], l == LIM_CPU, &plan.lim[l]);
    struct rlimit nofile;
    plan.max_fd = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
                          nofile.rlim_cur < 65536
                      ? (int)nofile.rlim_cur
                      : 65536;
    sigemptyset(&plan.empty_mask);

    /* Writing to a pipe whose reader is gone raises SIGPIPE in this thread:
     * block it for the call and swallow what we caused. */
    sigset_t pipe_set, saved_mask, all_set, pre_fork;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &saved_mask);
    bool got_epipe = false;

    sigfillset(&all_set);
    pthread_sigmask(SIG_SETMASK, &all_set, &pre_fork);
    pthread_mutex_lock(&kids_mu); /* the reaper never sees our child untracked */
    pid_t pid = fork();
    int fork_errno = errno;
    if (pid == 0)
        child_run(&plan); /* never returns */
    if (pid > 0) {
        if (nkids == capkids) {
            size_t ncap = capkids ? capkids * 2 : 16;
            pid_t *nk = realloc(kids, ncap * sizeof *nk);
            if (nk) {
                kids = nk;
                capkids = ncap;
            }
        }
        if (nkids < capkids)
            kids[nkids++] = pid;
    }
    pthread_mutex_unlock(&kids_mu);
    pthread_sigmask(SIG_SETMASK, &pre_fork, NULL);

    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    close_fd(&rep[1]);
    free(envp);
    free_strv(owned);
    if (pid < 0) {
        close_fd(&in[1]);
        close_fd(&out[0]);
        close_fd(&err[0]);
        close_fd(&rep[0]);
        free(cap.out);
        pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
        return plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: fork: %s", c->name, strerror(fork_errno));
    }
    setpgid(pid, pid); /* also done by the child: whichever runs first; errors are harmless */
    host_log(st, ctx, JET_PLOG_DEBUG, "exec %s: started %s (pid %d)", c->name, c->argv[0], (int)pid);

    int in_fd = in[1], out_fd = out[0], err_fd = err[0], rep_fd = rep[0];
    fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
    fcntl(err_fd, F_SETFL, fcntl(err_fd, F_GETFL) | O_NONBLOCK);
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* O_CLOEXEC by default */
#endif
    const char *payload = task->payload;
    size_t payload_len = payload ? task->payload_len : 0, in_off = 0;
    if (payload_len == 0)
        close_fd(&in_fd);

    spawn_report report = {-1, 0};
    bool spawn_failed = false, exited = false, timed_out = false, cancelled = false;
    enum { P_RUN, P_DRAIN, P_TERM } phase = P_RUN;
    int64_t start = now_ms();
    int64_t deadline = limit > 0 ? start + limit : INT64_MAX;
    int64_t phase_end = 0;
    for (;;) {
        if (!exited)
            exited = child_exited(pid);
        int64_t now = now_ms();
        if (phase == P_RUN) {
            bool stop = false;
            if (exited) {
                phase = P_DRAIN;
                phase_end = now + EXEC_DRAIN_MS;
                close_fd(&in_fd);
            } else if (now >= deadline) {
                timed_out = stop = true;
            } else if (host->cancelled && host->cancelled(ctx)) {
                cancelled = stop = true;
            }
            if (stop) {
                kill(-pid, SIGTERM);
                phase = P_TERM;
                phase_end = now + c->kill_grace_ms;
                close_fd(&in_fd);
            }
        }
        bool open = out_fd >= 0 || err_fd >= 0 || rep_fd >= 0;
        if (phase == P_DRAIN && (!open || now >= phase_end))
            break;
        if (phase == P_TERM && ((exited && !open) || now >= phase_end))
            break;

        struct pollfd pf[5];
        int np = 0, i_in = -1, i_out = -1, i_err = -1, i_rep = -1;
        if (in_fd >= 0)
            pf[i_in = np++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        if (out_fd >= 0)
            pf[i_out = np++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        if (err_fd >= 0)
            pf[i_err = np++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
        if (rep_fd >= 0)
            pf[i_rep = np++] = (struct pollfd){.fd = rep_fd, .events = POLLIN};
        if (pidfd >= 0 && !exited)
            pf[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        int64_t wait = EXEC_POLL_MS;
        if (phase == P_RUN && deadline - now < wait)
            wait = deadline - now;
        if (phase != P_RUN && phase_end - now < wait)
            wait = phase_end - now;
        if (pidfd < 0 && !exited && wait > 10)
            wait = 10;
        if (wait < 0)
            wait = 0;
        if (poll(pf, (nfds_t)np, (int)wait) < 0) {
            if (errno == EINTR)
                continue;
            if (phase == P_RUN) { /* cannot watch the child any more: stop it */
                kill(-pid, SIGTERM);
                phase = P_TERM;
                phase_end = now + c->kill_grace_ms;
                close_fd(&in_fd);
            }
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (i_in >= 0 && pf[i_in].revents) {
            while (in_fd >= 0 && in_off < payload_len) {
                ssize_t w = write(in_fd, payload + in_off, payload_len - in_off);
                if (w > 0) {
                    in_off += (size_t)w;
                } else if (w < 0 && errno == EINTR) {
                    continue;
                } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                } else { /* EPIPE: the command does not read its stdin; fine */
                    if (errno == EPIPE)
                        got_epipe = true;
                    close_fd(&in_fd);
                }
            }
            if (in_off >= payload_len)
                close_fd(&in_fd);
        }
        if (i_out >= 0 && pf[i_out].revents)
            drain_fd(&out_fd, &cap, false);
        if (i_err >= 0 && pf[i_err].revents)
            drain_fd(&err_fd, &cap, true);
        if (i_rep >= 0 && pf[i_rep].revents) {
            ssize_t r = read(rep_fd, &report, sizeof report);
            if (r < 0 && errno == EINTR)
                continue;
            if (r == (ssize_t)sizeof report)
                spawn_failed = true;
            close_fd(&rep_fd); /* EOF: execve() succeeded */
        }
    }
    close_fd(&in_fd);

    /* Sweep the process group while our child is still unreaped: its pid
     * (= the pgid) cannot be reused by anyone, so this hits only what the
     * command started and left behind in its group. */
    kill(-pid, SIGKILL);
    int status = 0;
    bool reaped = false;
    int64_t reap_end = now_ms() + EXEC_REAP_MS;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            reaped = true;
            break;
        }
        if (w < 0 && errno != EINTR)
            break; /* ECHILD: someone else reaped it */
        if (now_ms() >= reap_end) {
            host_log(st, ctx, JET_PLOG_ERROR, "exec %s: pid %d does not die after SIGKILL; left behind", c->name,
                     (int)pid);
            break;
        }
        if (out_fd >= 0)
            drain_fd(&out_fd, &cap, false);
        if (err_fd >= 0)
            drain_fd(&err_fd, &cap, true);
        struct timespec ts = {0, 2 * 1000000};
        nanosleep(&ts, NULL);
    }
    kid_forget(pid); /* reaped, or given up: the reaper may take it from now on */
    /* What the group wrote before it died; the pipes close as it dies. */
    for (int i = 0; i < 50 && (out_fd >= 0 || err_fd >= 0); i++) {
        struct pollfd pf[2];
        int np = 0;
        if (out_fd >= 0)
            pf[np++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        if (err_fd >= 0)
            pf[np++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
        if (poll(pf, (nfds_t)np, 2) <= 0)
            break;
        if (out_fd >= 0)
            drain_fd(&out_fd, &cap, false);
        if (err_fd >= 0)
            drain_fd(&err_fd, &cap, true);
    }
    close_fd(&out_fd);
    close_fd(&err_fd);
    close_fd(&rep_fd);
    close_fd(&pidfd);
    /* When the agent is a child subreaper, the killed members of the group
     * were re-parented to it: reap them (only them: waitpid(-pgid)). */
    int subreaper = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0 && subreaper) {
        int64_t end = now_ms() + 200;
        while (now_ms() < end) {
            while (waitpid(-pid, NULL, WNOHANG) > 0)
                ;
            if (kill(-pid, 0) != 0)
                break;
            struct timespec ts = {0, 2 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (got_epipe) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);

    char tail[EXEC_STDERR_TAIL + 8];
    stderr_tail(&cap, tail, sizeof tail);
    const char *sep = tail[0] ? ": " : "";
    int64_t ran = now_ms() - start;
    jet_outcome o;
    if (spawn_failed) {
        int stage = report.stage >= 0 && report.stage <= ST_EXEC ? report.stage : ST_EXEC;
        o = plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: cannot execute %s: %s: %s", c->name, c->argv[0],
                      stage_name[stage], strerror(report.err));
    } else if (timed_out) {
        o = plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: timed out after %" PRId64 " ms; process group %d killed%s%s",
                      c->name, limit, (int)pid, sep, tail);
    } else if (cancelled) {
        o = plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: cancelled after %" PRId64 " ms; process group %d killed%s%s",
                      c->name, ran, (int)pid, sep, tail);
    } else if (!reaped) {
        o = plugin_set_error(st->host, ctx, JET_RETRY,
                      "exec %s: exit status of %s unavailable (is SIGCHLD ignored or reaped elsewhere?)%s%s",
                      c->name, c->argv[0], sep, tail);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (cap.out_truncated)
            host_log(st, ctx, JET_PLOG_WARN, "exec %s: stdout truncated to %zu bytes", c->name, cap.out_cap);
        host->set_result(ctx, cap.out, cap.out_len);
        o = JET_SUCCESS;
    } else if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        o = plugin_set_error(st->host, ctx, is_permanent(c, code) ? JET_FAIL : JET_RETRY, "exec %s: %s exited with code %d%s%s",
                      c->name, c->argv[0], code, sep, tail);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        o = plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: %s killed by signal %d (SIG%s)%s%s", c->name, c->argv[0], sig,
                      abbrev ? abbrev : "?", sep, tail);
    } else {
        o = plugin_set_error(st->host, ctx, JET_RETRY, "exec %s: %s ended with status 0x%x%s%s", c->name, c->argv[0],
                      (unsigned)status, sep, tail);
    }
    free(cap.out);
    return o;
}

static jet_outcome exec_handle(void *state, const jet_task *task, jet_task_ctx *ctx)
{
    const exec_state *st = state;
    const exec_cmd *c = find_cmd(st, task->handler);
    if (!c)
        return plugin_set_error(st->host, ctx, JET_FAIL, "exec: no command named \"%s\" is configured",
                         task->handler ? task->handler : "(null)");
    return exec_run(st, c, task, ctx);
}

static const char *const exec_static_handlers[] = {NULL}; /* the commands are the handlers */

static const jet_plugin exec_plugin = {
    .abi_major = JET_PLUGIN_ABI_MAJOR,
    .abi_minor = JET_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(jet_plugin),
    .name = "exec",
    .version = "1.0.0",
    .handlers = exec_static_handlers,
    .init = exec_init,
    .handle = exec_handle,
    .shutdown = exec_shutdown,
    .handlers_after_init = exec_handlers_after_init,
};

JET_PLUGIN_DEFINE(exec_plugin)
