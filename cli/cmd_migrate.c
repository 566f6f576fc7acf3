/* jetsched migrate: apply the pending PostgreSQL migrations of sql/
 * (`--status`: list applied and pending ones with their checksums). */
#include "cli.h"

#include <jetsched/log.h>
#include <jetsched/migrate.h>
#include <jetsched/pgconn.h>
#include <jetsched/timeutil.h>

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void migrate_usage(FILE *out)
{
    fprintf(out,
            "Usage: jetsched migrate [--sql-dir DIR] [--status]\n\n"
            "Applies the pending migrations of DIR to postgres.dsn, each in its own transaction,\n"
            "under an advisory lock (concurrent runs are safe). An applied migration whose file\n"
            "changed is refused.\n\n"
            "  --sql-dir DIR  migration files (default $JETSCHED_SQL_DIR, else " JET_SQL_DIR_DEFAULT ")\n"
            "  --status       list applied and pending migrations; change nothing\n"
            "  --json         machine-readable output\n\n"
            "Examples:\n"
            "  jetsched migrate --status\n"
            "  JETSCHED_PG_DSN='host=db user=jetsched' jetsched migrate\n\n"
            "Exit codes: 0 ok, 1 failed (or a modified migration), 2 usage, 3 PostgreSQL unreachable.\n");
}

static int exit_code(jet_status st)
{
    return st == JET_OK ? CLI_OK : st == JET_ERR_UNAVAILABLE ? CLI_UNAVAILABLE : CLI_FAILED;
}

static json_t *migration_json(const jet_migration *m)
{
    char at[40] = "";
    if (m->applied_at_ms)
        jet_rfc3339_format(m->applied_at_ms, at, sizeof at);
    return json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:s?}", "version", (json_int_t)m->version, "name", m->name,
                     "state", jet_migration_state_name(m->state), "checksum", m->checksum[0] ? m->checksum : NULL,
                     "applied_checksum", m->applied_checksum[0] ? m->applied_checksum : NULL, "applied_at",
                     at[0] ? at : NULL);
}

static void print_status_json(const char *dir, const jet_migration *list, size_t n)
{
    json_t *arr = json_array();
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, migration_json(&list[i]));
        pending += list[i].state == JET_MIG_PENDING;
    }
    json_t *o = json_pack("{s:s, s:o, s:I}", "sql_dir", dir, "migrations", arr, "pending", (json_int_t)pending);
    char *s = json_dumps(o, JSON_INDENT(2));
    if (s)
        puts(s);
    free(s);
    json_decref(o);
}

static void print_status_text(const char *dir, const jet_migration *list, size_t n)
{
    printf("migrations in %s\n", dir);
    printf("%-8s %-9s %-24s %-64s %s\n", "VERSION", "STATE", "APPLIED AT", "SHA256", "NAME");
    for (size_t i = 0; i < n; i++) {
        const jet_migration *m = &list[i];
        char at[40] = "-";
        if (m->applied_at_ms)
            jet_rfc3339_format(m->applied_at_ms, at, sizeof at);
        printf("%-8" PRId64 " %-9s %-24s %-64s %s\n", m->version, jet_migration_state_name(m->state), at,
               m->checksum[0] ? m->checksum : m->applied_checksum, m->name);
        if (m->state == JET_MIG_MODIFIED)
            printf("         ^ file changed after it was applied (applied sha256 %s)\n", m->applied_checksum);
    }
}

static int do_status(cli_ctx *ctx, PGconn *conn, const char *dir)
{
    jet_migration *list;
    size_t n;
    jet_err err;
    jet_status st = jet_migrate_status(conn, dir, &list, &n, &err);
    if (st != JET_OK) {
        fprintf(stderr, "jetsched migrate: %s\n", err.msg);
        return exit_code(st);
    }
    if (ctx->json)
        print_status_json(dir, list, n);
    else
        print_status_text(dir, list, n);
    int rc = CLI_OK;
    for (size_t i = 0; i < n; i++)
        if (list[i].state == JET_MIG_MODIFIED)
            rc = CLI_FAILED;
    free(list);
    return rc;
}

static int do_apply(cli_ctx *ctx, PGconn *conn, const char *dir)
{
    jet_err err;
    int applied = 0;
    jet_status st = jet_migrate_apply(conn, dir, &applied, &err);
    if (st != JET_OK) {
        fprintf(stderr, "jetsched migrate: %s\n", err.msg);
        if (applied)
            fprintf(stderr, "jetsched migrate: %d migration(s) were applied before the failure\n", applied);
        return exit_code(st);
    }
    jet_migration *list;
    size_t n;
    int64_t version = 0;
    if (jet_migrate_status(conn, dir, &list, &n, &err) == JET_OK) {
        for (size_t i = 0; i < n; i++)
            if (list[i].state != JET_MIG_PENDING)
                version = list[i].version;
        free(list);
    }
    if (ctx->json)
        printf("{\"applied\": %d, \"version\": %" PRId64 "}\n", applied, version);
    else if (applied)
        printf("applied %d migration(s); the schema is at version %" PRId64 "\n", applied, version);
    else
        printf("nothing to apply; the schema is at version %" PRId64 "\n", version);
    return CLI_OK;
}

int cmd_migrate(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"sql-dir", required_argument, NULL, 'd'}, {"status", no_argument, NULL, 's'},
        CLI_COMMON_OPTS,
    };
    const char *dir_opt = NULL;
    bool status = false;
    int c;
    optind = 0; /* a fresh scan of the verb's own arguments */
    while ((c = cli_getopt(ctx, argc, argv, "+h", opts)) != -1) {
        switch (c) {
        case 'd': dir_opt = optarg; break;
        case 's': status = true; break;
        case 'h': migrate_usage(stdout); return CLI_OK;
        default: migrate_usage(stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "jetsched migrate: unexpected argument \"%s\"\n", argv[optind]);
        migrate_usage(stderr);
        return CLI_USAGE;
    }
    jet_config *cfg = cli_config(ctx);
    if (!cfg)
        return CLI_FAILED;
    const char *dir = jet_migrate_sql_dir(dir_opt);
    jet_log_set_level(JET_LOG_INFO); /* show each migration as it is applied */
    PGconn *conn = NULL;
    jet_err err;
    jet_status st = jet_pg_connect(cfg, "jetsched-migrate", &conn, &err);
    if (st != JET_OK) {
        fprintf(stderr, "jetsched migrate: %s\n", err.msg);
        return st == JET_ERR_UNAVAILABLE || st == JET_ERR_PG ? CLI_UNAVAILABLE : CLI_FAILED;
    }
    int rc = status ? do_status(ctx, conn, dir) : do_apply(ctx, conn, dir);
    PQfinish(conn);
    return rc;
}
