/* schedulerd fencing of a paused leader (DESIGN §5, issue 6 item 1): the
 * leader is SIGSTOPped past the TTL, a follower takes over, then SIGCONT:
 * the old leader fires nothing after it resumes (no task row fired by it
 * after the resume), steps down and logs why; every fire time is still
 * fired exactly once. */
#include "sched_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    ss_env();
    ts_setup("default");
    ts_agent s[2];
    const char *ids[2] = {"pause-a", "pause-b"};
    ss_start(&s[0], ids[0], NULL);
    char *leader = ss_wait_holder(NULL, 10000);
    CHECK(!strcmp(leader, ids[0]), "the first instance leads (%s)", leader);
    ss_start(&s[1], ids[1], NULL);
    long epoch1 = ss_epoch();

    ts_pg_long("INSERT INTO schedules (id, kind, spec, handler, next_fire_at)"
               " VALUES ('beat', 'every', '1s', 'noop', date_trunc('second', now()) + interval '1s')");
    ts_sleep_ms(3500);
    long by1 = ts_pg_long("SELECT count(*) FROM tasks WHERE fired_by = 'pause-a'");
    CHECK(by1 >= 2, "the leader fires (%ld)", by1);

    kill(s[0].pid, SIGSTOP);
    char *leader2 = ss_wait_holder(ids[0], 10000);
    CHECK(!strcmp(leader2, ids[1]), "the follower took over while the leader was stopped (%s)", leader2);
    ts_sleep_ms(3000); /* well past the TTL: the old lease is long gone */
    char *resume = ts_pg_text("SELECT now()");
    kill(s[0].pid, SIGCONT);
    ts_sleep_ms(4000);

    long after = ts_pg_long("SELECT count(*) FROM tasks WHERE fired_by = 'pause-a' AND created_at >= '%s'", resume);
    CHECK(after == 0, "the resumed old leader fired nothing (%ld rows)", after);
    long ep1 = ts_pg_long("SELECT count(*) FROM tasks WHERE fire_epoch = %ld AND created_at >= '%s'", epoch1, resume);
    CHECK(ep1 == 0, "no fire with the old epoch after the resume (%ld)", ep1);
    CHECK(ts_log_contains(&s[0], "stepping down"), "the old leader logs that it steps down");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "grep -hE 'leader|election' %s %s", s[0].log, s[1].log);
    CHECK(ss_metric(&s[0], "jetsched_scheduler_is_leader") == 0, "the old leader reports is_leader 0");
    CHECK(ss_metric(&s[1], "jetsched_scheduler_is_leader") == 1, "the new leader reports is_leader 1");
    char *h = ss_holder();
    CHECK(!strcmp(h, ids[1]), "the epoch stays with the new leader (%s)", h);

    /* The PostgreSQL fence alone: a newer epoch appears in PostgreSQL while
     * the KV lease is still valid (as if a newer leader had been elected):
     * the next fire transaction sees it, rolls back and steps down. */
    ts_pg_long("UPDATE scheduler_epoch SET epoch = epoch + 1000000, holder = 'intruder'");
    char *bumped = ts_pg_text("SELECT now()");
    ts_sleep_ms(1500);
    long by2 = ts_pg_long("SELECT count(*) FROM tasks WHERE fired_by = 'pause-b' AND created_at >= '%s'", bumped);
    CHECK(by2 == 0, "a fenced-out leader fires nothing (%ld)", by2);
    CHECK(ts_log_contains(&s[1], "fenced: the PostgreSQL epoch is"), "it logs why it was fenced");
    CHECK(ss_metric(&s[1], "jetsched_scheduler_is_leader") == 0, "and is no longer leader");
    /* Give the epoch back (an operator reset): a leader is elected again
     * and catches up the fires of the fenced interval (late, not missed). */
    ts_pg_long("UPDATE scheduler_epoch SET epoch = 0, holder = NULL");
    char *leader3 = ss_wait_holder(NULL, 15000);
    CHECK(*leader3, "a leader again after the reset (%s)", leader3);
    ts_sleep_ms(2000);
    free(bumped);
    free(leader3);

    ts_pg_long("UPDATE schedules SET paused = true WHERE id = 'beat'");
    ts_sleep_ms(500);
    long n = ts_pg_long("SELECT count(*) FROM tasks WHERE schedule_id = 'beat'");
    long span = ts_pg_long("SELECT extract(epoch from max(scheduled_for) - min(scheduled_for))::bigint + 1"
                           " FROM tasks WHERE schedule_id = 'beat'");
    CHECK(n == span && n >= 10, "every second fired exactly once across the pause: %ld rows, %ld seconds", n, span);

    if (system(cmd) != 0) {
    }
    for (int i = 0; i < 2; i++)
        CHECK(ts_agent_stop(&s[i], SIGTERM, 10000) == 0, "%s exits 0", ids[i]);
    free(leader);
    free(leader2);
    free(resume);
    free(h);
    return ts_finish();
}
