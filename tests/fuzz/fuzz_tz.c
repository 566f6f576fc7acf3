/* Fuzz target: the TZif reader (scheduler/tz.c) on arbitrary zone files:
 * each input is written as $TZDIR/Fuzz/Zone and loaded, then offsets and
 * wall-clock conversions are asked around the table and the footer. */
#include "tz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], path[300];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/jetsched-fuzz-tz-%d", (int)getpid());
        mkdir(dir, 0700);
        snprintf(path, sizeof path, "%s/Fuzz", dir);
        mkdir(path, 0700);
        snprintf(path, sizeof path, "%s/Fuzz/Zone", dir);
    }
    setenv("TZDIR", dir, 1);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    const jet_tz *tz = NULL;
    jet_err err;
    if (jet_tz_get("Fuzz/Zone", &tz, &err) == JET_OK) {
        static const int64_t at[] = {INT64_MIN / 4, -1000000000000, 0, 1796183090000, 4102444800000,
                                     253402300000000, INT64_MAX / 4};
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            jet_tz_offset(tz, at[i]);
            jet_tz_span sp;
            jet_tz_span_at(tz, at[i], &sp);
            int64_t out[2], gap = 0;
            jet_tz_wall_to_utc(tz, at[i], out, &gap);
        }
    }
    jet_tz_cache_clear(); /* also forgets TZDIR */
    return 0;
}
