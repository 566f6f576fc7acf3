/* PostgreSQL connection set-up: the `postgres.*` keys, connect_timeout,
 * TCP keepalives, application_name, session timeouts, and reconnect with
 * capped exponential backoff and full jitter. */
#ifndef JETSCHED_PGCONN_H
#define JETSCHED_PGCONN_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <jetsched/config.h>
#include <jetsched/status.h>

/* One connection attempt. application_name: e.g. "agentd". */
jet_status jet_pg_connect(const jet_config *cfg, const char *application_name,
                          PGconn **out, jet_err *err);

/* Retries jet_pg_connect with backoff (base 100 ms, cap `postgres.reconnect_max`)
 * until it succeeds, *stop becomes true, or max_wait_ms (< 0: forever) passes. */
jet_status jet_pg_connect_retry(const jet_config *cfg, const char *application_name,
                                volatile const bool *stop, int64_t max_wait_ms,
                                PGconn **out, jet_err *err);

/* The same for a daemon's start-up: the wait ends early, with
 * JET_ERR_UNAVAILABLE "stopped while waiting for PostgreSQL", as soon as a
 * SIGTERM or SIGINT is pending (jet_stop_signal_pending()). */
jet_status jet_pg_connect_wait(const jet_config *cfg, const char *application_name, int64_t max_wait_ms,
                               PGconn **out, jet_err *err);

/* True when the SQLSTATE of res (or a broken connection) means "retry later":
 * class 08, 57P01-57P03, 53300, 40001, 40P01. */
bool jet_pg_is_transient(const PGconn *conn, const PGresult *res);

/* Fills *err from a failed result or connection; returns JET_ERR_PG or JET_ERR_UNAVAILABLE. */
jet_status jet_pg_err(jet_err *err, const PGconn *conn, const PGresult *res, const char *what);

#endif
