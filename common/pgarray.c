/* PostgreSQL array literals (jetsched/pgarray.h). */
#include <jetsched/pgarray.h>
#include <jetsched/alloc.h>

#include <stdlib.h>
#include <string.h>

char *jet_pgarr_put_text(char *o, const char *s, size_t n)
{
    if (!s) {
        memcpy(o, "NULL", 4);
        return o + 4;
    }
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *o++ = '\\';
        *o++ = s[i];
    }
    *o++ = '"';
    return o;
}

char *jet_pgarr_put_int(char *o, int64_t v, bool zero_null)
{
    if (zero_null && v == 0)
        return jet_pgarr_put_text(o, NULL, 0);
    char tmp[24];
    int k = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *o++ = '-';
    while (k)
        *o++ = tmp[--k];
    return o;
}

char *jet_pgarr_put_bytea(char *o, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!p)
        return jet_pgarr_put_text(o, NULL, 0);
    memcpy(o, "\"\\\\x", 4);
    o += 4;
    for (size_t i = 0; i < n; i++) {
        *o++ = hex[p[i] >> 4];
        *o++ = hex[p[i] & 15];
    }
    *o++ = '"';
    return o;
}

void jet_pgarr_add(jet_pgarr *a, const char *v)
{
    size_t n = v ? strlen(v) : 0;
    /* separator + element + room for the closing "}\0" of jet_pgarr_lit */
    a->buf = jet_xgrow(a->buf, &a->cap, a->len + 1 + 2 * n + 4 + 2, 1, 256);
    a->buf[a->len++] = a->n++ ? ',' : '{';
    a->len = (size_t)(jet_pgarr_put_text(a->buf + a->len, v, n) - a->buf);
}

void jet_pgarr_add_ms(jet_pgarr *a, int64_t v)
{
    a->buf = jet_xgrow(a->buf, &a->cap, a->len + 1 + 20 + 2, 1, 256);
    a->buf[a->len++] = a->n++ ? ',' : '{';
    a->len = (size_t)((v >= 0 ? jet_pgarr_put_int(a->buf + a->len, v, false)
                              : jet_pgarr_put_text(a->buf + a->len, NULL, 0)) -
                      a->buf);
}

const char *jet_pgarr_lit(jet_pgarr *a)
{
    if (!a->n)
        return "{}";
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    return a->buf;
}

void jet_pgarr_free(jet_pgarr *a)
{
    free(a->buf);
    *a = (jet_pgarr){0};
}
