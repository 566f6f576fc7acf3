/* The task states' names (jetsched/task.h). */
#include <jetsched/task.h>

#include <string.h>
#include <strings.h>

const char *const jet_task_state_names[JET_TASK_STATE_COUNT + 1] = {
    [JET_TASK_SCHEDULED] = "scheduled", [JET_TASK_QUEUED] = "queued",       [JET_TASK_RUNNING] = "running",
    [JET_TASK_SUCCEEDED] = "succeeded", [JET_TASK_RETRYING] = "retrying",   [JET_TASK_DEAD] = "dead",
    [JET_TASK_EXPIRED] = "expired",     [JET_TASK_CANCELLED] = "cancelled", [JET_TASK_DUPLICATE] = "duplicate",
    [JET_TASK_SKIPPED] = "skipped",     [JET_TASK_WAITING] = "waiting",     [JET_TASK_THROTTLED] = "throttled",
    [JET_TASK_LOST] = "lost",           [JET_TASK_RATE_LIMITED] = "rate_limited",
    [JET_TASK_STATE_COUNT] = NULL,
};

const char *jet_task_state_name(jet_task_state s)
{
    return (unsigned)s < JET_TASK_STATE_COUNT ? jet_task_state_names[s] : "unknown";
}

bool jet_task_state_parse(const char *s, jet_task_state *out)
{
    for (int i = 0; s && i < JET_TASK_STATE_COUNT; i++)
        if (strcmp(jet_task_state_names[i], s) == 0) {
            if (out)
                *out = (jet_task_state)i;
            return true;
        }
    return false;
}

bool jet_task_state_terminal(jet_task_state s)
{
    return s == JET_TASK_SUCCEEDED || s == JET_TASK_DEAD || s == JET_TASK_EXPIRED || s == JET_TASK_CANCELLED ||
           s == JET_TASK_DUPLICATE || s == JET_TASK_SKIPPED;
}

bool jet_task_state_of_task(jet_task_state s)
{
    return (unsigned)s < JET_TASK_STATE_COUNT && s != JET_TASK_LOST && s != JET_TASK_RATE_LIMITED;
}

bool jet_task_state_ok(jet_task_state s) { return s == JET_TASK_SUCCEEDED || s == JET_TASK_DUPLICATE; }

bool jet_header_internal(const char *name)
{
    static const char *const internal[] = {JET_HDR_TASK_ID,     JET_HDR_REDISPATCH, JET_HDR_IDEMPOTENCY,
                                           JET_HDR_ATTEMPT_BUDGET, JET_HDR_SCHEDULE_ID, JET_HDR_FIRE_TIME,
                                           JET_HDR_HANDLER,     JET_HDR_MSG_ID,     JET_HDR_WORKFLOW_ID};
    for (size_t i = 0; name && i < sizeof internal / sizeof internal[0]; i++)
        if (strcasecmp(name, internal[i]) == 0)
            return true;
    return false;
}

bool jet_task_status_terminal(const char *status)
{
    jet_task_state st;
    return jet_task_state_parse(status, &st) && jet_task_state_terminal(st);
}

bool jet_task_status_ok(const char *status)
{
    jet_task_state st;
    return jet_task_state_parse(status, &st) && jet_task_state_ok(st);
}
