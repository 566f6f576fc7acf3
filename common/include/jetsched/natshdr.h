/* A tolerant parser of a NATS header block ("NATS/1.0[ status]" then
 * "Name: value" lines, CRLF or LF, ending at an empty line or the end).
 * libnats 3.4.1 rejects a whole block for one odd line (an empty value, a
 * line without a colon), which would drop every header of a task; this
 * parser keeps every well-formed header and skips (and counts) the rest. */
#ifndef JETSCHED_NATSHDR_H
#define JETSCHED_NATSHDR_H

#include <stddef.h>

/* Called for each header in order: name (1+ bytes, no spaces, no ':' and
 * no control characters) and value (leading and trailing blanks trimmed,
 * may be empty); neither is NUL-terminated. */
typedef void (*jet_hdr_fn)(void *arg, const char *name, size_t nlen, const char *value, size_t vlen);

/* Parses block[0..len). Returns the number of lines skipped as malformed
 * (no colon, empty or invalid name). */
int jet_hdr_block_parse(const char *block, size_t len, jet_hdr_fn fn, void *arg);

#endif
