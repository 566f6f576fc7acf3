/* Shared daemon command line handling. */
#include <jetsched/daemon_cli.h>
#include <jetsched/log.h>
#include <jetsched/sdnotify.h>
#include <jetsched/version.h>

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void jet_log_init_from_config(const char *component, const jet_config *cfg)
{
    jet_log_level level = JET_LOG_INFO;
    jet_log_level_parse(jet_cfg_str(cfg, "log.level"), &level);
    const char *fmt = jet_cfg_str(cfg, "log.format");
    jet_log_init(component, level, fmt && strcmp(fmt, "json") == 0);
}

static void usage(const jet_daemon_info *info, FILE *out)
{
    fprintf(out,
            "%s %s - %s\n\n"
            "Usage: %s [options]\n\n"
            "Options:\n"
            "  -c, --config FILE   configuration file (default %s; built-in defaults if absent)\n"
            "      --check-config  validate the configuration, print the effective values and exit\n"
            "      --print-schema  print every configuration key with its type, default and meaning\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n\n"
            "Environment: JETSCHED_<SECTION>_<KEY> overrides a key (e.g. JETSCHED_NATS_URL,\n"
            "JETSCHED_PG_DSN, JETSCHED_LOG_LEVEL). Exit codes: 0 ok, 1 failure, 2 usage or config error.\n",
            info->name, JET_VERSION, info->summary, info->name, info->default_config);
}

int jet_daemon_start(const jet_daemon_info *info, int argc, char **argv, jet_config **cfg)
{
    enum { OPT_CHECK = 256, OPT_SCHEMA };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, OPT_CHECK},
        {"print-schema", no_argument, NULL, OPT_SCHEMA}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    bool check = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': file = optarg; break;
        case OPT_CHECK: check = true; break;
        case OPT_SCHEMA: jet_config_print_schema(info->schema, stdout); return JET_EXIT_OK;
        case 'V': printf("%s %s\n", info->name, JET_VERSION); return JET_EXIT_OK;
        case 'h': usage(info, stdout); return JET_EXIT_OK;
        default: usage(info, stderr); return JET_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n", info->name, argv[optind]);
        return JET_EXIT_USAGE;
    }
    if (!file && access(info->default_config, F_OK) == 0)
        file = info->default_config;
    jet_err err;
    if (jet_config_load(info->schema, file, cfg, &err) != JET_OK) {
        fprintf(stderr, "%s: invalid configuration:\n%s\n", info->name, err.msg);
        return JET_EXIT_USAGE;
    }
    /* Deprecated keys that are set: one warning each, at start (or for --check-config). */
    jet_err deprecated;
    char *warn = jet_config_deprecated_set(*cfg, &deprecated) > 0 ? deprecated.msg : NULL;
    if (check) {
        for (char *line = warn, *next; line; line = next) {
            if ((next = strchr(line, '\n')))
                *next++ = '\0';
            fprintf(stderr, "%s: warning: %s\n", info->name, line);
        }
        printf("# %s %s effective configuration (%s)\n", info->name, JET_VERSION, file ? file : "built-in defaults");
        jet_config_print(*cfg, stdout);
        jet_config_free(*cfg);
        *cfg = NULL;
        fprintf(stderr, "%s: configuration OK\n", info->name);
        return JET_EXIT_OK;
    }
    jet_log_init_from_config(info->name, *cfg);
    for (char *line = warn, *next; line; line = next) {
        if ((next = strchr(line, '\n')))
            *next++ = '\0';
        jet_log(JET_LOG_WARN, "config: %s", line);
    }
    return -1;
}

static void stop_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
}

void jet_daemon_block_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    stop_signals(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
}

int jet_daemon_run_signals(void (*on_hup)(void *), void *arg)
{
    sigset_t sigs;
    stop_signals(&sigs);
    int64_t watchdog = jet_sd_watchdog_interval_ms();
    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 500 * 1000000L};
        if (watchdog > 0 && watchdog / 2 < 500)
            ts.tv_nsec = (long)(watchdog / 2) * 1000000L;
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (watchdog > 0)
            jet_sd_watchdog();
        if (sig == SIGHUP && on_hup)
            on_hup(arg);
        else if (sig == SIGTERM || sig == SIGINT)
            return sig;
    }
}

bool jet_stop_signal_pending(void)
{
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}
