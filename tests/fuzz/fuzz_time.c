/* Fuzz target: the duration, backoff and RFC 3339 parsers (common/timeutil.c,
 * common/backoff.c). Each input is tried as all three; whatever parses must
 * respect the documented bounds and format back without overflow. */
#include <jetsched/backoff.h>
#include <jetsched/timeutil.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    jet_err err;
    int64_t ms = 0;
    if (jet_duration_parse(s, &ms, &err) == JET_OK) {
        if (ms < 0 || ms > JET_DURATION_MAX_MS)
            abort();
        char buf[64];
        jet_duration_format(ms, buf, sizeof buf);
        int64_t back = -1;
        if (jet_duration_parse(buf, &back, &err) != JET_OK || back != ms)
            abort(); /* the shortest exact form parses back to the same value */
    }
    jet_backoff b;
    if (jet_backoff_parse(s, &b, &err) == JET_OK)
        for (int n = 1; n < 70; n += 7)
            if (jet_backoff_delay(&b, n, (uint64_t)n * 0x9E3779B97F4A7C15ull) < 0)
                abort();
    int64_t t = 0;
    if (jet_rfc3339_parse(s, &t, &err) == JET_OK) {
        char buf[64];
        jet_rfc3339_format(t, buf, sizeof buf);
    }
    free(s);
    return 0;
}
