/* jetbench: the end-to-end benchmark of bench/run (see bench/README.md).
 * Shared declarations of its three parts:
 *   jetbench.c        options, the measurement plan, the table and the JSON
 *   jetbench_js.c     raw JetStream: paced or unpaced async publishing,
 *                     a raw pull-request consumer (batch N, acked with +ACK)
 *   jetbench_agent.c  agentd processes, PostgreSQL, /proc RSS, statistics
 *   jetbench_cron.c   (d) cron fire lag
 *   jetbench_api.c    (f) schedulerd's API and bursts (--api-only) */
#ifndef JETBENCH_H
#define JETBENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <libpq-fe.h>
#include <nats/nats.h>
#include <harness.h> /* tests/harness: th_free_port, th_http_get, th_spawn_daemon */

#define TASK_STREAM "JETSCHED_TASKS"
#define DLQ_STREAM "JETSCHED_DLQ"

/* ---- time and errors ---- */
int64_t jb_now_ns(void);     /* CLOCK_MONOTONIC */
void jb_sleep_ms(int ms);
void jb_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void jb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- publishing (jetbench_js.c) ---- */
typedef struct jb_pub_spec {
    const char *subject;      /* jetsched.task.<queue>.normal */
    const char *handler;      /* Jetsched-Handler value */
    const char *id_prefix;    /* Nats-Msg-Id = <id_prefix><i> */
    const char *payload;
    int payload_len;
    long n;                   /* messages */
    double rate;              /* messages per second; 0 = as fast as the window allows */
    int64_t *sent_ns;         /* optional: monotonic time of each publish call, indexed by i */
} jb_pub_spec;

typedef struct jb_pub_result {
    int64_t start_ns, end_ns; /* first publish call .. last publish acknowledged */
    long errors;              /* negative publish acks / failed calls */
} jb_pub_result;

/* js: a context created by jb_js_context (its async window bounds the
 * messages published and not yet acknowledged). Returns the messages the
 * server acknowledged. */
long jb_publish(jsCtx *js, const jb_pub_spec *ps, jb_pub_result *r);
jsCtx *jb_js_context(natsConnection *nc, int window);
void jb_js_context_destroy(jsCtx *js);

/* Messages in a stream, or -1 on error. */
int64_t jb_stream_msgs(jsCtx *js, const char *stream);
/* Waits until the stream holds `want` messages; returns the monotonic time
 * it was seen, or 0 after timeout_ms. */
int64_t jb_wait_stream(jsCtx *js, const char *stream, int64_t want, int poll_ms, int timeout_ms);

/* ---- the raw consumer (jetbench_js.c) ---- */
typedef struct jb_consumer jb_consumer;
typedef struct jb_cons_spec {
    natsConnection *nc;
    const char *stream, *consumer;
    int batch;                /* messages per pull request */
    int window;               /* messages requested and not yet delivered, at most */
    int64_t expires_ms;       /* server-side expiry of each pull request */
    long target;              /* stop after this many messages */
    const char *id_prefix;    /* with recv_ns: index = Nats-Msg-Id minus this prefix */
    int64_t *recv_ns;         /* optional: monotonic receive time by index */
    long recv_cap;
} jb_cons_spec;

/* Starts a consumer thread; it pulls and acks until `target` messages. */
jb_consumer *jb_consumer_start(const jb_cons_spec *spec);
/* Waits for the thread (up to timeout_ms); returns the messages received;
 * first_ns: first pull request sent, last_ns: last message acked. */
long jb_consumer_join(jb_consumer *c, int timeout_ms, int64_t *first_ns, int64_t *last_ns, long *requests);

/* ---- agentd (jetbench_agent.c) ---- */
typedef struct jb_agent {
    pid_t pid;
    int http_port;
    char conf[600], log[600];
} jb_agent;

typedef struct jb_agent_spec {
    const char *build;        /* build dir: agentd/agentd, plugins/ */
    const char *workdir;      /* config and log go here */
    const char *name;         /* file names and agent id */
    const char *queue;
    int concurrency;
    int history;              /* 1 on, 0 off, -1 key absent (leave default) */
    const char *lua_dir;      /* NULL: no agent.lua_dir line */
    const char *plugin_dir;   /* NULL: <build>/plugins */
    int batch_size;           /* 0: default */
} jb_agent_spec;

/* Writes the config and starts agentd; waits for /readyz 200 (dies on failure). */
void jb_agent_start(jb_agent *ag, const jb_agent_spec *s);
/* Forks `bin -c d->conf` with output to d->log and waits for /readyz 200 on
 * d->http_port (dies with the log's tail on failure); sets d->pid. */
void jb_daemon_spawn(jb_agent *d, const char *bin, const char *name);
/* SIGTERM (drain), SIGKILL after timeout_ms; returns the exit code. */
int jb_agent_stop(jb_agent *ag, int timeout_ms);
bool jb_agent_alive(jb_agent *ag);

/* ---- PostgreSQL ---- */
PGconn *jb_pg_connect(const char *dsn);
void jb_pg_exec(PGconn *pg, const char *sql);
/* The same, retried (up to 10 times) when PostgreSQL reports a deadlock or a serialization
 * failure: statements that race with schedulerd's own transactions on the same rows. */
void jb_pg_exec_retry(PGconn *pg, const char *sql);
long jb_pg_long(PGconn *pg, const char *sql);
/* First column of the first row ("" when none); caller frees. */
char *jb_pg_text(PGconn *pg, const char *sql);

/* ---- /proc ---- */
typedef struct jb_mem {
    long rss_kb, hwm_kb;      /* VmRSS, VmHWM; -1 when unknown */
} jb_mem;
jb_mem jb_proc_mem(pid_t pid);
/* A thread sampling VmRSS of up to 4 pids every 50 ms, keeping the maximum. */
void jb_sampler_start(void);
void jb_sampler_watch(int slot, pid_t pid);  /* resets the slot's maximum */
long jb_sampler_max_kb(int slot);
void jb_sampler_stop(void);
pid_t jb_read_pidfile(const char *path);
/* CPU time (user + system) of a process, and of a process plus its direct
 * children (PostgreSQL: the postmaster and its backends), in milliseconds. */
double jb_cpu_ms(pid_t pid);
double jb_cpu_ms_tree(pid_t parent);
/* Context switches (voluntary + involuntary) summed over a process's live threads. */
long jb_ctx_switches(pid_t pid);

/* ---- statistics ---- */
typedef struct jb_lat {
    long n, missing;
    double p50, p99, p999, max, mean; /* milliseconds */
} jb_lat;
/* Latencies recv - sent over indexes with both set; missing = sent without recv. */
jb_lat jb_latency(const int64_t *sent_ns, const int64_t *recv_ns, long n);

/* ---- (d) cron fire lag (jetbench_cron.c) ---- */
typedef struct jb_cron_spec {
    const char *build, *workdir;
    int schedules;            /* schedules firing every second (1000) */
    int steady_s;             /* seconds of steady state measured, after a 3 s warm-up */
    int after_kill_s;         /* seconds measured after the new leader took over */
    const char *tick;         /* scheduler.tick; NULL: schedulerd's default */
} jb_cron_spec;

typedef struct jb_cron_result {
    bool ran, ok;
    char why[200];
    int schedules, ttl_ms;
    jb_lat steady;            /* fire time -> task message on its subject, steady state */
    jb_lat kill;              /* the same for fires due from the leader kill to takeover + 1 s */
    double burst_first_ms, burst_last_ms; /* median per second: first / last of the N messages */
    double steady_commit_p99_ms;          /* PostgreSQL: created_at (fire transaction) - fire time */
    double takeover_ms;       /* kill -9 of the leader -> the follower holds the epoch */
    long fires_expected, fires_missed, republished; /* missed: no row even after the catch-up wait */
    double catchup_ms;        /* wait at the end until every fire due so far had a row (at most 20 s) */
    const char *tick;         /* scheduler.tick used (NULL: default) */
    long rss_idle_kb, rss_peak_kb;        /* the leader schedulerd */
} jb_cron_result;

/* Runs inside the benchmark (uses the sampler's slot 1); the environment
 * variables JETBENCH_CRON_SCHEDULES and JETBENCH_CRON_TICK override the
 * number of schedules and scheduler.tick. nc: a connection
 * for the subscription; js: for purging the fired tasks afterwards. */
jb_cron_result jb_cron_run(const jb_cron_spec *spec, PGconn *pg, natsConnection *nc, jsCtx *js);

/* ---- (f) the API and the burst rows (jetbench_api.c, --api-only) ---- */
typedef struct jb_api_spec {
    const char *build, *workdir;
    const char *payload;      /* task payload (text) */
    long n;                   /* tasks per throughput figure */
    double lat_seconds;       /* length of the paced run */
    long schedules;           /* schedules due in the same second (10,000) */
    long delayed;             /* delayed tasks due at one instant (100,000) */
    pid_t nats_pid, pg_pid;   /* for CPU per task (0: not measured) */
} jb_api_spec;

typedef struct jb_api_result {
    bool ran, ok;
    double raw_rate;          /* async publish, msg/s (this part's ceiling) */
    double submit_rate, many_rate, paced_rate; /* tasks/s */
    long submit_errors, many_errors;
    char first_error[300];
    double submit_cpu_us;     /* schedulerd CPU per task.submit */
    double mean_group;        /* task.submit requests per group commit */
    double submit_cpu_pg_us, submit_cpu_nats_us, submit_cpu_client_us; /* the same for the others */
    jb_lat paced;             /* single submits at 10 % of submit_rate */
    jb_lat cron;              /* fire time -> message, the N schedules due together */
    jb_lat delayed;           /* due time -> message, the delayed tasks */
    double delayed_rate, delayed_insert_s;
    long sched_rss_kb;
} jb_api_result;

/* nc: requests; nc2: the subscriptions that time the bursts; js: purges. */
jb_api_result jb_api_run(const jb_api_spec *spec, PGconn *pg, natsConnection *nc, natsConnection *nc2, jsCtx *js);

#endif
