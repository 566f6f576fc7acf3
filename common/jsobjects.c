/* Creating and checking the NATS objects of DESIGN §3. */
#include <jetsched/jsobjects.h>

#include <ctype.h>
#include <string.h>

void jet_js_names_init(jet_js_names *n, const char *prefix)
{
    char up[64];
    size_t i = 0;
    for (; prefix[i] && i + 1 < sizeof up; i++)
        up[i] = (char)toupper((unsigned char)(prefix[i] == '-' || prefix[i] == '.' ? '_' : prefix[i]));
    up[i] = '\0';
    snprintf(n->prefix, sizeof n->prefix, "%s", prefix);
    snprintf(n->task_stream, sizeof n->task_stream, "%s_TASKS", up);
    snprintf(n->task_subjects, sizeof n->task_subjects, "%s.task.>", prefix);
    snprintf(n->dlq_stream, sizeof n->dlq_stream, "%s_DLQ", up);
    snprintf(n->dlq_subjects, sizeof n->dlq_subjects, "%s.dlq.>", prefix);
    snprintf(n->kv_leader, sizeof n->kv_leader, "%s_leader", prefix);
    snprintf(n->kv_agents, sizeof n->kv_agents, "%s_agents", prefix);
    snprintf(n->kv_cancel, sizeof n->kv_cancel, "%s_cancel", prefix);
    snprintf(n->kv_checkpoints, sizeof n->kv_checkpoints, "%s_checkpoints", prefix);
}

void jet_js_task_subject(const jet_js_names *n, const char *queue, jet_priority p, char *buf, size_t len)
{
    snprintf(buf, len, "%s.task.%s.%s", n->prefix, queue, jet_priority_name(p));
}

void jet_js_consumer_name(const char *queue, jet_priority p, char *buf, size_t len)
{
    snprintf(buf, len, "q_%s_%s", queue, jet_priority_name(p));
}

/* TODO(init helper): implemented in the `jetsched init` work. */
jet_status jet_js_ensure_base(jsCtx *js, const jet_config *cfg, jet_js_report_fn report, void *ctx, jet_err *err)
{
    (void)js; (void)cfg; (void)report; (void)ctx;
    return jet_err_set(err, JET_ERR_INTERNAL, "not implemented");
}

jet_status jet_js_ensure_queue(jsCtx *js, const jet_config *cfg, const char *queue, jet_js_report_fn report,
                               void *ctx, jet_err *err)
{
    (void)js; (void)cfg; (void)queue; (void)report; (void)ctx;
    return jet_err_set(err, JET_ERR_INTERNAL, "not implemented");
}

jet_status jet_js_ensure_all(jsCtx *js, const jet_config *cfg, const char *const *extra_queues, size_t n_extra,
                             jet_js_report_fn report, void *ctx, jet_err *err)
{
    (void)js; (void)cfg; (void)extra_queues; (void)n_extra; (void)report; (void)ctx;
    return jet_err_set(err, JET_ERR_INTERNAL, "not implemented");
}
