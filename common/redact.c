/* Redaction of credentials inside URLs and DSNs (jetsched/redact.h). */
#include <jetsched/redact.h>

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char *const secret_keys[] = {"password", "pass", "token", "nkey", "seed", "sslpassword", NULL};

typedef struct {
    char *buf;
    size_t len, n;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->n + 1 < o->len; i++)
        o->buf[o->n++] = s[i];
}

/* A secret key ends right before p (at a word boundary)? */
static bool secret_key_before(const char *start, const char *p)
{
    for (size_t k = 0; secret_keys[k]; k++) {
        size_t kl = strlen(secret_keys[k]);
        const char *q = p;
        while (q > start && q[-1] == ' ')
            q--;
        if ((size_t)(q - start) < kl || strncasecmp(q - kl, secret_keys[k], kl) != 0)
            continue;
        const char *b = q - kl;
        if (b == start || !(isalnum((unsigned char)b[-1]) || b[-1] == '_'))
            return true;
    }
    return false;
}

/* The end of a DSN/query value starting at p (quoted '...' with \' escapes, or up to a separator). */
static const char *value_end(const char *p)
{
    while (*p == ' ')
        p++;
    if (*p == '\'') {
        for (p++; *p && *p != '\''; p++)
            if (*p == '\\' && p[1])
                p++;
        return *p ? p + 1 : p;
    }
    while (*p && *p != ' ' && *p != '&' && *p != ',' && *p != ';' && *p != '\t' && *p != '\n')
        p++;
    return p;
}

char *jet_redact(const char *text, char *buf, size_t len)
{
    if (!buf || !len)
        return buf;
    out_t o = {buf, len, 0};
    const char *p = text ? text : "";
    while (*p && o.n + 1 < len) {
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            put(&o, p, 3);
            p += 3;
            /* user info: up to '@' before the next '/', '?', ',' or space */
            const char *q = p, *at = NULL;
            for (; *q && *q != '/' && *q != '?' && *q != ',' && *q != ' ' && *q != '#'; q++)
                if (*q == '@')
                    at = q;
            if (at) {
                const char *colon = memchr(p, ':', (size_t)(at - p));
                if (colon) {
                    put(&o, p, (size_t)(colon - p + 1));
                    put(&o, JET_REDACTED, sizeof JET_REDACTED - 1);
                } else {
                    put(&o, JET_REDACTED, sizeof JET_REDACTED - 1);
                }
                put(&o, "@", 1);
                p = at + 1;
            }
            continue;
        }
        if (*p == '=' && secret_key_before(text, p)) {
            put(&o, "=", 1);
            const char *e = value_end(p + 1);
            put(&o, JET_REDACTED, sizeof JET_REDACTED - 1);
            p = e;
            continue;
        }
        put(&o, p, 1);
        p++;
    }
    o.buf[o.n] = '\0';
    return buf;
}
