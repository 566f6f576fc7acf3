/* The daemons' small HTTP server: /healthz (alive), /readyz (ready to do
 * work: a callback decides), /metrics (Prometheus text from the registry). */
#ifndef JETSCHED_HTTPD_H
#define JETSCHED_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <jetsched/status.h>

#include <sys/socket.h>

typedef struct jet_httpd jet_httpd;

/* Parses a listen address ("127.0.0.1:9464", "[::1]:9464", ":9464") into a
 * sockaddr; errors name the configuration key. */
jet_status jet_listen_parse(const char *key, const char *listen, struct sockaddr_storage *ss, socklen_t *sl,
                            jet_err *err);

/* Returns true when ready; otherwise writes the reason into why. */
typedef bool (*jet_ready_fn)(void *arg, char *why, size_t len);

/* listen: "127.0.0.1:9464", "[::1]:9464" or ":9464" (all addresses); port 0 picks one. */
jet_status jet_httpd_start(const char *listen, jet_ready_fn ready, void *arg, jet_httpd **out, jet_err *err);
/* The port actually bound (useful with port 0). */
int jet_httpd_port(const jet_httpd *h);
void jet_httpd_stop(jet_httpd *h);

#endif
