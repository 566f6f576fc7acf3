/* schedulerd: leader election, cron and delayed tasks, reconciler, API.
 * Entry point: command line, configuration. */
#include "schedulerd.h"

#include <jetsched/daemon_cli.h>
#include <jetsched/log.h>

int main(int argc, char **argv)
{
    static const jet_daemon_info info = {
        .name = "schedulerd",
        .summary = "jetsched scheduler: leader-elected cron and delayed tasks, reconciler and API",
        .default_config = "/etc/jetsched/schedulerd.conf",
        .schema = schedulerd_schema,
    };
    jet_config *cfg = NULL;
    int rc = jet_daemon_start(&info, argc, argv, &cfg);
    if (rc >= 0)
        return rc;
    jet_error("the scheduler loop is not built yet; only --help, --version and --check-config work");
    jet_config_free(cfg);
    return JET_EXIT_FAILURE;
}
