/* Logging: one line per record on stderr, text or JSON, written with a
 * single write(2) so lines from different threads never interleave. */
#include <jetsched/log.h>
#include <jetsched/utf8.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The component is named once at start (a reload passes the same name and
 * leaves it alone); level and format change on reload while other threads
 * log, hence atomics. */
static char log_component[32] = "jetsched";
static _Atomic int log_min_level = JET_LOG_INFO;
static _Atomic bool log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The task this thread works on (jet_log_task_begin): JSON lines carry its id
 * and trace id; text lines do not change (their messages name the task). */
static _Thread_local char ctx_task[136], ctx_trace[40];

void jet_log_task_begin(const char *task_id, const char *trace_id)
{
    snprintf(ctx_task, sizeof ctx_task, "%s", task_id ? task_id : "");
    snprintf(ctx_trace, sizeof ctx_trace, "%s", trace_id ? trace_id : "");
}

void jet_log_task_end(void) { ctx_task[0] = ctx_trace[0] = '\0'; }

void jet_log_init(const char *component, jet_log_level level, bool json)
{
    if (!component)
        component = "jetsched";
    if (strncmp(log_component, component, sizeof log_component - 1) != 0)
        snprintf(log_component, sizeof log_component, "%s", component);
    atomic_store(&log_min_level, (int)level);
    atomic_store(&log_json, json);
}

void jet_log_set_level(jet_log_level level) { atomic_store(&log_min_level, (int)level); }

bool jet_log_enabled(jet_log_level level) { return (int)level >= atomic_load(&log_min_level); }

const char *jet_log_level_name(jet_log_level level)
{
    return (unsigned)level <= JET_LOG_ERROR ? level_names[level] : "info";
}

bool jet_log_level_parse(const char *s, jet_log_level *out)
{
    for (int i = 0; i <= JET_LOG_ERROR; i++)
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (jet_log_level)i;
            return true;
        }
    return false;
}

/* Appends s to buf as JSON string content (without quotes). */
static size_t json_escape(char *buf, size_t pos, size_t cap, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c == '\n') {
            buf[pos++] = '\\'; buf[pos++] = 'n';
        } else if (c < 0x20) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
        } else {
            buf[pos++] = (char)c;
        }
    }
    return pos;
}

void jet_log(jet_log_level level, const char *fmt, ...)
{
    if (!jet_log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages quote peer input (header values, subjects, plugin and Lua
     * log text): invalid UTF-8, or a character cut at the buffer's end,
     * becomes U+FFFD, so every log line is valid UTF-8. */
    jet_utf8_repair(msg, sizeof msg);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    char line[4600];
    size_t n;
    if (atomic_load(&log_json)) {
        n = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",",
                             when, jet_log_level_name(level), log_component);
        if (ctx_task[0]) {
            n += (size_t)snprintf(line + n, sizeof line - n, "\"task_id\":\"");
            n = json_escape(line, n, sizeof line - 3, ctx_task);
            n += (size_t)snprintf(line + n, sizeof line - n, "\",");
        }
        if (ctx_trace[0]) {
            n += (size_t)snprintf(line + n, sizeof line - n, "\"trace_id\":\"");
            n = json_escape(line, n, sizeof line - 3, ctx_trace);
            n += (size_t)snprintf(line + n, sizeof line - n, "\",");
        }
        n += (size_t)snprintf(line + n, sizeof line - n, "\"msg\":\"");
        n = json_escape(line, n, sizeof line - 3, msg);
        n += (size_t)snprintf(line + n, sizeof line - n, "\"}\n");
    } else {
        n = (size_t)snprintf(line, sizeof line, "%s %-5s %s: %s\n", when, jet_log_level_name(level),
                             log_component, msg);
    }
    if (n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
