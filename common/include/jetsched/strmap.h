/* A small hash table from C strings to pointers (FNV-1a, chained, grows at
 * load 1). Keys are copied; values belong to the caller. Not thread-safe:
 * the owner locks around it. */
#ifndef JETSCHED_STRMAP_H
#define JETSCHED_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct jet_strmap jet_strmap;

jet_strmap *jet_strmap_new(void);
/* Calls free_value (when not NULL) on every value, then frees the map. */
void jet_strmap_free(jet_strmap *m, void (*free_value)(void *));

void *jet_strmap_get(const jet_strmap *m, const char *key);
/* Sets key to value; returns the value it replaces (NULL when new). */
void *jet_strmap_put(jet_strmap *m, const char *key, void *value);
/* Removes key; returns its value (NULL when absent). */
void *jet_strmap_remove(jet_strmap *m, const char *key);
size_t jet_strmap_count(const jet_strmap *m);

/* Removes every entry for which drop(key, value, arg) is true; drop may free
 * the value. Returns how many were removed. */
size_t jet_strmap_prune(jet_strmap *m, bool (*drop)(const char *key, void *value, void *arg), void *arg);

/* FNV-1a of a string (also for callers that shard by key). */
unsigned jet_str_hash(const char *s);

#endif
