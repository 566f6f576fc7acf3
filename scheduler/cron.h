/* Schedule specs (DESIGN §5 "Schedules") and next-fire computation.
 *
 * Kinds:
 *   "cron"  5 fields (minute hour day-of-month month day-of-week) or 6 with a
 *           leading seconds field; lists, ranges, steps, names, @macros, the
 *           Vixie day-of-month/day-of-week OR rule and Jenkins-style H.
 *           "@every <duration>" is also accepted here (same as kind "every").
 *   "every" a fixed interval: "90s", "1h30m" or "@every 90s" (>= 1s).
 *   "at"    one instant: RFC 3339 ("2026-03-08T02:30:00Z", "...+01:00"), or a
 *           local date-time without offset ("2026-03-08T02:30:00"), which is
 *           read in the schedule's time zone.
 * Every schedule has an IANA time zone (default UTC); cron fields are matched
 * against local wall-clock time with the DST rules of docs/CRON.md:
 *   - a matching local time skipped by a forward transition fires once, at
 *     the transition instant (the first instant after the gap);
 *   - a matching local time repeated by a backward transition fires once, at
 *     its first occurrence, unless the schedule is a "wildcard" schedule
 *     (its seconds, minute or hour field starts with '*', as in Vixie cron):
 *     those fire at every matching instant of both occurrences.
 * The full syntax, H hashing and every deliberate difference from croniter
 * and Vixie cron are in docs/CRON.md.
 *
 * A parsed jet_sched is immutable: any number of threads may call
 * jet_sched_next/jet_sched_preview on it concurrently. */
#ifndef JETSCHED_SCHED_CRON_H
#define JETSCHED_SCHED_CRON_H

#include <stddef.h>
#include <stdint.h>

#include <jetsched/status.h>

typedef struct jet_sched jet_sched;

typedef enum jet_sched_kind {
    JET_SCHED_CRON = 1,
    JET_SCHED_EVERY,
    JET_SCHED_AT,
} jet_sched_kind;

/* Parses a schedule. kind: "cron", "every" or "at" (NULL or "" = "cron").
 * tz: IANA zone name, NULL or "" = "UTC". schedule_id: the stable id that
 * seeds H (required only when the spec uses H). On error returns
 * JET_ERR_INVALID (or JET_ERR_NOMEM) and fills err with e.g.
 *   cron "*\/0 * * * *": field 1 (minute) at position 3: step must be >= 1
 * Positions are 1-based byte offsets into spec. Cron specs that can never
 * fire (e.g. "0 0 30 2 *") are rejected here. */
jet_status jet_sched_parse(const char *kind, const char *spec, const char *tz, const char *schedule_id,
                           jet_sched **out, jet_err *err);

/* The first fire time strictly after `after_unix_ms` (Unix ms), or -1 when
 * there is none: an "at" in the past, or nothing before year 9999. Cron and
 * "at" fire times are whole seconds. */
int64_t jet_sched_next(const jet_sched *s, int64_t after_unix_ms);

/* Fills out[0..n) with successive fire times after `after_unix_ms`; returns
 * how many were found (fewer than n when the schedule ends). */
size_t jet_sched_preview(const jet_sched *s, int64_t after_unix_ms, int64_t *out, size_t n);

/* "every" schedules fire at anchor + k * interval (k any integer); the anchor
 * defaults to 0 (the Unix epoch), so "@every 1h" fires on the hour (UTC) and
 * every schedulerd computes the same instants. Callers may anchor at e.g.
 * the schedule's creation time. No effect on other kinds. */
void jet_sched_set_anchor(jet_sched *s, int64_t anchor_unix_ms);

jet_sched_kind jet_sched_get_kind(const jet_sched *s);
/* The zone name, e.g. "Europe/Berlin" ("UTC" by default). */
const char *jet_sched_tz(const jet_sched *s);
/* Interval in ms of an "every" schedule (0 for other kinds). */
int64_t jet_sched_interval_ms(const jet_sched *s);

void jet_sched_free(jet_sched *s);

#endif
