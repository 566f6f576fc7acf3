/* Allocation that never returns NULL (jetsched/alloc.h). */
#include <jetsched/alloc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
    /* No jet_log here: logging may itself need memory. One write, then abort. */
    fprintf(stderr, "fatal: out of memory (allocating %zu bytes); exiting\n", n);
    abort();
}

void *jet_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory(n);
    return p;
}

void *jet_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *jet_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory(n);
    return q;
}

char *jet_xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        out_of_memory(strlen(s) + 1);
    return d;
}

char *jet_xstrndup(const char *s, size_t n)
{
    char *d = jet_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void *jet_xgrow(void *arr, size_t *cap, size_t need, size_t size, size_t min_cap)
{
    if (need <= *cap)
        return arr;
    size_t n = *cap ? *cap : min_cap;
    while (n < need)
        n *= 2;
    arr = jet_xrealloc(arr, n * size);
    *cap = n;
    return arr;
}
