/* Credentials out of anything printed: the one helper every log line,
 * --check-config and CLI message uses when it shows a URL or a DSN. */
#ifndef JETSCHED_REDACT_H
#define JETSCHED_REDACT_H

#include <stddef.h>

#define JET_REDACTED "<redacted>"

/* Copies text to buf (always NUL-terminated, cut at len - 1) with every
 * credential replaced by "<redacted>":
 *  - URL user info: "nats://user:pass@h" -> "nats://user:<redacted>@h",
 *    "nats://token@h" -> "nats://<redacted>@h" (any scheme, each URL of a
 *    comma-separated list);
 *  - key=value secrets of a libpq DSN or a URL query: password, pass,
 *    token, nkey, seed, sslpassword (quoted values included).
 * Returns buf. */
char *jet_redact(const char *text, char *buf, size_t len);

#endif
