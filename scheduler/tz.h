/* Thread-safe IANA time zones for schedulerd, without TZ/tzset.
 *
 * Zones are read from TZif files (RFC 8536, versions 1 to 4) under
 * /usr/share/zoneinfo (or $TZDIR when set at the first lookup), including the
 * POSIX TZ footer rule that describes times after the file's last explicit
 * transition. A zone is loaded once, cached for the life of the process
 * (restart schedulerd after a tzdata upgrade), and then only read, so every
 * function here may be called from any thread.
 *
 * All instants are Unix seconds (UTC); "wall" values are local wall-clock
 * times expressed as seconds since 1970-01-01T00:00:00 *local* (i.e. the UTC
 * instant plus the UTC offset). */
#ifndef JETSCHED_SCHED_TZ_H
#define JETSCHED_SCHED_TZ_H

#include <stdbool.h>
#include <stdint.h>

#include <jetsched/status.h>

typedef struct jet_tz jet_tz;

/* Returns the cached zone `name` (loading it on first use). NULL, "" and
 * "UTC" give the built-in UTC zone, which needs no file. Names are
 * validated: components of letters, digits and . _ + - that start with a
 * letter, separated by single '/', no "..", at most 255 bytes; the file must
 * be a TZif file without leap seconds ("right/..." zones are rejected).
 * Errors: JET_ERR_INVALID (bad name, unknown zone, unreadable or corrupt
 * file), JET_ERR_NOMEM. */
jet_status jet_tz_get(const char *name, const jet_tz **out, jet_err *err);

/* The built-in UTC zone. */
const jet_tz *jet_tz_utc(void);

/* The name the zone was looked up by ("UTC" for the built-in zone). */
const char *jet_tz_name(const jet_tz *tz);

/* UTC offset in seconds east of Greenwich at instant `t`. */
int32_t jet_tz_offset(const jet_tz *tz, int64_t t);

/* The stretch of time around instant `t` during which the UTC offset is
 * constant: [start, end) with offset `off`; `prev_off` is the offset in force
 * just before `start`. Transitions that change only the abbreviation or the
 * isdst flag are ignored. When no offset change lies within about a year of
 * `t`, start and/or end are pseudo-boundaries at which prev_off == off (or the
 * next span's off == off): callers simply continue with the next span. */
typedef struct jet_tz_span {
    int64_t start, end;
    int32_t off, prev_off;
} jet_tz_span;
void jet_tz_span_at(const jet_tz *tz, int64_t t, jet_tz_span *out);

/* Converts a local wall time to instants. Returns how many instants have that
 * wall time: 1 normally, 2 in a repeated (fall-back) interval (out[0] <
 * out[1]), 0 in a skipped (spring-forward) gap; then *gap_end (if not NULL)
 * is the instant of the transition, i.e. the first instant after the gap. */
int jet_tz_wall_to_utc(const jet_tz *tz, int64_t wall, int64_t out[2], int64_t *gap_end);

/* Frees every cached zone. Only for tests and shutdown: no jet_tz pointer (or
 * jet_sched using one) may be in use. */
void jet_tz_cache_clear(void);

#endif
