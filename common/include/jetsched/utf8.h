/* Making untrusted bytes safe to put into JSON, PostgreSQL text and logs:
 * one UTF-8 repair routine (invalid sequences become U+FFFD, NULs are
 * dropped, over-long text is cut at a character boundary and marked). Every
 * error text that quotes client input goes through it before it is sent
 * (API replies, history rows). */
#ifndef JETSCHED_UTF8_H
#define JETSCHED_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#define JET_UTF8_TRUNC_MARK "\xE2\x80\xA6[truncated]"

/* Copies in[0..len) to out as valid UTF-8 without NULs: invalid sequences
 * become U+FFFD, NULs are dropped, and when the result would exceed cap
 * bytes it is cut at a character boundary and ends with "…[truncated]".
 * out NULL: only measures. Returns the bytes written (never more than cap,
 * which must be >= 16; no terminating NUL is written); *changed (may be
 * NULL) tells whether it differs from the input. */
size_t jet_utf8_sanitize(const char *in, size_t len, char *out, size_t cap, bool *changed);

/* In place on a NUL-terminated string in a buffer of size bytes (>= 16):
 * the same repair, the result NUL-terminated. Returns true if it changed. */
bool jet_utf8_repair(char *buf, size_t size);

/* True if s[0..len) is valid UTF-8 without NUL bytes. */
bool jet_utf8_valid(const char *s, size_t len);

#endif
