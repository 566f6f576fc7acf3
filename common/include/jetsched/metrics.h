/* Metrics registry: counters, gauges and histograms with labels, rendered
 * in the Prometheus text exposition format for /metrics. Thread-safe. */
#ifndef JETSCHED_METRICS_H
#define JETSCHED_METRICS_H

#include <stdint.h>
#include <stdio.h>

typedef struct jet_metric jet_metric;

/* label_names: comma-separated ("queue,handler,status") or NULL for none.
 * Registering the same name twice returns the same metric. */
jet_metric *jet_metric_counter(const char *name, const char *help, const char *label_names);
jet_metric *jet_metric_gauge(const char *name, const char *help, const char *label_names);
/* Histogram of values in seconds, with fixed buckets suited to task latencies
 * (0.5 ms .. 1 h). Observations are given in milliseconds (double). */
jet_metric *jet_metric_histogram(const char *name, const char *help, const char *label_names);
/* A gauge computed on scrape. */
void jet_metric_gauge_fn(const char *name, const char *help, double (*fn)(void *), void *arg);

/* label_values: as many as label names, or NULL for a metric without labels. */
void jet_metric_add(jet_metric *m, const char *const *label_values, double v);   /* counter/gauge */
void jet_metric_set(jet_metric *m, const char *const *label_values, double v);   /* gauge */
void jet_metric_observe(jet_metric *m, const char *const *label_values, double ms); /* histogram */
/* Replaces every series of a gauge at once (a scrape sees the old set or the
 * new one): n series, label_values holds n x (number of labels) strings in
 * order; n = 0 removes them all (e.g. an instance that stopped leading). */
void jet_metric_set_all(jet_metric *m, size_t n, const char *const *label_values, const double *values);
/* Current value (counters/gauges), for tests and readiness. */
double jet_metric_value(jet_metric *m, const char *const *label_values);

void jet_metrics_render(FILE *out);
/* Frees every metric (at exit, so leak checkers stay quiet). */
void jet_metrics_reset(void);

#endif
