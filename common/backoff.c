/* Retry backoff policies with full jitter (jetsched/backoff.h). */
#include <jetsched/backoff.h>

#include <jetsched/timeutil.h>

#include <stdio.h>
#include <string.h>

jet_status jet_backoff_parse(const char *spec, jet_backoff *out, jet_err *err)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    char *parts[4] = {0};
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ":", &save); t && n < 4; t = strtok_r(NULL, ":", &save))
        parts[n++] = t;
    if (n == 0 || n > 3)
        return jet_err_set(err, JET_ERR_INVALID, "backoff \"%s\": expected exp|linear|fixed[:base[:cap]]", spec);
    if (!strcmp(parts[0], "exp"))
        *out = (jet_backoff){JET_BACKOFF_EXP, 1000, 600000};
    else if (!strcmp(parts[0], "linear"))
        *out = (jet_backoff){JET_BACKOFF_LINEAR, 10000, 600000};
    else if (!strcmp(parts[0], "fixed"))
        *out = (jet_backoff){JET_BACKOFF_FIXED, 30000, 30000};
    else
        return jet_err_set(err, JET_ERR_INVALID, "backoff \"%s\": unknown policy \"%s\" (exp, linear or fixed)", spec,
                           parts[0]);
    if (out->kind == JET_BACKOFF_FIXED && n > 2)
        return jet_err_set(err, JET_ERR_INVALID, "backoff \"%s\": fixed takes one duration", spec);
    jet_err derr;
    if (n > 1 && jet_duration_parse(parts[1], &out->base_ms, &derr) != JET_OK)
        return jet_err_set(err, JET_ERR_INVALID, "backoff \"%s\": base: %s", spec, derr.msg);
    if (n > 2 && jet_duration_parse(parts[2], &out->cap_ms, &derr) != JET_OK)
        return jet_err_set(err, JET_ERR_INVALID, "backoff \"%s\": cap: %s", spec, derr.msg);
    if (out->kind == JET_BACKOFF_FIXED)
        out->cap_ms = out->base_ms;
    if (out->cap_ms < out->base_ms)
        return jet_err_set(err, JET_ERR_INVALID, "backoff \"%s\": cap is smaller than base", spec);
    return JET_OK;
}

int64_t jet_backoff_delay(const jet_backoff *b, int failed_attempt, uint64_t rnd)
{
    if (failed_attempt < 1)
        failed_attempt = 1;
    int64_t ceiling;
    switch (b->kind) {
    case JET_BACKOFF_FIXED:
        return b->base_ms;
    case JET_BACKOFF_LINEAR:
        ceiling = failed_attempt > b->cap_ms / (b->base_ms ? b->base_ms : 1) ? b->cap_ms : b->base_ms * failed_attempt;
        break;
    default: {
        ceiling = b->base_ms;
        for (int i = 1; i < failed_attempt && ceiling < b->cap_ms; i++)
            ceiling *= 2;
        break;
    }
    }
    if (ceiling > b->cap_ms)
        ceiling = b->cap_ms;
    return ceiling <= 0 ? 0 : (int64_t)(rnd % (uint64_t)(ceiling + 1));
}
