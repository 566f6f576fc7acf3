/* Handler dispatch: a task's handler name resolves to a native plugin
 * (plugin_host.c) or a Lua script; this module also owns the host API given
 * to handlers (progress, checkpoints, log, cancelled, submit, result). */
#ifndef AGENTD_HANDLERS_H
#define AGENTD_HANDLERS_H

#include <stdbool.h>
#include "agent.h"

jet_status handlers_init(agent *a, jet_err *err);
void handlers_shutdown(agent *a);

bool handlers_exists(agent *a, const char *handler);
/* A handler that exists but cannot run now (e.g. a Lua script with a syntax
 * error): fills f->error and returns true. */
bool handlers_unavailable_reason(agent *a, const char *handler, inflight *f);
/* A native plugin serves it (it wins over a Lua script of the same name). */
bool handlers_is_native(agent *a, const char *handler);
/* Runs the handler in the calling thread. */
jet_outcome handlers_run(agent *a, inflight *f);

/* Names of every handler served (registry heartbeat): native plugins, then
 * the runnable Lua scripts whose name no plugin has, as a JSON array text
 * (caller frees). When `unavailable` is not NULL it receives the JSON array
 * of the Lua scripts that cannot run (syntax error...; caller frees). */
char *handlers_list_json(agent *a, char **unavailable);

/* SIGHUP: rescans the Lua scripts (of `lua_dir`, the reloaded
 * agent.lua_dir; NULL = the current directory). Tasks running keep their code. */
void handlers_reload(agent *a, const char *lua_dir);

#endif
