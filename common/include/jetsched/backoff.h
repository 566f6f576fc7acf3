/* Retry backoff policies (Jetsched-Backoff header, queue default):
 * "exp[:base[:cap]]", "linear[:base[:cap]]", "fixed[:delay]". agentd applies
 * them; schedulerd validates task.submit's "backoff" with the same parser. */
#ifndef JETSCHED_BACKOFF_H
#define JETSCHED_BACKOFF_H

#include <stdint.h>
#include <jetsched/status.h>

typedef enum jet_backoff_kind { JET_BACKOFF_EXP, JET_BACKOFF_LINEAR, JET_BACKOFF_FIXED } jet_backoff_kind;

typedef struct jet_backoff {
    jet_backoff_kind kind;
    int64_t base_ms;
    int64_t cap_ms;
} jet_backoff;

/* Defaults: exp 1s cap 10m; linear 10s cap 10m; fixed 30s. */
jet_status jet_backoff_parse(const char *spec, jet_backoff *out, jet_err *err);

/* Delay before the next attempt after `failed_attempt` (1-based) failed.
 * exp: uniform in [0, min(cap, base * 2^(n-1))] (full jitter);
 * linear: uniform in [0, min(cap, base * n)]; fixed: exactly base.
 * rnd is a uniformly random 64-bit value (the caller's RNG). */
int64_t jet_backoff_delay(const jet_backoff *b, int failed_attempt, uint64_t rnd);

#endif
