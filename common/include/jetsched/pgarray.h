/* PostgreSQL array literals in text format ({"a","b",NULL}), for passing many
 * values as one parameter (unnest($1::text[])). Every string element is
 * quoted with " and \ escaped; NULL is unquoted.
 *
 * Two levels: the jet_pgarr builder grows its own buffer; the jet_pgarr_put_*
 * writers append one element at o (the caller sized the buffer, e.g. the
 * history writer's batch encoder) and return the new end. */
#ifndef JETSCHED_PGARRAY_H
#define JETSCHED_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- element writers: worst case 2n + 2 bytes for text, 20 for an integer,
 * 2n + 6 for bytea, 4 for NULL ---- */
char *jet_pgarr_put_text(char *o, const char *s, size_t n);   /* s NULL: NULL */
char *jet_pgarr_put_int(char *o, int64_t v, bool zero_null);  /* 0 as NULL when zero_null */
char *jet_pgarr_put_bytea(char *o, const unsigned char *p, size_t n); /* "\\x0a0b"; p NULL: NULL */

/* ---- the builder ---- */
typedef struct jet_pgarr {
    char *buf;
    size_t len, cap, n;
} jet_pgarr;

void jet_pgarr_add(jet_pgarr *a, const char *v);       /* v NULL: NULL */
void jet_pgarr_add_ms(jet_pgarr *a, int64_t v);        /* v < 0: NULL (no time) */
/* The literal ("{}" when empty); valid until the next add or free. */
const char *jet_pgarr_lit(jet_pgarr *a);
void jet_pgarr_free(jet_pgarr *a);

#endif
