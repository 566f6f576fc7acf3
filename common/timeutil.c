/* Durations, RFC 3339 timestamps and clocks. */
#include <jetsched/timeutil.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const struct { const char *unit; int64_t ms; } duration_units[] = {
    {"ms", 1}, {"s", JET_MS_PER_SEC}, {"m", JET_MS_PER_MIN}, {"h", JET_MS_PER_HOUR}, {"d", JET_MS_PER_DAY},
};

jet_status jet_duration_parse(const char *s, int64_t *out_ms, jet_err *err)
{
    if (!s || !*s)
        return jet_err_set(err, JET_ERR_INVALID, "empty duration (expected e.g. \"30s\", \"5m\", \"1h30m\")");
    if (strlen(s) > 64)
        return jet_err_set(err, JET_ERR_INVALID, "invalid duration \"%.32s...\": longer than 64 characters", s);
    const char *p = s;
    int64_t total = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return jet_err_set(err, JET_ERR_INVALID, "invalid duration \"%s\": expected a number at \"%s\"", s, p);
        int64_t whole = 0, frac = 0, frac_div = 1;
        for (; isdigit((unsigned char)*p); p++) {
            if (whole > (INT64_MAX - 9) / 10)
                return jet_err_set(err, JET_ERR_INVALID,
                                   "duration \"%s\" is too long (at most " JET_DURATION_MAX_TEXT ")", s);
            whole = whole * 10 + (*p - '0');
        }
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return jet_err_set(err, JET_ERR_INVALID, "invalid duration \"%s\": digits expected after '.'", s);
            for (; isdigit((unsigned char)*p); p++)
                if (frac_div < 1000000) {
                    frac = frac * 10 + (*p - '0');
                    frac_div *= 10;
                }
        }
        size_t ulen = 0;
        while (isalpha((unsigned char)p[ulen]))
            ulen++;
        if (ulen == 0)
            return jet_err_set(err, JET_ERR_INVALID,
                               "invalid duration \"%s\": missing unit (use ms, s, m, h or d)", s);
        int64_t unit = 0;
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++)
            if (strlen(duration_units[i].unit) == ulen && strncmp(p, duration_units[i].unit, ulen) == 0)
                unit = duration_units[i].ms;
        if (!unit)
            return jet_err_set(err, JET_ERR_INVALID,
                               "invalid duration \"%s\": unknown unit \"%.*s\" (use ms, s, m, h or d)", s,
                               (int)ulen, p);
        p += ulen;
        if (whole > JET_DURATION_MAX_MS / unit || total + whole * unit + frac * unit / frac_div > JET_DURATION_MAX_MS)
            return jet_err_set(err, JET_ERR_INVALID, "duration \"%s\" is too long (at most " JET_DURATION_MAX_TEXT ")",
                               s);
        total += whole * unit + frac * unit / frac_div;
    }
    *out_ms = total;
    return JET_OK;
}

char *jet_duration_format(int64_t ms, char *buf, size_t len)
{
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    size_t pos = 0;
    if (ms < 0) {
        pos += (size_t)snprintf(buf, len, "-");
        ms = -ms;
    }
    for (int i = 4; i >= 0 && pos < len; i--) {
        int64_t u = duration_units[i].ms;
        if (ms >= u) {
            pos += (size_t)snprintf(buf + pos, len - pos, "%lld%s", (long long)(ms / u), duration_units[i].unit);
            ms %= u;
        }
    }
    return buf;
}

/* Howard Hinnant's civil-date algorithms. */
int64_t jet_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void jet_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

bool jet_leap_year(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned jet_month_days(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && jet_leap_year(y) ? 29 : dim[m - 1];
}

int jet_weekday(int64_t day) { return (int)(((day % 7) + 11) % 7); }

int64_t jet_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Reads exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

jet_status jet_rfc3339_parse(const char *s, int64_t *out_unix_ms, jet_err *err)
{
    const char *p = s ? s : "";
    int Y, M, D, h, mi, sec;
#define BAD(what) jet_err_set(err, JET_ERR_INVALID, "invalid RFC 3339 time \"%s\": %s", s ? s : "", what)
    if (!digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) || *p++ != '-' || !digits(&p, 2, &D))
        return BAD("expected YYYY-MM-DD");
    if (*p != 'T' && *p != 't' && *p != ' ')
        return BAD("expected 'T' after the date");
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &sec))
        return BAD("expected hh:mm:ss");
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return BAD("digits expected after '.'");
        int n = 0;
        for (; isdigit((unsigned char)*p); p++, n++)
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
            return BAD("invalid UTC offset (expected Z or +hh:mm)");
        offset_min = sign * (oh * 60 + om);
    } else {
        return BAD("missing time zone (Z or +hh:mm)");
    }
    if (*p)
        return BAD("trailing characters");
    if (M < 1 || M > 12 || D < 1 || (unsigned)D > jet_month_days(Y, (unsigned)M))
        return BAD("date out of range");
    if (h > 23 || mi > 59 || sec > 60)
        return BAD("time out of range");
    if (sec == 60) /* leap second: POSIX time has none; clamp to the last ms of the minute */
        sec = 59, frac_ms = 999;
#undef BAD
    int64_t days = jet_days_from_civil(Y, (unsigned)M, (unsigned)D);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    *out_unix_ms = secs * 1000 + frac_ms;
    return JET_OK;
}

char *jet_rfc3339_format(int64_t unix_ms, char *buf, size_t len)
{
    int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
    int64_t ms = unix_ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    jet_civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", (long long)y, m, d,
             (long long)(rem / 3600), (long long)(rem / 60 % 60), (long long)(rem % 60), (long long)ms);
    return buf;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t jet_now_ms(void) { return clock_ms(CLOCK_REALTIME); }
int64_t jet_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

int64_t jet_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void jet_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void jet_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}
