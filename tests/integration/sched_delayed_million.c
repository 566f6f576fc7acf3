/* schedulerd with 1,000,000 delayed tasks pending (issue 6 item 4): the
 * leader never loads them (partial index tasks_due_idx, batches of 200), its
 * RSS stays small, and 2,000 tasks due in the middle of them are published
 * on time (fire lag p50/p99 printed). The tasks are inserted directly (the
 * API's task.submit run_at is a later item). Under AddressSanitizer the
 * RSS bound is relaxed (shadow memory and quarantine).
 *
 * "On time" is judged against a baseline of the same run: first a
 * schedulerd on the empty table fires 2,000 tasks due the same way, then the
 * million goes in and another schedulerd fires 2,000 more. The p99 with the
 * million must stay under max(1 s, 2 x baseline p99 + 250 ms): 1 s on an
 * idle machine as before, more only when the baseline shows the machine is
 * slow (a loaded 2-core run had p99 1,046 ms). What the million could break
 * (reading them instead of the due index, loading them) adds the same
 * seconds on top of any baseline and still fails. */
#include "sched_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* Inserts 2,000 tasks prefix-1..2000 due within one second, 3 s from now,
 * waits until all are published and returns their fire lag p99 in ms
 * (p50 / p99 as text in *text, malloc'ed). */
static long fire_due(const char *prefix, char **text)
{
    ts_pg_long("INSERT INTO tasks (id, queue, handler, status, scheduled_for)"
               " SELECT '%s-' || g, 'default', 'noop', 'scheduled',"
               " date_trunc('second', now()) + interval '3s' + (g %% 1000) * interval '1 ms'"
               " FROM generate_series(1, 2000) g",
               prefix);
    long n = ts_wait_long(2000, 20000, "SELECT count(*) FROM tasks WHERE id LIKE '%s-%%' AND status = 'queued'"
                                       " AND dispatched_at IS NOT NULL", prefix);
    CHECK(n == 2000, "all 2,000 %s tasks published (%ld)", prefix, n);
    *text = ts_pg_text("SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY"
                       " extract(epoch from dispatched_at - scheduled_for) * 1000)::numeric, 1) || ' ms / ' ||"
                       " round(percentile_cont(0.99) WITHIN GROUP (ORDER BY"
                       " extract(epoch from dispatched_at - scheduled_for) * 1000)::numeric, 1) || ' ms'"
                       " FROM tasks WHERE id LIKE '%s-%%'", prefix);
    return ts_pg_long("SELECT (percentile_cont(0.99) WITHIN GROUP (ORDER BY"
                      " extract(epoch from dispatched_at - scheduled_for) * 1000))::bigint"
                      " FROM tasks WHERE id LIKE '%s-%%'", prefix);
}

int main(void)
{
    ss_env();
    ts_setup("default");

    /* the baseline: the same 2,000 due tasks on an empty table */
    ts_agent s0;
    ss_start(&s0, "baseline", NULL);
    char *h = ss_wait_holder(NULL, 10000);
    CHECK(!strcmp(h, "baseline"), "the baseline leader (%s)", h);
    free(h);
    char *base_text;
    long base_p99 = fire_due("base", &base_text);
    printf("baseline fire lag p50 / p99 (empty table): %s\n", base_text);
    free(base_text);
    CHECK(ts_agent_stop(&s0, SIGTERM, 10000) == 0, "baseline schedulerd exits 0");

    int64_t t0 = ts_now_ms();
    ts_pg_long("INSERT INTO tasks (id, queue, handler, status, scheduled_for)"
               " SELECT 'm-' || g, 'default', 'noop', 'scheduled', now() + interval '1 day' + g * interval '1 ms'"
               " FROM generate_series(1, 1000000) g");
    printf("inserted 1,000,000 pending delayed tasks in %lld ms\n", (long long)(ts_now_ms() - t0));
    ts_pg_long("ANALYZE tasks");
    ts_agent s1;
    ss_start(&s1, "million", NULL);
    h = ss_wait_holder("baseline", 15000);
    CHECK(!strcmp(h, "million"), "a leader with the million pending (%s)", h);
    free(h);
    ts_sleep_ms(1000);
    long rss_idle = rss_kb(s1.pid);
    char *p;
    long p99 = fire_due("due", &p);
    long rss = rss_kb(s1.pid);
    printf("fire lag p50 / p99: %s; RSS idle %ld KiB, after %ld KiB\n", p, rss_idle, rss);
    free(p);
    long bound = 2 * base_p99 + 250 > 1000 ? 2 * base_p99 + 250 : 1000;
    CHECK(base_p99 >= 0 && p99 >= 0 && p99 < bound,
          "p99 fire lag with 1M pending %ld ms < %ld ms (max of 1 s and 2 x baseline p99 %ld ms + 250 ms)", p99, bound,
          base_p99);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id LIKE 'm-%%' AND status = 'scheduled'") == 1000000,
          "the million not yet due stay scheduled");
    long limit_kb = getenv("JETSCHED_SANITIZED_BUILD") ? 256 * 1024 : 64 * 1024;
    CHECK(rss > 0 && rss < limit_kb, "RSS %ld KiB < %ld KiB", rss, limit_kb);
    CHECK(ts_agent_stop(&s1, SIGTERM, 10000) == 0, "schedulerd exits 0");
    return ts_finish();
}
