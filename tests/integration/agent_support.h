/* Support for integration tests of agentd and the CLI against the real
 * servers of tests/harness/with-servers: schema and NATS objects, starting
 * and stopping agentd processes, publishing tasks with any headers, and
 * reading PostgreSQL. Every helper fails the test (exit 1) on error. */
#ifndef JETSCHED_TESTS_AGENT_SUPPORT_H
#define JETSCHED_TESTS_AGENT_SUPPORT_H

#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <nats/nats.h>
#include <libpq-fe.h>

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            ts_failures++;                                                      \
        } else {                                                                \
            ts_passes++;                                                        \
        }                                                                       \
    } while (0)

extern int ts_passes, ts_failures;

/* Connects to the test servers, migrates the schema and runs `jetsched init`
 * for the given queues (comma-separated). */
void ts_setup(const char *queues);
/* Prints "N passed, M failed" and returns the exit code. */
int ts_finish(void);

natsConnection *ts_nats(void);
jsCtx *ts_js(void);
PGconn *ts_pg(void);
/* Reconnects the test's PostgreSQL connection (after a restart). */
void ts_reconnect_pg(void);

typedef struct ts_agent {
    pid_t pid;
    int http_port;
    char conf[512];
    char log[512];
} ts_agent;

/* Writes `conf_body` (libconfig text, without nats/postgres sections, which
 * are added) to a file and starts agentd; waits until /readyz says ready. */
void ts_agent_start(ts_agent *ag, const char *name, const char *conf_body);
/* The same without waiting for readiness (start-up behaviour tests). */
void ts_agent_spawn(ts_agent *ag, const char *name, const char *conf_body);
/* Sends sig and waits for exit (SIGKILL after timeout_ms); returns the exit
 * status, or 128+signal. */
int ts_agent_stop(ts_agent *ag, int sig, int timeout_ms);
/* HTTP GET on the agent's port; returns the status code, body into buf. */
int ts_agent_http(const ts_agent *ag, const char *path, char *buf, size_t len);
/* True when the agent's log contains `text`. */
bool ts_log_contains(const ts_agent *ag, const char *text);
/* The drain tests (agentd_handback, agentd_drain_kill): writes the rows of
 * tasks <prefix>-<round>-0..2 of queue (one per lane: high, normal, low;
 * handler, queued: as schedulerd writes them before it publishes; none when
 * rows is false: tasks published straight to NATS), starts an idle agent,
 * SIGTERMs it once its long-polls are out, and once it logs "draining"
 * publishes the three tasks (with headers, NULL-terminated, or NULL) into
 * its open pull requests. */
void ts_drain_round(ts_agent *a, const char *name, const char *conf, const char *queue, const char *handler,
                    const char *prefix, int round, bool rows, const char *const *headers);

/* Publishes a task through JetStream. headers: "Name: value" strings, NULL-
 * terminated (may be NULL). handler/id NULL: header left out. */
void ts_publish(const char *queue, const char *prio, const char *handler, const char *id, const void *payload,
                int len, const char *const *headers);

/* First column of the first row of a query as text ("" when no row). */
char *ts_pg_text(const char *sql_fmt, ...) __attribute__((format(printf, 1, 2)));
long ts_pg_long(const char *sql_fmt, ...) __attribute__((format(printf, 1, 2)));
/* Waits until the query returns `want` (polls every 100 ms); returns the last value. */
long ts_wait_long(long want, int timeout_ms, const char *sql_fmt, ...) __attribute__((format(printf, 3, 4)));

/* Messages in a stream (JETSCHED_TASKS / JETSCHED_DLQ). */
uint64_t ts_stream_msgs(const char *stream);

int64_t ts_now_ms(void);
void ts_sleep_ms(int ms);

#endif
