/* Schedule specs and next-fire computation. See cron.h and docs/CRON.md. */
#include "cron.h"

#include "tz.h"

#include <jetsched/timeutil.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DAY 86400
#define SPEC_MAX 512
/* Fire times are searched up to the end of year 9999 (UTC), and from year 1. */
#define MAX_T INT64_C(253402300799)
#define MIN_T INT64_C(-62135596800)

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

static const struct {
    const char *name;
    int lo, hi;     /* accepted values (day-of-week 7 = Sunday) */
    int hlo, hhi;   /* range of a bare H / H/step (Jenkins: days 1-28, weekdays 0-6) */
} fields[F_COUNT] = {
    [F_SEC] = {"second", 0, 59, 0, 59},
    [F_MIN] = {"minute", 0, 59, 0, 59},
    [F_HOUR] = {"hour", 0, 23, 0, 23},
    [F_DOM] = {"day-of-month", 1, 31, 1, 28},
    [F_MON] = {"month", 1, 12, 1, 12},
    [F_DOW] = {"day-of-week", 0, 7, 0, 6},
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct jet_sched {
    jet_sched_kind kind;
    const jet_tz *tz;
    uint64_t bits[F_COUNT]; /* allowed values; day-of-week 7 folded into 0 */
    bool dom_star, dow_star; /* field starts with '*' or '?' (Vixie DOM_STAR/DOW_STAR) */
    bool wildcard;           /* seconds, minute or hour field starts with '*' */
    int64_t every_ms, anchor_ms, at_ms;
};

/* ------------------------------------------------------------------ misc */

/* FNV-1a 64 of the schedule id, then SplitMix64 of (hash XOR field index)
 * gives each field its own well-mixed value (docs/CRON.md "H"). */
static uint64_t fnv1a64(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- parser */

typedef struct pctx {
    const char *kind; /* "cron", "every", "at": error prefix */
    const char *spec;
    const char *id;
    jet_err *err;
    int field_no; /* 1-based as written; 0 outside fields */
    int f;        /* F_* */
} pctx;

static jet_status perr(pctx *c, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static jet_status perr(pctx *c, const char *at, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    char where[96] = "";
    if (c->field_no > 0 && at)
        snprintf(where, sizeof where, "field %d (%s) at position %zu: ", c->field_no, fields[c->f].name,
                 (size_t)(at - c->spec) + 1);
    else if (c->field_no > 0)
        snprintf(where, sizeof where, "field %d (%s): ", c->field_no, fields[c->f].name);
    else if (at)
        snprintf(where, sizeof where, "at position %zu: ", (size_t)(at - c->spec) + 1);
    return jet_err_set(c->err, JET_ERR_INVALID, "%s \"%.200s%s\": %s%s", c->kind, c->spec,
                       strlen(c->spec) > 200 ? "..." : "", where, why);
}

/* A number (at most 9 digits) or, in month/day-of-week fields, a 3-letter
 * name; checked against the field's range. */
static jet_status parse_value(pctx *c, const char **pp, const char *e, int *out)
{
    const char *p = *pp;
    int lo = fields[c->f].lo, hi = fields[c->f].hi;
    if (p < e && isdigit((unsigned char)*p)) {
        long v = 0;
        int nd = 0;
        for (; p < e && isdigit((unsigned char)*p); p++, nd++)
            if (nd < 9)
                v = v * 10 + (*p - '0');
        if (nd > 9 || v < lo || v > hi)
            return perr(c, *pp, "value %.*s is out of range (%d-%d)", (int)(p - *pp), *pp, lo, hi);
        if (p < e && (*p == 'W' || *p == 'w') && c->f == F_DOM)
            return perr(c, p, "Quartz 'W' (nearest weekday) is not supported");
        if (p < e && (*p == 'L' || *p == 'l') && c->f == F_DOW)
            return perr(c, p, "Quartz 'L' (last weekday of the month) is not supported");
        if (p < e && *p == '#' && c->f == F_DOW)
            return perr(c, p, "Quartz '#' (nth weekday of the month) is not supported");
        *out = (int)v;
        *pp = p;
        return JET_OK;
    }
    if (p < e && isalpha((unsigned char)*p)) {
        while (p < e && isalpha((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - *pp);
        if ((c->f == F_DOM || c->f == F_DOW) && len <= 2 && toupper((unsigned char)**pp) == 'L')
            return perr(c, *pp, "Quartz 'L' (last day) is not supported");
        if (c->f == F_DOM && len == 1 && toupper((unsigned char)**pp) == 'W')
            return perr(c, *pp, "Quartz 'W' (nearest weekday) is not supported");
        if (c->f == F_MON || c->f == F_DOW) {
            const char *const *names = c->f == F_MON ? month_names : day_names;
            int n = c->f == F_MON ? 12 : 7;
            for (int i = 0; len == 3 && i < n; i++)
                if (strncasecmp(*pp, names[i], 3) == 0) {
                    *out = c->f == F_MON ? i + 1 : i;
                    *pp = p;
                    return JET_OK;
                }
            return perr(c, *pp, "unknown %s name \"%.*s\" (use %s)", c->f == F_MON ? "month" : "day",
                        (int)len, *pp, c->f == F_MON ? "JAN-DEC" : "SUN-SAT");
        }
        return perr(c, *pp, "unexpected \"%.*s\": names are allowed only in the month and day-of-week fields",
                    (int)len, *pp);
    }
    if (p >= e)
        return perr(c, p, "value expected");
    return perr(c, p, "unexpected character '%c' (expected a number%s)", *p,
                c->f == F_MON || c->f == F_DOW ? " or a name" : "");
}

/* Parses "/step" at *pp if present (else step 1). Steps larger than `span`
 * (the field's size, or an H range's size) are rejected as mistakes. */
static jet_status parse_step(pctx *c, const char **pp, const char *e, int span, int *step, bool *has)
{
    const char *p = *pp;
    *step = 1;
    if (has)
        *has = p < e && *p == '/';
    if (p >= e || *p != '/')
        return JET_OK;
    p++;
    const char *num = p;
    long v = 0;
    int nd = 0;
    for (; p < e && isdigit((unsigned char)*p); p++, nd++)
        if (nd < 9)
            v = v * 10 + (*p - '0');
    if (nd == 0)
        return perr(c, num, "a number is expected after '/'");
    if (v < 1)
        return perr(c, num, "step must be >= 1");
    if (nd > 9 || v > span)
        return perr(c, num, "step %.*s is larger than the range it applies to (%d values)", (int)(p - num), num,
                    span);
    *step = (int)v;
    *pp = p;
    return JET_OK;
}

static void set_range(uint64_t *bits, int from, int to, int step)
{
    for (int v = from; v <= to; v += step)
        *bits |= UINT64_C(1) << v;
}

/* H, H/step, H(a-b), H(a-b)/step. */
static jet_status parse_hash(pctx *c, const char **pp, const char *e, uint64_t *bits)
{
    const char *h = *pp, *p = h + 1;
    if (!c->id || !*c->id)
        return perr(c, h, "H needs a schedule id to hash (none was given)");
    uint64_t hv = splitmix64(fnv1a64(c->id) ^ (uint64_t)c->f);
    int a = fields[c->f].hlo, b = fields[c->f].hhi;
    if (p < e && *p == '(') {
        p++;
        const char *pa = p;
        jet_status st = parse_value(c, &p, e, &a);
        if (st != JET_OK)
            return st;
        if (p >= e || *p != '-')
            return perr(c, p, "H(a-b) expected '-' after %d", a);
        p++;
        if ((st = parse_value(c, &p, e, &b)) != JET_OK)
            return st;
        if (p >= e || *p != ')')
            return perr(c, p, "H(a-b) expected ')'");
        p++;
        if (a > b)
            return perr(c, pa, "range %d-%d is reversed (start greater than end)", a, b);
    }
    int step;
    bool has_step;
    jet_status st = parse_step(c, &p, e, b - a + 1, &step, &has_step);
    if (st != JET_OK)
        return st;
    if (!has_step) /* one hashed value */
        *bits |= UINT64_C(1) << (a + (int)(hv % (uint64_t)(b - a + 1)));
    else
        set_range(bits, a + (int)(hv % (uint64_t)step), b, step);
    *pp = p;
    return JET_OK;
}

static jet_status parse_element(pctx *c, const char **pp, const char *e, uint64_t *bits)
{
    const char *p = *pp;
    int lo = fields[c->f].lo, hi = fields[c->f].hi, step;
    jet_status st;
    if (*p == '*') {
        p++;
        if ((st = parse_step(c, &p, e, hi - lo + 1, &step, NULL)) != JET_OK)
            return st;
        set_range(bits, lo, hi, step);
    } else if (*p == '?') {
        if (c->f != F_DOM && c->f != F_DOW)
            return perr(c, p, "'?' is allowed only in the day-of-month and day-of-week fields");
        p++;
        if (p < e && *p == '/')
            return perr(c, p, "'?' takes no step");
        set_range(bits, lo, hi, 1);
    } else if ((*p == 'H' || *p == 'h') && !(p + 1 < e && isalpha((unsigned char)p[1]))) {
        if ((st = parse_hash(c, &p, e, bits)) != JET_OK)
            return st;
    } else {
        const char *pa = p;
        int a, b;
        if ((st = parse_value(c, &p, e, &a)) != JET_OK)
            return st;
        b = a;
        bool range = false;
        if (p < e && *p == '-') {
            p++;
            range = true;
            if ((st = parse_value(c, &p, e, &b)) != JET_OK)
                return st;
            if (c->f == F_DOW && b == 0 && a > 0)
                b = 7; /* FRI-SUN, 5-0: up to Sunday */
            if (a > b)
                return perr(c, pa, "range %.*s is reversed (start greater than end; ranges do not wrap around)",
                            (int)(p - pa), pa);
        }
        if (p < e && *p == '/') {
            if (!range)
                b = hi; /* 5/15: from 5 every 15 */
            if ((st = parse_step(c, &p, e, hi - lo + 1, &step, NULL)) != JET_OK)
                return st;
        } else {
            step = 1;
        }
        set_range(bits, a, b, step);
    }
    *pp = p;
    return JET_OK;
}

static jet_status parse_field(pctx *c, const char *b, const char *e, uint64_t *out)
{
    uint64_t bits = 0;
    const char *p = b;
    for (;;) {
        if (p == e || *p == ',')
            return perr(c, p, "empty list element");
        jet_status st = parse_element(c, &p, e, &bits);
        if (st != JET_OK)
            return st;
        if (p == e)
            break;
        if (*p != ',') {
            if (*p == '#' && c->f == F_DOW)
                return perr(c, p, "Quartz '#' (nth weekday of the month) is not supported");
            return perr(c, p, "unexpected character '%c'%s", *p,
                        *p == '/' ? " (only one step is allowed)" : *p == '-' ? " (only one range is allowed)" : "");
        }
        p++;
    }
    if (c->f == F_DOW && (bits & (1u << 7))) {
        bits &= ~(UINT64_C(1) << 7);
        bits |= 1;
    }
    *out = bits;
    return JET_OK;
}

/* Whether some day in the selected months can match (only needed when the
 * day fields combine with AND; with the OR rule every week has a match). */
static bool days_possible(const jet_sched *s)
{
    if (!(s->dom_star || s->dow_star))
        return true;
    for (unsigned m = 1; m <= 12; m++) {
        if (!(s->bits[F_MON] >> m & 1))
            continue;
        unsigned maxd = m == 2 ? 29 : jet_month_days(2001, m);
        for (unsigned d = 1; d <= maxd; d++)
            if (s->bits[F_DOM] >> d & 1)
                return true;
    }
    return false;
}

static const struct { const char *name, *expansion; } macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static jet_status parse_every(pctx *c, const char *p, jet_sched *s);

static jet_status parse_cron(pctx *c, jet_sched *s)
{
    const char *p = c->spec;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return perr(c, NULL, "empty cron expression");
    if (*p == '@') {
        const char *q = p;
        while (*q && !isspace((unsigned char)*q))
            q++;
        size_t len = (size_t)(q - p);
        if (len == 6 && strncasecmp(p, "@every", 6) == 0)
            return parse_every(c, q, s);
        const char *rest = q;
        while (isspace((unsigned char)*rest))
            rest++;
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
            if (strlen(macros[i].name) == len && strncasecmp(p, macros[i].name, len) == 0) {
                if (*rest)
                    return perr(c, rest, "unexpected text after %s", macros[i].name);
                pctx sub = *c;
                sub.spec = macros[i].expansion;
                return parse_cron(&sub, s);
            }
        }
        return perr(c, p, "unknown macro \"%.*s\" (expected @yearly, @annually, @monthly, @weekly, @daily, "
                          "@midnight, @hourly or @every <duration>)",
                    (int)len, p);
    }
    const char *fb[8], *fe[8];
    int n = 0;
    while (*p) {
        if (n == 6)
            return perr(c, p, "too many fields: expected 5 (minute hour day-of-month month day-of-week) or 6 "
                              "(with a leading seconds field); a year field is not supported");
        fb[n] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        fe[n++] = p;
        while (isspace((unsigned char)*p))
            p++;
    }
    if (n < 5)
        return perr(c, p, "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading "
                          "seconds field), got %d",
                    n);
    int first = n == 6 ? F_SEC : F_MIN;
    if (n == 5)
        s->bits[F_SEC] = 1; /* second 0 */
    for (int i = 0; i < n; i++) {
        c->field_no = i + 1;
        c->f = first + i;
        jet_status st = parse_field(c, fb[i], fe[i], &s->bits[c->f]);
        if (st != JET_OK)
            return st;
    }
    s->dom_star = *fb[F_DOM - first] == '*' || *fb[F_DOM - first] == '?';
    s->dow_star = *fb[F_DOW - first] == '*' || *fb[F_DOW - first] == '?';
    s->wildcard = *fb[F_MIN - first] == '*' || *fb[F_HOUR - first] == '*' || (n == 6 && *fb[0] == '*');
    s->kind = JET_SCHED_CRON;
    if (!days_possible(s)) {
        c->field_no = F_DOM - first + 1;
        c->f = F_DOM;
        return perr(c, fb[F_DOM - first],
                    "no selected day-of-month exists in the selected month(s), so the schedule would never fire");
    }
    return JET_OK;
}

/* Parses "<duration>" (after an optional "@every"). */
static jet_status parse_every(pctx *c, const char *p, jet_sched *s)
{
    while (isspace((unsigned char)*p))
        p++;
    const char *e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    if (p == e)
        return perr(c, NULL, "a duration is expected after @every (e.g. \"@every 90s\", \"@every 1h30m\")");
    char buf[SPEC_MAX + 1];
    snprintf(buf, sizeof buf, "%.*s", (int)(e - p), p);
    jet_err derr;
    int64_t ms;
    if (jet_duration_parse(buf, &ms, &derr) != JET_OK)
        return perr(c, p, "%s", derr.msg);
    if (ms < JET_MS_PER_SEC)
        return perr(c, p, "the interval must be at least 1s");
    s->kind = JET_SCHED_EVERY;
    s->every_ms = ms;
    return JET_OK;
}

static jet_status parse_at(pctx *c, jet_sched *s)
{
    const char *p = c->spec;
    while (isspace((unsigned char)*p))
        p++;
    const char *e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    char buf[SPEC_MAX + 2];
    snprintf(buf, sizeof buf, "%.*s", (int)(e - p), p);
    jet_err rerr;
    int64_t ms;
    if (jet_rfc3339_parse(buf, &ms, &rerr) == JET_OK) {
        s->at_ms = ms;
    } else {
        /* A local date-time without offset: read it in the schedule's zone. */
        size_t len = strlen(buf);
        char last = len ? buf[len - 1] : 0;
        bool has_zone = last == 'Z' || last == 'z' || (len > 19 && strpbrk(buf + 19, "+-"));
        jet_err lerr;
        if (has_zone || len < 19 || len + 1 >= sizeof buf)
            return perr(c, NULL, "%s", rerr.msg);
        buf[len] = 'Z';
        buf[len + 1] = '\0';
        if (jet_rfc3339_parse(buf, &ms, &lerr) != JET_OK) {
            const char *why = strstr(lerr.msg, "\": ");
            return perr(c, NULL, "invalid local date-time (%s)", why ? why + 3 : lerr.msg);
        }
        int64_t wall = jet_floor_div(ms, 1000), frac = ms - wall * 1000, u[2], gap = 0;
        int k = jet_tz_wall_to_utc(s->tz, wall, u, &gap);
        s->at_ms = k > 0 ? u[0] * 1000 + frac : gap * 1000; /* repeated: first; skipped: end of the gap */
    }
    s->kind = JET_SCHED_AT;
    return JET_OK;
}

jet_status jet_sched_parse(const char *kind, const char *spec, const char *tz, const char *schedule_id,
                           jet_sched **out, jet_err *err)
{
    *out = NULL;
    if (!kind || !*kind)
        kind = "cron";
    pctx c = {.kind = kind, .spec = spec ? spec : "", .id = schedule_id, .err = err};
    if (strcmp(kind, "cron") != 0 && strcmp(kind, "every") != 0 && strcmp(kind, "at") != 0)
        return jet_err_set(err, JET_ERR_INVALID, "unknown schedule kind \"%.64s\" (expected cron, every or at)",
                           kind);
    if (strlen(c.spec) > SPEC_MAX)
        return jet_err_set(err, JET_ERR_INVALID, "%s spec is too long (%zu bytes; at most %d)", kind,
                           strlen(c.spec), SPEC_MAX);
    jet_sched *s = calloc(1, sizeof *s);
    if (!s)
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    jet_status st = jet_tz_get(tz, &s->tz, err);
    if (st == JET_OK) {
        if (strcmp(kind, "cron") == 0) {
            st = parse_cron(&c, s);
        } else if (strcmp(kind, "every") == 0) {
            const char *p = c.spec;
            while (isspace((unsigned char)*p))
                p++;
            if (strncasecmp(p, "@every", 6) == 0 && (p[6] == '\0' || isspace((unsigned char)p[6])))
                p += 6;
            st = parse_every(&c, p, s);
        } else {
            st = parse_at(&c, s);
        }
    }
    if (st != JET_OK) {
        free(s);
        return st;
    }
    *out = s;
    return JET_OK;
}

/* ---------------------------------------------------------- next fire */

static int next_bit(uint64_t mask, int from)
{
    if (from > 63)
        return -1;
    uint64_t m = mask >> from;
    return m ? from + __builtin_ctzll(m) : -1;
}

/* The first matching second of the day at or after second-of-day `sod`, or -1. */
static int time_in_day(const jet_sched *s, int sod)
{
    int h0 = sod / 3600, m0 = sod / 60 % 60, s0 = sod % 60;
    for (int h = next_bit(s->bits[F_HOUR], h0); h >= 0; h = next_bit(s->bits[F_HOUR], h + 1)) {
        for (int mi = next_bit(s->bits[F_MIN], h == h0 ? m0 : 0); mi >= 0; mi = next_bit(s->bits[F_MIN], mi + 1)) {
            int se = next_bit(s->bits[F_SEC], h == h0 && mi == m0 ? s0 : 0);
            if (se >= 0)
                return h * 3600 + mi * 60 + se;
        }
    }
    return -1;
}

static bool day_matches(const jet_sched *s, unsigned d, int wd)
{
    bool dm = s->bits[F_DOM] >> d & 1, wm = s->bits[F_DOW] >> wd & 1;
    return s->dom_star || s->dow_star ? dm && wm : dm || wm; /* Vixie cron */
}

/* The first matching local wall time in [ws, we] (wall seconds), pure calendar. */
static bool wall_next(const jet_sched *s, int64_t ws, int64_t we, int64_t *out)
{
    int64_t day = jet_floor_div(ws, DAY), last = jet_floor_div(we, DAY);
    int sod = (int)(ws - day * DAY);
    int64_t y;
    unsigned m, d;
    jet_civil_from_days(day, &y, &m, &d);
    while (day <= last) {
        if (!(s->bits[F_MON] >> m & 1)) { /* skip to the first day of the next selected month */
            do {
                if (++m > 12) {
                    m = 1;
                    y++;
                }
            } while (!(s->bits[F_MON] >> m & 1));
            d = 1;
            day = jet_days_from_civil(y, m, 1);
            sod = 0;
            continue;
        }
        if (day_matches(s, d, jet_weekday(day))) {
            int t = time_in_day(s, sod);
            if (t >= 0) {
                int64_t w = day * DAY + t;
                if (w > we)
                    return false;
                *out = w;
                return true;
            }
        }
        day++;
        sod = 0;
        if (++d > jet_month_days(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    return false;
}

/* The first fire instant (Unix s) strictly after p, or -1. */
static int64_t cron_next(const jet_sched *s, int64_t p)
{
    if (p < MIN_T)
        p = MIN_T;
    int64_t u = p + 1;
    while (u <= MAX_T) {
        jet_tz_span sp;
        jet_tz_span_at(s->tz, u, &sp);
        int64_t w;
        /* Entering a forward transition: matching wall times in the skipped
         * interval [start+prev_off, start+off) fire once, at the transition. */
        if (sp.start == u && sp.off > sp.prev_off &&
            wall_next(s, sp.start + sp.prev_off, sp.start + sp.off - 1, &w))
            return u;
        int64_t ws = u + sp.off, we = sp.end - 1 + sp.off;
        /* After a backward transition, wall times in [start+off, start+prev_off)
         * already occurred before it: only wildcard schedules fire them again. */
        if (sp.off < sp.prev_off && !s->wildcard && ws < sp.start + sp.prev_off)
            ws = sp.start + sp.prev_off;
        if (ws <= we && wall_next(s, ws, we, &w))
            return w - sp.off <= MAX_T ? w - sp.off : -1;
        u = sp.end;
    }
    return -1;
}

int64_t jet_sched_next(const jet_sched *s, int64_t after)
{
    switch (s->kind) {
    case JET_SCHED_AT:
        return s->at_ms > after ? s->at_ms : -1;
    case JET_SCHED_EVERY: {
        if (after < INT64_MIN / 2 || after > INT64_MAX / 2 || s->anchor_ms < INT64_MIN / 2 ||
            s->anchor_ms > INT64_MAX / 2)
            return -1;
        __int128 k = jet_floor_div(after - s->anchor_ms, s->every_ms) + 1;
        __int128 r = (__int128)s->anchor_ms + k * s->every_ms;
        return r > MAX_T * 1000 ? -1 : (int64_t)r;
    }
    case JET_SCHED_CRON: {
        int64_t t = cron_next(s, jet_floor_div(after, 1000));
        return t < 0 ? -1 : t * 1000;
    }
    }
    return -1;
}

size_t jet_sched_preview(const jet_sched *s, int64_t after, int64_t *out, size_t n)
{
    size_t k = 0;
    while (k < n) {
        int64_t t = jet_sched_next(s, after);
        if (t < 0)
            break;
        out[k++] = after = t;
    }
    return k;
}

void jet_sched_set_anchor(jet_sched *s, int64_t anchor_unix_ms) { s->anchor_ms = anchor_unix_ms; }

jet_sched_kind jet_sched_get_kind(const jet_sched *s) { return s->kind; }

const char *jet_sched_tz(const jet_sched *s) { return jet_tz_name(s->tz); }

int64_t jet_sched_interval_ms(const jet_sched *s) { return s->kind == JET_SCHED_EVERY ? s->every_ms : 0; }

void jet_sched_free(jet_sched *s) { free(s); }
