/* The configuration loader: libconfig file + schema table + environment. */
#include <jetsched/config.h>
#include <jetsched/httpd.h>
#include <jetsched/redact.h>
#include <jetsched/names.h>
#include <jetsched/timeutil.h>

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum value_source { SRC_UNSET, SRC_DEFAULT, SRC_FILE, SRC_ENV };

typedef struct cfg_val {
    const jet_cfg_key *key;
    enum value_source src;
    int line;                 /* SRC_FILE */
    char env_name[192];       /* SRC_ENV */
    bool b;
    int64_t i;
    char *s;
    char **list;
    size_t nlist;
    jet_config **groups;
    size_t ngroups;
    jet_config *elem_defaults; /* GROUPLIST: one element with the sub-schema's defaults (jet_cfg_bind_groups) */
} cfg_val;

struct jet_config {
    const jet_cfg_key *const *schema;
    const jet_cfg_key *own_schema[2]; /* group elements: {sub, NULL} */
    cfg_val *vals;
    size_t n;
    char *file;
};

/* Collects errors, one per line, into a jet_err. */
typedef struct errs {
    jet_err *err;
    int count;
    size_t used;
} errs;

__attribute__((format(printf, 2, 3))) static void add_error(errs *e, const char *fmt, ...)
{
    e->count++;
    if (!e->err)
        return;
    if (e->count == 1) {
        e->err->code = JET_ERR_INVALID;
        e->used = 0;
        e->err->msg[0] = '\0';
    }
    size_t cap = sizeof e->err->msg;
    if (e->used >= cap - 1)
        return;
    if (e->used > 0)
        e->err->msg[e->used++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->err->msg + e->used, cap - e->used, fmt, ap);
    va_end(ap);
    e->used += n > 0 ? (size_t)n : 0;
    if (e->used >= cap)
        e->used = cap - 1;
}

static const char *type_name(jet_cfg_type t)
{
    switch (t) {
    case JET_CFG_BOOL: return "boolean";
    case JET_CFG_INT: return "integer";
    case JET_CFG_DURATION: return "duration";
    case JET_CFG_SIZE: return "size";
    case JET_CFG_STRING: return "string";
    case JET_CFG_ENUM: return "enum";
    case JET_CFG_STRLIST: return "list of strings";
    case JET_CFG_GROUPLIST: return "list of groups";
    }
    return "?";
}

/* ---- value parsing shared by defaults, files and the environment ---- */

static jet_status parse_size(const char *s, int64_t *out, jet_err *err)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0)
        return jet_err_set(err, JET_ERR_INVALID, "invalid size \"%s\" (expected e.g. 1048576, \"64MB\", \"1GiB\")", s);
    static const struct { const char *u; int64_t mul; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
        {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824}, {"TB", INT64_C(1000000000000)},
    };
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].u) == 0) {
            if (v > INT64_MAX / units[i].mul)
                return jet_err_set(err, JET_ERR_INVALID, "size \"%s\" is too large", s);
            *out = v * units[i].mul;
            return JET_OK;
        }
    return jet_err_set(err, JET_ERR_INVALID, "invalid size unit in \"%s\" (use B, KB, MB, GB, KiB, MiB, GiB)", s);
}

static bool enum_has(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static void choices_text(const char *choices, char *buf, size_t len)
{
    size_t j = 0;
    for (const char *p = choices; *p && j + 3 < len; p++) {
        if (*p == '|') {
            buf[j++] = ',';
            buf[j++] = ' ';
        } else {
            buf[j++] = *p;
        }
    }
    buf[j] = '\0';
}

static jet_status check_bounds(const jet_cfg_key *k, int64_t v, jet_err *err)
{
    if (k->min > k->max || (v >= k->min && v <= k->max))
        return JET_OK;
    if (k->type == JET_CFG_DURATION) {
        char a[32], b[32], c[32];
        return jet_err_set(err, JET_ERR_INVALID, "%s is out of range [%s, %s]", jet_duration_format(v, c, sizeof c),
                           jet_duration_format(k->min, a, sizeof a), jet_duration_format(k->max, b, sizeof b));
    }
    return jet_err_set(err, JET_ERR_INVALID, "%lld is out of range [%lld, %lld]", (long long)v, (long long)k->min,
                       (long long)k->max);
}

static void free_value(cfg_val *v)
{
    free(v->s);
    v->s = NULL;
    for (size_t i = 0; i < v->nlist; i++)
        free(v->list[i]);
    free(v->list);
    v->list = NULL;
    v->nlist = 0;
    for (size_t i = 0; i < v->ngroups; i++)
        jet_config_free(v->groups[i]);
    free(v->groups);
    v->groups = NULL;
    v->ngroups = 0;
}

static jet_status check_list_item(const jet_cfg_key *k, const char *item, jet_err *err)
{
    if (k->choices && strcmp(k->choices, "name") == 0 && !jet_name_valid(item))
        return jet_err_set(err, JET_ERR_INVALID, "\"%s\" is not a valid name (1-64 characters of a-z 0-9 _ -)", item);
    if (k->choices && strcmp(k->choices, "listen") == 0 && *item) { /* "" turns the listener off */
        struct sockaddr_storage ss;
        socklen_t sl;
        jet_err e2;
        if (jet_listen_parse("address", item, &ss, &sl, &e2) != JET_OK)
            return jet_err_set(err, JET_ERR_INVALID, "%s", e2.msg);
    }
    return JET_OK;
}

/* Parses text in "file syntax without quotes" (defaults, environment). */
static jet_status parse_text(cfg_val *v, const char *text, jet_err *err)
{
    const jet_cfg_key *k = v->key;
    int64_t n;
    jet_status st;
    switch (k->type) {
    case JET_CFG_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes"))
            v->b = true;
        else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no"))
            v->b = false;
        else
            return jet_err_set(err, JET_ERR_INVALID, "expected a boolean (true or false), got \"%s\"", text);
        return JET_OK;
    case JET_CFG_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        if (end == text || *end || errno)
            return jet_err_set(err, JET_ERR_INVALID, "expected an integer, got \"%s\"", text);
        if ((st = check_bounds(k, x, err)))
            return st;
        v->i = x;
        return JET_OK;
    }
    case JET_CFG_DURATION:
        if ((st = jet_duration_parse(text, &n, err)) || (st = check_bounds(k, n, err)))
            return st;
        v->i = n;
        return JET_OK;
    case JET_CFG_SIZE:
        if ((st = parse_size(text, &n, err)) || (st = check_bounds(k, n, err)))
            return st;
        v->i = n;
        return JET_OK;
    case JET_CFG_ENUM:
        if (!enum_has(k->choices, text)) {
            char c[256];
            choices_text(k->choices, c, sizeof c);
            return jet_err_set(err, JET_ERR_INVALID, "\"%s\" is not one of: %s", text, c);
        }
        /* fall through */
    case JET_CFG_STRING:
        if ((st = check_list_item(k, text, err))) /* choices "name": a queue or handler name */
            return st;
        free(v->s);
        v->s = strdup(text);
        return JET_OK;
    case JET_CFG_STRLIST: {
        free_value(v);
        char *copy = strdup(text), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (isspace((unsigned char)*tok))
                tok++;
            size_t len = strlen(tok);
            while (len && isspace((unsigned char)tok[len - 1]))
                tok[--len] = '\0';
            if (!len)
                continue;
            if ((st = check_list_item(k, tok, err))) {
                free(copy);
                return st;
            }
            v->list = realloc(v->list, (v->nlist + 1) * sizeof *v->list);
            v->list[v->nlist++] = strdup(tok);
        }
        free(copy);
        return JET_OK;
    }
    case JET_CFG_GROUPLIST:
        return jet_err_set(err, JET_ERR_INVALID, "a list of groups cannot be set from text");
    }
    return JET_ERR_INTERNAL;
}

/* ---- schema lookup ---- */

static size_t count_keys(const jet_cfg_key *const *schema)
{
    size_t n = 0;
    for (size_t t = 0; schema[t]; t++)
        for (const jet_cfg_key *k = schema[t]; k->path; k++)
            n++;
    return n;
}

static cfg_val *find_val(const jet_config *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->vals[i].key->path, path) == 0)
            return &cfg->vals[i];
    return NULL;
}

static bool is_section(const jet_config *cfg, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < cfg->n; i++)
        if (strncmp(cfg->vals[i].key->path, path, n) == 0 && cfg->vals[i].key->path[n] == '.')
            return true;
    return false;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static const char *suggest(const jet_config *cfg, const char *path)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < cfg->n; i++) {
        size_t d = edit_distance(path, cfg->vals[i].key->path);
        if (d < best_d) {
            best_d = d;
            best = cfg->vals[i].key->path;
        }
    }
    return best;
}

static jet_config *config_new(const jet_cfg_key *const *schema, const jet_cfg_key *single)
{
    jet_config *cfg = calloc(1, sizeof *cfg);
    if (single) {
        cfg->own_schema[0] = single;
        cfg->schema = cfg->own_schema;
    } else {
        cfg->schema = schema;
    }
    cfg->n = count_keys(cfg->schema);
    cfg->vals = calloc(cfg->n ? cfg->n : 1, sizeof *cfg->vals);
    size_t i = 0;
    for (size_t t = 0; cfg->schema[t]; t++)
        for (const jet_cfg_key *k = cfg->schema[t]; k->path; k++) {
            cfg_val *v = &cfg->vals[i++];
            v->key = k;
            if (k->type == JET_CFG_GROUPLIST && k->sub)
                v->elem_defaults = config_new(NULL, k->sub);
            if (k->def) {
                jet_err e;
                if (parse_text(v, k->def, &e) != JET_OK) {
                    fprintf(stderr, "jetsched: schema bug: default of %s: %s\n", k->path, e.msg);
                    abort();
                }
                v->src = SRC_DEFAULT;
            }
        }
    return cfg;
}

/* ---- file walking ---- */

typedef struct load_ctx {
    errs *e;
    const char *file;
} load_ctx;

static void walk_group(load_ctx *lc, jet_config *cfg, config_setting_t *group, const char *keyprefix,
                       const char *shown_prefix);

static int setting_line(const config_setting_t *s) { return (int)config_setting_source_line(s); }

static const cfg_val *name_of(const jet_config *g)
{
    for (size_t j = 0; j < g->n; j++)
        if (!strcmp(g->vals[j].key->path, "name") && g->vals[j].src == SRC_FILE && g->vals[j].s)
            return &g->vals[j];
    return NULL;
}

/* The elements of a list of groups with a `name` (queues, exec.commands,
 * webhooks, web.tokens) name different things: a name given twice is an
 * error at load (--check-config), with both lines. */
static void check_unique_name(load_ctx *lc, const cfg_val *list, const jet_config *child, const char *shown)
{
    const cfg_val *nv = name_of(child);
    if (!nv)
        return;
    for (size_t i = 0; i < list->ngroups; i++) {
        const cfg_val *ov = name_of(list->groups[i]);
        if (ov && !strcmp(ov->s, nv->s)) {
            add_error(lc->e, "%s:%d: %s.name: \"%.64s\" is given twice (also at line %d)", lc->file, nv->line, shown,
                      nv->s, ov->line);
            return;
        }
    }
}

static void set_from_setting(load_ctx *lc, cfg_val *v, config_setting_t *s, const char *shown)
{
    const jet_cfg_key *k = v->key;
    int t = config_setting_type(s);
    int line = setting_line(s);
    jet_err e;
    jet_status st = JET_OK;
    char buf[64];
    switch (k->type) {
    case JET_CFG_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            st = jet_err_set(&e, JET_ERR_INVALID, "expected a boolean (true or false)");
        else
            v->b = config_setting_get_bool(s);
        break;
    case JET_CFG_INT:
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            st = jet_err_set(&e, JET_ERR_INVALID, "expected an integer");
        else if ((st = check_bounds(k, config_setting_get_int64(s), &e)) == JET_OK)
            v->i = config_setting_get_int64(s);
        break;
    case JET_CFG_SIZE:
        if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
            snprintf(buf, sizeof buf, "%lld", (long long)config_setting_get_int64(s));
            st = parse_text(v, buf, &e);
        } else if (t == CONFIG_TYPE_STRING) {
            st = parse_text(v, config_setting_get_string(s), &e);
        } else {
            st = jet_err_set(&e, JET_ERR_INVALID, "expected a size (integer bytes or a string like \"64MB\")");
        }
        break;
    case JET_CFG_DURATION:
    case JET_CFG_STRING:
    case JET_CFG_ENUM:
        if (t != CONFIG_TYPE_STRING)
            st = jet_err_set(&e, JET_ERR_INVALID, "expected a %s in double quotes%s", type_name(k->type),
                             k->type == JET_CFG_DURATION ? " like \"30s\"" : "");
        else
            st = parse_text(v, config_setting_get_string(s), &e);
        break;
    case JET_CFG_STRLIST: {
        if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
            st = jet_err_set(&e, JET_ERR_INVALID, "expected a list of strings like [\"a\", \"b\"]");
            break;
        }
        free_value(v);
        int n = config_setting_length(s);
        for (int i = 0; i < n && st == JET_OK; i++) {
            config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_type(el) != CONFIG_TYPE_STRING) {
                st = jet_err_set(&e, JET_ERR_INVALID, "element %d: expected a string", i);
                break;
            }
            const char *str = config_setting_get_string(el);
            if ((st = check_list_item(k, str, &e)) != JET_OK)
                break;
            v->list = realloc(v->list, (v->nlist + 1) * sizeof *v->list);
            v->list[v->nlist++] = strdup(str);
        }
        break;
    }
    case JET_CFG_GROUPLIST: {
        if (t != CONFIG_TYPE_LIST) {
            st = jet_err_set(&e, JET_ERR_INVALID, "expected a list of groups like ( { ... }, { ... } )");
            break;
        }
        free_value(v);
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
            config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
            char elem_shown[400];
            snprintf(elem_shown, sizeof elem_shown, "%s[%d]", shown, i);
            if (config_setting_type(el) != CONFIG_TYPE_GROUP) {
                add_error(lc->e, "%s:%d: %s: expected a group { ... }", lc->file, setting_line(el), elem_shown);
                continue;
            }
            jet_config *child = config_new(NULL, k->sub);
            walk_group(lc, child, el, "", elem_shown);
            for (size_t j = 0; j < child->n; j++)
                if ((child->vals[j].key->flags & JET_CFG_REQUIRED) && child->vals[j].src == SRC_UNSET)
                    add_error(lc->e, "%s:%d: %s.%s: required key is missing", lc->file, setting_line(el),
                              elem_shown, child->vals[j].key->path);
            check_unique_name(lc, v, child, elem_shown);
            v->groups = realloc(v->groups, (v->ngroups + 1) * sizeof *v->groups);
            v->groups[v->ngroups++] = child;
        }
        break;
    }
    }
    if (st != JET_OK) {
        add_error(lc->e, "%s:%d: %s: %s", lc->file, line, shown, e.msg);
        return;
    }
    v->src = SRC_FILE;
    v->line = line;
}

static void walk_group(load_ctx *lc, jet_config *cfg, config_setting_t *group, const char *keyprefix,
                       const char *shown_prefix)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[256], shown[320];
        snprintf(path, sizeof path, "%s%s%s", keyprefix, *keyprefix ? "." : "", name);
        snprintf(shown, sizeof shown, "%s%s%s", shown_prefix, *shown_prefix ? "." : "", name);
        cfg_val *v = find_val(cfg, path);
        if (v) {
            set_from_setting(lc, v, s, shown);
        } else if (config_setting_type(s) == CONFIG_TYPE_GROUP && is_section(cfg, path)) {
            walk_group(lc, cfg, s, path, shown);
        } else {
            const char *hint = suggest(cfg, path);
            if (hint)
                add_error(lc->e, "%s:%d: %s: unknown key (did you mean \"%s\"?)", lc->file, setting_line(s), shown,
                          hint);
            else
                add_error(lc->e, "%s:%d: %s: unknown key", lc->file, setting_line(s), shown);
        }
    }
}

/* ---- environment ---- */

static void env_name_for(const char *path, char *buf, size_t len)
{
    size_t j = (size_t)snprintf(buf, len, "JETSCHED_");
    for (const char *p = path; *p && j + 1 < len; p++)
        buf[j++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    buf[j] = '\0';
}

static void apply_env(jet_config *cfg, errs *e)
{
    for (size_t i = 0; i < cfg->n; i++) {
        cfg_val *v = &cfg->vals[i];
        if (v->key->type == JET_CFG_GROUPLIST)
            continue;
        char names[2][192];
        env_name_for(v->key->path, names[0], sizeof names[0]);
        snprintf(names[1], sizeof names[1], "%s", v->key->env ? v->key->env : "");
        for (int j = 0; j < 2; j++) { /* the explicit alias wins over the derived name */
            const char *val = names[j][0] ? getenv(names[j]) : NULL;
            if (!val)
                continue;
            jet_err pe;
            if (parse_text(v, val, &pe) != JET_OK) {
                add_error(e, "env %s: %s: %s", names[j], v->key->path, pe.msg);
                continue;
            }
            v->src = SRC_ENV;
            snprintf(v->env_name, sizeof v->env_name, "%.150s", names[j]);
        }
    }
}

/* libconfig stores an integer literal without the L suffix in 32 bits and
 * wraps a larger one without a word (4294967300 is read as 4): such a
 * literal is refused naming its line. Strings and comments are skipped. */
static bool in_name(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '*'; }

static jet_status check_int_literals(const char *text, const char *file, jet_err *err)
{
    int line = 1;
    for (const char *p = text; *p;) {
        if (*p == '\n') {
            line++;
            p++;
        } else if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (*p == '\n')
                    line++;
            }
            if (*p)
                p++;
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
                line += *p == '\n';
            if (*p)
                p += 2;
        } else if (isdigit((unsigned char)*p) &&
                   !(p > text && (p[-1] == '-' ? p > text + 1 && in_name(p[-2]) : in_name(p[-1])))) {
            const char *start = p;
            bool neg = p > text && p[-1] == '-';
            bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
            if (hex)
                p += 2;
            while (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p))
                p++;
            bool real = !hex && (*p == '.' || *p == 'e' || *p == 'E');
            if (real || *p == 'L') {
                while (isalnum((unsigned char)*p) || *p == '.' || ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E')))
                    p++;
                continue;
            }
            errno = 0;
            unsigned long long v = strtoull(start, NULL, hex ? 16 : 10);
            if (errno == ERANGE || v > (hex ? 0xffffffffULL : neg ? 0x80000000ULL : 0x7fffffffULL))
                return jet_err_set(err, JET_ERR_INVALID,
                                   "%s:%d: integer %.*s does not fit in 32 bits (it would be read as another "
                                   "number): write %.*sL for a 64-bit integer",
                                   file, line, (int)(p - start + neg), start - neg, (int)(p - start + neg), start - neg);
        } else {
            p++;
        }
    }
    return JET_OK;
}

/* The most a configuration file may hold. */
#define CONFIG_MAX_BYTES (1 << 20)

/* Reads a configuration file for libconfig, refusing what libconfig
 * handles by exiting the process or by reading other files (found by
 * tests/fuzz/fuzz_config): anything but a regular file, more than 1 MiB, NUL
 * bytes (its flex scanner calls exit(2) on some), and @include (a daemon
 * reads exactly its one file; an include of a directory also exits). */
static jet_status read_config_text(const char *file, char **out, jet_err *err)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return jet_err_set(err, JET_ERR_IO, "%s: cannot open: %s", file, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return jet_err_set(err, JET_ERR_IO, "%s: not a regular file", file);
    }
    char *text = malloc(CONFIG_MAX_BYTES + 2);
    size_t n = text ? fread(text, 1, CONFIG_MAX_BYTES + 1, f) : 0;
    bool bad_read = !text || ferror(f);
    fclose(f);
    if (bad_read) {
        free(text);
        return jet_err_set(err, JET_ERR_IO, "%s: cannot read", file);
    }
    if (n > CONFIG_MAX_BYTES) {
        free(text);
        return jet_err_set(err, JET_ERR_INVALID, "%s: larger than 1 MiB", file);
    }
    text[n] = '\0';
    int line = 1;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n')
            line++;
        if (text[i] == '\0') {
            free(text);
            return jet_err_set(err, JET_ERR_INVALID, "%s:%d: a NUL byte (not a text file)", file, line);
        }
        if (i == 0 || text[i - 1] == '\n') {
            size_t j = i;
            while (j < n && (text[j] == ' ' || text[j] == '\t'))
                j++;
            if (n - j >= 8 && strncmp(text + j, "@include", 8) == 0) {
                free(text);
                return jet_err_set(err, JET_ERR_INVALID,
                                   "%s:%d: @include is not supported (a daemon reads exactly one file; use "
                                   "environment variables for per-host values)",
                                   file, line);
            }
        }
    }
    if (check_int_literals(text, file, err) != JET_OK) {
        free(text);
        return JET_ERR_INVALID;
    }
    *out = text;
    return JET_OK;
}

jet_status jet_config_load(const jet_cfg_key *const *schema, const char *file, jet_config **out, jet_err *err)
{
    *out = NULL;
    jet_config *cfg = config_new(schema, NULL);
    errs e = {.err = err};
    if (file) {
        cfg->file = strdup(file);
        char *text = NULL;
        jet_status rst = read_config_text(file, &text, err);
        if (rst != JET_OK) {
            jet_config_free(cfg);
            return rst;
        }
        config_t lc;
        config_init(&lc);
        int ok = config_read_string(&lc, text);
        free(text);
        if (ok != CONFIG_TRUE) {
            jet_err_set(err, JET_ERR_INVALID, "%s:%d: syntax error: %s",
                        config_error_file(&lc) ? config_error_file(&lc) : file, config_error_line(&lc),
                        config_error_text(&lc));
            config_destroy(&lc);
            jet_config_free(cfg);
            return JET_ERR_INVALID;
        }
        load_ctx ctx = {.e = &e, .file = file};
        walk_group(&ctx, cfg, config_root_setting(&lc), "", "");
        config_destroy(&lc);
    }
    apply_env(cfg, &e);
    for (size_t i = 0; i < cfg->n; i++)
        if ((cfg->vals[i].key->flags & JET_CFG_REQUIRED) && cfg->vals[i].src == SRC_UNSET)
            add_error(&e, "%s: %s: required key is missing", file ? file : "(no file)", cfg->vals[i].key->path);
    if (e.count) {
        jet_config_free(cfg);
        return JET_ERR_INVALID;
    }
    *out = cfg;
    return JET_OK;
}

void jet_config_free(jet_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        free_value(&cfg->vals[i]);
        jet_config_free(cfg->vals[i].elem_defaults);
    }
    free(cfg->vals);
    free(cfg->file);
    free(cfg);
}

/* ---- accessors ---- */

static const cfg_val *get(const jet_config *cfg, const char *path, int type_mask)
{
    const cfg_val *v = find_val(cfg, path);
    if (!v || !(type_mask & (1 << v->key->type))) {
        fprintf(stderr, "jetsched: bug: config key %s %s\n", path, v ? "accessed with the wrong type" : "not in schema");
        abort();
    }
    return v;
}

#define T(x) (1 << (x))

bool jet_cfg_bool(const jet_config *cfg, const char *path) { return get(cfg, path, T(JET_CFG_BOOL))->b; }

int64_t jet_cfg_int(const jet_config *cfg, const char *path)
{
    return get(cfg, path, T(JET_CFG_INT) | T(JET_CFG_DURATION) | T(JET_CFG_SIZE))->i;
}

const char *jet_cfg_str(const jet_config *cfg, const char *path)
{
    const cfg_val *v = get(cfg, path, T(JET_CFG_STRING) | T(JET_CFG_ENUM));
    return v->s && v->s[0] ? v->s : NULL;
}

size_t jet_cfg_list_len(const jet_config *cfg, const char *path) { return get(cfg, path, T(JET_CFG_STRLIST))->nlist; }

const char *jet_cfg_list_at(const jet_config *cfg, const char *path, size_t i)
{
    const cfg_val *v = get(cfg, path, T(JET_CFG_STRLIST));
    return i < v->nlist ? v->list[i] : NULL;
}

size_t jet_cfg_groups(const jet_config *cfg, const char *path) { return get(cfg, path, T(JET_CFG_GROUPLIST))->ngroups; }

const jet_config *jet_cfg_group_at(const jet_config *cfg, const char *path, size_t i)
{
    const cfg_val *v = get(cfg, path, T(JET_CFG_GROUPLIST));
    return i < v->ngroups ? v->groups[i] : NULL;
}

bool jet_cfg_is_set(const jet_config *cfg, const char *path)
{
    const cfg_val *v = get(cfg, path, ~0);
    return v->src == SRC_FILE || v->src == SRC_ENV;
}

const char *jet_config_file(const jet_config *cfg) { return cfg->file; }

/* ---- printing ---- */

static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Writes the value in file syntax. */
static void print_value(FILE *out, const cfg_val *v, int indent)
{
    char buf[64];
    if (v->key->flags & JET_CFG_SECRET) {
        fputs("\"<redacted>\"", out);
        return;
    }
    switch (v->key->type) {
    case JET_CFG_BOOL: fputs(v->b ? "true" : "false", out); break;
    case JET_CFG_INT:
    case JET_CFG_SIZE: /* libconfig 1.5 needs the L suffix beyond 32 bits (it reads 0 otherwise) */
        fprintf(out, "%lld%s", (long long)v->i, v->i > INT32_MAX || v->i < INT32_MIN ? "L" : "");
        break;
    case JET_CFG_DURATION: fprintf(out, "\"%s\"", jet_duration_format(v->i, buf, sizeof buf)); break;
    case JET_CFG_STRING:
    case JET_CFG_ENUM:
        if (v->key->flags & JET_CFG_CREDENTIALS) {
            char red[4096];
            print_string(out, jet_redact(v->s ? v->s : "", red, sizeof red));
        } else {
            print_string(out, v->s ? v->s : "");
        }
        break;
    case JET_CFG_STRLIST:
        fputc('[', out);
        for (size_t i = 0; i < v->nlist; i++) {
            if (i)
                fputs(", ", out);
            print_string(out, v->list[i]);
        }
        fputc(']', out);
        break;
    case JET_CFG_GROUPLIST:
        fputs("(\n", out);
        for (size_t i = 0; i < v->ngroups; i++) {
            fprintf(out, "%*s{\n", indent + 2, "");
            const jet_config *g = v->groups[i];
            for (size_t j = 0; j < g->n; j++) {
                if (g->vals[j].src == SRC_UNSET)
                    continue;
                fprintf(out, "%*s%s = ", indent + 4, "", g->vals[j].key->path);
                print_value(out, &g->vals[j], indent + 4);
                fputs(";\n", out);
            }
            fprintf(out, "%*s}%s\n", indent + 2, "", i + 1 < v->ngroups ? "," : "");
        }
        fprintf(out, "%*s)", indent, "");
        break;
    }
}

static void print_source(FILE *out, const jet_config *cfg, const cfg_val *v)
{
    switch (v->src) {
    case SRC_FILE: fprintf(out, "  # %s:%d", cfg->file, v->line); break;
    case SRC_ENV: fprintf(out, "  # env %s", v->env_name); break;
    case SRC_DEFAULT: fputs("  # default", out); break;
    case SRC_UNSET: break;
    }
}

/* Length of the section part of a path ("nats" in "nats.url"; 0 for top level). */
static size_t section_len(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? (size_t)(dot - path) : 0;
}

static bool same_section(const char *a, const char *b)
{
    size_t la = section_len(a);
    return la == section_len(b) && strncmp(a, b, la) == 0;
}

/* Prints sections in order of first appearance, each once, so that tables of
 * different schemas adding to one section (postgres.migrate) stay valid syntax. */
void jet_config_print(const jet_config *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->n; i++) {
        const char *first = cfg->vals[i].key->path;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = same_section(cfg->vals[j].key->path, first);
        if (seen)
            continue;
        size_t sl = section_len(first);
        int indent = sl ? 2 : 0;
        if (sl)
            fprintf(out, "%.*s = {\n", (int)sl, first);
        for (size_t j = i; j < cfg->n; j++) {
            const cfg_val *v = &cfg->vals[j];
            if (!same_section(v->key->path, first))
                continue;
            const char *leaf = v->key->path + (sl ? sl + 1 : 0);
            if (v->src == SRC_UNSET) {
                fprintf(out, "%*s# %s is not set\n", indent, "", leaf);
                continue;
            }
            fprintf(out, "%*s%s = ", indent, "", leaf);
            print_value(out, v, indent);
            fputc(';', out);
            print_source(out, cfg, v);
            fputc('\n', out);
        }
        if (sl)
            fputs("};\n", out);
    }
}

static void print_schema_table(const jet_cfg_key *k, FILE *out, const char *prefix)
{
    char a[32], b[32];
    for (; k->path; k++) {
        fprintf(out, "%s%s (%s", prefix, k->path, type_name(k->type));
        if (k->def)
            fprintf(out, ", default %s", k->def);
        if (k->min <= k->max) {
            if (k->type == JET_CFG_DURATION)
                fprintf(out, ", %s..%s", jet_duration_format(k->min, a, sizeof a), jet_duration_format(k->max, b, sizeof b));
            else
                fprintf(out, ", %lld..%lld", (long long)k->min, (long long)k->max);
        }
        if (k->type == JET_CFG_ENUM)
            fprintf(out, ", one of %s", k->choices);
        if (k->flags & JET_CFG_RELOADABLE)
            fputs(", reloadable", out);
        if (k->flags & JET_CFG_SECRET)
            fputs(", secret", out);
        if (k->flags & JET_CFG_REQUIRED)
            fputs(", required", out);
        if (k->flags & JET_CFG_DEPRECATED)
            fputs(", deprecated", out);
        fprintf(out, "): %s\n", k->desc ? k->desc : "");
        if (k->type == JET_CFG_GROUPLIST && k->sub) {
            char p[64];
            snprintf(p, sizeof p, "%s  %s[].", prefix, k->path);
            print_schema_table(k->sub, out, p);
        }
    }
}

void jet_config_print_schema(const jet_cfg_key *const *schema, FILE *out)
{
    for (size_t t = 0; schema[t]; t++)
        print_schema_table(schema[t], out, "");
}

/* Serialises a value for comparison. */
static char *value_text(const cfg_val *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_val copy = *v;
    jet_cfg_key key = *v->key;
    key.flags &= ~(unsigned)(JET_CFG_SECRET | JET_CFG_CREDENTIALS); /* compare secrets too */
    copy.key = &key;
    print_value(f, &copy, 0);
    fclose(f);
    return buf;
}

int jet_config_nonreloadable_changes(const jet_config *old_cfg, const jet_config *new_cfg, jet_err *err)
{
    errs e = {.err = err};
    for (size_t i = 0; i < new_cfg->n; i++) {
        const cfg_val *nv = &new_cfg->vals[i];
        const cfg_val *ov = find_val(old_cfg, nv->key->path);
        if (!ov || (nv->key->flags & JET_CFG_RELOADABLE))
            continue;
        char *a = value_text(ov), *b = value_text(nv);
        if (strcmp(a, b) != 0)
            add_error(&e, "%s: changed but not reloadable; restart to apply it", nv->key->path);
        free(a);
        free(b);
    }
    return e.count;
}

int jet_config_deprecated_set(const jet_config *cfg, jet_err *err)
{
    errs e = {.err = err};
    for (size_t i = 0; i < cfg->n; i++) {
        const cfg_val *v = &cfg->vals[i];
        if (!(v->key->flags & JET_CFG_DEPRECATED))
            continue;
        if (v->src == SRC_FILE)
            add_error(&e, "%s:%d: %s: deprecated (%s)", cfg->file, v->line, v->key->path, v->key->desc);
        else if (v->src == SRC_ENV)
            add_error(&e, "env %s: %s: deprecated (%s)", v->env_name, v->key->path, v->key->desc);
    }
    return e.count;
}

char *jet_read_secret_file(const char *path, jet_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        jet_err_set(err, JET_ERR_IO, "%s: cannot read secret: %s", path, strerror(errno));
        return NULL;
    }
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    char *s = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return s;
}

/* ---- typed settings ---- */

static void bind_one(const jet_config *cfg, const jet_cfg_field *f, char *out)
{
    const cfg_val *v = find_val(cfg, f->path);
    int t = v ? (int)v->key->type : -1;
    bool ok = v && ((f->ctype == JET_CT_BOOL && t == JET_CFG_BOOL) ||
                    ((f->ctype == JET_CT_I64 || f->ctype == JET_CT_INT) &&
                     (t == JET_CFG_INT || t == JET_CFG_DURATION || t == JET_CFG_SIZE)) ||
                    (f->ctype == JET_CT_STR && (t == JET_CFG_STRING || t == JET_CFG_ENUM)) ||
                    (f->ctype == JET_CT_CHOICE && t == JET_CFG_ENUM));
    if (ok && f->ctype == JET_CT_INT && !(v->key->min <= v->key->max && v->key->min >= INT_MIN && v->key->max <= INT_MAX))
        ok = false; /* only a key whose bounds fit an int binds to an int */
    if (!ok) {
        fprintf(stderr, "jetsched: bug: config key %s %s\n", f->path, v ? "bound to the wrong C type" : "not in schema");
        abort();
    }
    char *at = out + f->offset;
    switch (f->ctype) {
    case JET_CT_BOOL: *(bool *)at = v->b; break;
    case JET_CT_I64: *(int64_t *)at = v->i; break;
    case JET_CT_INT: *(int *)at = (int)v->i; break;
    case JET_CT_STR: *(const char **)at = v->s && v->s[0] ? v->s : NULL; break;
    case JET_CT_CHOICE: {
        int idx = 0;
        const char *c = v->key->choices, *s = v->s ? v->s : "";
        size_t len = strlen(s);
        for (; c && *c; idx++) {
            const char *bar = strchr(c, '|');
            size_t n = bar ? (size_t)(bar - c) : strlen(c);
            if (n == len && strncmp(c, s, n) == 0)
                break;
            c = bar ? bar + 1 : c + n;
        }
        *(int *)at = idx;
        break;
    }
    }
}

void jet_cfg_bind(const jet_config *cfg, const jet_cfg_field *map, void *out)
{
    for (const jet_cfg_field *f = map; f->path; f++)
        bind_one(cfg, f, out);
}

void *jet_cfg_bind_groups(const jet_config *cfg, const char *path, const jet_cfg_field *map, size_t elem_size,
                          bool default_one, size_t *n)
{
    const cfg_val *v = get(cfg, path, T(JET_CFG_GROUPLIST));
    size_t count = v->ngroups ? v->ngroups : default_one ? 1 : 0;
    char *arr = calloc(count ? count : 1, elem_size);
    if (!arr) {
        fprintf(stderr, "jetsched: out of memory binding %s\n", path);
        abort();
    }
    if (v->ngroups == 0 && default_one && v->elem_defaults)
        jet_cfg_bind(v->elem_defaults, map, arr);
    for (size_t i = 0; i < v->ngroups; i++)
        jet_cfg_bind(v->groups[i], map, arr + i * elem_size);
    *n = count;
    return arr;
}
