/* NATS connection set-up for daemons: auth (user/password, token, nkey seed
 * file, creds file), TLS, unlimited reconnects, a short ping interval,
 * logged disconnects/reconnects and a reconnect counter for /metrics. */
#ifndef JETSCHED_NATSCONN_H
#define JETSCHED_NATSCONN_H

#include <stdint.h>
#include <nats/nats.h>
#include <jetsched/config.h>
#include <jetsched/status.h>

/* Connects with the `nats.*` keys of cfg. client_name is shown by the server
 * (e.g. "agentd@host"). With retry_on_failed_connect the call succeeds even
 * when no server is up yet and the library keeps trying in the background. */
/* Opens libnats once, with no spinning on contended locks unless
 * JETSCHED_NATS_LOCK_SPIN=N (natsconn.c says why); jet_nats_connect calls
 * it, and so does anything else that connects with libnats directly. */
void jet_nats_lib_open(void);

jet_status jet_nats_connect(const jet_config *cfg, const char *client_name,
                            bool retry_on_failed_connect, natsConnection **out, jet_err *err);

/* A daemon's start-up connection: retries jet_nats_connect every second
 * while the servers are unreachable (logging now and then), until it
 * connects, fails for another reason (bad credentials, bad TLS files), or a
 * SIGTERM/SIGINT is pending (JET_ERR_UNAVAILABLE "stopped while waiting for
 * NATS"). */
jet_status jet_nats_connect_wait(const jet_config *cfg, const char *client_name, natsConnection **out,
                                 jet_err *err);

/* JetStream context whose publishes wait at most `nats.publish_timeout`. */
jet_status jet_nats_jetstream(natsConnection *nc, const jet_config *cfg, jsCtx **out, jet_err *err);

/* Number of reconnects and disconnects seen since start (all connections). */
uint64_t jet_nats_reconnects(void);
uint64_t jet_nats_disconnects(void);

/* A new reply inbox "<nats.inbox_prefix>.<unique id>" (the prefix of the
 * last jet_nats_connect; "_INBOX" before): for subscriptions a daemon makes
 * itself (pull replies, API replies), so that a NATS user allowed to
 * subscribe only to its own prefix works. libnats's own requests use the
 * same prefix (natsOptions_SetCustomInboxPrefix). */
void jet_nats_new_inbox(char *buf, size_t len);
bool jet_nats_inbox_prefix_valid(const char *prefix);

/* Formats a libnats status and the library's last error text into *err. */
jet_status jet_nats_err(jet_err *err, natsStatus s, const char *what);

#endif
