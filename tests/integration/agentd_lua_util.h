/* Helpers of the Lua integration tests (agentd_lua*.c): a directory of
 * handler scripts for agentd (agent.lua_dir), copying the shipped and hostile
 * scripts into it, replacing a script atomically, and reading the agent's
 * metrics and registry entry. Built on agent_support.h. */
#ifndef JETSCHED_TESTS_AGENTD_LUA_UTIL_H
#define JETSCHED_TESTS_AGENTD_LUA_UTIL_H

#include "agent_support.h"

/* A fresh directory for scripts; agents started afterwards serve it
 * (JETSCHED_AGENT_LUA_DIR). Returns a static buffer. */
const char *lt_lua_dir(void);
/* Copies $JETSCHED_SOURCE_DIR/<src> to <dir>/<handler>.lua. */
void lt_copy(const char *dir, const char *src, const char *handler);
/* Writes <dir>/<handler>.lua through a temporary file and rename(2). */
void lt_write(const char *dir, const char *handler, const char *text);
/* Value of an unlabelled metric on the agent's /metrics, -1 when absent. */
double lt_metric(const ts_agent *ag, const char *name);
/* Puts key = value into a KV bucket (checkpoints, cancellations); fails the test otherwise. */
void lt_kv_put(const char *bucket, const char *key, const char *value);
/* The agent's registry entry (KV jetsched_agents), malloc'ed, or NULL. */
char *lt_registry(const char *agent_id);
/* Waits until the agent's log contains text; true when it does. */
bool lt_wait_log(const ts_agent *ag, const char *text, int timeout_ms);

#endif
