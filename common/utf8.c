/* UTF-8 repair of untrusted text (jetsched/utf8.h): one place that turns
 * bytes from clients and handlers into text JSON and PostgreSQL accept. */
#include <jetsched/utf8.h>

#include <stdlib.h>
#include <string.h>

#define TRUNC_MARK JET_UTF8_TRUNC_MARK
#define TRUNC_MARK_LEN (sizeof TRUNC_MARK - 1)

/* Length (1-4) of the well-formed UTF-8 sequence at p, or 0 when it is
 * ill-formed; then *skip is the length of its maximal valid prefix (>= 1). */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *skip)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        *skip = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need && i < n; i++) {
        unsigned b = p[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            break;
    }
    if (i == need)
        return need;
    *skip = i;
    return 0;
}

/* Writes (or measures, out NULL) at most limit bytes of clean output;
 * *used receives how much input was consumed. */
static size_t utf8_clean(const unsigned char *in, size_t len, char *out, size_t limit, size_t *used, bool *changed)
{
    static const unsigned char fffd[3] = {0xEF, 0xBF, 0xBD};
    size_t i = 0, o = 0;
    while (i < len) {
        size_t skip = 1, k = in[i] ? utf8_seq(in + i, len - i, &skip) : 0;
        const unsigned char *emit = k ? in + i : fffd;
        size_t elen = k ? k : in[i] ? 3 : 0; /* a NUL is dropped */
        if (o + elen > limit)
            break;
        if (!k)
            *changed = true;
        if (out)
            memcpy(out + o, emit, elen);
        o += elen;
        i += k ? k : skip;
    }
    *used = i;
    return o;
}

size_t jet_utf8_sanitize(const char *in, size_t len, char *out, size_t cap, bool *changed)
{
    bool ch = false;
    size_t used, n;
    const unsigned char *u = (const unsigned char *)in;
    if (cap < 16)
        cap = 16;
    n = utf8_clean(u, len, NULL, cap, &used, &ch);
    if (used < len) {
        n = utf8_clean(u, len, out, cap - TRUNC_MARK_LEN, &used, &ch);
        if (out)
            memcpy(out + n, TRUNC_MARK, TRUNC_MARK_LEN);
        n += TRUNC_MARK_LEN;
        ch = true;
    } else if (out) {
        utf8_clean(u, len, out, cap, &used, &ch);
    }
    if (changed)
        *changed = ch;
    return n;
}


bool jet_utf8_repair(char *buf, size_t size)
{
    size_t len = strnlen(buf, size - 1);
    bool changed = false;
    size_t n = jet_utf8_sanitize(buf, len, NULL, size - 1, &changed);
    if (!changed) {
        buf[len] = '\0';
        return false;
    }
    char *tmp = malloc(n + 1);
    if (!tmp) { /* cannot repair: keep the ASCII prefix only */
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)buf[i] >= 0x80) {
                buf[i] = '\0';
                break;
            }
        return true;
    }
    jet_utf8_sanitize(buf, len, tmp, size - 1, NULL);
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    free(tmp);
    return true;
}

bool jet_utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t skip = 1, k = s[i] ? utf8_seq((const unsigned char *)s + i, len - i, &skip) : 0;
        if (!k)
            return false;
        i += k;
    }
    return true;
}
