/* PostgreSQL migrations: the numbered, append-only files of sql/
 * (NNNN_name.sql), tracked in schema_migrations(version, name, checksum,
 * applied_at). Each pending file runs in its own transaction while the run
 * holds a session advisory lock, so concurrent runs (several schedulerd
 * instances, or `jetsched migrate` twice) apply each migration once. An
 * applied migration whose file changed is refused, naming the file. */
#ifndef JETSCHED_MIGRATE_H
#define JETSCHED_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <jetsched/sha256.h>
#include <jetsched/status.h>

/* Where the files are installed; the default of jet_migrate_sql_dir(). */
#define JET_SQL_DIR_DEFAULT "/usr/share/jetsched/sql"
/* Key of the advisory lock held by a migration run. */
#define JET_MIGRATE_LOCK_KEY INT64_C(0x6a657473636864) /* "jetschd" */

typedef enum jet_migration_state {
    JET_MIG_PENDING,   /* file present, not applied */
    JET_MIG_APPLIED,   /* applied, file unchanged */
    JET_MIG_MODIFIED,  /* applied, but the file's checksum differs: refused */
    JET_MIG_MISSING,   /* applied, no file (a newer binary applied it) */
} jet_migration_state;

typedef struct jet_migration {
    int64_t version;                          /* the leading number of the file name */
    char name[256];                           /* file name, e.g. "0001_init.sql" */
    char checksum[JET_SHA256_HEX_LEN];        /* sha256 of the file ("" when missing) */
    char applied_checksum[JET_SHA256_HEX_LEN];/* as recorded ("" when pending) */
    int64_t applied_at_ms;                    /* 0 when pending */
    jet_migration_state state;
} jet_migration;

/* The directory to use: dir when non-NULL, else $JETSCHED_SQL_DIR, else JET_SQL_DIR_DEFAULT. */
const char *jet_migrate_sql_dir(const char *dir);

/* Lowercase name of a state: "pending", "applied", "modified", "missing". */
const char *jet_migration_state_name(jet_migration_state s);

/* Lists the migration files of dir in version order (state PENDING, not
 * looking at the database). Files not named NNNN_name.sql are ignored; two
 * files with one version are an error. *out is freed with free(). */
jet_status jet_migrate_scan(const char *dir, jet_migration **out, size_t *count, jet_err *err);

/* Files and schema_migrations merged, in version order (read-only; a missing
 * schema_migrations table means everything is pending). */
jet_status jet_migrate_status(PGconn *conn, const char *dir, jet_migration **out, size_t *count, jet_err *err);

/* Applies every pending migration of dir, each in its own transaction, under
 * the advisory lock. Refuses (JET_ERR_CONFLICT, nothing applied) when an
 * applied migration was modified, or when a pending one is older than an
 * applied one. *applied (may be NULL) receives how many were applied now. */
jet_status jet_migrate_apply(PGconn *conn, const char *dir, int *applied, jet_err *err);

#endif
