/* IANA time zones from TZif files (RFC 8536), thread-safe, no TZ/tzset.
 * See tz.h. */
#include "tz.h"

#include <jetsched/timeutil.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400
#define TZ_NAME_MAX 255
#define TZIF_MAX_SIZE (1 << 20)

/* A POSIX TZ rule date: Jn (1..365, Feb 29 never counted), n (0..365), or
 * Mm.w.d (month, week 1-5 where 5 = last, weekday 0 = Sunday), plus the local
 * time of the change in seconds (may be negative or beyond 24 h in TZif v3+). */
typedef struct tz_rule {
    char kind; /* 'J', 'N', 'M' */
    int day, month, week;
    int32_t time;
} tz_rule;

typedef struct tz_footer {
    bool present, has_dst;
    int32_t std_off, dst_off; /* seconds east of UTC */
    tz_rule start, end;       /* start in standard local time, end in DST local time */
} tz_footer;

struct jet_tz {
    struct jet_tz *next; /* cache list */
    char *name;
    size_t n;        /* table transitions that change the offset */
    int64_t *at;     /* instants, ascending */
    int32_t *off;    /* offset from at[i] on */
    int32_t off0;    /* offset before the first transition (time type 0) */
    bool has_table;  /* the file has at least one transition */
    int64_t table_end; /* last raw transition; the footer governs later instants */
    tz_footer footer;
};

typedef struct tz_trans {
    int64_t at;
    int32_t off;
} tz_trans;

/* ---------------------------------------------------------------- helpers */

static int64_t year_of(int64_t t)
{
    int64_t y;
    unsigned m, d;
    jet_civil_from_days(jet_floor_div(t, DAY), &y, &m, &d);
    return y;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* ----------------------------------------------------------- POSIX footer */

/* Day (days since 1970-01-01) on which `r` falls in year y. */
static int64_t rule_day(const tz_rule *r, int64_t y)
{
    int64_t jan1 = jet_days_from_civil(y, 1, 1);
    switch (r->kind) {
    case 'J':
        return jan1 + r->day - 1 + (jet_leap_year(y) && r->day >= 60 ? 1 : 0);
    case 'N':
        return jan1 + r->day;
    default: {
        int64_t first = jet_days_from_civil(y, (unsigned)r->month, 1);
        int wd = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        int64_t day = first + (r->day - wd + 7) % 7 + (int64_t)(r->week - 1) * 7;
        while (day >= first + jet_month_days(y, r->month))
            day -= 7;
        return day;
    }
    }
}

/* The footer's two transitions in year y, in rule order (start, end). */
static void footer_year(const tz_footer *f, int64_t y, tz_trans out[2])
{
    out[0].at = rule_day(&f->start, y) * DAY + f->start.time - f->std_off;
    out[0].off = f->dst_off;
    out[1].at = rule_day(&f->end, y) * DAY + f->end.time - f->dst_off;
    out[1].off = f->std_off;
}

/* Stable insertion sort by instant, then collapse equal instants to the last
 * entry (e.g. the "DST all year" footers whose end and next start coincide). */
static size_t sort_collapse(tz_trans *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        tz_trans x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1].at > x.at) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && v[k - 1].at == v[i].at)
            v[k - 1] = v[i];
        else
            v[k++] = v[i];
    }
    return k;
}

static int32_t footer_offset(const tz_footer *f, int64_t t)
{
    if (!f->has_dst)
        return f->std_off;
    int64_t y = year_of(t);
    tz_trans v[8];
    for (int i = 0; i < 4; i++)
        footer_year(f, y - 2 + i, v + 2 * i);
    size_t n = sort_collapse(v, 8);
    int32_t off = f->std_off;
    for (size_t i = 0; i < n && v[i].at <= t; i++)
        off = v[i].off;
    return off;
}

/* Parses [+-]hh[:mm[:ss]] with hh <= max_h; returns seconds. */
static bool posix_hms(const char **pp, int max_h, int32_t *out)
{
    const char *p = *pp;
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*p))
        return false;
    int h = 0, m = 0, s = 0;
    while (isdigit((unsigned char)*p)) {
        h = h * 10 + (*p++ - '0');
        if (h > max_h)
            return false;
    }
    if (*p == ':') {
        p++;
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
            return false;
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (*p == ':') {
            p++;
            if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
                return false;
            s = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
        }
    }
    if (m > 59 || s > 59)
        return false;
    *out = sign * (h * 3600 + m * 60 + s);
    *pp = p;
    return true;
}

static bool posix_name(const char **pp)
{
    const char *p = *pp;
    if (*p == '<') {
        p++;
        while (isalnum((unsigned char)*p) || *p == '+' || *p == '-')
            p++;
        if (*p != '>' || p - *pp < 4)
            return false;
        *pp = p + 1;
        return true;
    }
    while (isalpha((unsigned char)*p))
        p++;
    if (p - *pp < 3)
        return false;
    *pp = p;
    return true;
}

static bool posix_num(const char **pp, int lo, int hi, int *out)
{
    const char *p = *pp;
    if (!isdigit((unsigned char)*p))
        return false;
    int v = 0;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p++ - '0');
        if (v > hi)
            return false;
    }
    if (v < lo)
        return false;
    *out = v;
    *pp = p;
    return true;
}

static bool posix_rule(const char **pp, tz_rule *r)
{
    const char *p = *pp;
    memset(r, 0, sizeof *r);
    if (*p == 'J') {
        p++;
        r->kind = 'J';
        if (!posix_num(&p, 1, 365, &r->day))
            return false;
    } else if (*p == 'M') {
        p++;
        r->kind = 'M';
        if (!posix_num(&p, 1, 12, &r->month) || *p++ != '.' || !posix_num(&p, 1, 5, &r->week) ||
            *p++ != '.' || !posix_num(&p, 0, 6, &r->day))
            return false;
    } else {
        r->kind = 'N';
        if (!posix_num(&p, 0, 365, &r->day))
            return false;
    }
    r->time = 7200;
    if (*p == '/') {
        p++;
        if (!posix_hms(&p, 167, &r->time))
            return false;
    }
    *pp = p;
    return true;
}

/* Parses a POSIX TZ string such as "EST5EDT,M3.2.0,M11.1.0" or "<+0545>-5:45". */
static bool posix_parse(const char *s, tz_footer *f)
{
    memset(f, 0, sizeof *f);
    const char *p = s;
    int32_t v;
    if (!posix_name(&p) || !posix_hms(&p, 24, &v))
        return false;
    f->std_off = -v;
    f->present = true;
    if (!*p)
        return true;
    if (!posix_name(&p))
        return false;
    f->has_dst = true;
    f->dst_off = f->std_off + 3600;
    if (*p && *p != ',') {
        if (!posix_hms(&p, 24, &v))
            return false;
        f->dst_off = -v;
    }
    if (!*p) { /* no rules: the POSIX default (US rules since 2007) */
        f->start = (tz_rule){.kind = 'M', .month = 3, .week = 2, .day = 0, .time = 7200};
        f->end = (tz_rule){.kind = 'M', .month = 11, .week = 1, .day = 0, .time = 7200};
        return true;
    }
    if (*p++ != ',' || !posix_rule(&p, &f->start) || *p++ != ',' || !posix_rule(&p, &f->end))
        return false;
    return *p == '\0';
}

/* ------------------------------------------------------------ TZif reader */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_hdr {
    char version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_hdr;

static bool tzif_header(const unsigned char *p, size_t len, tzif_hdr *h)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    h->version = (char)p[4];
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (h->typecnt == 0 || h->typecnt > 256 || h->timecnt > 100000 || h->charcnt > 65536 ||
        h->leapcnt > 100000 || (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return false;
    return true;
}

static size_t tzif_block_len(const tzif_hdr *h, size_t tsize)
{
    return (size_t)h->timecnt * tsize + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static jet_status tzif_parse(jet_tz *tz, const unsigned char *data, size_t len, jet_err *err)
{
#define CORRUPT(why) jet_err_set(err, JET_ERR_INVALID, "time zone \"%s\": corrupt TZif file (%s)", tz->name, why)
    tzif_hdr h;
    if (!tzif_header(data, len, &h))
        return jet_err_set(err, JET_ERR_INVALID, "time zone \"%s\": unknown time zone (not a TZif file)",
                           tz->name);
    const unsigned char *p = data + 44;
    size_t tsize = 4;
    size_t blen = tzif_block_len(&h, 4);
    if (blen > len - 44)
        return CORRUPT("truncated v1 data");
    if (h.version >= '2') {
        p += blen;
        if (!tzif_header(p, len - (size_t)(p - data), &h))
            return CORRUPT("bad v2 header");
        p += 44;
        tsize = 8;
        blen = tzif_block_len(&h, 8);
        if (blen > len - (size_t)(p - data))
            return CORRUPT("truncated v2 data");
    }
    if (h.leapcnt != 0)
        return jet_err_set(err, JET_ERR_INVALID,
                           "time zone \"%s\": zones with leap seconds (\"right/...\") are not supported",
                           tz->name);
    const unsigned char *times = p, *idx = p + (size_t)h.timecnt * tsize, *types = idx + h.timecnt;
    int32_t utoff[256];
    for (uint32_t i = 0; i < h.typecnt; i++) {
        int32_t o = (int32_t)be32(types + 6 * i);
        if (o < -26 * 3600 || o > 26 * 3600)
            return CORRUPT("UTC offset out of range");
        utoff[i] = o;
    }
    tz->off0 = utoff[0];
    tz->has_table = h.timecnt > 0;
    tz->table_end = INT64_MIN;
    if (h.timecnt) {
        tz->at = malloc(sizeof *tz->at * h.timecnt);
        tz->off = malloc(sizeof *tz->off * h.timecnt);
        if (!tz->at || !tz->off)
            return jet_err_set(err, JET_ERR_NOMEM, "out of memory loading time zone \"%s\"", tz->name);
    }
    int32_t cur = tz->off0;
    int64_t prev = INT64_MIN;
    for (uint32_t i = 0; i < h.timecnt; i++) {
        int64_t t = tsize == 8 ? be64(times + 8 * i) : (int64_t)(int32_t)be32(times + 4 * i);
        if (i > 0 && t <= prev)
            return CORRUPT("transitions not ascending");
        if (idx[i] >= h.typecnt)
            return CORRUPT("bad time type index");
        prev = t;
        int32_t o = utoff[idx[i]];
        if (o != cur) {
            tz->at[tz->n] = t;
            tz->off[tz->n] = o;
            tz->n++;
            cur = o;
        }
    }
    if (h.timecnt)
        tz->table_end = prev;
    if (tsize == 8) {
        const unsigned char *f = p + blen, *end = data + len;
        if (f < end) {
            if (*f != '\n')
                return CORRUPT("bad footer");
            const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
            if (!nl)
                return CORRUPT("unterminated footer");
            size_t flen = (size_t)(nl - f - 1);
            if (flen > 0) {
                char buf[128];
                if (flen >= sizeof buf)
                    return CORRUPT("footer too long");
                memcpy(buf, f + 1, flen);
                buf[flen] = '\0';
                if (!posix_parse(buf, &tz->footer))
                    return jet_err_set(err, JET_ERR_INVALID,
                                       "time zone \"%s\": unsupported TZ rule \"%s\" in the TZif footer",
                                       tz->name, buf);
            }
        }
    }
    return JET_OK;
#undef CORRUPT
}

/* ------------------------------------------------------------- offsets */

int32_t jet_tz_offset(const jet_tz *tz, int64_t t)
{
    if (!tz->has_table || (t >= tz->table_end && tz->footer.present))
        return tz->footer.present ? footer_offset(&tz->footer, t) : tz->off0;
    if (tz->n == 0 || t < tz->at[0])
        return tz->off0;
    size_t lo = 0, hi = tz->n; /* last i with at[i] <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->off[lo];
}

/* Raw transitions in (lo, hi], ascending, equal instants collapsed. Returns
 * the count, or SIZE_MAX if more than cap. */
static size_t collect(const jet_tz *tz, int64_t lo, int64_t hi, tz_trans *v, size_t cap)
{
    size_t n = 0;
    /* Table: first index with at > lo. */
    size_t a = 0, b = tz->n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (tz->at[mid] <= lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (size_t i = a; i < tz->n && tz->at[i] <= hi; i++) {
        if (n == cap)
            return SIZE_MAX;
        v[n++] = (tz_trans){tz->at[i], tz->off[i]};
    }
    if (tz->footer.present && tz->footer.has_dst && hi > tz->table_end) {
        size_t first = n;
        for (int64_t y = year_of(lo) - 1; y <= year_of(hi) + 1; y++) {
            tz_trans two[2];
            footer_year(&tz->footer, y, two);
            for (int k = 0; k < 2; k++) {
                if (two[k].at > lo && two[k].at <= hi && two[k].at > tz->table_end) {
                    if (n == cap)
                        return SIZE_MAX;
                    v[n++] = two[k];
                }
            }
        }
        n = first + sort_collapse(v + first, n - first);
    }
    return n;
}

void jet_tz_span_at(const jet_tz *tz, int64_t t, jet_tz_span *out)
{
    tz_trans v[64];
    int64_t w = 400 * (int64_t)DAY;
    size_t n;
    int64_t lo, hi;
    for (;;) {
        lo = sat_add(t, -w);
        hi = sat_add(t, w);
        n = collect(tz, lo, hi, v, sizeof v / sizeof v[0]);
        if (n != SIZE_MAX)
            break;
        w /= 2;
    }
    int32_t cur = jet_tz_offset(tz, lo);
    out->start = lo;
    out->prev_off = cur;
    out->end = hi;
    for (size_t i = 0; i < n; i++) {
        if (v[i].off == cur)
            continue;
        if (v[i].at <= t) {
            out->start = v[i].at;
            out->prev_off = cur;
            cur = v[i].off;
        } else {
            out->end = v[i].at;
            break;
        }
    }
    out->off = cur;
}

int jet_tz_wall_to_utc(const jet_tz *tz, int64_t wall, int64_t out[2], int64_t *gap_end)
{
    tz_trans v[64];
    int64_t w = 2 * (int64_t)DAY;
    int64_t lo = sat_add(wall, -w), hi = sat_add(wall, w);
    size_t n = collect(tz, lo, hi, v, sizeof v / sizeof v[0]);
    if (n == SIZE_MAX)
        n = 0; /* cannot happen with real zones (64 changes in 4 days) */
    int32_t cur = jet_tz_offset(tz, lo);
    int64_t seg = lo;
    int count = 0;
    for (size_t i = 0; i <= n; i++) {
        int64_t seg_end = i < n ? v[i].at : hi;
        int64_t u = wall - cur;
        if (u >= seg && u < seg_end && count < 2)
            out[count++] = u;
        if (i == n)
            break;
        if (v[i].off > cur && gap_end && wall >= v[i].at + cur && wall < v[i].at + v[i].off)
            *gap_end = v[i].at;
        seg = v[i].at;
        cur = v[i].off;
    }
    return count;
}

/* ------------------------------------------------------------- the cache */

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static jet_tz *cache;
static char zone_dir[4096];

static jet_tz utc_zone = {.name = (char *)"UTC", .footer = {.present = true}};

const jet_tz *jet_tz_utc(void) { return &utc_zone; }

const char *jet_tz_name(const jet_tz *tz) { return tz->name; }

static bool name_valid(const char *name, const char **why)
{
    size_t len = strlen(name);
    if (len > TZ_NAME_MAX) {
        *why = "name too long";
        return false;
    }
    const char *p = name;
    for (;;) {
        const char *c = p;
        if (!isalpha((unsigned char)*c)) {
            *why = *c == '/' || *c == '\0' ? "empty path component"
                   : *c == '.'             ? "path components may not start with '.'"
                                           : "each path component must start with a letter";
            return false;
        }
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '+' || *p == '-')
            p++;
        if (*p == '\0')
            break;
        if (*p != '/') {
            *why = "invalid character (allowed: letters, digits, . _ + - and /)";
            return false;
        }
        p++;
    }
    if (strcmp(name, "localtime") == 0 || strcmp(name, "posixrules") == 0 || strcmp(name, "Factory") == 0) {
        *why = "not an IANA time zone name";
        return false;
    }
    return true;
}

static void tz_free(jet_tz *tz)
{
    if (!tz || tz == &utc_zone)
        return;
    free(tz->name);
    free(tz->at);
    free(tz->off);
    free(tz);
}

static jet_status tz_load(const char *name, jet_tz **out, jet_err *err)
{
    if (!zone_dir[0]) {
        const char *d = getenv("TZDIR");
        snprintf(zone_dir, sizeof zone_dir, "%s", d && *d ? d : "/usr/share/zoneinfo");
    }
    char path[sizeof zone_dir + TZ_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", zone_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return jet_err_set(err, JET_ERR_INVALID, "time zone \"%s\": unknown time zone (no %s)", name, path);
        return jet_err_set(err, JET_ERR_INVALID, "time zone \"%s\": cannot open %s: %s", name, path,
                           strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TZIF_MAX_SIZE) {
        close(fd);
        return jet_err_set(err, JET_ERR_INVALID, "time zone \"%s\": unknown time zone (%s is not a zone file)",
                           name, path);
    }
    size_t len = (size_t)st.st_size;
    unsigned char *data = malloc(len ? len : 1);
    jet_tz *tz = calloc(1, sizeof *tz);
    char *nm = strdup(name);
    if (!data || !tz || !nm) {
        close(fd);
        free(data);
        free(tz);
        free(nm);
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory loading time zone \"%s\"", name);
    }
    tz->name = nm;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    jet_status st2 = got == len ? tzif_parse(tz, data, len, err)
                                : jet_err_set(err, JET_ERR_INVALID, "time zone \"%s\": short read of %s", name, path);
    free(data);
    if (st2 != JET_OK) {
        tz_free(tz);
        return st2;
    }
    *out = tz;
    return JET_OK;
}

jet_status jet_tz_get(const char *name, const jet_tz **out, jet_err *err)
{
    if (!name || !*name || strcmp(name, "UTC") == 0) {
        *out = &utc_zone;
        return JET_OK;
    }
    const char *why = NULL;
    if (!name_valid(name, &why))
        return jet_err_set(err, JET_ERR_INVALID, "time zone \"%.*s\": invalid name: %s", TZ_NAME_MAX, name, why);
    pthread_mutex_lock(&cache_mu);
    for (jet_tz *z = cache; z; z = z->next)
        if (strcmp(z->name, name) == 0) {
            pthread_mutex_unlock(&cache_mu);
            *out = z;
            return JET_OK;
        }
    /* Loading under the lock: rare (once per zone) and keeps one copy. */
    jet_tz *tz = NULL;
    jet_status st = tz_load(name, &tz, err);
    if (st == JET_OK) {
        tz->next = cache;
        cache = tz;
        *out = tz;
    }
    pthread_mutex_unlock(&cache_mu);
    return st;
}

void jet_tz_cache_clear(void)
{
    pthread_mutex_lock(&cache_mu);
    while (cache) {
        jet_tz *z = cache;
        cache = z->next;
        tz_free(z);
    }
    zone_dir[0] = '\0';
    pthread_mutex_unlock(&cache_mu);
}
