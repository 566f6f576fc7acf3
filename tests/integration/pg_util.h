/* tests/integration/pg_util.h: helpers shared by the PostgreSQL C tests
 * (pg_*.c): checks that fail the test, the test database's configuration
 * and connections, migrations, one-value queries. */
#ifndef JETSCHED_TEST_PG_UTIL_H
#define JETSCHED_TEST_PG_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <libpq-fe.h>
#include <jetsched/config.h>

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* Exports JETSCHED_PG_DSN from the harness and loads the postgres.* keys. */
jet_config *pgt_config(void);
/* A plain connection to the test database (exits on failure). */
PGconn *pgt_connect(void);
/* Like pgt_connect, but keeps trying for up to wait_ms (PostgreSQL restarting). */
PGconn *pgt_connect_wait(int64_t wait_ms);
/* Applies $JETSCHED_SOURCE_DIR/sql. */
void pgt_migrate(PGconn *c);
/* Runs a statement that must succeed. */
void pgt_exec(PGconn *c, const char *sql);
/* The first column of the first row of a query, as an integer. */
int64_t pgt_int(PGconn *c, const char *sql);

#endif
