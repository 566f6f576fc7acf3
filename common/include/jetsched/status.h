/* Status codes shared by every jetsched component, and the error value that
 * carries a code plus a human message naming the object/field at fault. */
#ifndef JETSCHED_STATUS_H
#define JETSCHED_STATUS_H

#include <stddef.h>

typedef enum jet_status {
    JET_OK = 0,
    JET_ERR_INVALID,      /* bad input: config, request field, header */
    JET_ERR_NOMEM,
    JET_ERR_IO,           /* file or socket I/O */
    JET_ERR_NOT_FOUND,
    JET_ERR_CONFLICT,     /* an existing object differs from what we need */
    JET_ERR_TIMEOUT,
    JET_ERR_UNAVAILABLE,  /* a dependency (NATS, PostgreSQL) cannot be reached */
    JET_ERR_NATS,         /* NATS/JetStream returned an error */
    JET_ERR_PG,           /* PostgreSQL returned an error */
    JET_ERR_INTERNAL,
    JET_STATUS_COUNT
} jet_status;

/* Stable lowercase name, e.g. "invalid_argument"; used in API error JSON. */
const char *jet_status_code(jet_status s);
/* Short English description of the status. */
const char *jet_status_text(jet_status s);

/* An error: status + message. Functions that can fail take a `jet_err *`
 * (which may be NULL) and fill it in; the message names what was wrong. */
typedef struct jet_err {
    jet_status code;
    char msg[1024];
} jet_err;

/* Sets *err (if err != NULL) and returns code, so callers can write
 * `return jet_err_set(err, JET_ERR_INVALID, "field %s: ...", name);`. */
jet_status jet_err_set(jet_err *err, jet_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void jet_err_clear(jet_err *err);

#endif
