/* Time: durations ("30s", "5m", "1h30m", "250ms"), RFC 3339 timestamps,
 * wall-clock and monotonic clocks. All durations and instants are int64 ms. */
#ifndef JETSCHED_TIMEUTIL_H
#define JETSCHED_TIMEUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <pthread.h>
#include <jetsched/status.h>

#define JET_MS_PER_SEC  INT64_C(1000)
#define JET_MS_PER_MIN  INT64_C(60000)
#define JET_MS_PER_HOUR INT64_C(3600000)
#define JET_MS_PER_DAY  INT64_C(86400000)

/* The longest duration jetsched accepts anywhere (delays, timeouts,
 * backoffs, @every, config): 100 years. Bounding it keeps now + duration far
 * from int64 overflow and inside what PostgreSQL's timestamptz holds. */
#define JET_DURATION_MAX_MS (INT64_C(36500) * JET_MS_PER_DAY)
#define JET_DURATION_MAX_TEXT "36500d (100 years)"
/* The instants jetsched accepts from clients: 1970-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999Z (what RFC 3339's four-digit year can say). */
#define JET_TIME_MIN_MS INT64_C(0)
#define JET_TIME_MAX_MS INT64_C(253402300799999)

/* Parses a duration: one or more <number><unit> groups, units ms s m h d,
 * e.g. "30s", "1h30m", "1.5s", "0s". Rejects empty input, missing units,
 * negative values, more than 64 characters and anything longer than
 * JET_DURATION_MAX_MS. */
jet_status jet_duration_parse(const char *s, int64_t *out_ms, jet_err *err);
/* Formats as the shortest exact form ("1h30m", "250ms", "0s"). Returns buf. */
char *jet_duration_format(int64_t ms, char *buf, size_t len);

/* Parses RFC 3339 ("2026-11-22T05:00:00Z", "...T05:00:00.123+01:00").
 * 'T' may also be 't' or ' '. Fractions beyond ms are truncated. */
jet_status jet_rfc3339_parse(const char *s, int64_t *out_unix_ms, jet_err *err);
/* Formats in UTC with milliseconds: "2026-11-22T05:00:00.000Z". Returns buf (>= 25 bytes). */
char *jet_rfc3339_format(int64_t unix_ms, char *buf, size_t len);

/* Days since 1970-01-01 for a proleptic Gregorian date, and back. */
int64_t jet_days_from_civil(int64_t y, unsigned m, unsigned d);
void jet_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
/* Calendar helpers (proleptic Gregorian; m is 1-12). */
bool jet_leap_year(int64_t y);
unsigned jet_month_days(int64_t y, unsigned m);
/* Day of the week of a day number (days since 1970-01-01): 0 = Sunday. */
int jet_weekday(int64_t day);
/* Division rounding toward minus infinity (b > 0 or b < 0, never 0). */
int64_t jet_floor_div(int64_t a, int64_t b);

int64_t jet_now_ms(void);       /* CLOCK_REALTIME */
int64_t jet_mono_ms(void);      /* CLOCK_MONOTONIC */
int64_t jet_mono_us(void);      /* CLOCK_MONOTONIC, microseconds (latency histograms) */
void jet_sleep_ms(int64_t ms);
/* pthread_cond_timedwait for at most ms milliseconds (mu held by the caller). */
void jet_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#endif
