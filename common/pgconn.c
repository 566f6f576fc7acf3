/* PostgreSQL connection set-up and reconnect policy (reference §6). */
#include <jetsched/pgconn.h>
#include <jetsched/daemon_cli.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

jet_status jet_pg_err(jet_err *err, const PGconn *conn, const PGresult *res, const char *what)
{
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    char clean[700];
    snprintf(clean, sizeof clean, "%s", msg);
    for (size_t n = strlen(clean); n && (clean[n - 1] == '\n' || clean[n - 1] == ' '); n--)
        clean[n - 1] = '\0';
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    jet_status code = (!conn || PQstatus(conn) != CONNECTION_OK || jet_pg_is_transient(conn, res))
                          ? JET_ERR_UNAVAILABLE : JET_ERR_PG;
    return jet_err_set(err, code, "%s: %s%s%s%s", what, clean, state ? " (SQLSTATE " : "", state ? state : "",
                       state ? ")" : "");
}

bool jet_pg_is_transient(const PGconn *conn, const PGresult *res)
{
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return true;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return res == NULL || PQresultStatus(res) == PGRES_FATAL_ERROR;
    return strncmp(state, "08", 2) == 0 || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
           !strcmp(state, "57P03") || !strcmp(state, "53300") || !strcmp(state, "40001") ||
           !strcmp(state, "40P01");
}

/* Server notices, and errors outside a query (at a server restart:
 * "FATAL: terminating connection due to administrator command"), go to the
 * log instead of libpq's raw line on stderr, which broke JSON logs. */
static void notice_to_log(void *arg, const char *msg)
{
    (void)arg;
    int n = (int)strcspn(msg, "\n");
    bool bad = strncmp(msg, "FATAL", 5) == 0 || strncmp(msg, "ERROR", 5) == 0 || strncmp(msg, "WARNING", 7) == 0 ||
               strncmp(msg, "PANIC", 5) == 0;
    jet_log(bad ? JET_LOG_WARN : JET_LOG_DEBUG, "postgres: %.*s", n, msg);
}

jet_status jet_pg_connect(const jet_config *cfg, const char *application_name, PGconn **out, jet_err *err)
{
    char timeout[32], stmt[96];
    snprintf(timeout, sizeof timeout, "%lld", (long long)((jet_cfg_int(cfg, "postgres.connect_timeout") + 999) / 1000));
    snprintf(stmt, sizeof stmt, "-c statement_timeout=%lld -c idle_in_transaction_session_timeout=60000",
             (long long)jet_cfg_int(cfg, "postgres.statement_timeout"));
    char *password = NULL;
    if (jet_cfg_str(cfg, "postgres.password_file")) {
        password = jet_read_secret_file(jet_cfg_str(cfg, "postgres.password_file"), err);
        if (!password)
            return JET_ERR_IO;
    }
    /* The DSN is expanded first; later keywords override it. */
    const char *keys[] = {"dbname", "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "application_name", "options",
                          password ? "password" : NULL, NULL};
    const char *vals[] = {jet_cfg_str(cfg, "postgres.dsn") ? jet_cfg_str(cfg, "postgres.dsn") : "",
                          timeout, "1", "10", "5", "3", "30000", application_name, stmt, password, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    if (!c)
        return jet_err_set(err, JET_ERR_NOMEM, "postgres: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        jet_status st = jet_pg_err(err, c, NULL, "connect to postgres.dsn");
        PQfinish(c);
        return st;
    }
    PQsetNoticeProcessor(c, notice_to_log, NULL);
    *out = c;
    return JET_OK;
}

/* The retry loop of jet_pg_connect_retry and jet_pg_connect_wait: stopped()
 * ends it early. */
static jet_status connect_retry(const jet_config *cfg, const char *application_name, bool (*stopped)(const void *),
                                const void *arg, int64_t max_wait_ms, PGconn **out, jet_err *err)
{
    int64_t start = jet_mono_ms(), backoff = 100, cap = jet_cfg_int(cfg, "postgres.reconnect_max");
    for (int attempt = 1;; attempt++) {
        jet_status st = jet_pg_connect(cfg, application_name, out, err);
        if (st == JET_OK || st == JET_ERR_IO)
            return st;
        if (stopped(arg))
            return st;
        unsigned r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (unsigned)jet_mono_ms();
        int64_t wait = backoff / 2 + (int64_t)(r % (unsigned)(backoff / 2 + 1));
        if (max_wait_ms >= 0 && jet_mono_ms() - start + wait > max_wait_ms)
            return st;
        if (attempt == 1 || attempt % 10 == 0)
            jet_warn("waiting for PostgreSQL (attempt %d, next in %lld ms): %s", attempt, (long long)wait,
                     err ? err->msg : "");
        for (int64_t slept = 0; slept < wait && !stopped(arg); slept += 50)
            jet_sleep_ms(wait - slept < 50 ? wait - slept : 50);
        backoff = backoff * 2 > cap ? cap : backoff * 2;
    }
}

static bool flag_set(const void *arg) { return arg && *(volatile const bool *)arg; }

jet_status jet_pg_connect_retry(const jet_config *cfg, const char *application_name, volatile const bool *stop,
                                int64_t max_wait_ms, PGconn **out, jet_err *err)
{
    return connect_retry(cfg, application_name, flag_set, (const void *)stop, max_wait_ms, out, err);
}

static bool stop_signal(const void *arg)
{
    (void)arg;
    return jet_stop_signal_pending();
}

jet_status jet_pg_connect_wait(const jet_config *cfg, const char *application_name, int64_t max_wait_ms,
                               PGconn **out, jet_err *err)
{
    jet_status st = connect_retry(cfg, application_name, stop_signal, NULL, max_wait_ms, out, err);
    if (st != JET_OK && jet_stop_signal_pending())
        return jet_err_set(err, JET_ERR_UNAVAILABLE, "stopped while waiting for PostgreSQL");
    return st;
}
