/* agentd: the worker daemon. Entry point: command line, configuration. */
#include "agentd.h"

#include <jetsched/daemon_cli.h>
#include <jetsched/log.h>

int main(int argc, char **argv)
{
    static const jet_daemon_info info = {
        .name = "agentd",
        .summary = "jetsched worker: pulls tasks from NATS JetStream and runs them in plugins and Lua",
        .default_config = "/etc/jetsched/agentd.conf",
        .schema = agentd_schema,
    };
    jet_config *cfg = NULL;
    int rc = jet_daemon_start(&info, argc, argv, &cfg);
    if (rc >= 0)
        return rc;
    jet_error("the worker loop is not built yet; only --help, --version and --check-config work");
    jet_config_free(cfg);
    return JET_EXIT_FAILURE;
}
