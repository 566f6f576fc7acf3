/* Sortable unique ids (ULID: 48-bit Unix ms time + 80 random bits, Crockford
 * base32, 26 characters), valid task ids by the naming rules. */
#ifndef JETSCHED_IDS_H
#define JETSCHED_IDS_H

#include <stdint.h>

#define JET_ULID_LEN 26

/* Writes a new id and a NUL into buf (>= 27 bytes); ids made in the same
 * process and millisecond are strictly increasing. */
void jet_ulid_new(char buf[JET_ULID_LEN + 1]);
/* The time part of a ULID in Unix ms, or -1 when s is not a ULID. */
int64_t jet_ulid_time(const char *s);

#endif
