/* Driver for the differential cron test (tests/cron/croniter_diff.py) and a
 * small benchmark.
 *
 *   cron_driver            reads lines  kind<TAB>spec<TAB>tz<TAB>id<TAB>after_ms<TAB>n
 *                          and prints   OK<TAB>t1 t2 ... tn   (successive fire
 *                          times in Unix ms, -1 when there are no more) or
 *                          ERR<TAB>message
 *   cron_driver --bench N  times N next-fire computations over a mix of
 *                          schedules and zones and prints the rate.
 */
#include "cron.h"

#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bench(long n)
{
    static const char *const specs[][2] = {
        {"*/15 * * * *", "America/New_York"}, {"30 2 * * *", "Europe/Berlin"},
        {"0 9 * * MON-FRI", "Asia/Kolkata"},  {"0 0 29 2 *", "Australia/Sydney"},
        {"*/1 * * * * *", "UTC"},             {"H H(0-5) * * *", "Australia/Lord_Howe"},
        {"0 0 1 1 *", "Asia/Kathmandu"},      {"5 4 * * SUN", "America/New_York"},
    };
    size_t ns = sizeof specs / sizeof specs[0];
    jet_sched *s[sizeof specs / sizeof specs[0]];
    jet_err err;
    for (size_t i = 0; i < ns; i++)
        if (jet_sched_parse("cron", specs[i][0], specs[i][1], "bench-id", &s[i], &err) != JET_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    int64_t t0 = jet_mono_ms(), after = INT64_C(1735689600000) /* 2025-01-01 */, sum = 0;
    for (long i = 0; i < n; i++) {
        int64_t t = jet_sched_next(s[i % (long)ns], after + (i * INT64_C(7919000)) % (INT64_C(86400000) * 730));
        sum += t > 0;
    }
    int64_t dt = jet_mono_ms() - t0;
    printf("%ld next-fire computations in %" PRId64 " ms (%.2f us each; %" PRId64 " found)\n", n, dt,
           n ? (double)dt * 1000.0 / (double)n : 0.0, sum);
    for (size_t i = 0; i < ns; i++)
        jet_sched_free(s[i]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--bench") == 0)
        return bench(atol(argv[2]));
    if (argc != 1) {
        fprintf(stderr, "usage: cron_driver [--bench N] < cases\n");
        return 2;
    }
    char line[4096];
    int64_t out[64];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *f[6];
        char *p = line;
        int k = 0;
        for (; k < 6; k++) {
            f[k] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                k++;
                break;
            }
            *tab = '\0';
            p = tab + 1;
        }
        if (k != 6) {
            printf("ERR\tbad input line\n");
            continue;
        }
        jet_sched *s;
        jet_err err;
        if (jet_sched_parse(f[0], f[1], f[2], f[3], &s, &err) != JET_OK) {
            printf("ERR\t%s\n", err.msg);
            continue;
        }
        int64_t after = strtoll(f[4], NULL, 10);
        size_t n = (size_t)atoi(f[5]);
        if (n > 64)
            n = 64;
        size_t got = jet_sched_preview(s, after, out, n);
        printf("OK\t");
        for (size_t i = 0; i < n; i++)
            printf(i ? " %" PRId64 : "%" PRId64, i < got ? out[i] : -1);
        printf("\n");
        jet_sched_free(s);
    }
    return 0;
}
