/* The fault suite's history checker; see checker.h for what it reads and
 * counts. Recording functions append to files (so a crashed scenario leaves
 * a checkable directory); fc_check works from the files and PostgreSQL only. */
#include "checker.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const fc_kind_names[FC_NKINDS] = {"direct", "delayed", "api", "cron"};

/* ---------------- recording ---------------- */

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *sub_f, *sched_f;
static char rec_dir[512];

void fc_open(const char *dir)
{
    snprintf(rec_dir, sizeof rec_dir, "%s", dir);
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/fx", dir);
    mkdir(p, 0777);
    chmod(p, 0777);
    snprintf(p, sizeof p, "%s/submissions.tsv", dir);
    sub_f = fopen(p, "a");
    snprintf(p, sizeof p, "%s/schedules.tsv", dir);
    sched_f = fopen(p, "a");
    if (!sub_f || !sched_f) {
        fprintf(stderr, "FATAL: checker: cannot create files in %s: %s\n", dir, strerror(errno));
        exit(1);
    }
}

static void rec_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_line(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&rec_mu);
    vfprintf(f, fmt, ap);
    fflush(f);
    pthread_mutex_unlock(&rec_mu);
    va_end(ap);
}

void fc_submitted(const char *id, fc_kind kind) { rec_line(sub_f, "%s\t%s\n", id, fc_kind_names[kind]); }
void fc_unconfirmed(const char *id) { rec_line(sub_f, "%s\tunconfirmed\n", id); }

void fc_schedule(const char *sid, int64_t first_ms, int64_t period_ms)
{
    rec_line(sched_f, "S\t%s\t%" PRId64 "\t%" PRId64 "\n", sid, first_ms, period_ms);
}

void fc_schedule_stop(const char *sid, int64_t stop_ms) { rec_line(sched_f, "E\t%s\t%" PRId64 "\n", sid, stop_ms); }

void fc_fx_path(const char *agent, char *out, size_t len) { snprintf(out, len, "%s/fx/%s.log", rec_dir, agent); }

void fc_close(void)
{
    if (sub_f)
        fclose(sub_f);
    if (sched_f)
        fclose(sched_f);
    sub_f = sched_f = NULL;
}

/* ---------------- a string map ---------------- */

typedef struct smap {
    char **keys;
    void **vals;
    size_t cap, n;
} smap;

static size_t shash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void **smap_slot(smap *m, const char *key, bool create);

static void smap_grow(smap *m)
{
    smap old = *m;
    m->cap = old.cap ? old.cap * 2 : 1024;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i]) {
            *smap_slot(m, old.keys[i], true) = old.vals[i];
            free(old.keys[i]);
        }
    free(old.keys);
    free(old.vals);
}

/* The value slot of key (created empty when `create`), or NULL. */
static void **smap_slot(smap *m, const char *key, bool create)
{
    if (create && (m->n + 1) * 2 > m->cap)
        smap_grow(m);
    if (!m->cap)
        return NULL;
    for (size_t i = shash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i]) {
            if (!create)
                return NULL;
            m->keys[i] = strdup(key);
            m->n++;
            return &m->vals[i];
        }
        if (!strcmp(m->keys[i], key))
            return &m->vals[i];
    }
}

static void *smap_get(smap *m, const char *key)
{
    void **v = smap_slot(m, key, false);
    return v ? *v : NULL;
}

static void smap_free(smap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            free(m->keys[i]);
            if (free_val)
                free_val(m->vals[i]);
        }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---------------- inputs ---------------- */

typedef struct fx_line {
    int attempt;
    char agent[64];
    int64_t ms;
} fx_line;

typedef struct attempt_row {
    int attempt;
    int64_t started_ms, finished_ms;
} attempt_row;

/* Everything known about one task id. */
typedef struct entry {
    int kind;                 /* fc_kind, -1 = not submitted by the scenario, -2 = unconfirmed */
    bool has_row;
    char status[16];
    char schedule_id[72];
    int64_t fire_ms, created_ms;
    fx_line *lines;
    size_t nlines;
    attempt_row *succ;        /* succeeded attempts */
    size_t nsucc;
} entry;

static void entry_free(void *p)
{
    entry *e = p;
    if (!e)
        return;
    free(e->lines);
    free(e->succ);
    free(e);
}

static entry *entry_of(smap *m, const char *id)
{
    void **slot = smap_slot(m, id, true);
    if (!*slot) {
        entry *e = calloc(1, sizeof *e);
        e->kind = -1;
        e->fire_ms = -1;
        *slot = e;
    }
    return *slot;
}

typedef struct schedule {
    char id[72];
    int64_t first_ms, period_ms, stop_ms;
} schedule;

static int read_submissions(const char *dir, smap *m, fc_report *r)
{
    char p[600], line[600];
    snprintf(p, sizeof p, "%s/submissions.tsv", dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0; /* no submissions: a cron-only scenario */
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        const char *k = tab + 1;
        entry *e = entry_of(m, line);
        if (!strcmp(k, "unconfirmed")) {
            if (e->kind == -1) {
                e->kind = -2;
                r->unconfirmed++;
            }
            continue;
        }
        for (int i = 0; i < FC_NKINDS; i++)
            if (!strcmp(k, fc_kind_names[i])) {
                if (e->kind == -2)
                    r->unconfirmed--;
                if (e->kind < 0)
                    r->submitted[i]++;
                e->kind = i;
            }
    }
    fclose(f);
    return 0;
}

static schedule *read_schedules(const char *dir, size_t *n)
{
    char p[600], line[600];
    snprintf(p, sizeof p, "%s/schedules.tsv", dir);
    *n = 0;
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    schedule *v = NULL;
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        char tag, sid[72];
        long long a = 0, b = 0;
        int got = sscanf(line, "%c\t%71s\t%lld\t%lld", &tag, sid, &a, &b);
        if (got >= 3 && tag == 'S' && got == 4) {
            if (*n == cap)
                v = realloc(v, (cap = cap * 2 + 8) * sizeof *v);
            v[*n] = (schedule){.first_ms = a, .period_ms = b, .stop_ms = -1};
            snprintf(v[*n].id, sizeof v[*n].id, "%s", sid);
            (*n)++;
        } else if (got >= 3 && tag == 'E') {
            for (size_t i = 0; i < *n; i++)
                if (!strcmp(v[i].id, sid))
                    v[i].stop_ms = a;
        }
    }
    fclose(f);
    return v;
}

static void read_fx(const char *dir, smap *m, fc_report *r, FILE *details, int *budget)
{
    char p[600];
    snprintf(p, sizeof p, "%s/fx", dir);
    DIR *d = opendir(p);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".log") != 0)
            continue;
        char fp[900], line[600];
        snprintf(fp, sizeof fp, "%s/%s", p, de->d_name);
        FILE *f = fopen(fp, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            char id[200], agent[64];
            int attempt, pid;
            long long ms;
            if (sscanf(line, "%199s %d %63s %d %lld", id, &attempt, agent, &pid, &ms) != 5) {
                if (details && (*budget)-- > 0)
                    fprintf(details, "checker: %s: malformed side-effect line: %s", fp, line);
                continue;
            }
            entry *e = entry_of(m, id);
            e->lines = realloc(e->lines, (e->nlines + 1) * sizeof *e->lines);
            fx_line *x = &e->lines[e->nlines++];
            x->attempt = attempt;
            x->ms = ms;
            snprintf(x->agent, sizeof x->agent, "%s", agent);
            r->lines++;
        }
        fclose(f);
    }
    closedir(d);
}

static PGresult *pg_rows(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "checker: query failed: %s: %s", sql, PQerrorMessage(pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int read_pg(PGconn *pg, smap *m)
{
    /* A fire committed ahead (created before its time: docs/SCHEDULER.md,
     * "Fires planned ahead") fires when it is published (dispatched_at), not
     * when its row was written; a planned fire withdrawn by a schedule pause
     * before it was due is no fire at all. */
    PGresult *res = pg_rows(pg, "SELECT id, status, coalesce(schedule_id, ''),"
                                " coalesce(round(extract(epoch from scheduled_for) * 1000)::bigint, -1),"
                                " floor(extract(epoch from CASE WHEN created_at < scheduled_for THEN"
                                " coalesce(dispatched_at, (SELECT min(a.started_at) FROM task_attempts a"
                                " WHERE a.task_id = tasks.id), created_at) ELSE created_at END) * 1000)::bigint"
                                " FROM tasks WHERE NOT (status = 'skipped' AND coalesce(error, '') LIKE"
                                " 'withdrawn before it was due%')");
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        entry *e = entry_of(m, PQgetvalue(res, i, 0));
        e->has_row = true;
        snprintf(e->status, sizeof e->status, "%s", PQgetvalue(res, i, 1));
        snprintf(e->schedule_id, sizeof e->schedule_id, "%s", PQgetvalue(res, i, 2));
        e->fire_ms = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        e->created_ms = strtoll(PQgetvalue(res, i, 4), NULL, 10);
    }
    PQclear(res);
    res = pg_rows(pg, "SELECT task_id, attempt,"
                      " coalesce(floor(extract(epoch from started_at) * 1000)::bigint, -1),"
                      " coalesce(ceil(extract(epoch from finished_at) * 1000)::bigint, -1)"
                      " FROM task_attempts WHERE status = 'succeeded'");
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        entry *e = entry_of(m, PQgetvalue(res, i, 0));
        e->succ = realloc(e->succ, (e->nsucc + 1) * sizeof *e->succ);
        e->succ[e->nsucc++] = (attempt_row){.attempt = atoi(PQgetvalue(res, i, 1)),
                                            .started_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10),
                                            .finished_ms = strtoll(PQgetvalue(res, i, 3), NULL, 10)};
    }
    PQclear(res);
    return 0;
}

/* ---------------- the check ---------------- */

#define FINDING(...)                                                                                              \
    do {                                                                                                          \
        if (details && budget-- > 0)                                                                              \
            fprintf(details, __VA_ARGS__);                                                                        \
    } while (0)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The schedule an id belongs to ("<schedule id>-<ms>"), or NULL. */
static const schedule *schedule_of(const schedule *v, size_t n, const char *id, int64_t *fire_ms)
{
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i].id);
        if (!strncmp(id, v[i].id, l) && id[l] == '-' && id[l + 1]) {
            char *end;
            long long t = strtoll(id + l + 1, &end, 10);
            if (!*end) {
                *fire_ms = t;
                return &v[i];
            }
        }
    }
    return NULL;
}

int fc_check(const char *dir, PGconn *pg, const fc_limits *lim, fc_report *r, FILE *details, int max_details)
{
    memset(r, 0, sizeof *r);
    int budget = max_details;
    smap m = {0};
    if (read_submissions(dir, &m, r) != 0)
        return -1;
    size_t ns = 0;
    schedule *sv = read_schedules(dir, &ns);
    read_fx(dir, &m, r, details, &budget);
    if (read_pg(pg, &m) != 0) {
        smap_free(&m, entry_free);
        free(sv);
        return -1;
    }

    /* Rows and side effects of the recorded schedules are cron tasks. */
    for (size_t i = 0; i < m.cap; i++) {
        entry *e = m.keys[i] ? m.vals[i] : NULL;
        if (!e || e->kind >= 0)
            continue;
        int64_t t;
        const schedule *s = schedule_of(sv, ns, m.keys[i], &t);
        if (s || (e->has_row && e->schedule_id[0])) {
            for (size_t k = 0; k < ns && !s; k++)
                if (!strcmp(sv[k].id, e->schedule_id))
                    s = &sv[k];
            if (s) {
                e->kind = FC_CRON;
                r->submitted[FC_CRON]++;
            }
        }
    }

    /* Per task: lost, successful runs, re-runs, unexpected runs. */
    for (size_t i = 0; i < m.cap; i++) {
        entry *e = m.keys[i] ? m.vals[i] : NULL;
        if (!e)
            continue;
        const char *id = m.keys[i];
        if (e->kind == -2)
            continue; /* unconfirmed: anything goes */
        if (e->kind == -1) {
            if (e->nlines) {
                r->unexpected_runs += (long)e->nlines;
                FINDING("UNEXPECTED: %s ran %zu time(s) but nobody submitted it (row: %s)\n", id, e->nlines,
                        e->has_row ? e->status : "none");
            }
            continue;
        }
        int k = e->kind;
        if (!e->has_row || strcmp(e->status, "succeeded") != 0 || !e->nsucc || !e->nlines) {
            r->lost[k]++;
            FINDING("LOST (%s): %s: %s, %zu succeeded attempt(s), %zu side effect(s)\n", fc_kind_names[k], id,
                    e->has_row ? e->status : "no row in PostgreSQL", e->nsucc, e->nlines);
            continue;
        }
        r->succeeded[k]++;
        /* The first success (by finish time); later successes and any run
         * that started after it are duplicate successful runs; other extra
         * runs came before it: re-runs after an interrupted attempt. */
        const attempt_row *first = &e->succ[0];
        for (size_t j = 1; j < e->nsucc; j++)
            if (e->succ[j].finished_ms < first->finished_ms)
                first = &e->succ[j];
        long dups = (long)e->nsucc - 1, after = 0;
        for (size_t j = 0; j < e->nlines; j++)
            if (first->finished_ms >= 0 && e->lines[j].ms > first->finished_ms + 2)
                after++;
        if (after > dups)
            dups = after;
        long reruns = (long)e->nlines - 1 - dups;
        if (dups > 0) {
            r->dup[k] += dups;
            FINDING("DUPLICATE (%s): %s: %zu succeeded attempt(s), %ld run(s) after the first success "
                    "finished, %zu side effect(s)\n",
                    fc_kind_names[k], id, e->nsucc, after, e->nlines);
        }
        if (reruns > 0)
            r->reruns[k] += reruns;
    }

    /* Cron: every fire time of each schedule from its first fire to its stop. */
    double *lags = NULL;
    size_t nlags = 0, lcap = 0;
    for (size_t si = 0; si < ns; si++) {
        const schedule *s = &sv[si];
        if (s->period_ms <= 0)
            continue;
        int64_t stop = s->stop_ms;
        if (stop < 0) {
            FINDING("checker: schedule %s was never stopped; checking up to its last fire row\n", s->id);
            for (size_t i = 0; i < m.cap; i++) {
                entry *e = m.keys[i] ? m.vals[i] : NULL;
                if (e && e->has_row && !strcmp(e->schedule_id, s->id) && e->fire_ms > stop)
                    stop = e->fire_ms;
            }
        }
        char id[128];
        for (int64_t t = s->first_ms; t <= stop; t += s->period_ms) {
            snprintf(id, sizeof id, "%s-%" PRId64, s->id, t);
            entry *e = smap_get(&m, id);
            if (!e || !e->has_row) {
                if (t > stop - lim->end_grace_ms)
                    continue; /* due right before the stop: may or may not have fired */
                r->fires_expected++;
                r->fires_missed++;
                FINDING("MISSED FIRE: %s (due %" PRId64 " ms before the stop)\n", id, stop - t);
                continue;
            }
            r->fires_expected++;
            int64_t lag = e->created_ms - t;
            int64_t allowed = lim->late_ms;
            for (int w = 0; w < lim->n_outages && w < 16; w++)
                if (t >= lim->outages[w][0] - lim->late_ms && t <= lim->outages[w][1] &&
                    lim->late_ms + lim->outages[w][1] - t > allowed)
                    allowed = lim->late_ms + lim->outages[w][1] - t;
            if (lag > lim->late_ms)
                r->fires_late_ttl++;
            if (lag > allowed) {
                r->fires_late++;
                FINDING("LATE FIRE: %s fired %" PRId64 " ms after its time (allowed %" PRId64 " ms)\n", id, lag,
                        allowed);
            }
            if (nlags == lcap)
                lags = realloc(lags, (lcap = lcap * 2 + 64) * sizeof *lags);
            lags[nlags++] = (double)lag;
            if (e->kind == FC_CRON && e->nsucc && e->nlines) {
                /* a fire run successfully more than once is a doubled fire */
                const attempt_row *first = &e->succ[0];
                long after = 0;
                for (size_t j = 0; j < e->nlines; j++)
                    if (e->lines[j].ms > first->finished_ms + 2)
                        after++;
                if (e->nsucc > 1 || after > 0) {
                    r->fires_doubled++;
                    FINDING("DOUBLED FIRE: %s ran successfully more than once\n", id);
                }
            }
        }
        /* Rows of the schedule that are not one of its fire times. */
        for (size_t i = 0; i < m.cap; i++) {
            entry *e = m.keys[i] ? m.vals[i] : NULL;
            if (!e || !e->has_row || strcmp(e->schedule_id, s->id) != 0)
                continue;
            int64_t t = -1;
            const schedule *own = schedule_of(s, 1, m.keys[i], &t);
            bool on_grid = own && t == e->fire_ms && t >= s->first_ms && (t - s->first_ms) % s->period_ms == 0;
            if (!on_grid) {
                r->fires_doubled++;
                FINDING("DOUBLED FIRE: row %s of schedule %s is not <schedule>-<fire ms> on its grid (fire %" PRId64
                        ")\n", m.keys[i], s->id, e->fire_ms);
            } else if (t > stop) {
                r->fires_unexpected++;
                FINDING("UNEXPECTED FIRE: %s is after the schedule was paused (%" PRId64 " ms later)\n",
                        m.keys[i], t - stop);
            }
        }
    }
    if (nlags) {
        qsort(lags, nlags, sizeof *lags, cmp_double);
        r->lag_p50_ms = lags[(size_t)ceil(0.50 * (double)nlags) - 1];
        r->lag_p99_ms = lags[(size_t)ceil(0.99 * (double)nlags) - 1];
        r->lag_max_ms = lags[nlags - 1];
    }
    free(lags);
    if (details && budget < 0)
        fprintf(details, "checker: ... %d more finding(s) not shown\n", -budget);
    smap_free(&m, entry_free);
    free(sv);
    return 0;
}

bool fc_pass(const fc_report *r)
{
    long lost = 0;
    for (int k = 0; k < FC_NKINDS; k++)
        lost += r->lost[k];
    return lost == 0 && r->dup[FC_DELAYED] == 0 && r->dup[FC_API] == 0 && r->dup[FC_CRON] == 0 &&
           r->unexpected_runs == 0 && r->fires_missed == 0 && r->fires_doubled == 0 && r->fires_late == 0 &&
           r->fires_unexpected == 0;
}

void fc_print(const fc_report *r, const char *scenario, FILE *out)
{
    fprintf(out, "checker [%s]: %ld side-effect lines, %ld unconfirmed submissions\n", scenario, r->lines,
            r->unconfirmed);
    fprintf(out, "  %-8s %9s %9s %6s %10s %7s\n", "kind", "submitted", "succeeded", "lost", "duplicate", "reruns");
    for (int k = 0; k < FC_NKINDS; k++)
        fprintf(out, "  %-8s %9ld %9ld %6ld %10ld %7ld%s\n", fc_kind_names[k], r->submitted[k], r->succeeded[k],
                r->lost[k], r->dup[k], r->reruns[k], k == FC_DIRECT ? "   (duplicates: at-least-once, reported)" : "");
    fprintf(out, "  unexpected runs %ld; cron fires expected %ld, missed %ld, doubled %ld, late %ld (later than "
                 "the limit: %ld), after the stop %ld; fire lag p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
            r->unexpected_runs, r->fires_expected, r->fires_missed, r->fires_doubled, r->fires_late,
            r->fires_late_ttl, r->fires_unexpected, r->lag_p50_ms, r->lag_p99_ms, r->lag_max_ms);
    fprintf(out, "  verdict: %s\n", fc_pass(r) ? "PASS" : "FAIL");
}

void fc_json(const fc_report *r, const char *scenario, double seconds, const char *extra_json, FILE *out)
{
    fprintf(out, "{\"scenario\":\"%s\",\"seconds\":%.1f,\"pass\":%s", scenario, seconds, fc_pass(r) ? "true" : "false");
    for (int k = 0; k < FC_NKINDS; k++)
        fprintf(out, ",\"%s\":{\"submitted\":%ld,\"succeeded\":%ld,\"lost\":%ld,\"duplicates\":%ld,\"reruns\":%ld}",
                fc_kind_names[k], r->submitted[k], r->succeeded[k], r->lost[k], r->dup[k], r->reruns[k]);
    fprintf(out, ",\"unconfirmed\":%ld,\"unexpected_runs\":%ld,\"fires\":{\"expected\":%ld,\"missed\":%ld,"
                 "\"doubled\":%ld,\"late\":%ld,\"later_than_ttl_plus_1s\":%ld,\"after_stop\":%ld,"
                 "\"lag_p50_ms\":%.0f,\"lag_p99_ms\":%.0f,\"lag_max_ms\":%.0f}%s%s}\n",
            r->unconfirmed, r->unexpected_runs, r->fires_expected, r->fires_missed, r->fires_doubled, r->fires_late,
            r->fires_late_ttl, r->fires_unexpected, r->lag_p50_ms, r->lag_p99_ms, r->lag_max_ms,
            extra_json && *extra_json ? "," : "", extra_json ? extra_json : "");
}
