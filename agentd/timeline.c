/* The hot path's timeline histograms (timeline.h). */
#include "timeline.h"

#include <jetsched/metrics.h>
#include <jetsched/timeutil.h>

#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static jet_metric *m_start_delay, *m_record, *m_ack;

static void init(void)
{
    m_start_delay = jet_metric_histogram("jetsched_agent_start_delay_seconds",
                                         "From the message arriving at agentd to its handler starting "
                                         "(admission lookup and the wait for a worker).", "queue");
    m_record = jet_metric_histogram("jetsched_agent_record_seconds",
                                    "From an attempt's outcome to the commit of its history record.", "queue");
    m_ack = jet_metric_histogram("jetsched_agent_ack_seconds",
                                 "From the commit of an attempt's record to its ack (or Nak/Term) being sent.",
                                 "queue");
}

void timeline_init(void) { pthread_once(&once, init); }

static void observe(jet_metric *m, const inflight *f, int64_t from_us, int64_t to_us)
{
    const char *l[] = {f->task->queue};
    timeline_init();
    jet_metric_observe(m, l, (double)(to_us - from_us) / 1000.0);
}

void timeline_pulled(inflight *f) { f->pulled_us = jet_mono_us(); }

void timeline_started(inflight *f)
{
    f->started_us = jet_mono_us();
    if (f->pulled_us)
        observe(m_start_delay, f, f->pulled_us, f->started_us);
}

void timeline_finished(inflight *f) { f->finished_us = jet_mono_us(); }

void timeline_recorded(inflight *f)
{
    f->recorded_us = jet_mono_us();
    if (f->finished_us)
        observe(m_record, f, f->finished_us, f->recorded_us);
}

void timeline_acked(inflight *f)
{
    if (f->recorded_us)
        observe(m_ack, f, f->recorded_us, jet_mono_us());
}
