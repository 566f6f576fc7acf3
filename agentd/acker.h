/* The acker: every acknowledgement agentd sends to JetStream (+ACK, -NAK,
 * +WPI, +TERM) goes through this module, and the actions that follow an
 * outcome's PostgreSQL commit run on its one thread (so the history
 * writer's completion callbacks never block on the network): ack, Nak with
 * the backoff delay, dead-letter then Term, Term, then the live event. */
#ifndef AGENTD_ACKER_H
#define AGENTD_ACKER_H

#include <stdbool.h>
#include "agent.h"

jet_status acker_start(agent *a, jet_err *err);
/* Acts on what is queued, then joins the thread (after recorder_flush). */
void acker_stop(agent *a);

/* ---- immediate acknowledgements (any thread) ---- */
/* +WPI: the task is still being worked on (AckWait restarts). */
void acker_progress(agent *a, const agent_task *t);
/* +ACK without a record: a delivery that must never run and whose row stays
 * as it is (admission: a workflow node still `waiting`). */
void acker_ack_now(agent *a, const agent_task *t);
/* -NAK without a delay: hand the task back now (drain, not started). */
void acker_nak_now(agent *a, const agent_task *t);
/* The same for a delivery that was never wrapped into a task (ack subject). */
void acker_nak_reply(agent *a, const char *reply);

/* ---- after the commit ---- */
typedef struct ack_job ack_job;
/* A job that will act on f's message as o says; holds the in-flight
 * reference the agent holds on f (released once acted). */
ack_job *acker_job_new(inflight *f, const outcome *o);
/* The recorder's completion callback (any thread; only queues the job):
 * committed = false (not recorded) Naks with a delay instead of acting. */
void acker_committed(void *job, bool committed);

#endif
