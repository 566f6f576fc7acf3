/* jetsched init: create or check the NATS objects (placeholder until the init work lands). */
#include "cli.h"

#include <stdio.h>

int cmd_init(cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx; (void)argc; (void)argv;
    fprintf(stderr, "jetsched init: not implemented yet\n");
    return CLI_FAILED;
}
