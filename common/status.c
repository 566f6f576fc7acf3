/* Status codes and the jet_err error value. */
#include <jetsched/status.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct { const char *code, *text; } status_names[JET_STATUS_COUNT] = {
    [JET_OK]              = {"ok", "success"},
    [JET_ERR_INVALID]     = {"invalid_argument", "invalid argument"},
    [JET_ERR_NOMEM]       = {"resource_exhausted", "out of memory"},
    [JET_ERR_IO]          = {"io_error", "input/output error"},
    [JET_ERR_NOT_FOUND]   = {"not_found", "not found"},
    [JET_ERR_CONFLICT]    = {"conflict", "conflicts with an existing object"},
    [JET_ERR_TIMEOUT]     = {"timeout", "timed out"},
    [JET_ERR_UNAVAILABLE] = {"unavailable", "service unavailable"},
    [JET_ERR_NATS]        = {"nats_error", "NATS error"},
    [JET_ERR_PG]          = {"database_error", "PostgreSQL error"},
    [JET_ERR_INTERNAL]    = {"internal", "internal error"},
};

const char *jet_status_code(jet_status s)
{
    return (unsigned)s < JET_STATUS_COUNT ? status_names[s].code : "internal";
}

const char *jet_status_text(jet_status s)
{
    return (unsigned)s < JET_STATUS_COUNT ? status_names[s].text : "unknown status";
}

jet_status jet_err_set(jet_err *err, jet_status code, const char *fmt, ...)
{
    if (err) {
        /* Formatted aside first: callers often wrap the previous message
         * ("postgres: %s", err->msg), and vsnprintf into its own argument
         * is undefined. */
        char msg[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        err->code = code;
        memcpy(err->msg, msg, sizeof msg);
    }
    return code;
}

void jet_err_clear(jet_err *err)
{
    if (err) {
        err->code = JET_OK;
        err->msg[0] = '\0';
    }
}
