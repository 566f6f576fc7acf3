/* Support for the API tests (on top of sched_support.h): requests to
 * <prefix>.api.<verb> and checks of reply bodies. */
#ifndef JETSCHED_TESTS_SCHED_API_SUPPORT_H
#define JETSCHED_TESTS_SCHED_API_SUPPORT_H

#include "sched_support.h"

#include <jansson.h>

/* Sends body (JSON text, or raw bytes for malformed-input tests) to
 * jetsched.api.<verb>; returns the parsed reply (FATAL when there is none
 * within 10 s or it is not JSON). Also prints the exchange when
 * JETSCHED_API_TRACE is set (for docs/API.md examples). */
json_t *sa_req(const char *verb, const char *body);
/* printf-style body. */
json_t *sa_reqf(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The error code of a reply ("" when it is not an error), its field ("" when none), its message. */
const char *sa_code(const json_t *reply);
const char *sa_field(const json_t *reply);
const char *sa_message(const json_t *reply);
/* A string member by dotted path ("task.status"); "" when absent or not a string. */
const char *sa_str(const json_t *reply, const char *path);
long long sa_int(const json_t *reply, const char *path);
/* Checks that reply is an error with code and (unless NULL) field; frees reply. */
void sa_expect_error(json_t *reply, const char *code, const char *field, const char *what);
/* Frees a reply, checking it is not an error. Returns nothing. */
void sa_expect_ok(json_t *reply, const char *what);

/* unit n times (malloc'd). */
char *sa_repeat(const char *unit, int n);

#endif
