/* Authentication of the HTTP API (web.h, DESIGN §12): bearer tokens read from
 * the files of web.tokens (each with a role, viewer or operator; only their
 * SHA-256 is kept in memory), the session cookie that POST /api/v1/login sets
 * (HMAC-SHA256 under the key of web.session_secret_file, so that every
 * schedulerd sharing the file accepts it), the CSRF check of
 * cookie-authenticated state changes, the failed-login limiter (answers 429,
 * never sleeps) and the audit log lines. No secret is ever logged. */
#include "web.h"

#include <jetsched/base64.h>
#include <jetsched/log.h>
#include <jetsched/metrics.h>
#include <jetsched/sha256.h>
#include <jetsched/timeutil.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SESSION_COOKIE "jetsched_session"
#define TOKEN_MIN_LEN 16
#define SECRET_MIN_LEN 32
#define LIMITER_SLOTS 512

typedef struct token {
    char name[65];
    web_role role;
    uint8_t hash[JET_SHA256_LEN];
} token;

static token *tokens;
static size_t ntokens;
static uint8_t session_key[64];
static size_t session_key_len;
static int64_t session_ttl_ms;
static int64_t limit_failures, limit_window_ms;
static jet_metric *m_failures, *m_throttled;

/* The failed-login limiter: recent failures per client address. */
static struct slot {
    char ip[64];
    int64_t window_start, blocked_until;
    int64_t failures;
} slots[LIMITER_SLOTS];
static pthread_mutex_t limiter_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *role_name(web_role r) { return r == WEB_ROLE_OPERATOR ? "operator" : r == WEB_ROLE_VIEWER ? "viewer" : "none"; }

static bool token_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len < 1 || len > 64)
        return false;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
            return false;
    return true;
}

jet_status web_auth_init(sched *s, jet_err *err)
{
    size_t n = jet_cfg_groups(s->cfg, "web.tokens");
    tokens = calloc(n ? n : 1, sizeof *tokens);
    ntokens = 0;
    for (size_t i = 0; i < n; i++) {
        const jet_config *g = jet_cfg_group_at(s->cfg, "web.tokens", i);
        const char *name = jet_cfg_str(g, "name"), *role = jet_cfg_str(g, "role"), *file = jet_cfg_str(g, "file");
        if (!token_name_ok(name)) {
            web_auth_free();
            return jet_err_set(err, JET_ERR_INVALID, "web.tokens[%zu].name \"%.80s\": 1-64 characters of [A-Za-z0-9_.-]",
                               i, name);
        }
        for (size_t j = 0; j < ntokens; j++)
            if (!strcmp(tokens[j].name, name)) {
                web_auth_free();
                return jet_err_set(err, JET_ERR_INVALID, "web.tokens[%zu].name \"%s\": used twice", i, name);
            }
        jet_err e2;
        char *secret = jet_read_secret_file(file, &e2);
        if (!secret) {
            web_auth_free();
            return jet_err_set(err, JET_ERR_INVALID, "web.tokens[%zu].file (token %s): %s", i, name, e2.msg);
        }
        size_t len = strlen(secret);
        bool ok = len >= TOKEN_MIN_LEN;
        for (size_t k = 0; k < len && ok; k++)
            ok = secret[k] > 0x20 && secret[k] < 0x7f;
        token *t = &tokens[ntokens];
        jet_sha256 c;
        jet_sha256_init(&c);
        jet_sha256_update(&c, secret, len);
        jet_sha256_final(&c, t->hash);
        explicit_bzero(secret, len);
        free(secret);
        if (!ok) {
            web_auth_free();
            return jet_err_set(err, JET_ERR_INVALID,
                               "web.tokens[%zu].file %s (token %s): the token must be at least %d printable "
                               "characters without spaces (e.g. openssl rand -hex 24)",
                               i, file, name, TOKEN_MIN_LEN);
        }
        for (size_t j = 0; j < ntokens; j++)
            if (!memcmp(tokens[j].hash, t->hash, sizeof t->hash)) {
                web_auth_free();
                return jet_err_set(err, JET_ERR_INVALID, "web.tokens[%zu].file %s: tokens %s and %s are the same", i,
                                   file, tokens[j].name, name);
            }
        snprintf(t->name, sizeof t->name, "%s", name);
        t->role = !strcmp(role, "operator") ? WEB_ROLE_OPERATOR : WEB_ROLE_VIEWER;
        ntokens++;
    }
    const char *sf = jet_cfg_str(s->cfg, "web.session_secret_file");
    if (sf && *sf) {
        jet_err e2;
        char *secret = jet_read_secret_file(sf, &e2);
        if (!secret) {
            web_auth_free();
            return jet_err_set(err, JET_ERR_INVALID, "web.session_secret_file: %s", e2.msg);
        }
        size_t len = strlen(secret);
        if (len < SECRET_MIN_LEN) {
            explicit_bzero(secret, len);
            free(secret);
            web_auth_free();
            return jet_err_set(err, JET_ERR_INVALID,
                               "web.session_secret_file %s: the key must be at least %d characters "
                               "(e.g. openssl rand -hex 32)", sf, SECRET_MIN_LEN);
        }
        /* HMAC keys longer than a block are hashed first (RFC 2104). */
        if (len > sizeof session_key) {
            jet_sha256 c;
            jet_sha256_init(&c);
            jet_sha256_update(&c, secret, len);
            jet_sha256_final(&c, session_key);
            session_key_len = JET_SHA256_LEN;
        } else {
            memcpy(session_key, secret, len);
            session_key_len = len;
        }
        explicit_bzero(secret, len);
        free(secret);
    } else {
        if (getrandom(session_key, 32, 0) != 32) {
            web_auth_free();
            return jet_err_set(err, JET_ERR_IO, "web: getrandom failed for the session key");
        }
        session_key_len = 32;
        if (ntokens)
            jet_warn("web: no web.session_secret_file: console sessions are signed with a random key, valid on this "
                     "instance until it restarts");
    }
    session_ttl_ms = jet_cfg_int(s->cfg, "web.session_ttl");
    limit_failures = jet_cfg_int(s->cfg, "web.login_max_failures");
    limit_window_ms = jet_cfg_int(s->cfg, "web.login_window");
    m_failures = jet_metric_counter("jetsched_web_auth_failures_total",
                                    "Failed authentications on web.listen (bad token at login, bad bearer token, bad "
                                    "or expired session cookie).",
                                    "kind");
    m_throttled = jet_metric_counter("jetsched_web_auth_throttled_total",
                                     "Requests answered 429 because their address had too many recent failed logins.",
                                     NULL);
    memset(slots, 0, sizeof slots);
    return JET_OK;
}

void web_auth_free(void)
{
    if (tokens)
        explicit_bzero(tokens, (ntokens ? ntokens : 1) * sizeof *tokens);
    free(tokens);
    tokens = NULL;
    ntokens = 0;
    explicit_bzero(session_key, sizeof session_key);
    session_key_len = 0;
}

size_t web_auth_tokens(void) { return ntokens; }

/* ---------------- the limiter ---------------- */

/* Seconds the address must still wait (0: not blocked). */
static int64_t limiter_blocked(const char *ip)
{
    int64_t now = jet_mono_ms(), wait = 0;
    pthread_mutex_lock(&limiter_mu);
    for (size_t i = 0; i < LIMITER_SLOTS; i++)
        if (!strcmp(slots[i].ip, ip) && slots[i].blocked_until > now)
            wait = (slots[i].blocked_until - now + 999) / 1000;
    pthread_mutex_unlock(&limiter_mu);
    return wait;
}

static void limiter_fail(const char *ip, const char *kind)
{
    const char *labels[] = {kind};
    jet_metric_add(m_failures, labels, 1);
    int64_t now = jet_mono_ms();
    pthread_mutex_lock(&limiter_mu);
    struct slot *sl = NULL, *oldest = &slots[0];
    for (size_t i = 0; i < LIMITER_SLOTS && !sl; i++) {
        if (!strcmp(slots[i].ip, ip))
            sl = &slots[i];
        else if (slots[i].window_start < oldest->window_start)
            oldest = &slots[i];
    }
    if (!sl) {
        sl = oldest;
        memset(sl, 0, sizeof *sl);
        snprintf(sl->ip, sizeof sl->ip, "%s", ip);
    }
    if (now - sl->window_start > limit_window_ms) {
        sl->window_start = now;
        sl->failures = 0;
    }
    if (++sl->failures >= limit_failures) {
        sl->blocked_until = now + limit_window_ms;
        jet_warn("web: %lld failed logins from %s within %lld s: refused (429) for %lld s", (long long)sl->failures,
                 ip, (long long)(limit_window_ms / 1000), (long long)(limit_window_ms / 1000));
    }
    pthread_mutex_unlock(&limiter_mu);
}

static bool throttled(web_req *r, api_err *e)
{
    int64_t wait = limiter_blocked(r->ip);
    if (!wait)
        return false;
    jet_metric_add(m_throttled, NULL, 1);
    char ra[24];
    snprintf(ra, sizeof ra, "%lld", (long long)wait);
    web_header(r, "Retry-After", ra);
    api_fail(e, API_EXHAUSTED, NULL, "too many failed logins from %s: try again in %lld s", r->ip, (long long)wait);
    return true;
}

/* ---------------- tokens and sessions ---------------- */

static const token *find_token(const char *secret)
{
    uint8_t h[JET_SHA256_LEN];
    jet_sha256 c;
    jet_sha256_init(&c);
    jet_sha256_update(&c, secret, strlen(secret));
    jet_sha256_final(&c, h);
    const token *found = NULL;
    for (size_t i = 0; i < ntokens; i++)
        if (jet_memeq_consttime(tokens[i].hash, h, sizeof h))
            found = &tokens[i];
    return found;
}

static const token *find_name(const char *name)
{
    for (size_t i = 0; i < ntokens; i++)
        if (!strcmp(tokens[i].name, name))
            return &tokens[i];
    return NULL;
}

/* base64url(HMAC(key, text)). */
static char *sign(const char *prefix, const char *text)
{
    size_t n = strlen(prefix) + strlen(text);
    char *buf = malloc(n + 1);
    snprintf(buf, n + 1, "%s%s", prefix, text);
    uint8_t mac[JET_SHA256_LEN];
    jet_hmac_sha256(session_key, session_key_len, buf, n, mac);
    free(buf);
    return jet_base64_encode(mac, sizeof mac, true);
}

/* The cookie value "<b64url(v1|name|role|expiry ms)>.<signature>". */
static char *session_make(const token *t, int64_t *expires)
{
    *expires = jet_now_ms() + session_ttl_ms;
    char payload[160];
    uint32_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce)
        nonce = (uint32_t)jet_mono_ms();
    snprintf(payload, sizeof payload, "v1|%s|%s|%lld|%08x", t->name, role_name(t->role), (long long)*expires, nonce);
    char *p64 = jet_base64_encode(payload, strlen(payload), true), *sig = sign("session|", p64);
    char *out;
    if (asprintf(&out, "%s.%s", p64, sig) < 0)
        out = NULL;
    free(p64);
    free(sig);
    return out;
}

/* Verifies a cookie value; fills who. */
static bool session_check(const char *value, web_who *who)
{
    const char *dot = strchr(value, '.');
    if (!dot || (size_t)(dot - value) >= sizeof who->session)
        return false;
    char p64[sizeof who->session];
    snprintf(p64, sizeof p64, "%.*s", (int)(dot - value), value);
    char *want = sign("session|", p64);
    bool ok = want && strlen(want) == strlen(dot + 1) && jet_memeq_consttime(want, dot + 1, strlen(want));
    free(want);
    if (!ok)
        return false;
    unsigned char *payload = NULL;
    size_t len = 0;
    if (!jet_base64_decode(p64, strlen(p64), &payload, &len))
        return false;
    char name[72] = "", role[16] = "";
    long long exp = 0;
    ok = sscanf((char *)payload, "v1|%71[^|]|%15[^|]|%lld|", name, role, &exp) == 3 && exp > jet_now_ms();
    free(payload);
    const token *t = ok ? find_name(name) : NULL;
    if (!t) /* expired, or the token was removed since (revokes its sessions) */
        return false;
    /* The lower of the role signed in the cookie and the token's role now. */
    web_role signed_role = !strcmp(role, "operator") ? WEB_ROLE_OPERATOR : WEB_ROLE_VIEWER;
    who->role = t->role < signed_role ? t->role : signed_role;
    snprintf(who->name, sizeof who->name, "%s", t->name);
    snprintf(who->session, sizeof who->session, "%s", p64);
    who->cookie = true;
    return true;
}

struct named {
    const char *name;
    int n;
};

static enum MHD_Result count_named(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    struct named *c = cls;
    c->n += key && !strcasecmp(key, c->name);
    return MHD_YES;
}

/* How many times the request carries a header (kind MHD_HEADER_KIND) or cookie. */
static int occurrences(web_req *r, enum MHD_ValueKind kind, const char *name)
{
    struct named c = {name, 0};
    MHD_get_connection_values(r->conn, kind, count_named, &c);
    return c.n;
}

bool web_authenticate(web_req *r, api_err *e)
{
    const char *auth = web_get_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, SESSION_COOKIE);
    /* Two credentials of one kind: a proxy may pass on the last one while
     * libmicrohttpd answers the first (a viewer's and an operator's token). */
    if ((auth && occurrences(r, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) > 1) ||
        (!auth && cookie && occurrences(r, MHD_COOKIE_KIND, SESSION_COOKIE) > 1)) {
        api_fail(e, API_UNAUTHENTICATED, NULL, "%s is given more than once: send exactly one",
                 auth ? "the Authorization header" : "the session cookie");
        return false;
    }
    if (auth) {
        if (throttled(r, e))
            return false;
        if (strncasecmp(auth, "Bearer ", 7) != 0) {
            api_fail(e, API_UNAUTHENTICATED, NULL, "Authorization must be \"Bearer <token>\"");
            return false;
        }
        const token *t = find_token(auth + 7);
        if (!t) {
            limiter_fail(r->ip, "bearer");
            api_fail(e, API_UNAUTHENTICATED, NULL, "the bearer token is not one of web.tokens");
            return false;
        }
        r->who.role = t->role;
        snprintf(r->who.name, sizeof r->who.name, "%s", t->name);
        return true;
    }
    if (cookie) {
        if (session_check(cookie, &r->who))
            return true;
        const char *labels[] = {"cookie"};
        jet_metric_add(m_failures, labels, 1);
        api_fail(e, API_UNAUTHENTICATED, NULL, "the session has expired or is not valid: log in again");
        return false;
    }
    api_fail(e, API_UNAUTHENTICATED, NULL,
             "authentication required: send \"Authorization: Bearer <token>\", or log in (POST /api/v1/login)");
    return false;
}

static char *csrf_token(const web_who *who) { return sign("csrf|", who->session); }

/* The host part of an Origin ("https://h:8443" -> "h:8443"). */
static bool same_origin(web_req *r, const char *origin)
{
    const char *host = web_get_header(r, MHD_HTTP_HEADER_HOST), *p = strstr(origin, "://");
    return host && p && !strcmp(p + 3, host);
}

bool web_authorize(web_req *r, bool writes, api_err *e)
{
    if (writes && r->who.role < WEB_ROLE_OPERATOR) {
        api_fail(e, API_PERMISSION, NULL, "token %s has role %s: %s %s needs an operator token", r->who.name,
                 role_name(r->who.role), r->method, r->url);
        return false;
    }
    if (!r->who.cookie || !web_is_write_method(r->method))
        return true;
    const char *site = web_get_header(r, "Sec-Fetch-Site"), *origin = web_get_header(r, "Origin");
    if (site && strcmp(site, "same-origin") != 0) {
        api_fail(e, API_PERMISSION, NULL, "cross-site request refused (Sec-Fetch-Site: %.40s)", site);
        return false;
    }
    if (origin && !same_origin(r, origin)) {
        api_fail(e, API_PERMISSION, NULL, "cross-origin request refused (Origin does not match Host)");
        return false;
    }
    const char *got = web_get_header(r, "X-CSRF-Token");
    char *want = csrf_token(&r->who);
    bool ok = got && want && strlen(got) == strlen(want) && jet_memeq_consttime(got, want, strlen(want));
    free(want);
    if (!ok) {
        api_fail(e, API_PERMISSION, NULL,
                 "missing or wrong X-CSRF-Token header: a state change authenticated by the session cookie needs "
                 "the csrf_token of POST /api/v1/login or GET /api/v1/session");
        return false;
    }
    return true;
}

/* ---------------- login, logout, session ---------------- */

static json_t *who_json(const web_who *who, int64_t expires)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "name", who->name, "role", role_name(who->role), "auth",
                          who->cookie ? "cookie" : "bearer");
    if (who->cookie) {
        char *csrf = csrf_token(who);
        json_object_set_new(o, "csrf_token", json_string(csrf));
        free(csrf);
    }
    if (expires) {
        char buf[40];
        json_object_set_new(o, "expires_at", json_string(jet_rfc3339_format(expires, buf, sizeof buf)));
    }
    return o;
}

enum MHD_Result web_login(web_req *r)
{
    api_err e = {0};
    if (throttled(r, &e)) {
        web_audit(r, "login", 429, e.code);
        return web_error(r, &e);
    }
    const char *type = web_get_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!type || strncasecmp(type, "application/json", 16) != 0 || (type[16] && type[16] != ';' && type[16] != ' '))
        return web_fail(r, API_INVALID, NULL, "POST /api/v1/login takes a JSON body {\"token\":\"...\"} with "
                                              "Content-Type: application/json");
    json_t *req = api_parse_body(r->body ? r->body : "", r->len, &e);
    static const char *const fields[] = {"token", NULL};
    const char *secret = NULL;
    if (!req || !api_check_fields(req, fields, &e) || api_str(req, "token", true, &secret, &e) < 0) {
        json_decref(req);
        return web_error(r, &e);
    }
    const token *t = find_token(secret);
    json_decref(req);
    if (r->body)
        explicit_bzero(r->body, r->len);
    if (!t) {
        limiter_fail(r->ip, "login");
        snprintf(r->who.name, sizeof r->who.name, "-");
        web_audit(r, "login", 401, API_UNAUTHENTICATED);
        return web_fail(r, API_UNAUTHENTICATED, "token", "the token is not one of web.tokens");
    }
    int64_t expires;
    char *value = session_make(t, &expires), *cookie;
    if (!value || asprintf(&cookie, SESSION_COOKIE "=%s; Path=/; Max-Age=%lld; HttpOnly; Secure; SameSite=Strict",
                           value, (long long)(session_ttl_ms / 1000)) < 0) {
        free(value);
        return web_fail(r, API_INTERNAL, NULL, "out of memory");
    }
    session_check(value, &r->who);
    free(value);
    web_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    explicit_bzero(cookie, strlen(cookie));
    free(cookie);
    web_audit(r, "login", 200, NULL);
    return web_json(r, 200, who_json(&r->who, expires));
}

enum MHD_Result web_logout(web_req *r)
{
    web_header(r, MHD_HTTP_HEADER_SET_COOKIE,
               SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    api_err e = {0};
    if (web_authenticate(r, &e))
        web_audit(r, "logout", 200, NULL);
    return web_json(r, 200, json_pack("{s:b}", "logged_out", 1));
}

enum MHD_Result web_session(web_req *r)
{
    api_err e = {0};
    if (!web_authenticate(r, &e))
        return web_error(r, &e);
    return web_json(r, 200, who_json(&r->who, 0));
}

void web_audit(web_req *r, const char *what, int status, const char *code)
{
    /* The URL is decoded: a %0A in it must not start a forged log line. */
    char url[1024];
    size_t n = 0;
    for (const char *p = r->url; *p && n + 4 < sizeof url; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch == 0x7f || ch == '%')
            n += (size_t)snprintf(url + n, sizeof url - n, "%%%02X", ch);
        else
            url[n++] = (char)ch;
    }
    url[n] = '\0';
    jet_info("audit: %s %s (%s) by %s [%s, %s] from %s: %d %s", r->method, url, what,
             r->who.name[0] ? r->who.name : "-", role_name(r->who.role), r->who.cookie ? "session" : "bearer",
             r->peer, status, code ? code : "ok");
}
