/* tests/harness/harness.c — implementation of harness.h: environment checks,
 * th_ctl() (runs tests/harness/ctl without a shell) and th_tmpdir(). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define TH_MAX_ARGS 32

static const char *th_env_hint(const char *name)
{
    if (strncmp(name, "JETSCHED_TEST_NATS_CLUSTER", 26) == 0)
        return "run the test under tests/harness/with-servers --nats-cluster";
    if (strncmp(name, "JETSCHED_TEST_NATS", 18) == 0)
        return "run the test under tests/harness/with-servers --nats";
    if (strncmp(name, "JETSCHED_TEST_PG", 16) == 0)
        return "run the test under tests/harness/with-servers --pg";
    return "run the test under tests/harness/with-servers";
}

const char *th_require_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "FATAL: required environment variable %s is not set (%s); "
                        "this test fails instead of skipping\n",
                name, th_env_hint(name));
        fflush(stderr);
        exit(1);
    }
    return v;
}

int th_ctl(const char *fmt, ...)
{
    const char *dir = th_require_env("JETSCHED_TEST_HARNESS");
    char args[1024];
    char path[4096];
    char *argv[TH_MAX_ARGS + 2];
    int argc = 0;
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof args) {
        fprintf(stderr, "th_ctl: arguments too long\n");
        return -1;
    }
    n = snprintf(path, sizeof path, "%s/ctl", dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        fprintf(stderr, "th_ctl: harness path too long\n");
        return -1;
    }
    argv[argc++] = path;
    for (char *save = NULL, *tok = strtok_r(args, " \t\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\n", &save)) {
        if (argc > TH_MAX_ARGS) {
            fprintf(stderr, "th_ctl: too many arguments\n");
            return -1;
        }
        argv[argc++] = tok;
    }
    argv[argc] = NULL;

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "th_ctl: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execv(path, argv);
        fprintf(stderr, "th_ctl: cannot run %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "th_ctl: waitpid: %s\n", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

char *th_tmpdir(void)
{
    const char *state = th_require_env("JETSCHED_TEST_STATE");
    size_t len = strlen(state) + sizeof "/tmp.XXXXXX";
    char *dir = malloc(len);
    if (dir == NULL) {
        fprintf(stderr, "FATAL: th_tmpdir: out of memory\n");
        exit(1);
    }
    snprintf(dir, len, "%s/tmp.XXXXXX", state);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "FATAL: th_tmpdir: mkdtemp(%s): %s\n", dir, strerror(errno));
        free(dir);
        exit(1);
    }
    return dir;
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        fprintf(stderr, "harness: no free port on 127.0.0.1\n");
        exit(1);
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int th_http_get(int port, const char *path, char *buf, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t used = 0;
    ssize_t r;
    while (used + 1 < len && (r = read(fd, buf + used, len - 1 - used)) > 0)
        used += (size_t)r;
    buf[used] = '\0';
    close(fd);
    int code = -1;
    sscanf(buf, "HTTP/%*s %d", &code);
    return code;
}

int th_spawn_daemon(const char *bin, const char *argv0, const char *conf, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* Nothing else of the caller's: a daemon that outlives it (killed
         * test, bench/run stopped) must not keep its pipes or bench/run's
         * lock (fd 9) open. */
        closefrom(3);
        execl(bin, argv0, "-c", conf, (char *)NULL);
        _exit(127);
    }
    return (int)pid;
}
