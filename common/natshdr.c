/* Tolerant NATS header block parser (jetsched/natshdr.h). */
#include <jetsched/natshdr.h>

#include <stdbool.h>
#include <string.h>

static bool name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == ':' || c >= 0x7f)
            return false;
    }
    return true;
}

int jet_hdr_block_parse(const char *block, size_t len, jet_hdr_fn fn, void *arg)
{
    int skipped = 0;
    size_t i = 0;
    bool first = true;
    while (i < len) {
        const char *line = block + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t n = nl ? (size_t)(nl - line) : len - i;
        i += n + (nl ? 1 : 0);
        if (n && line[n - 1] == '\r')
            n--;
        if (first) {
            first = false;
            if (n >= 5 && memcmp(line, "NATS/", 5) == 0)
                continue; /* the version/status line */
        }
        if (n == 0)
            break; /* end of the block */
        const char *colon = memchr(line, ':', n);
        if (!colon || !name_ok(line, (size_t)(colon - line))) {
            skipped++;
            continue;
        }
        const char *v = colon + 1, *end = line + n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        fn(arg, line, (size_t)(colon - line), v, (size_t)(end - v));
    }
    return skipped;
}
