/* CLI helpers: option parsing shared by every verb (--json, --help, usage
 * errors with exit code 2), payload arguments (@file, - for stdin), -H
 * headers, and time and number arguments. */
#include "cli.h"

#include <jetsched/base64.h>
#include <jetsched/utf8.h>
#include <jetsched/timeutil.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The message for getopt's '?': unknown option, missing or unexpected value. */
static void bad_option(cli_ctx *ctx, int argc, char **argv, const char *shortopts, const struct option *opts)
{
    const char *verb = ctx->verb ? ctx->verb : "";
    const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    if (strncmp(bad, "--", 2) == 0) {
        size_t n = strcspn(bad + 2, "=");
        const struct option *match = NULL;
        int matches = 0;
        for (const struct option *o = opts; o->name; o++) {
            if (strncmp(o->name, bad + 2, n) != 0)
                continue;
            if (strlen(o->name) == n) { /* exact: wins over abbreviations */
                match = o;
                matches = 1;
                break;
            }
            match = o;
            matches++;
        }
        if (matches == 1 && match->has_arg == no_argument)
            fprintf(stderr, "jetsched %s: option --%s takes no value\n\n", verb, match->name);
        else if (matches == 1)
            fprintf(stderr, "jetsched %s: option --%s needs a value\n\n", verb, match->name);
        else
            fprintf(stderr, "jetsched %s: %s option \"%.*s\"\n\n", verb, matches ? "ambiguous" : "unknown",
                    (int)n + 2, bad);
    } else if (optopt && optopt != ':' && strchr(shortopts, optopt)) {
        fprintf(stderr, "jetsched %s: option -%c needs a value\n\n", verb, optopt);
    } else {
        fprintf(stderr, "jetsched %s: unknown option -%c\n\n", verb, optopt ? optopt : '?');
    }
}

int cli_getopt(cli_ctx *ctx, int argc, char **argv, const char *shortopts, const struct option *opts)
{
    opterr = 0; /* our own message, naming the verb */
    for (;;) {
        int c = getopt_long(argc, argv, shortopts, opts, NULL);
        if (c == '?')
            bad_option(ctx, argc, argv, shortopts, opts);
        if (c != 'J')
            return c;
        ctx->json = true;
    }
}

int cli_usage_error(cli_ctx *ctx, const char *usage, const char *fmt, ...)
{
    fprintf(stderr, "jetsched %s: ", ctx->verb ? ctx->verb : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return CLI_USAGE;
}

int cli_plain_opts(cli_ctx *ctx, const char *usage, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTS};
    int c;
    optind = 0;
    while ((c = cli_getopt(ctx, argc, argv, "h", opts)) != -1) {
        if (c == 'h')
            return -1;
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_dispatch(cli_ctx *ctx, const char *usage, const cli_sub *subs, size_t n, int argc, char **argv)
{
    const char *family = ctx->verb;
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
            return cli_help(usage);
        return cli_usage_error(ctx, usage, "missing sub-command");
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], subs[i].name) != 0 && !(subs[i].alias && !strcmp(argv[1], subs[i].alias)))
            continue;
        char verb[64];
        snprintf(verb, sizeof verb, "%s %s", family, subs[i].name);
        ctx->verb = verb;
        int rc = subs[i].fn(ctx, subs[i].name, argc - 1, argv + 1);
        ctx->verb = family;
        return rc;
    }
    return cli_usage_error(ctx, usage, "unknown sub-command \"%s\"", argv[1]);
}

int cli_help(const char *usage)
{
    fputs(usage, stdout);
    return CLI_OK;
}

bool cli_want_args(cli_ctx *ctx, const char *usage, int argc, char **argv, int n, const char *what, int *rc)
{
    int have = argc - optind;
    if (have == n)
        return true;
    if (have < n)
        *rc = cli_usage_error(ctx, usage, "missing %s", what ? what : "argument");
    else
        *rc = cli_usage_error(ctx, usage, "unexpected argument \"%s\"", argv[optind + n]);
    return false;
}

/* Reads all of f, at most max bytes: false on a read error or when there
 * is more (errno EFBIG). */
static bool read_stream(FILE *f, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return false;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max + 1) {
                free(buf);
                errno = EFBIG;
                return false;
            }
            char *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf);
                return false;
            }
            buf = b;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f) || n > max) {
        if (!ferror(f))
            errno = EFBIG;
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return true;
}

int cli_read_line(FILE *f, char **buf, size_t *cap, size_t max, size_t *len)
{
    size_t n = 0;
    int c;
    for (;;) {
        c = getc(f);
        if (c == EOF || c == '\n')
            break;
        if (n >= max)
            return -1;
        if (n + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            char *b = realloc(*buf, ncap);
            if (!b)
                return -2;
            *buf = b;
            *cap = ncap;
        }
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && (ferror(f) || n == 0))
        return ferror(f) ? -2 : 0;
    if (!*buf) {
        *buf = malloc(1);
        *cap = 1;
    }
    (*buf)[n] = '\0';
    *len = n;
    return 1;
}

bool cli_read_payload(cli_ctx *ctx, const char *arg, char **out, size_t *len)
{
    (void)ctx;
    if (strcmp(arg, "-") == 0) {
        if (!read_stream(stdin, CLI_MAX_PAYLOAD_READ, out, len)) {
            fprintf(stderr, "jetsched: cannot read the payload from stdin: %s\n",
                    errno == EFBIG ? "more than 64 MiB" : strerror(errno));
            return false;
        }
        return true;
    }
    if (arg[0] == '@') {
        FILE *f = fopen(arg + 1, "rb");
        if (!f) {
            fprintf(stderr, "jetsched: cannot open payload file %s: %s\n", arg + 1, strerror(errno));
            return false;
        }
        bool ok = read_stream(f, CLI_MAX_PAYLOAD_READ, out, len);
        int e = errno;
        fclose(f);
        if (!ok)
            fprintf(stderr, "jetsched: cannot read payload file %s: %s\n", arg + 1,
                    e == EFBIG ? "more than 64 MiB (the API takes at most api.max_payload, 1 MiB by default)"
                               : strerror(e));
        return ok;
    }
    *out = strdup(arg);
    *len = strlen(arg);
    return *out != NULL;
}

void cli_set_payload(json_t *obj, const char *buf, size_t len)
{
    json_t *s = memchr(buf, '\0', len) ? NULL : json_stringn(buf, len); /* NULL: not valid UTF-8 */
    if (s) {
        json_object_set_new(obj, "payload", s);
        return;
    }
    char *b = jet_base64_encode(buf, len, false);
    json_object_set_new(obj, "payload_base64", json_string(b ? b : ""));
    free(b);
}

json_t *cli_jstr(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    /* Not UTF-8: sent with U+FFFD for the bad bytes, so that schedulerd
     * refuses it naming the field (json_string's NULL dropped the field
     * silently: --tz with a bad byte made a UTC schedule). */
    size_t len = strlen(s), cap = 3 * len + 32;
    char *buf = malloc(cap);
    size_t n = buf ? jet_utf8_sanitize(s, len, buf, cap - 1, NULL) : 0;
    if (buf)
        buf[n] = '\0';
    v = json_string(buf ? buf : "");
    free(buf);
    return v;
}

bool cli_add_header(cli_ctx *ctx, const char *usage, json_t **headers, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg) {
        cli_usage_error(ctx, usage, "-H \"%s\": a header is Name:Value", arg);
        return false;
    }
    if (colon - arg > 255 || !jet_utf8_valid(arg, strlen(arg))) {
        cli_usage_error(ctx, usage, "-H \"%.80s\": the name must be at most 255 bytes and the header valid UTF-8",
                        arg);
        return false;
    }
    const char *v = colon + 1;
    while (*v == ' ')
        v++;
    if (!*headers)
        *headers = json_object();
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(colon - arg), arg);
    json_object_set_new(*headers, name, json_string(v));
    return true;
}

bool cli_time_arg(const char *arg, bool ago, char *buf, size_t len)
{
    int64_t ms;
    if (jet_rfc3339_parse(arg, &ms, NULL) == JET_OK) {
        jet_rfc3339_format(ms, buf, len);
        return true;
    }
    if (jet_duration_parse(arg, &ms, NULL) == JET_OK) {
        jet_rfc3339_format(ago ? jet_now_ms() - ms : jet_now_ms() + ms, buf, len);
        return true;
    }
    return false;
}

bool cli_int_arg(const char *arg, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_list_opt(cli_ctx *ctx, const char *usage, int c, json_t *req, json_t *status, bool *all, int *rc)
{
    char when[40];
    int64_t limit;
    switch (c) {
    case 'C': json_object_set_new(req, "cursor", cli_jstr(optarg)); return true;
    case 'a': *all = true; return true;
    case 's':
        for (char *save = NULL, *tok = strtok_r(optarg, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            json_array_append_new(status, cli_jstr(tok));
        return true;
    case 'F':
    case 'U':
        if (!cli_time_arg(optarg, true, when, sizeof when))
            *rc = cli_usage_error(ctx, usage, "--%s \"%s\": an RFC 3339 time or a duration ago like 1h",
                                  c == 'F' ? "since" : "until", optarg);
        else
            json_object_set_new(req, c == 'F' ? "since" : "until", json_string(when));
        return true;
    case 'n':
        if (!cli_int_arg(optarg, 1, 1000, &limit))
            *rc = cli_usage_error(ctx, usage, "--limit \"%s\": a number from 1 to 1000", optarg);
        else
            json_object_set_new(req, "limit", json_integer(limit));
        return true;
    default: return false;
    }
}

void cli_list_status(json_t *req, json_t *status)
{
    if (json_array_size(status) == 1)
        json_object_set(req, "status", json_array_get(status, 0));
    else if (json_array_size(status) > 1)
        json_object_set(req, "status", status);
}
