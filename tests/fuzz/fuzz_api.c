/* Fuzz target: API request decoding and validation of every verb
 * (scheduler/api*.c) without servers: api_init_offline makes each verb
 * answer `unavailable` where it would reach PostgreSQL or NATS. The first
 * byte picks the verb, the rest is the request body. Every reply (success
 * or error) must serialise as JSON, so a client always gets an answer. */
#include "api.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sched s;
    static size_t nverbs;
    static const api_verb_def *verbs;
    if (!verbs) {
        snprintf(s.id, sizeof s.id, "fuzz");
        jet_js_names_init(&s.names, "jetsched");
        s.max_payload = 1 << 20;
        api_init_offline(&s);
        verbs = api_verbs(&nverbs);
    }
    if (size < 1 || size > 1 << 20)
        return 0;
    const char *verb = verbs[data[0] % nverbs].verb;
    api_err e = {0};
    json_t *req = api_parse_body((const char *)data + 1, size - 1, &e), *res = NULL;
    if (req) {
        res = api_call(verb, req, &e);
        json_decref(req);
    }
    if (!res)
        res = api_error_body(&e);
    char *body = json_dumps(res, JSON_COMPACT);
    if (!body)
        abort(); /* the client would get no reply */
    free(body);
    json_decref(res);
    return 0;
}
