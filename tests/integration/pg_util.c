/* tests/integration/pg_util.c: see pg_util.h. */
#include "pg_util.h"
#include "harness.h"

#include <jetsched/migrate.h>
#include <jetsched/timeutil.h>

#include <string.h>

jet_config *pgt_config(void)
{
    setenv("JETSCHED_PG_DSN", th_require_env("JETSCHED_TEST_PG_DSN"), 1);
    static const jet_cfg_key *const schema[] = {jet_cfg_keys_postgres, NULL};
    jet_config *cfg = NULL;
    jet_err err;
    CHECK(jet_config_load(schema, NULL, &cfg, &err) == JET_OK, "config: %s", err.msg);
    return cfg;
}

PGconn *pgt_connect(void)
{
    PGconn *c = PQconnectdb(th_require_env("JETSCHED_TEST_PG_DSN"));
    CHECK(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

PGconn *pgt_connect_wait(int64_t wait_ms)
{
    int64_t deadline = jet_mono_ms() + wait_ms;
    for (;;) {
        PGconn *c = PQconnectdb(th_require_env("JETSCHED_TEST_PG_DSN"));
        if (PQstatus(c) == CONNECTION_OK)
            return c;
        CHECK(jet_mono_ms() < deadline, "connect for %lld ms: %s", (long long)wait_ms, PQerrorMessage(c));
        PQfinish(c);
        jet_sleep_ms(100);
    }
}

void pgt_migrate(PGconn *c)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/sql", th_require_env("JETSCHED_SOURCE_DIR"));
    jet_err err;
    CHECK(jet_migrate_apply(c, dir, NULL, &err) == JET_OK, "migrate: %s", err.msg);
}

void pgt_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
          PQresultErrorMessage(r));
    PQclear(r);
}

int64_t pgt_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql, PQresultErrorMessage(r));
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}
