/* tests/harness/harness.h — tiny helper for jetsched C tests that run under
 * tests/harness/with-servers: required environment, fault-injection control
 * (tests/harness/ctl) and temp dirs inside the harness state dir.
 *
 * Environment provided by with-servers (see tests/harness/servers.sh):
 *   JETSCHED_TEST_STATE, JETSCHED_TEST_HARNESS,
 *   JETSCHED_TEST_NATS_URL, JETSCHED_TEST_NATS_MONITOR_URL   (--nats)
 *   JETSCHED_TEST_NATS_CLUSTER_URLS                          (--nats-cluster)
 *   JETSCHED_TEST_PG_DSN, JETSCHED_TEST_PG_PORT              (--pg)
 * Tests fail (exit 1) when something they need is missing; they never skip.
 */
#ifndef JETSCHED_TESTS_HARNESS_H
#define JETSCHED_TESTS_HARNESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the value of environment variable `name`; when it is unset or
 * empty, prints which with-servers option provides it and exits with 1. */
const char *th_require_env(const char *name);

/* Runs `$JETSCHED_TEST_HARNESS/ctl <args>` where <args> is the printf-style
 * formatted string split on blanks (no shell is involved), e.g.
 *   th_ctl("pg stop"); th_ctl("nats-node kill %s", "n2");
 * Waits for it and returns its exit status (0 = done), 128+signal when it was
 * killed by a signal, or -1 when it could not be run. */
int th_ctl(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Creates a fresh directory inside $JETSCHED_TEST_STATE (removed with the
 * state dir when with-servers ends) and returns its path, malloc'ed (free it).
 * Exits with 1 on failure. */
char *th_tmpdir(void);

/* A TCP port on 127.0.0.1 that was free a moment ago. Exits with 1 when none. */
int th_free_port(void);

/* GET http://127.0.0.1:<port><path> (HTTP/1.0); the whole response, headers
 * included, NUL-terminated into buf. Returns the status code, -1 when the
 * connection failed. */
int th_http_get(int port, const char *path, char *buf, size_t len);

/* Starts `bin -c conf` as argv0 with stdout and stderr written to log (emptied first) and
 * returns its pid (without waiting for anything). */
int th_spawn_daemon(const char *bin, const char *argv0, const char *conf, const char *log);

#ifdef __cplusplus
}
#endif

#endif /* JETSCHED_TESTS_HARNESS_H */
