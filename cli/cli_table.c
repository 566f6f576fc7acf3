/* CLI helpers: aligned tables for people, JSON output for scripts, field
 * formatting (ages, joined lists) and a progress bar drawn only on a
 * terminal. */
#include "cli.h"

#include <jetsched/timeutil.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CELL_MAX 60 /* display columns of a cell (but the last column) */

struct cli_table {
    size_t ncols, ncells, cap;
    char **cells; /* row-major, the header first */
    size_t *width;
};

/* Display width of UTF-8 text (one column a code point). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/* A cell as shown: control characters as spaces, cut at max columns with "...". */
static char *cell_text(const char *s, size_t max)
{
    if (!s || !*s)
        s = "-";
    size_t n = strlen(s);
    char *out = malloc(n + 4);
    if (!out)
        return NULL;
    size_t j = 0, cols = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool starts = (c & 0xC0) != 0x80;
        if (starts && max && cols == max - 1 && text_width(s + i) > 1) {
            /* room for the ellipsis only */
            memcpy(out + j, "\xe2\x80\xa6", 3); /* U+2026 */
            j += 3;
            break;
        }
        cols += starts;
        out[j++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[j] = '\0';
    return out;
}

cli_table *cli_table_new(const char *first, ...)
{
    cli_table *t = calloc(1, sizeof *t);
    va_list ap;
    va_start(ap, first);
    for (const char *h = first; h; h = va_arg(ap, const char *))
        t->ncols++;
    va_end(ap);
    t->width = calloc(t->ncols, sizeof *t->width);
    va_start(ap, first);
    for (const char *h = first; h; h = va_arg(ap, const char *))
        cli_table_add(t, h);
    va_end(ap);
    return t;
}

void cli_table_add(cli_table *t, const char *cell)
{
    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = realloc(t->cells, t->cap * sizeof *t->cells);
    }
    size_t col = t->ncells % t->ncols;
    char *text = cell_text(cell, col + 1 == t->ncols ? 0 : CELL_MAX);
    size_t w = text ? text_width(text) : 0;
    if (w > t->width[col])
        t->width[col] = w;
    t->cells[t->ncells++] = text;
}

void cli_table_addf(cli_table *t, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cli_table_add(t, buf);
}

void cli_table_free(cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->width);
    free(t);
}

void cli_table_print(cli_table *t, FILE *out)
{
    while (t->ncells % t->ncols)
        cli_table_add(t, NULL);
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % t->ncols;
        const char *s = t->cells[i] ? t->cells[i] : "";
        if (col + 1 == t->ncols) {
            fprintf(out, "%s\n", s);
        } else {
            fputs(s, out);
            for (size_t pad = t->width[col] - text_width(s) + 2; pad; pad--)
                fputc(' ', out);
        }
    }
    cli_table_free(t);
}

void cli_kv(const char *key, const char *value)
{
    printf("%-15s %s\n", key, value && *value ? value : "-");
}

void cli_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
    fflush(stdout);
}

const char *cli_str(const json_t *obj, const char *field)
{
    const json_t *v = json_object_get(obj, field);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *cli_intstr(const json_t *obj, const char *field, char buf[32])
{
    const json_t *v = json_object_get(obj, field);
    if (json_is_integer(v))
        snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, 32, "%g", json_real_value(v));
    else
        buf[0] = '\0';
    return buf;
}

static void span(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, len, "%" PRId64 "ms", ms);
    else if (s < 120)
        snprintf(buf, len, "%" PRId64 "s", s);
    else if (s < 7200)
        snprintf(buf, len, "%" PRId64 "m", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%" PRId64 "h", s / 3600);
    else
        snprintf(buf, len, "%" PRId64 "d", s / 86400);
}

const char *cli_age(const char *rfc3339, char buf[32])
{
    int64_t ms;
    if (!rfc3339 || jet_rfc3339_parse(rfc3339, &ms, NULL) != JET_OK)
        return "-";
    int64_t d = jet_now_ms() - ms;
    span(d < 0 ? 0 : d, buf, 32);
    return buf;
}

const char *cli_relative(const char *rfc3339, char buf[48])
{
    int64_t ms;
    if (!rfc3339 || jet_rfc3339_parse(rfc3339, &ms, NULL) != JET_OK)
        return "-";
    int64_t d = ms - jet_now_ms();
    char s[32];
    span(d < 0 ? -d : d, s, sizeof s);
    snprintf(buf, 48, d < 0 ? "%s ago" : "in %s", s);
    return buf;
}

const char *cli_join(const json_t *obj, const char *field, char *buf, size_t len)
{
    const json_t *arr = json_object_get(obj, field);
    size_t j = 0, i;
    const json_t *v;
    buf[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && j + 1 < len)
            j += (size_t)snprintf(buf + j, len - j, "%s%s", i ? "," : "", json_string_value(v));
    }
    if (j >= len && len > 4)
        strcpy(buf + len - 4, "...");
    return buf;
}

/* "3 succeeded, 1 running, 2 waiting" from a counts object (states in the
 * order of a node's life, failures last, then any other key). */
void cli_counts_text(const json_t *counts, char *buf, size_t len)
{
    static const char *const order[] = {"succeeded", "duplicate", "running", "retrying", "queued",
                                        "waiting",   "dead",      "expired", "cancelled"};
    size_t j = 0, n = sizeof order / sizeof order[0];
    const char *k;
    const json_t *v;
    buf[0] = '\0';
    for (size_t i = 0; i <= n; i++)
        json_object_foreach((json_t *)counts, k, v)
        {
            size_t o = 0;
            while (o < n && strcmp(order[o], k) != 0)
                o++;
            if (o == i && j + 1 < len) /* i == n: keys outside the list */
                j += (size_t)snprintf(buf + j, len - j, "%s%lld %s", j ? ", " : "", (long long)json_integer_value(v),
                                      k);
        }
}

/* ---- progress bar ---- */

static void progress_draw(cli_progress *p, bool final)
{
    int64_t now = jet_mono_ms();
    if (!final && now - p->drawn_ms < 100)
        return;
    p->drawn_ms = now;
    const int width = 30;
    int64_t total = p->total > 0 ? p->total : 1;
    int64_t n = p->done > total ? total : p->done;
    int fill = (int)(n * width / total);
    double secs = (double)(now - p->started_ms) / 1000.0;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %" PRId64 "/%" PRId64 " %3d%%  %.0f/s", p->label, bar, p->done, p->total,
            (int)(n * 100 / total), rate);
    if (p->failed)
        fprintf(stderr, "  %" PRId64 " failed", p->failed);
    fputs("\033[K", stderr); /* clear to the end of the line */
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

void cli_progress_start(cli_progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->on = isatty(STDERR_FILENO) && total > 0;
    p->label = label;
    p->total = total;
    p->started_ms = jet_mono_ms();
    if (p->on)
        progress_draw(p, false);
}

void cli_progress_step(cli_progress *p, bool ok)
{
    p->done++;
    p->failed += !ok;
    if (p->on)
        progress_draw(p, false);
}

void cli_progress_end(cli_progress *p)
{
    if (p->on)
        progress_draw(p, true);
}

void cli_progress_clear(cli_progress *p)
{
    if (p->on)
        fputs("\r\033[K", stderr);
}
