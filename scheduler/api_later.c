/* Temporary: verbs not yet implemented (replaced by api_schedule.c, api_dlq.c, api_cluster.c). */
#include "api.h"
#define LATER(name) json_t *name(api_ctx *c, json_t *req, api_err *e) { (void)c; (void)req; return api_fail(e, API_INTERNAL, NULL, "not implemented yet"); }
LATER(api_dlq_list) LATER(api_dlq_get) LATER(api_dlq_replay) LATER(api_dlq_purge)
LATER(api_cluster_leader) LATER(api_cluster_agents) LATER(api_cluster_queues)
