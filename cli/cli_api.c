/* CLI helpers: the NATS connection of a jetsched invocation and requests to
 * the schedulerd API (docs/API.md), mapping error replies and transport
 * failures to messages and exit codes in one place. */
#include "cli.h"

#include <jetsched/log.h>
#include <jetsched/natsconn.h>
#include <jetsched/redact.h>

#include <stdlib.h>
#include <string.h>

void cli_nats_error_text(const jet_config *cfg, const char *raw, char *out, size_t len)
{
    static const char lead[] = "connect to nats.url: ";
    char urls[512], reason[1024];
    if (strncmp(raw, lead, sizeof lead - 1) == 0)
        raw += sizeof lead - 1;
    snprintf(reason, sizeof reason, "%s", raw);
    /* without the library's "(file.c:line)" noise */
    char *noise = strstr(reason, ": (");
    if (noise)
        *noise = '\0';
    jet_redact(jet_cfg_str(cfg, "nats.url"), urls, sizeof urls);
    snprintf(out, len, "cannot reach NATS at %s (nats.url): %s", urls, reason);
}

natsConnection *cli_nats(cli_ctx *ctx, int *rc)
{
    if (ctx->nc)
        return ctx->nc;
    jet_config *cfg = cli_config(ctx);
    if (!cfg) {
        *rc = CLI_FAILED;
        return NULL;
    }
    jet_err err = {0};
    jet_status st = jet_nats_connect(cfg, "jetsched-cli", false, &ctx->nc, &err);
    if (st != JET_OK) {
        char text[1600];
        cli_nats_error_text(cfg, err.msg, text, sizeof text);
        fprintf(stderr, "jetsched: unavailable: %s\n", text);
        if (ctx->json) {
            json_t *e = json_pack("{s:{s:s,s:s}}", "error", "code", "unavailable", "message", text);
            cli_print_json(e);
            json_decref(e);
        }
        *rc = st == JET_ERR_UNAVAILABLE || st == JET_ERR_TIMEOUT || st == JET_ERR_NATS ? CLI_UNAVAILABLE : CLI_FAILED;
        ctx->nc = NULL;
        return NULL;
    }
    return ctx->nc;
}

const char *cli_prefix(cli_ctx *ctx)
{
    jet_config *cfg = cli_config(ctx);
    const char *p = cfg ? jet_cfg_str(cfg, "nats.prefix") : NULL;
    return p ? p : "jetsched";
}

void cli_close(cli_ctx *ctx)
{
    if (!ctx->nc)
        return;
    /* Our own close fires the library's disconnected callback, which would
     * log "disconnected; reconnecting": nothing worth a warning is left. */
    jet_log_set_level(JET_LOG_ERROR);
    natsConnection_Destroy(ctx->nc);
    ctx->nc = NULL;
    nats_Close();
}

int cli_error_exit(const char *code)
{
    return code && strcmp(code, "unavailable") == 0 ? CLI_UNAVAILABLE : CLI_FAILED;
}

void cli_print_api_error(cli_ctx *ctx, const json_t *error, const char *context)
{
    const char *code = cli_str(error, "code");
    const char *msg = cli_str(error, "message");
    const char *field = cli_str(error, "field");
    fprintf(stderr, "jetsched: %s: %s", code ? code : "error", msg ? msg : "(no message)");
    if (field && (!msg || !strstr(msg, field)))
        fprintf(stderr, " (field \"%s\")", field);
    if (context && (!msg || !strstr(msg, context)))
        fprintf(stderr, " [%s]", context);
    fputc('\n', stderr);
    (void)ctx;
}

/* Prints a transport failure; returns its exit code. */
static int transport_error(cli_ctx *ctx, const char *subject, const char *text)
{
    fprintf(stderr, "jetsched: unavailable: %s\n", text);
    if (ctx->json) {
        json_t *e = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "unavailable", "message", text, "subject", subject);
        cli_print_json(e);
        json_decref(e);
    }
    return CLI_UNAVAILABLE;
}

static int request(cli_ctx *ctx, const char *verb, json_t *req, json_t **out, bool quiet)
{
    *out = NULL;
    int rc = CLI_OK;
    natsConnection *nc = cli_nats(ctx, &rc);
    if (!nc) {
        json_decref(req);
        return rc;
    }
    char subject[256];
    snprintf(subject, sizeof subject, "%s.api.%s", cli_prefix(ctx), verb);
    char *body = req ? json_dumps(req, JSON_COMPACT) : strdup("{}");
    json_decref(req);
    if (!body) {
        fprintf(stderr, "jetsched: out of memory\n");
        return CLI_FAILED;
    }
    natsMsg *reply = NULL;
    int64_t timeout = ctx->request_timeout_ms > 0 ? ctx->request_timeout_ms : 5000;
    natsStatus s = natsConnection_RequestString(&reply, nc, subject, body, timeout);
    free(body);
    char text[700];
    if (s == NATS_NO_RESPONDERS) {
        snprintf(text, sizeof text, "no schedulerd serves %s (is schedulerd running?)", subject);
        return transport_error(ctx, subject, text);
    }
    if (s == NATS_TIMEOUT) {
        snprintf(text, sizeof text, "no reply on %s within %lld ms (is schedulerd running and connected?)", subject,
                 (long long)timeout);
        return transport_error(ctx, subject, text);
    }
    if (s != NATS_OK) {
        snprintf(text, sizeof text, "request on %s failed: %s", subject, natsStatus_GetText(s));
        return transport_error(ctx, subject, text);
    }
    json_error_t jerr;
    json_t *doc = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &jerr);
    natsMsg_Destroy(reply);
    if (!json_is_object(doc)) {
        json_decref(doc);
        fprintf(stderr, "jetsched: internal: the reply on %s is not a JSON object (%s)\n", subject, jerr.text);
        return CLI_FAILED;
    }
    json_t *error = json_object_get(doc, "error");
    if (json_is_object(error)) {
        int code = cli_error_exit(cli_str(error, "code"));
        if (quiet) {
            *out = json_incref(error);
        } else {
            cli_print_api_error(ctx, error, NULL);
            if (ctx->json)
                cli_print_json(doc);
        }
        json_decref(doc);
        return code;
    }
    *out = doc;
    return CLI_OK;
}

int cli_request(cli_ctx *ctx, const char *verb, json_t *req, json_t **out)
{
    return request(ctx, verb, req, out, false);
}

int cli_request_quiet(cli_ctx *ctx, const char *verb, json_t *req, json_t **out)
{
    return request(ctx, verb, req, out, true);
}

int cli_request_pages(cli_ctx *ctx, const char *verb, const json_t *req, const char *field, bool all, json_t **items,
                      char **next)
{
    json_t *r = json_deep_copy(req);
    *items = json_array();
    *next = NULL;
    int rc;
    for (;;) {
        json_t *reply = NULL;
        rc = cli_request(ctx, verb, json_incref(r), &reply);
        if (rc != CLI_OK)
            break;
        json_t *page = json_object_get(reply, field);
        size_t got = json_array_size(page);
        json_array_extend(*items, page);
        free(*next);
        const char *n = cli_str(reply, "next_cursor");
        *next = n ? strdup(n) : NULL;
        json_decref(reply);
        if (!all || !*next || got == 0)
            break;
        json_object_set_new(r, "cursor", json_string(*next));
    }
    json_decref(r);
    return rc;
}

int cli_request_many(cli_ctx *ctx, const char *verb, json_t **reqs, size_t n, size_t window, json_t **replies,
                     int *rcs, struct cli_progress *bar)
{
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
        rcs[i] = CLI_UNAVAILABLE;
    }
    int rc = CLI_OK;
    natsConnection *nc = cli_nats(ctx, &rc);
    char inbox[200]; /* under nats.inbox_prefix */
    natsSubscription *sub = NULL;
    char subject[256], wildcard[300];
    snprintf(subject, sizeof subject, "%s.api.%s", cli_prefix(ctx), verb);
    jet_nats_new_inbox(inbox, sizeof inbox);
    snprintf(wildcard, sizeof wildcard, "%s.*", inbox);
    if (nc && (natsConnection_SubscribeSync(&sub, nc, wildcard) != NATS_OK ||
               natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK)) {
        fprintf(stderr, "jetsched: unavailable: cannot subscribe to the reply inbox\n");
        rc = CLI_UNAVAILABLE;
    }
    size_t next = 0, outstanding = 0;
    int64_t timeout = ctx->request_timeout_ms > 0 ? ctx->request_timeout_ms : 5000;
    while (rc == CLI_OK && (next < n || outstanding > 0)) {
        for (; next < n && outstanding < window; next++, outstanding++) {
            char *body = json_dumps(reqs[next], JSON_COMPACT);
            json_decref(reqs[next]);
            reqs[next] = NULL;
            char reply_to[320];
            snprintf(reply_to, sizeof reply_to, "%s.%zu", inbox, next);
            natsStatus s = natsConnection_PublishRequestString(nc, subject, reply_to, body ? body : "{}");
            free(body);
            if (s != NATS_OK) {
                char text[400];
                snprintf(text, sizeof text, "request on %s failed: %s", subject, natsStatus_GetText(s));
                rc = transport_error(ctx, subject, text);
                break;
            }
        }
        if (rc != CLI_OK)
            break;
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, timeout);
        if (s != NATS_OK) {
            char text[400];
            if (s == NATS_TIMEOUT)
                snprintf(text, sizeof text, "no reply on %s within %lld ms (is schedulerd running and connected?)",
                         subject, (long long)timeout);
            else
                snprintf(text, sizeof text, "request on %s failed: %s", subject, natsStatus_GetText(s));
            rc = transport_error(ctx, subject, text);
            break;
        }
        const char *dot = strrchr(natsMsg_GetSubject(m), '.');
        char *end = NULL;
        unsigned long long i = dot ? strtoull(dot + 1, &end, 10) : n;
        if (natsMsg_IsNoResponders(m)) {
            char text[400];
            snprintf(text, sizeof text, "no schedulerd serves %s (is schedulerd running?)", subject);
            natsMsg_Destroy(m);
            rc = transport_error(ctx, subject, text);
            break;
        }
        if (i < n && end && !*end && !replies[i]) {
            json_t *doc = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
            json_t *error = json_object_get(doc, "error");
            if (!json_is_object(doc)) {
                replies[i] = json_pack("{s:s,s:s}", "code", "internal", "message", "the reply is not a JSON object");
                rcs[i] = CLI_FAILED;
            } else if (json_is_object(error)) {
                replies[i] = json_incref(error);
                rcs[i] = cli_error_exit(cli_str(error, "code"));
            } else {
                replies[i] = json_incref(doc);
                rcs[i] = CLI_OK;
            }
            json_decref(doc);
            outstanding--;
            if (bar)
                cli_progress_step(bar, rcs[i] == CLI_OK);
        }
        natsMsg_Destroy(m);
    }
    for (size_t i = next; i < n; i++) {
        json_decref(reqs[i]);
        reqs[i] = NULL;
    }
    natsSubscription_Destroy(sub);
    return rc;
}
