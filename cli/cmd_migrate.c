/* jetsched migrate: apply PostgreSQL migrations (placeholder until the migration work lands). */
#include "cli.h"

#include <stdio.h>

int cmd_migrate(cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx; (void)argc; (void)argv;
    fprintf(stderr, "jetsched migrate: not implemented yet\n");
    return CLI_FAILED;
}
