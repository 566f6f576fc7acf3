/* Name rules of the external contract (DESIGN §3): queues, handlers and
 * schedule ids are 1-64 chars of [a-z0-9_-]; task ids 1-128 of [A-Za-z0-9_-];
 * limit keys 1-128 of [A-Za-z0-9_.:-];
 * priorities are high, normal, low. */
#ifndef JETSCHED_NAMES_H
#define JETSCHED_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define JET_NAME_MAX 64
#define JET_TASK_ID_MAX 128
#define JET_LIMIT_KEY_MAX 128


bool jet_name_valid(const char *s);      /* queue, handler, schedule id */
bool jet_task_id_valid(const char *s);
/* A concurrency or rate key (Jetsched-Concurrency-Key, Jetsched-Rate-Key,
 * limit.set): 1-128 chars of [A-Za-z0-9_.:-] (DESIGN §12). */
bool jet_limit_key_valid(const char *s);

typedef enum jet_priority { JET_PRIO_HIGH = 0, JET_PRIO_NORMAL = 1, JET_PRIO_LOW = 2, JET_PRIO_COUNT } jet_priority;
const char *jet_priority_name(jet_priority p);
bool jet_priority_parse(const char *s, jet_priority *out);

/* The 32-hex trace id of a W3C traceparent ("00-<trace id>-<span id>-<flags>")
 * into out (33 bytes); "" when tp is NULL or not a traceparent. This is what
 * tasks.trace_id holds. */
void jet_trace_id(const char *tp, char out[33]);

#endif
