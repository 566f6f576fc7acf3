/* Fuzz target: agentd's task header parsing (agentd/task.c task_from_msg):
 * the input is a NATS header block ("Name: value" lines, CRLF or LF) and a
 * payload after a blank line; the block is parsed by the tolerant header
 * parser of common/ (jet_hdr_block_parse) into the message's headers, then
 * the task is built as agentd builds a delivered one. Whatever comes in,
 * the task has an id and either a handler or a dead reason. */
#include "task.h"

#include <jetsched/natshdr.h>
#include <jetsched/task.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void add(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    natsMsg *m = arg;
    char *n = malloc(nlen + 1), *v = malloc(vlen + 1);
    memcpy(n, name, nlen);
    n[nlen] = '\0';
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    natsMsgHeader_Add(m, n, v);
    free(n);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool opened;
    if (!opened)
        opened = nats_Open(-1) == NATS_OK;
    if (size > 65536)
        return 0;
    const char *d = (const char *)data;
    size_t hlen = size;
    const char *body = NULL;
    for (size_t i = 0; i + 1 < size; i++)
        if (d[i] == '\n' && (d[i + 1] == '\n' || (d[i + 1] == '\r' && i + 2 < size && d[i + 2] == '\n'))) {
            hlen = i + 1;
            body = d + i + (d[i + 1] == '\n' ? 2 : 3);
            break;
        }
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, "jetsched.task.default.normal", "$JS.ACK.JETSCHED_TASKS.q_default_normal.1.42.42.1796183090000000000.0",
                       body ? body : "", body ? (int)(size - (size_t)(body - d)) : 0) != NATS_OK)
        return 0;
    jet_hdr_block_parse(d, hlen, add, m);
    task_defaults def = {.max_attempts = 5, .timeout_ms = 30000};
    jet_backoff_parse("exp:1s:10m", &def.backoff, NULL);
    agent_task *t = task_from_msg(m, "default", JET_PRIO_NORMAL, &def);
    if (t) {
        if (!t->id[0] || (!t->dead_reason && !t->handler[0]))
            abort();
        task_free(t);
    }
    return 0;
}
