/* A small string-keyed hash table (jetsched/strmap.h). */
#include <jetsched/strmap.h>
#include <jetsched/alloc.h>

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    unsigned hash;
    void *value;
    char key[];
} entry;

struct jet_strmap {
    entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

unsigned jet_str_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

jet_strmap *jet_strmap_new(void)
{
    jet_strmap *m = jet_xcalloc(1, sizeof *m);
    m->nbuckets = 64;
    m->buckets = jet_xcalloc(m->nbuckets, sizeof *m->buckets);
    return m;
}

void jet_strmap_free(jet_strmap *m, void (*free_value)(void *))
{
    if (!m)
        return;
    for (size_t b = 0; b < m->nbuckets; b++)
        for (entry *e = m->buckets[b], *next; e; e = next) {
            next = e->next;
            if (free_value)
                free_value(e->value);
            free(e);
        }
    free(m->buckets);
    free(m);
}

static entry **find(const jet_strmap *m, const char *key, unsigned h)
{
    entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            break;
    return pp;
}

void *jet_strmap_get(const jet_strmap *m, const char *key)
{
    entry *e = *find(m, key, jet_str_hash(key));
    return e ? e->value : NULL;
}

static void grow(jet_strmap *m)
{
    size_t n = m->nbuckets * 2;
    entry **nb = jet_xcalloc(n, sizeof *nb);
    for (size_t b = 0; b < m->nbuckets; b++)
        for (entry *e = m->buckets[b], *next; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    free(m->buckets);
    m->buckets = nb;
    m->nbuckets = n;
}

void *jet_strmap_put(jet_strmap *m, const char *key, void *value)
{
    unsigned h = jet_str_hash(key);
    entry **pp = find(m, key, h);
    if (*pp) {
        void *old = (*pp)->value;
        (*pp)->value = value;
        return old;
    }
    if (m->count >= m->nbuckets) {
        grow(m);
        pp = find(m, key, h);
    }
    size_t len = strlen(key);
    entry *e = jet_xmalloc(sizeof *e + len + 1);
    memcpy(e->key, key, len + 1);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *pp = e;
    m->count++;
    return NULL;
}

void *jet_strmap_remove(jet_strmap *m, const char *key)
{
    entry **pp = find(m, key, jet_str_hash(key));
    entry *e = *pp;
    if (!e)
        return NULL;
    *pp = e->next;
    void *v = e->value;
    free(e);
    m->count--;
    return v;
}

size_t jet_strmap_count(const jet_strmap *m) { return m->count; }

size_t jet_strmap_prune(jet_strmap *m, bool (*drop)(const char *key, void *value, void *arg), void *arg)
{
    size_t removed = 0;
    for (size_t b = 0; b < m->nbuckets; b++)
        for (entry **pp = &m->buckets[b]; *pp;) {
            entry *e = *pp;
            if (drop(e->key, e->value, arg)) {
                *pp = e->next;
                free(e);
                removed++;
            } else {
                pp = &e->next;
            }
        }
    m->count -= removed;
    return removed;
}
