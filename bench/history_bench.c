/* bench/history_bench.c: measures the history writer's throughput (records
 * per second, one record = one task row + one attempt row) against the
 * PostgreSQL of $JETSCHED_PG_DSN (schema migrated beforehand). The clock runs
 * from the first submit until the last record's commit callback.
 * Usage: history_bench [--records N] [--batch N] [--producers N] [--flush MS] */
#include <jetsched/config.h>
#include <jetsched/history.h>
#include <jetsched/log.h>
#include <jetsched/timeutil.h>

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long committed, failed;
static long records = 200000;
static int producers = 2;
static long long id_base; /* ids "hb-<16 digits>", the shape of the baseline's */

static void done(void *ctx, jet_status st, const char *reason)
{
    (void)ctx;
    (void)reason;
    if (st == JET_OK)
        committed++;
    else
        failed++;
}

struct producer {
    jet_history *h;
    int index;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (long i = p->index; i < records; i += producers) {
        char id[64];
        snprintf(id, sizeof id, "hb-%lld", id_base + i);
        int64_t now = jet_now_ms();
        jet_history_record r = {.task_id = id, .queue = "bench", .handler = "echo", .priority = "normal",
                                .status = "succeeded", .attempt = 1, .max_attempts = 5, .agent = "agent-bench",
                                .result = "ok", .created_ms = now, .started_ms = now, .finished_ms = now};
        jet_err err;
        if (jet_history_submit(p->h, &r, done, NULL, -1, &err) != JET_OK) {
            fprintf(stderr, "history_bench: submit: %s\n", err.msg);
            exit(1);
        }
    }
    return NULL;
}

static void parse_args(int argc, char **argv, jet_history_options *opt)
{
    static const struct option opts[] = {{"records", required_argument, NULL, 'n'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"producers", required_argument, NULL, 'p'},
                                         {"flush", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': records = atol(optarg); break;
        case 'b': opt->batch_size = atoi(optarg); break;
        case 'p': producers = atoi(optarg); break;
        case 'f': opt->flush_interval_ms = atol(optarg); break;
        default:
            fprintf(stderr, "usage: history_bench [--records N] [--batch N] [--producers N] [--flush MS]\n");
            exit(2);
        }
    }
    if (records < 1 || producers < 1 || producers > 64) {
        fprintf(stderr, "history_bench: bad arguments\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    jet_log_init("history_bench", JET_LOG_WARN, false);
    jet_history_options opt;
    jet_history_options_default(&opt);
    parse_args(argc, argv, &opt);
    id_base = (long long)jet_now_ms() * 1000; /* a fresh range every run */
    static const jet_cfg_key *const schema[] = {jet_cfg_keys_postgres, NULL};
    jet_config *cfg;
    jet_err err;
    if (jet_config_load(schema, NULL, &cfg, &err) != JET_OK) {
        fprintf(stderr, "history_bench: %s\n", err.msg);
        return 1;
    }
    jet_history *h;
    if (jet_history_open(cfg, &opt, &h, &err) != JET_OK) {
        fprintf(stderr, "history_bench: %s\n", err.msg);
        return 1;
    }
    pthread_t th[64];
    struct producer p[64];
    int64_t t0 = jet_mono_ms();
    for (int i = 0; i < producers; i++) {
        p[i] = (struct producer){h, i};
        pthread_create(&th[i], NULL, produce, &p[i]);
    }
    for (int i = 0; i < producers; i++)
        pthread_join(th[i], NULL);
    jet_history_stats st;
    jet_history_stats_get(h, &st);
    jet_status cs = jet_history_close(h, 600000);
    int64_t ms = jet_mono_ms() - t0;
    jet_config_free(cfg);
    if (cs != JET_OK || failed || committed != records) {
        fprintf(stderr, "history_bench: %ld committed, %ld failed of %ld\n", (long)committed, (long)failed, records);
        return 1;
    }
    double rate = (double)records * 1000.0 / (double)(ms ? ms : 1);
    printf("writer: %ld records (batch %d, %d producers) in %lld ms: %.0f rows/s\n", records, opt.batch_size,
           producers, (long long)ms, rate);
    printf("RESULT writer_rows_per_s=%.0f\n", rate);
    return 0;
}
