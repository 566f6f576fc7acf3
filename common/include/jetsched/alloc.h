/* The allocation-failure policy (docs/ARCHITECTURE.md, "Out of memory"):
 * running out of process heap is fatal. These wrappers log and abort
 * instead of returning NULL, so callers never check. A daemon killed this
 * way restarts (systemd) and its un-acknowledged tasks are redelivered, which
 * the delivery guarantees already cover; a half-handled NULL could lose one.
 * Bounded, input-sized allocations are sized before they are made; the Lua
 * states have their own capped allocator (agentd/lua). */
#ifndef JETSCHED_ALLOC_H
#define JETSCHED_ALLOC_H

#include <stddef.h>

void *jet_xmalloc(size_t n);
void *jet_xcalloc(size_t count, size_t size);
/* Never `p = realloc(p, n)`: p stays valid when this aborts, and on success
 * the caller stores the result. */
void *jet_xrealloc(void *p, size_t n);
char *jet_xstrdup(const char *s);
/* The n bytes at s (which holds at least n), NUL-terminated. */
char *jet_xstrndup(const char *s, size_t n);

/* Grows an array of `*cap` elements of `size` bytes to hold at least `need`
 * (doubling, at least `min_cap`); returns the (possibly moved) array. */
void *jet_xgrow(void *arr, size_t *cap, size_t need, size_t size, size_t min_cap);

#endif
