/* Fuzz target: schedule specs (scheduler/cron.c): cron, @every and at
 * specs with the time zones of the corpus, then next/preview from several
 * instants. The first byte picks the kind and zone, the rest is the spec. */
#include "cron.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[] = {"cron", "every", "at", ""};
    static const char *const zones[] = {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                                        "Pacific/Chatham", "Asia/Kolkata", "America/Sao_Paulo", "Etc/GMT+12"};
    if (size < 1 || size > 1024)
        return 0;
    const char *kind = kinds[data[0] & 3], *tz = zones[(data[0] >> 2) & 7];
    char *spec = malloc(size);
    memcpy(spec, data + 1, size - 1);
    spec[size - 1] = '\0';
    jet_sched *s = NULL;
    jet_err err;
    if (jet_sched_parse(kind, spec, tz, "fuzz-id", &s, &err) == JET_OK) {
        static const int64_t from[] = {0, 1796183090000, 4102444800000, 253402300000000, -1};
        for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
            int64_t out[4];
            size_t n = jet_sched_preview(s, from[i], out, 4);
            for (size_t k = 0; k < n; k++)
                if (out[k] <= (k ? out[k - 1] : from[i]))
                    abort(); /* fire times strictly increase */
        }
        jet_sched_free(s);
    }
    free(spec);
    return 0;
}
