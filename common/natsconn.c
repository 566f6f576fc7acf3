/* NATS connection set-up with daemon-grade defaults (DESIGN §10). */
#include <jetsched/redact.h>
#include <jetsched/natsconn.h>
#include <jetsched/daemon_cli.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t reconnects, disconnects;
static char inbox_prefix[128] = "_INBOX";

uint64_t jet_nats_reconnects(void) { return atomic_load(&reconnects); }
uint64_t jet_nats_disconnects(void) { return atomic_load(&disconnects); }

jet_status jet_nats_err(jet_err *err, natsStatus s, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    return jet_err_set(err, s == NATS_TIMEOUT ? JET_ERR_TIMEOUT :
                            (s == NATS_NO_SERVER || s == NATS_CONNECTION_CLOSED || s == NATS_NO_RESPONDERS)
                                ? JET_ERR_UNAVAILABLE : JET_ERR_NATS,
                       "%s: %s%s%s", what, natsStatus_GetText(s), last && *last ? ": " : "", last ? last : "");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    if (natsConnection_IsClosed(nc))
        return; /* our own close, not an outage */
    atomic_fetch_add(&disconnects, 1);
    jet_warn("NATS %s: disconnected; reconnecting", (const char *)closure);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    char url[256] = "", shown[300];
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    atomic_fetch_add(&reconnects, 1);
    jet_info("NATS %s: reconnected to %s", (const char *)closure, jet_redact(url, shown, sizeof shown));
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    jet_info("NATS %s: connection closed", (const char *)closure);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)sub;
    /* The server's text names the cause and the subject, e.g. Permissions
     * Violation for Publish to "$JS.API.STREAM.INFO.JETSCHED_TASKS". */
    const char *text = NULL;
    natsConnection_GetLastError(nc, &text);
    if (err == NATS_NOT_PERMITTED)
        jet_error("NATS %s: %s: this client's NATS user lacks that permission (docs/OPERATIONS.md, Secured NATS)",
                  (const char *)closure, text && *text ? text : natsStatus_GetText(err));
    else
        jet_warn("NATS %s: asynchronous error: %s%s%s", (const char *)closure, natsStatus_GetText(err),
                 text && *text ? ": " : "", text ? text : "");
}

bool jet_nats_inbox_prefix_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n >= sizeof inbox_prefix || p[0] == '.' || p[n - 1] == '.' || strstr(p, ".."))
        return false;
    for (; *p; p++)
        if (*p == '*' || *p == '>' || *p == ' ' || *p == '\t')
            return false;
    return true;
}

void jet_nats_new_inbox(char *buf, size_t len)
{
    natsInbox *inbox = NULL;
    const char *id = "";
    if (natsInbox_Create(&inbox) == NATS_OK) /* "_INBOX.<nuid>": keep the unique part */
        id = strchr((const char *)inbox, '.') ? strchr((const char *)inbox, '.') + 1 : (const char *)inbox;
    snprintf(buf, len, "%s.%s", inbox_prefix, id);
    natsInbox_Destroy(inbox);
}

/* Sets a secret from `key` or, when unset, from the file named by `key`_file. */
static jet_status secret(const jet_config *cfg, const char *key, const char *file_key, char **out, jet_err *err)
{
    const char *v = jet_cfg_str(cfg, key);
    const char *f = jet_cfg_str(cfg, file_key);
    *out = NULL;
    if (v) {
        *out = strdup(v);
    } else if (f) {
        *out = jet_read_secret_file(f, err);
        if (!*out)
            return JET_ERR_IO;
    }
    return JET_OK;
}

/* libnats spins up to 2,000 trylocks (its default) before it sleeps on a
 * contended mutex. On a few cores with more threads than cores (agentd's
 * workers, reader, delivery, acker and flusher share one connection) that
 * spinning burns the CPU the lock holder needs: the library is opened with
 * no spinning (docs/PERFORMANCE.md, "libnats lock spinning").
 * JETSCHED_NATS_LOCK_SPIN=N restores a spin count, for A/B runs. */
static void open_lib_no_spin(void)
{
    const char *e = getenv("JETSCHED_NATS_LOCK_SPIN");
    (void)nats_Open(e ? strtoll(e, NULL, 10) : 0);
}

void jet_nats_lib_open(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, open_lib_no_spin);
}

jet_status jet_nats_connect(const jet_config *cfg, const char *client_name, bool retry_on_failed_connect,
                            natsConnection **out, jet_err *err)
{
    jet_nats_lib_open();
    natsOptions *o = NULL;
    natsStatus s;
    jet_status st = JET_OK;
    char *password = NULL, *token = NULL;
    static char closure_name[128];
    snprintf(closure_name, sizeof closure_name, "%s", client_name);

    *out = NULL;
    if ((s = natsOptions_Create(&o)) != NATS_OK)
        return jet_nats_err(err, s, "nats options");
#define TRY(call, what)                              \
    do {                                             \
        if ((s = (call)) != NATS_OK) {               \
            st = jet_nats_err(err, s, what);         \
            goto done;                               \
        }                                            \
    } while (0)
    {
        /* A comma-separated list: libnats 3.4.1's SetURL takes the whole
         * list as one URL (connect fails with "No server available"), so
         * split it and use SetServers. */
        char urls[2048];
        const char *servers[32];
        int n = 0;
        snprintf(urls, sizeof urls, "%s", jet_cfg_str(cfg, "nats.url"));
        for (char *save = NULL, *t = strtok_r(urls, ", ", &save); t && n < 32; t = strtok_r(NULL, ", ", &save))
            servers[n++] = t;
        TRY(n ? natsOptions_SetServers(o, servers, n) : NATS_INVALID_ARG, "nats.url");
    }
    TRY(natsOptions_SetName(o, client_name), "client name");
    {
        const char *pfx = jet_cfg_str(cfg, "nats.inbox_prefix");
        if (!jet_nats_inbox_prefix_valid(pfx)) {
            st = jet_err_set(err, JET_ERR_INVALID,
                             "nats.inbox_prefix: \"%s\" is not a subject prefix (tokens without * > or spaces)",
                             pfx ? pfx : "");
            goto done;
        }
        snprintf(inbox_prefix, sizeof inbox_prefix, "%s", pfx);
        if (strcmp(pfx, "_INBOX") != 0)
            TRY(natsOptions_SetCustomInboxPrefix(o, pfx), "nats.inbox_prefix");
    }
    TRY(natsOptions_SetTimeout(o, jet_cfg_int(cfg, "nats.connect_timeout")), "nats.connect_timeout");
    TRY(natsOptions_SetPingInterval(o, jet_cfg_int(cfg, "nats.ping_interval")), "nats.ping_interval");
    TRY(natsOptions_SetMaxPingsOut(o, 2), "max pings out");
    TRY(natsOptions_SetMaxReconnect(o, -1), "max reconnect");
    TRY(natsOptions_SetReconnectWait(o, jet_cfg_int(cfg, "nats.reconnect_wait")), "nats.reconnect_wait");
    TRY(natsOptions_SetReconnectJitter(o, 100, 1000), "reconnect jitter");
    TRY(natsOptions_SetReconnectBufSize(o, 8 * 1024 * 1024), "reconnect buffer");
    TRY(natsOptions_SetDisconnectedCB(o, on_disconnected, closure_name), "callbacks");
    TRY(natsOptions_SetReconnectedCB(o, on_reconnected, closure_name), "callbacks");
    TRY(natsOptions_SetClosedCB(o, on_closed, closure_name), "callbacks");
    TRY(natsOptions_SetErrorHandler(o, on_error, closure_name), "callbacks");
    if (retry_on_failed_connect)
        TRY(natsOptions_SetRetryOnFailedConnect(o, true, on_reconnected, closure_name), "retry on failed connect");

    if ((st = secret(cfg, "nats.password", "nats.password_file", &password, err)) != JET_OK)
        goto done;
    if ((st = secret(cfg, "nats.token", "nats.token_file", &token, err)) != JET_OK)
        goto done;
    if (jet_cfg_str(cfg, "nats.user"))
        TRY(natsOptions_SetUserInfo(o, jet_cfg_str(cfg, "nats.user"), password ? password : ""), "nats.user");
    if (token)
        TRY(natsOptions_SetToken(o, token), "nats.token");
    if (jet_cfg_str(cfg, "nats.nkey_seed_file")) {
        char *seed = jet_read_secret_file(jet_cfg_str(cfg, "nats.nkey_seed_file"), err);
        if (!seed) {
            st = JET_ERR_IO;
            goto done;
        }
        /* Derive the public key the library needs from the seed file itself. */
        free(seed);
        TRY(natsOptions_SetNKeyFromSeed(o, NULL, jet_cfg_str(cfg, "nats.nkey_seed_file")), "nats.nkey_seed_file");
    }
    if (jet_cfg_str(cfg, "nats.creds_file"))
        TRY(natsOptions_SetUserCredentialsFromFiles(o, jet_cfg_str(cfg, "nats.creds_file"), NULL),
            "nats.creds_file");
    if (jet_cfg_str(cfg, "nats.tls_ca") || jet_cfg_str(cfg, "nats.tls_cert")) {
        TRY(natsOptions_SetSecure(o, true), "TLS");
        if (jet_cfg_str(cfg, "nats.tls_ca"))
            TRY(natsOptions_LoadCATrustedCertificates(o, jet_cfg_str(cfg, "nats.tls_ca")), "nats.tls_ca");
        if (jet_cfg_str(cfg, "nats.tls_cert"))
            TRY(natsOptions_LoadCertificatesChain(o, jet_cfg_str(cfg, "nats.tls_cert"), jet_cfg_str(cfg, "nats.tls_key")),
                "nats.tls_cert/nats.tls_key");
    }
    s = natsConnection_Connect(out, o);
    if (s == NATS_NOT_YET_CONNECTED && retry_on_failed_connect)
        s = NATS_OK;
    if (s != NATS_OK) {
        char url[512], what[700];
        jet_redact(jet_cfg_str(cfg, "nats.url"), url, sizeof url);
        snprintf(what, sizeof what, "connect to nats.url %s%s%s", url, jet_cfg_str(cfg, "nats.user") ? " as user " : "",
                 jet_cfg_str(cfg, "nats.user") ? jet_cfg_str(cfg, "nats.user") : "");
        st = jet_nats_err(err, s, what);
    }
#undef TRY
done:
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    natsOptions_Destroy(o);
    return st;
}

jet_status jet_nats_jetstream(natsConnection *nc, const jet_config *cfg, jsCtx **out, jet_err *err)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = jet_cfg_int(cfg, "nats.publish_timeout");
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.StallWait = 200;
    natsStatus s = natsConnection_JetStream(out, nc, &jo);
    return s == NATS_OK ? JET_OK : jet_nats_err(err, s, "JetStream context");
}

jet_status jet_nats_connect_wait(const jet_config *cfg, const char *client_name, natsConnection **out,
                                 jet_err *err)
{
    for (int attempt = 1;; attempt++) {
        jet_status st = jet_nats_connect(cfg, client_name, false, out, err);
        if (st == JET_OK || (st != JET_ERR_UNAVAILABLE && st != JET_ERR_TIMEOUT))
            return st;
        if (attempt == 1 || attempt % 10 == 0) {
            char shown[2048];
            jet_warn("waiting for NATS at %s: %s", jet_redact(jet_cfg_str(cfg, "nats.url"), shown, sizeof shown),
                     err->msg);
        }
        for (int slept = 0; slept < 1000; slept += 50) {
            if (jet_stop_signal_pending())
                return jet_err_set(err, JET_ERR_UNAVAILABLE, "stopped while waiting for NATS");
            jet_sleep_ms(50);
        }
    }
}
