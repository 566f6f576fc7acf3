/* Support for the API tests; see sched_api_support.h. */
#include "sched_api_support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *sa_req(const char *verb, const char *body)
{
    char subject[200];
    snprintf(subject, sizeof subject, "jetsched.api.%s", verb);
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, ts_nats(), subject, body, (int)strlen(body), 10000);
    if (s != NATS_OK) {
        fprintf(stderr, "FATAL: request %s %s: no reply: %s\n", subject, body, natsStatus_GetText(s));
        exit(1);
    }
    json_error_t je;
    json_t *v = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &je);
    if (!v) {
        fprintf(stderr, "FATAL: reply to %s is not JSON: %.*s\n", subject, natsMsg_GetDataLength(reply),
                natsMsg_GetData(reply));
        exit(1);
    }
    if (getenv("JETSCHED_API_TRACE"))
        printf("TRACE %s %s\nTRACE -> %.*s\n", subject, body, natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
    return v;
}

json_t *sa_reqf(const char *verb, const char *fmt, ...)
{
    static char body[1 << 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return sa_req(verb, body);
}

static const json_t *at(const json_t *v, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && v; t = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(t)) : json_object_get(v, t);
    return v;
}

const char *sa_str(const json_t *reply, const char *path)
{
    const json_t *v = at(reply, path);
    return json_is_string(v) ? json_string_value(v) : "";
}

long long sa_int(const json_t *reply, const char *path)
{
    const json_t *v = at(reply, path);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

const char *sa_code(const json_t *reply) { return sa_str(reply, "error.code"); }
const char *sa_field(const json_t *reply) { return sa_str(reply, "error.field"); }
const char *sa_message(const json_t *reply) { return sa_str(reply, "error.message"); }

void sa_expect_error(json_t *reply, const char *code, const char *field, const char *what)
{
    char *text = json_dumps(reply, JSON_COMPACT);
    CHECK(strcmp(sa_code(reply), code) == 0, "%s: code %s expected: %s", what, code, text);
    if (field)
        CHECK(strcmp(sa_field(reply), field) == 0, "%s: field %s expected: %s", what, field, text);
    CHECK(strlen(sa_message(reply)) > 5, "%s: a message: %s", what, text);
    free(text);
    json_decref(reply);
}

void sa_expect_ok(json_t *reply, const char *what)
{
    char *text = json_dumps(reply, JSON_COMPACT);
    CHECK(json_object_get(reply, "error") == NULL, "%s: success expected: %s", what, text);
    free(text);
    json_decref(reply);
}

char *sa_repeat(const char *unit, int n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)n + 1);
    for (int i = 0; i < n; i++)
        memcpy(s + u * (size_t)i, unit, u);
    s[u * (size_t)n] = '\0';
    return s;
}
