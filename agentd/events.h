/* Live events (DESIGN §3): one core NATS message on
 * <prefix>.event.<queue>.<task id> per state change of a task, and the
 * handlers' progress reports. Fire and forget (not persisted). */
#ifndef AGENTD_EVENTS_H
#define AGENTD_EVENTS_H

#include "agent.h"

/* extra_json_fields: a JSON object whose members are added (progress, note), or NULL. */
void event_publish(agent *a, const agent_task *t, jet_task_state status, int attempt, const char *error,
                   const char *extra_json_fields);
/* A "running" event with {progress, note?} (the host API's progress()). */
void event_progress(agent *a, const agent_task *t, int percent, const char *note);

#endif
