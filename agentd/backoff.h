/* Retry backoff policies (Jetsched-Backoff header, queue default):
 * "exp[:base[:cap]]", "linear[:base[:cap]]", "fixed[:delay]". */
#ifndef AGENTD_BACKOFF_H
#define AGENTD_BACKOFF_H

#include <stdint.h>
#include <jetsched/status.h>

typedef enum backoff_kind { BACKOFF_EXP, BACKOFF_LINEAR, BACKOFF_FIXED } backoff_kind;

typedef struct backoff {
    backoff_kind kind;
    int64_t base_ms;
    int64_t cap_ms;
} backoff;

/* Defaults: exp 1s cap 10m; linear 10s cap 10m; fixed 30s. */
jet_status backoff_parse(const char *spec, backoff *out, jet_err *err);

/* Delay before the next attempt after `failed_attempt` (1-based) failed.
 * exp: uniform in [0, min(cap, base * 2^(n-1))] (full jitter);
 * linear: uniform in [0, min(cap, base * n)]; fixed: exactly base.
 * rnd is a uniformly random 64-bit value (the caller's RNG). */
int64_t backoff_delay(const backoff *b, int failed_attempt, uint64_t rnd);

#endif
