/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), self-contained: used for
 * migration checksums and the web console's signed session cookies. */
#ifndef JETSCHED_SHA256_H
#define JETSCHED_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define JET_SHA256_LEN 32
#define JET_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

typedef struct jet_sha256 {
    uint32_t h[8];
    uint64_t total;     /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;        /* bytes in block */
} jet_sha256;

void jet_sha256_init(jet_sha256 *c);
void jet_sha256_update(jet_sha256 *c, const void *data, size_t len);
void jet_sha256_final(jet_sha256 *c, uint8_t out[JET_SHA256_LEN]);

/* One-shot: lowercase hex digest of data into out (65 bytes with the NUL). */
void jet_sha256_hex(const void *data, size_t len, char out[JET_SHA256_HEX_LEN]);

/* HMAC-SHA256 of data under key (any length). */
void jet_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, uint8_t out[JET_SHA256_LEN]);

/* Compares two buffers in time independent of where they differ. */
int jet_memeq_consttime(const void *a, const void *b, size_t len);

#endif
