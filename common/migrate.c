/* The migration runner: scans sql/ for NNNN_name.sql files, compares them
 * with schema_migrations, and applies the pending ones, each in its own
 * transaction, while holding a session advisory lock. */
#include <jetsched/migrate.h>
#include <jetsched/log.h>
#include <jetsched/pgconn.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SQL_FILE (16 * 1024 * 1024)

const char *jet_migrate_sql_dir(const char *dir)
{
    if (dir && *dir)
        return dir;
    const char *env = getenv("JETSCHED_SQL_DIR");
    return env && *env ? env : JET_SQL_DIR_DEFAULT;
}

const char *jet_migration_state_name(jet_migration_state s)
{
    switch (s) {
    case JET_MIG_PENDING: return "pending";
    case JET_MIG_APPLIED: return "applied";
    case JET_MIG_MODIFIED: return "modified";
    case JET_MIG_MISSING: return "missing";
    }
    return "unknown";
}

/* NNNN_name.sql with name of [A-Za-z0-9_.-]; *version receives NNNN. */
static bool parse_name(const char *name, int64_t *version)
{
    size_t len = strlen(name), digits = 0;
    while (isdigit((unsigned char)name[digits]))
        digits++;
    jet_migration m;
    if (digits == 0 || digits > 9 || name[digits] != '_' || len < digits + 6 || len >= sizeof m.name ||
        strcmp(name + len - 4, ".sql") != 0)
        return false;
    for (size_t i = digits + 1; i < len - 4; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-' && name[i] != '.')
            return false;
    *version = strtoll(name, NULL, 10);
    return true;
}

/* Reads dir/name whole; refuses NUL bytes (libpq takes C strings). */
static jet_status read_sql(const char *dir, const char *name, char **out, size_t *len, jet_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return jet_err_set(err, JET_ERR_IO, "migration %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    jet_status st = JET_OK;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = cap > MAX_SQL_FILE ? NULL : realloc(buf, cap);
            if (!nb) {
                st = jet_err_set(err, JET_ERR_INVALID, "migration %s: too large or out of memory", path);
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                st = jet_err_set(err, JET_ERR_IO, "migration %s: read error", path);
            break;
        }
    }
    fclose(f);
    if (st == JET_OK && memchr(buf, '\0', n))
        st = jet_err_set(err, JET_ERR_INVALID, "migration %s: contains a NUL byte", path);
    if (st != JET_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return JET_OK;
}

static int by_version(const void *a, const void *b)
{
    const jet_migration *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

static jet_status add_file(const char *dir, const char *name, int64_t version, jet_migration **list, size_t *n,
                           size_t *cap, jet_err *err)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        jet_migration *nl = realloc(*list, nc * sizeof *nl);
        if (!nl)
            return jet_err_set(err, JET_ERR_NOMEM, "migrations: out of memory");
        *list = nl;
        *cap = nc;
    }
    char *sql;
    size_t len;
    jet_status st = read_sql(dir, name, &sql, &len, err);
    if (st != JET_OK)
        return st;
    jet_migration *m = &(*list)[(*n)++];
    memset(m, 0, sizeof *m);
    m->version = version;
    snprintf(m->name, sizeof m->name, "%s", name);
    jet_sha256_hex(sql, len, m->checksum);
    m->state = JET_MIG_PENDING;
    free(sql);
    return JET_OK;
}

jet_status jet_migrate_scan(const char *dir, jet_migration **out, size_t *count, jet_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return jet_err_set(err, JET_ERR_IO, "migrations directory %s: %s (set --sql-dir or JETSCHED_SQL_DIR)", dir,
                           strerror(errno));
    jet_migration *list = NULL;
    size_t n = 0, cap = 0;
    jet_status st = JET_OK;
    struct dirent *e;
    while (st == JET_OK && (e = readdir(d)) != NULL) {
        int64_t version;
        if (parse_name(e->d_name, &version))
            st = add_file(dir, e->d_name, version, &list, &n, &cap, err);
    }
    closedir(d);
    if (st == JET_OK && n > 0) {
        qsort(list, n, sizeof *list, by_version);
        for (size_t i = 1; i < n && st == JET_OK; i++)
            if (list[i].version == list[i - 1].version)
                st = jet_err_set(err, JET_ERR_CONFLICT, "migrations %s and %s in %s have the same version %" PRId64,
                                 list[i - 1].name, list[i].name, dir, list[i].version);
    }
    if (st != JET_OK) {
        free(list);
        return st;
    }
    *out = list;
    *count = n;
    return JET_OK;
}

/* Runs sql (no parameters) and checks for the expected result status. */
static jet_status exec_ok(PGconn *conn, const char *sql, ExecStatusType want, PGresult **keep, const char *what,
                          jet_err *err)
{
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != want) {
        jet_status st = jet_pg_err(err, conn, r, what);
        PQclear(r);
        return st;
    }
    if (keep)
        *keep = r;
    else
        PQclear(r);
    return JET_OK;
}

/* Merges the rows of schema_migrations into the file list (adding MISSING entries). */
static jet_status merge_applied(PGconn *conn, jet_migration **list, size_t *n, jet_err *err)
{
    PGresult *r = NULL;
    jet_status st = exec_ok(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", PGRES_TUPLES_OK, &r,
                            "look for schema_migrations", err);
    if (st != JET_OK)
        return st;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return JET_OK;
    st = exec_ok(conn,
                 "SELECT version, name, checksum, (extract(epoch FROM applied_at) * 1000)::bigint "
                 "FROM schema_migrations ORDER BY version",
                 PGRES_TUPLES_OK, &r, "read schema_migrations", err);
    if (st != JET_OK)
        return st;
    for (int i = 0; i < PQntuples(r) && st == JET_OK; i++) {
        int64_t v = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        jet_migration *m = NULL;
        for (size_t j = 0; j < *n && !m; j++)
            if ((*list)[j].version == v)
                m = &(*list)[j];
        if (!m) {
            jet_migration *nl = realloc(*list, (*n + 1) * sizeof *nl);
            if (!nl) {
                st = jet_err_set(err, JET_ERR_NOMEM, "migrations: out of memory");
                break;
            }
            *list = nl;
            m = &nl[(*n)++];
            memset(m, 0, sizeof *m);
            m->version = v;
            snprintf(m->name, sizeof m->name, "%s", PQgetvalue(r, i, 1));
        }
        snprintf(m->applied_checksum, sizeof m->applied_checksum, "%s", PQgetvalue(r, i, 2));
        m->applied_at_ms = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        m->state = !m->checksum[0] ? JET_MIG_MISSING
                   : strcmp(m->checksum, m->applied_checksum) == 0 ? JET_MIG_APPLIED : JET_MIG_MODIFIED;
    }
    PQclear(r);
    if (st == JET_OK)
        qsort(*list, *n, sizeof **list, by_version);
    return st;
}

jet_status jet_migrate_status(PGconn *conn, const char *dir, jet_migration **out, size_t *count, jet_err *err)
{
    jet_migration *list;
    size_t n;
    jet_status st = jet_migrate_scan(dir, &list, &n, err);
    if (st != JET_OK)
        return st;
    st = merge_applied(conn, &list, &n, err);
    if (st != JET_OK) {
        free(list);
        return st;
    }
    *out = list;
    *count = n;
    return JET_OK;
}

/* Refuses modified applied migrations and pending ones older than an applied one. */
static jet_status check_history(const char *dir, const jet_migration *list, size_t n, jet_err *err)
{
    const jet_migration *last_applied = NULL;
    for (size_t i = 0; i < n; i++) {
        const jet_migration *m = &list[i];
        if (m->state == JET_MIG_MODIFIED)
            return jet_err_set(err, JET_ERR_CONFLICT,
                               "migration %s/%s was changed after it was applied (applied sha256 %s, file sha256 %s); "
                               "applied migrations are append-only: restore the file and put the change in a new "
                               "migration",
                               dir, m->name, m->applied_checksum, m->checksum);
        if (m->state == JET_MIG_MISSING)
            jet_warn("migration %s (version %" PRId64 ") is applied but has no file in %s: the database is newer "
                     "than these migrations", m->name, m->version, dir);
        if (m->state != JET_MIG_PENDING)
            last_applied = m;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].state == JET_MIG_PENDING && last_applied && list[i].version < last_applied->version)
            return jet_err_set(err, JET_ERR_CONFLICT,
                               "migration %s/%s is pending but the later %s is already applied; migrations are "
                               "append-only: renumber it after %s",
                               dir, list[i].name, last_applied->name, last_applied->name);
    return JET_OK;
}

static jet_status ensure_table(PGconn *conn, jet_err *err)
{
    /* Created under the advisory lock, so two first runs cannot race here. */
    return exec_ok(conn,
                   "DO $$ BEGIN IF to_regclass('schema_migrations') IS NULL THEN "
                   "CREATE TABLE schema_migrations ("
                   " version bigint PRIMARY KEY CHECK (version >= 0),"
                   " name text NOT NULL,"
                   " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
                   " applied_at timestamptz NOT NULL DEFAULT now()); END IF; END $$",
                   PGRES_COMMAND_OK, NULL, "create schema_migrations", err);
}

static void rollback(PGconn *conn)
{
    PQclear(PQexec(conn, "ROLLBACK"));
}

/* One migration in one transaction: the file, then its schema_migrations row. */
static jet_status apply_one(PGconn *conn, const char *dir, jet_migration *m, jet_err *err)
{
    char *sql;
    size_t len;
    jet_status st = read_sql(dir, m->name, &sql, &len, err);
    if (st != JET_OK)
        return st;
    jet_sha256_hex(sql, len, m->checksum); /* what is run is what is recorded */
    char version[32];
    snprintf(version, sizeof version, "%" PRId64, m->version);
    const char *params[] = {version, m->name, m->checksum};
    st = exec_ok(conn, "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL client_min_messages = warning",
                 PGRES_COMMAND_OK, NULL, "begin migration", err);
    if (st == JET_OK) {
        PGresult *r = PQexec(conn, sql);
        ExecStatusType rs = PQresultStatus(r);
        if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK && rs != PGRES_EMPTY_QUERY) {
            jet_err e2;
            st = jet_pg_err(&e2, conn, r, "error");
            jet_err_set(err, st, "migration %s/%s failed, nothing of it was applied: %s", dir, m->name, e2.msg);
        } else if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
            st = jet_err_set(err, JET_ERR_INVALID,
                             "migration %s/%s ended its transaction itself: migrations must not contain "
                             "BEGIN, COMMIT or ROLLBACK (the runner wraps each file in one transaction)", dir, m->name);
        }
        PQclear(r);
    }
    if (st == JET_OK) {
        PGresult *r = PQexecParams(conn, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                                   3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            st = jet_pg_err(err, conn, r, "record migration in schema_migrations");
        PQclear(r);
    }
    if (st == JET_OK)
        st = exec_ok(conn, "COMMIT", PGRES_COMMAND_OK, NULL, "commit migration", err);
    else if (PQstatus(conn) == CONNECTION_OK)
        rollback(conn);
    free(sql);
    if (st == JET_OK) {
        m->state = JET_MIG_APPLIED;
        jet_info("applied migration %s (sha256 %s)", m->name, m->checksum);
    }
    return st;
}

static jet_status apply_locked(PGconn *conn, const char *dir, int *applied, jet_err *err)
{
    jet_status st = ensure_table(conn, err);
    jet_migration *list = NULL;
    size_t n = 0;
    if (st == JET_OK)
        st = jet_migrate_status(conn, dir, &list, &n, err);
    if (st == JET_OK)
        st = check_history(dir, list, n, err);
    for (size_t i = 0; st == JET_OK && i < n; i++)
        if (list[i].state == JET_MIG_PENDING) {
            st = apply_one(conn, dir, &list[i], err);
            if (st == JET_OK && applied)
                (*applied)++;
        }
    free(list);
    return st;
}

jet_status jet_migrate_apply(PGconn *conn, const char *dir, int *applied, jet_err *err)
{
    if (applied)
        *applied = 0;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%" PRId64 ")", JET_MIGRATE_LOCK_KEY);
    jet_status st = exec_ok(conn, sql, PGRES_TUPLES_OK, NULL, "take the migration advisory lock", err);
    if (st != JET_OK)
        return st;
    st = apply_locked(conn, dir, applied, err);
    if (PQstatus(conn) == CONNECTION_OK) {
        snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%" PRId64 ")", JET_MIGRATE_LOCK_KEY);
        PQclear(PQexec(conn, sql));
    }
    return st;
}
