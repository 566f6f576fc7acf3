/* Base64 (RFC 4648, standard alphabet with padding; the URL-safe alphabet
 * without padding for opaque tokens): API payloads and list cursors. */
#ifndef JETSCHED_BASE64_H
#define JETSCHED_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* A new NUL-terminated string (free()); url: the URL-safe alphabet, no padding. */
char *jet_base64_encode(const void *data, size_t len, bool url);
/* Decodes either alphabet (padding optional; no whitespace). Returns false on
 * a character outside the alphabet, a bad length, padding that does not
 * complete the last group of four, or non-zero unused bits in the last
 * character: only canonical base64 is accepted. *out is malloc'd (NUL-
 * terminated for convenience; *out_len excludes the NUL). */
bool jet_base64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len);

#endif
