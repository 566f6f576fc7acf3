/* The metrics registry and Prometheus text rendering. One mutex per metric;
 * series are kept in a small array per metric (label sets are few: queues x
 * handlers x statuses), so lookup is a linear scan of short strings. */
#include <jetsched/metrics.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum kind { COUNTER, GAUGE, HISTOGRAM, GAUGE_FN };

static const double bucket_s[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5,    1,     2.5,    5,     10,   30,    60,   300, 900, 3600};
#define NBUCKETS (sizeof bucket_s / sizeof bucket_s[0])
#define MAX_LABELS 4

typedef struct series {
    char *labels[MAX_LABELS];
    double value;                 /* counter/gauge; histogram sum (s) */
    uint64_t count;               /* histogram */
    uint64_t buckets[NBUCKETS];   /* histogram, non-cumulative */
} series;

struct jet_metric {
    char *name, *help;
    enum kind kind;
    char *label_names[MAX_LABELS];
    int nlabels;
    pthread_mutex_t mu;
    series *series;
    size_t nseries, cap;
    double (*fn)(void *);
    void *arg;
    struct jet_metric *next;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static jet_metric *registry_head, *registry_tail;

static jet_metric *register_metric(const char *name, const char *help, const char *labels, enum kind kind)
{
    pthread_mutex_lock(&registry_mu);
    for (jet_metric *m = registry_head; m; m = m->next)
        if (strcmp(m->name, name) == 0) {
            pthread_mutex_unlock(&registry_mu);
            return m;
        }
    jet_metric *m = calloc(1, sizeof *m);
    m->name = strdup(name);
    m->help = strdup(help);
    m->kind = kind;
    pthread_mutex_init(&m->mu, NULL);
    if (labels && *labels) {
        char *copy = strdup(labels), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && m->nlabels < MAX_LABELS; t = strtok_r(NULL, ",", &save))
            m->label_names[m->nlabels++] = strdup(t);
        free(copy);
    }
    if (registry_tail)
        registry_tail->next = m;
    else
        registry_head = m;
    registry_tail = m;
    pthread_mutex_unlock(&registry_mu);
    return m;
}

jet_metric *jet_metric_counter(const char *n, const char *h, const char *l) { return register_metric(n, h, l, COUNTER); }
jet_metric *jet_metric_gauge(const char *n, const char *h, const char *l) { return register_metric(n, h, l, GAUGE); }
jet_metric *jet_metric_histogram(const char *n, const char *h, const char *l) { return register_metric(n, h, l, HISTOGRAM); }

void jet_metric_gauge_fn(const char *name, const char *help, double (*fn)(void *), void *arg)
{
    jet_metric *m = register_metric(name, help, NULL, GAUGE_FN);
    pthread_mutex_lock(&m->mu);
    m->fn = fn;
    m->arg = arg;
    pthread_mutex_unlock(&m->mu);
}

/* Finds or adds the series; called with m->mu held. */
static series *find_series(jet_metric *m, const char *const *values)
{
    for (size_t i = 0; i < m->nseries; i++) {
        int j = 0;
        for (; j < m->nlabels; j++)
            if (strcmp(m->series[i].labels[j], values[j] ? values[j] : "") != 0)
                break;
        if (j == m->nlabels)
            return &m->series[i];
    }
    if (m->nseries == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 4;
        m->series = realloc(m->series, m->cap * sizeof *m->series);
    }
    series *s = &m->series[m->nseries++];
    memset(s, 0, sizeof *s);
    for (int j = 0; j < m->nlabels; j++)
        s->labels[j] = strdup(values && values[j] ? values[j] : "");
    return s;
}

void jet_metric_add(jet_metric *m, const char *const *values, double v)
{
    pthread_mutex_lock(&m->mu);
    find_series(m, values)->value += v;
    pthread_mutex_unlock(&m->mu);
}

void jet_metric_set(jet_metric *m, const char *const *values, double v)
{
    pthread_mutex_lock(&m->mu);
    find_series(m, values)->value = v;
    pthread_mutex_unlock(&m->mu);
}

/* Frees the series of m; called with m->mu held. */
static void drop_series(jet_metric *m)
{
    for (size_t i = 0; i < m->nseries; i++)
        for (int j = 0; j < m->nlabels; j++)
            free(m->series[i].labels[j]);
    m->nseries = 0;
}

void jet_metric_set_all(jet_metric *m, size_t n, const char *const *label_values, const double *values)
{
    pthread_mutex_lock(&m->mu);
    drop_series(m);
    for (size_t i = 0; i < n; i++)
        find_series(m, label_values ? label_values + i * (size_t)m->nlabels : NULL)->value = values[i];
    pthread_mutex_unlock(&m->mu);
}

void jet_metric_observe(jet_metric *m, const char *const *values, double ms)
{
    double s = ms / 1000.0;
    pthread_mutex_lock(&m->mu);
    series *se = find_series(m, values);
    se->value += s;
    se->count++;
    for (size_t b = 0; b < NBUCKETS; b++)
        if (s <= bucket_s[b]) {
            se->buckets[b]++;
            break;
        }
    pthread_mutex_unlock(&m->mu);
}

double jet_metric_value(jet_metric *m, const char *const *values)
{
    pthread_mutex_lock(&m->mu);
    double v = m->kind == GAUGE_FN ? m->fn(m->arg) : find_series(m, values)->value;
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* Writes {a="x",b="y"} plus an optional extra label (le). */
static void render_labels(FILE *out, const jet_metric *m, const series *s, const char *extra)
{
    if (m->nlabels == 0 && !extra)
        return;
    fputc('{', out);
    for (int j = 0; j < m->nlabels; j++) {
        fprintf(out, "%s%s=\"", j ? "," : "", m->label_names[j]);
        for (const char *p = s->labels[j]; *p; p++) {
            if (*p == '"' || *p == '\\')
                fputc('\\', out);
            if (*p == '\n')
                fputs("\\n", out);
            else
                fputc(*p, out);
        }
        fputc('"', out);
    }
    if (extra)
        fprintf(out, "%s%s", m->nlabels ? "," : "", extra);
    fputc('}', out);
}

static void render_metric(FILE *out, jet_metric *m)
{
    static const char *const type[] = {"counter", "gauge", "histogram", "gauge"};
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, type[m->kind]);
    if (m->kind == GAUGE_FN) {
        fprintf(out, "%s %.17g\n", m->name, m->fn(m->arg));
        return;
    }
    if (m->nseries == 0 && m->nlabels == 0 && m->kind != HISTOGRAM) {
        fprintf(out, "%s 0\n", m->name);
        return;
    }
    for (size_t i = 0; i < m->nseries; i++) {
        series *s = &m->series[i];
        if (m->kind != HISTOGRAM) {
            fputs(m->name, out);
            render_labels(out, m, s, NULL);
            fprintf(out, " %.17g\n", s->value);
            continue;
        }
        uint64_t cum = 0;
        char le[48];
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += s->buckets[b];
            snprintf(le, sizeof le, "le=\"%g\"", bucket_s[b]);
            fprintf(out, "%s_bucket", m->name);
            render_labels(out, m, s, le);
            fprintf(out, " %llu\n", (unsigned long long)cum);
        }
        fprintf(out, "%s_bucket", m->name);
        render_labels(out, m, s, "le=\"+Inf\"");
        fprintf(out, " %llu\n%s_sum", (unsigned long long)s->count, m->name);
        render_labels(out, m, s, NULL);
        fprintf(out, " %.17g\n%s_count", s->value, m->name);
        render_labels(out, m, s, NULL);
        fprintf(out, " %llu\n", (unsigned long long)s->count);
    }
}

void jet_metrics_render(FILE *out)
{
    pthread_mutex_lock(&registry_mu);
    for (jet_metric *m = registry_head; m; m = m->next) {
        pthread_mutex_lock(&m->mu);
        render_metric(out, m);
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

void jet_metrics_reset(void)
{
    pthread_mutex_lock(&registry_mu);
    jet_metric *m = registry_head;
    registry_head = registry_tail = NULL;
    pthread_mutex_unlock(&registry_mu);
    while (m) {
        jet_metric *next = m->next;
        drop_series(m);
        for (int j = 0; j < m->nlabels; j++)
            free(m->label_names[j]);
        free(m->series);
        free(m->name);
        free(m->help);
        pthread_mutex_destroy(&m->mu);
        free(m);
        m = next;
    }
}
