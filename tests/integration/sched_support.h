/* Support for schedulerd integration tests (on top of agent_support.h):
 * starting schedulerd processes, finding the leader, the side-effect log of
 * an exec handler. */
#ifndef JETSCHED_TESTS_SCHED_SUPPORT_H
#define JETSCHED_TESTS_SCHED_SUPPORT_H

#include "agent_support.h"

/* Environment for every process of a scheduler test (before ts_setup, so
 * that `jetsched init` creates the leader bucket with the short TTL):
 * JETSCHED_JETSTREAM_LEADER_TTL=3s, JETSCHED_SQL_DIR. */
void ss_env(void);
/* Starts schedulerd with scheduler.id = id; waits for /readyz. The ts_agent
 * helpers (ts_agent_stop, ts_agent_http, ts_log_contains) work on it. */
void ss_start(ts_agent *s, const char *id, const char *conf_body);
/* The holder of scheduler_epoch ("" when none) and the epoch. */
char *ss_holder(void);
long ss_epoch(void);
/* Waits until the holder is non-empty and differs from `not` (may be NULL);
 * returns it ("" on timeout). */
char *ss_wait_holder(const char *not, int timeout_ms);
/* An agentd whose exec handler "log" appends $JETSCHED_TASK_ID to `file`. */
void ss_agent_with_log(ts_agent *ag, const char *name, const char *file);
/* Lines of file equal to s. */
int ss_count_lines(const char *file, const char *s);
int ss_total_lines(const char *file);
/* The value of a metric line starting with `name` in /metrics (-1 if absent). */
double ss_metric(const ts_agent *s, const char *name);

#endif
