/* Base64 encoding and decoding (RFC 4648): see jetsched/base64.h. */
#include <jetsched/base64.h>

#include <stdint.h>
#include <stdlib.h>

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *jet_base64_encode(const void *data, size_t len, bool url)
{
    const unsigned char *p = data;
    const char *a = url ? URL : STD;
    char *out = malloc(len / 3 * 4 + 5), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        *o++ = a[v >> 6 & 63];
        *o++ = a[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        if (i + 1 < len)
            *o++ = a[v >> 6 & 63];
        else if (!url)
            *o++ = '=';
        if (!url)
            *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

bool jet_base64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
    /* Canonical input only: padding, if any, completes the last group of
     * four ("YQ==", not "YQ=" or "YWI=="), and the bits below the last
     * byte are zero ("YR==" is refused: it would decode as "YQ==" does). */
    size_t pad = 0;
    while (len && s[len - 1] == '=' && pad < 3) {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad && (len + pad) % 4 != 0))
        return false;
    unsigned char *buf = malloc(len / 4 * 3 + 4), *o = buf;
    if (!buf)
        return false;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = value_of((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return false;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) {
        free(buf);
        return false;
    }
    *o = '\0';
    *out = buf;
    *out_len = (size_t)(o - buf);
    return true;
}
