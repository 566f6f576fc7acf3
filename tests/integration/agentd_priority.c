/* Weighted priority: with backlogs in all three lanes, low progresses while
 * high is busy, in about the configured ratio (6:3:1); in strict mode, high
 * drains first. The order is taken from the live "running" events of a
 * single-slot agent. */
#include "agent_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PER_LANE 150
#define WINDOW 100

static int order[3 * PER_LANE], seen;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void on_event(natsConnection *c, natsSubscription *s, natsMsg *m, void *closure)
{
    (void)c, (void)s, (void)closure;
    const char *d = natsMsg_GetData(m);
    if (strstr(d, "\"status\":\"running\"")) {
        int lane = strstr(d, "\"id\":\"h-") ? 0 : strstr(d, "\"id\":\"n-") ? 1 : 2;
        pthread_mutex_lock(&mu);
        if (seen < 3 * PER_LANE)
            order[seen++] = lane;
        pthread_mutex_unlock(&mu);
    }
    natsMsg_Destroy(m);
}

static void publish_backlog(const char *tag)
{
    static const char *lanes[] = {"high", "normal", "low"}, *prefix[] = {"h", "n", "l"};
    for (int i = 0; i < PER_LANE; i++)
        for (int l = 0; l < 3; l++) {
            char id[64];
            snprintf(id, sizeof id, "%s-%s-%d", prefix[l], tag, i);
            ts_publish("prio", lanes[l], "noop", id, "", 0, NULL);
        }
}

static void count_window(int counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < WINDOW && i < seen; i++)
        counts[order[i]]++;
    pthread_mutex_unlock(&mu);
}

static void run_mode(const char *mode, const char *tag)
{
    pthread_mutex_lock(&mu);
    seen = 0;
    pthread_mutex_unlock(&mu);
    publish_backlog(tag);
    char conf[512];
    snprintf(conf, sizeof conf,
             "queues = ( { name = \"prio\"; concurrency = 1; } );\npriority = { mode = \"%s\"; };\n", mode);
    ts_agent ag;
    ts_agent_start(&ag, mode, conf);
    for (int i = 0; i < 600 && seen < WINDOW; i++)
        ts_sleep_ms(50);
    int c[3];
    count_window(c);
    printf("%s: first %d starts: high %d, normal %d, low %d\n", mode, WINDOW, c[0], c[1], c[2]);
    if (!strcmp(mode, "weighted")) {
        CHECK(c[2] >= 5 && c[2] <= 16, "low lane got %d of %d (expected about 10)", c[2], WINDOW);
        CHECK(c[1] >= 22 && c[1] <= 38, "normal lane got %d of %d (expected about 30)", c[1], WINDOW);
        CHECK(c[0] >= 50 && c[0] <= 70, "high lane got %d of %d (expected about 60)", c[0], WINDOW);
    } else {
        CHECK(c[0] == WINDOW, "strict: high got %d of the first %d", c[0], WINDOW);
    }
    /* let it finish everything, so the next mode starts from empty lanes */
    CHECK(ts_wait_long(3 * PER_LANE, 60000, "SELECT count(*) FROM tasks WHERE id LIKE '%%-%s-%%' AND status='succeeded'",
                       tag) == 3 * PER_LANE, "%s: not every task succeeded", mode);
    CHECK(ts_agent_stop(&ag, SIGTERM, 20000) == 0, "agentd did not exit 0");
}

int main(void)
{
    ts_setup("prio");
    natsSubscription *sub = NULL;
    natsConnection_Subscribe(&sub, ts_nats(), "jetsched.event.prio.*", on_event, NULL);
    run_mode("weighted", "w");
    run_mode("strict", "s");
    natsSubscription_Destroy(sub);
    return ts_finish();
}
