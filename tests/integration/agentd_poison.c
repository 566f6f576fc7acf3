/* One history write per short attempt (history.running_after), the late
 * 'running' record of a long one, and poison judged on recorded attempts:
 * an agent killed during an attempt that wrote no record leaves a 'lost'
 * attempt row when the task is delivered again (DESIGN §12), and a task
 * that kills its agent more than its max attempts ends dead (poison)
 * without running again. */
#include "agent_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char mark[256];

/* Lines in the mark file: how many times the "hang" handler started. */
static int starts(void)
{
    FILE *f = fopen(mark, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static bool wait_starts(int want, int timeout_ms)
{
    for (int64_t until = ts_now_ms() + timeout_ms; ts_now_ms() < until; ts_sleep_ms(50))
        if (starts() >= want)
            return true;
    return false;
}

int main(void)
{
    setenv("JETSCHED_JETSTREAM_ACK_WAIT", "3s", 1); /* consumers and agents agree on it */
    snprintf(mark, sizeof mark, "/tmp/jetsched-poison-%d.mark", (int)getpid());
    unlink(mark);
    ts_setup("poison");
    /* Every write of a task row, in order: what the history writer did. */
    PQclear(PQexec(ts_pg(), "CREATE TABLE test_task_writes (id text, status text, attempts int);"
                            "CREATE FUNCTION test_log_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                            "INSERT INTO test_task_writes VALUES (NEW.id, NEW.status, NEW.attempts); RETURN NULL; "
                            "END $$;"
                            "CREATE TRIGGER test_task_writes AFTER INSERT OR UPDATE ON tasks FOR EACH ROW "
                            "EXECUTE FUNCTION test_log_write();"));
    char conf[1024], conf_hang[1200];
    snprintf(conf, sizeof conf,
             "queues = ( { name = \"poison\"; concurrency = 2; } );\n"
             "exec = { commands = ( { name = \"quick\"; argv = [\"/bin/sh\", \"-c\", \"sleep 0.1; echo ok\"]; },\n"
             "  { name = \"slow\"; argv = [\"/bin/sh\", \"-c\", \"sleep 1.5; echo ok\"]; },\n"
             "  { name = \"hang\"; argv = [\"/bin/sh\", \"-c\", \"echo x >> %s; sleep 20\"]; } ); };\n",
             mark);
    snprintf(conf_hang, sizeof conf_hang, "%shistory = { running_after = \"1h\"; };\n", conf);

    /* 1. Short (100 ms: longer than a history batch's 20 ms, so 'running' would
     * be a write of its own) and long attempts with the default
     * history.running_after (250 ms). */
    ts_agent a;
    ts_agent_start(&a, "writer", conf);
    ts_publish("poison", "normal", "quick", "short-1", "", 0, NULL);
    ts_publish("poison", "normal", "slow", "long-1", "", 0, NULL);
    CHECK(ts_wait_long(1, 10000, "SELECT count(*) FROM task_attempts WHERE task_id='long-1' AND status='running'") ==
              1, "the long attempt was not visible as running while it ran");
    CHECK(ts_wait_long(2, 15000, "SELECT count(*) FROM tasks WHERE id IN ('short-1','long-1') AND "
                                 "status='succeeded'") == 2, "tasks not done");
    CHECK(ts_pg_long("SELECT count(*) FROM test_task_writes WHERE id='short-1'") == 1 &&
              ts_pg_long("SELECT count(*) FROM test_task_writes WHERE id='short-1' AND status='succeeded'") == 1,
          "a short attempt was written %ld times (want once, succeeded)",
          ts_pg_long("SELECT count(*) FROM test_task_writes WHERE id='short-1'"));
    CHECK(ts_pg_long("SELECT count(*) FROM test_task_writes WHERE id='long-1' AND status='running'") == 1 &&
              ts_pg_long("SELECT count(*) FROM test_task_writes WHERE id='long-1'") == 2,
          "a long attempt: want 'running' then its outcome");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id IN ('short-1','long-1') AND attempt=1 AND "
                     "status='succeeded' AND started_at IS NOT NULL AND finished_at >= started_at") == 2,
          "attempt rows incomplete");
    static char body[1 << 17];
    ts_sleep_ms(300); /* the acks follow the commits */
    CHECK(ts_agent_http(&a, "/metrics", body, sizeof body) == 200 &&
              strstr(body, "jetsched_agent_start_delay_seconds_count{queue=\"poison\"} 2") &&
              strstr(body, "jetsched_agent_record_seconds_count{queue=\"poison\"} 2") &&
              strstr(body, "jetsched_agent_ack_seconds_count{queue=\"poison\"} 2"),
          "the hot-path histograms do not count the 2 tasks");
    CHECK(ts_agent_stop(&a, SIGTERM, 20000) == 0, "writer did not exit 0");

    /* 2. A task that kills its agent: max attempts 2, no record before the kill. */
    const char *hdr[] = {"Jetsched-Max-Attempts: 2", NULL};
    ts_publish("poison", "normal", "hang", "p-1", "", 0, hdr);
    ts_agent v1, v2, v3;
    ts_agent_start(&v1, "victim1", conf_hang);
    CHECK(wait_starts(1, 10000), "attempt 1 did not start");
    ts_sleep_ms(300);
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id='p-1'") == 0, "attempt 1 wrote a record before 1h");
    CHECK(ts_agent_stop(&v1, SIGKILL, 5000) == 128 + SIGKILL, "victim1 not killed");
    ts_agent_start(&v2, "victim2", conf_hang);
    CHECK(wait_starts(2, 20000), "attempt 2 did not start after AckWait");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='p-1' AND attempt=1 AND status='lost' AND "
                     "error LIKE 'lost:%%'") == 1, "attempt 1 was not recorded as lost before attempt 2 ran");
    CHECK(ts_pg_long("SELECT count(*) FROM tasks WHERE id='p-1' AND status='retrying' AND attempts=1") == 1,
          "task row not retrying at attempt 1");
    CHECK(ts_agent_stop(&v2, SIGKILL, 5000) == 128 + SIGKILL, "victim2 not killed");
    ts_agent_start(&v3, "victim3", conf_hang);
    CHECK(ts_wait_long(1, 20000, "SELECT count(*) FROM tasks WHERE id='p-1' AND status='dead' AND error LIKE "
                                 "'poison:%%'") == 1, "p-1 not dead-lettered as poison: %s",
          ts_pg_text("SELECT status || ' ' || coalesce(error, '') FROM tasks WHERE id='p-1'"));
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='p-1' AND status='lost'") == 2,
          "want attempts 1 and 2 lost");
    CHECK(ts_pg_long("SELECT count(*) FROM task_attempts WHERE task_id='p-1' AND attempt=3 AND status='dead'") == 1,
          "the poison verdict is not attempt 3");
    ts_sleep_ms(500);
    CHECK(starts() == 2, "the poison task ran again (%d starts)", starts());
    CHECK(ts_stream_msgs("JETSCHED_DLQ") >= 1, "not in the DLQ");
    CHECK(ts_agent_stop(&v3, SIGTERM, 20000) == 0, "victim3 did not exit 0");
    unlink(mark);
    return ts_finish();
}
