/* Logging: levels, text or JSON lines on stderr, a component prefix.
 * Never pass secrets to these functions: nothing here can redact them. */
#ifndef JETSCHED_LOG_H
#define JETSCHED_LOG_H

#include <stdbool.h>

typedef enum jet_log_level {
    JET_LOG_DEBUG = 0,
    JET_LOG_INFO,
    JET_LOG_WARN,
    JET_LOG_ERROR,
} jet_log_level;

/* component: "agentd", "schedulerd", "jetsched" ... json: one JSON object per
 * line: {"time","level","component"[,"task_id"][,"trace_id"],"msg"}. */
void jet_log_init(const char *component, jet_log_level level, bool json);
void jet_log_set_level(jet_log_level level);
/* Parses "debug|info|warn|error"; returns false for anything else. */
bool jet_log_level_parse(const char *s, jet_log_level *out);
const char *jet_log_level_name(jet_log_level level);
bool jet_log_enabled(jet_log_level level);

/* JSON lines written by this thread between these two carry "task_id" (and
 * "trace_id" when not NULL or empty): a worker sets them around a task. */
void jet_log_task_begin(const char *task_id, const char *trace_id);
void jet_log_task_end(void);

void jet_log(jet_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define jet_debug(...) do { if (jet_log_enabled(JET_LOG_DEBUG)) jet_log(JET_LOG_DEBUG, __VA_ARGS__); } while (0)
#define jet_info(...)  jet_log(JET_LOG_INFO, __VA_ARGS__)
#define jet_warn(...)  jet_log(JET_LOG_WARN, __VA_ARGS__)
#define jet_error(...) jet_log(JET_LOG_ERROR, __VA_ARGS__)

#endif
