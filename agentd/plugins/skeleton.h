/* What the built-in plugins that serve a configured list of handlers (exec:
 * "commands", http: "endpoints") share, header-only so that each plugin
 * stays one self-contained shared object built against <jetsched/plugin.h>:
 * error text for init(), integer settings, set_error() with a format, and
 * the init skeleton that parses {"<list>": [{"name": ..., ...}, ...]}. */
#ifndef JETSCHED_PLUGIN_SKELETON_H
#define JETSCHED_PLUGIN_SKELETON_H

#include <jetsched/plugin.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Formats init()'s error text; returns -1 (init's failure). */
static int plugin_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4), unused));
static int plugin_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* An optional integer setting <what>.<key> within [min, max]: *present says
 * whether it was given (*out is left alone when not). */
static __attribute__((unused)) int plugin_get_int(const json_t *obj, const char *key, const char *what, int64_t min,
                                                  int64_t max, bool *present, int64_t *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return plugin_fail(err, errlen, "%s.%s: must be an integer", what, key);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return plugin_fail(err, errlen, "%s.%s: %" JSON_INTEGER_FORMAT " is out of range [%" PRId64 ", %" PRId64 "]",
                           what, key, x, min, max);
    *out = (int64_t)x;
    return 0;
}

/* host->set_error with a format; returns o (for `return plugin_set_error(...)`). */
static jet_outcome plugin_set_error(const jet_host_api *host, jet_task_ctx *ctx, jet_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), unused));
static jet_outcome plugin_set_error(const jet_host_api *host, jet_task_ctx *ctx, jet_outcome o, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    host->set_error(ctx, msg);
    return o;
}

/* The configured list of a plugin: `items` (n of them, item_size bytes each,
 * the first member of an item being its `char *name`) and `names`, the
 * NULL-terminated handler names (handlers_after_init). */
typedef struct plugin_list {
    void *items;
    size_t n;
    const char **names;
} plugin_list;

/* Parses config_json = {"<key>": [ {...}, ... ]} (no other key; the key may
 * be absent) into list: parse(obj, idx, item, err, errlen) fills one item
 * (returns non-zero after plugin_fail); names must be unique. On failure
 * list->n counts the items to free (the failed one included). */
static __attribute__((unused)) int plugin_parse_list(const char *config_json, const char *key, const char *item_kind,
                                                     size_t item_size,
                                                     int (*parse)(const json_t *, size_t, void *, char *, size_t),
                                                     plugin_list *list, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(config_json ? config_json : "{}", 0, &je);
    if (!root)
        return plugin_fail(err, errlen, "settings are not valid JSON: %s (line %d, column %d)", je.text, je.line,
                           je.column);
    int rc = -1;
    if (!json_is_object(root)) {
        plugin_fail(err, errlen, "settings must be a JSON object");
        goto out;
    }
    const char *k;
    json_t *val;
    json_object_foreach(root, k, val) {
        if (strcmp(k, key) != 0) {
            plugin_fail(err, errlen, "unknown key \"%s\" (expected \"%s\")", k, key);
            goto out;
        }
    }
    const json_t *arr = json_object_get(root, key);
    if (arr && !json_is_array(arr)) {
        plugin_fail(err, errlen, "%s: must be an array of %s objects", key, item_kind);
        goto out;
    }
    size_t n = arr ? json_array_size(arr) : 0;
    list->items = calloc(n ? n : 1, item_size);
    list->names = calloc(n + 1, sizeof *list->names);
    if (!list->items || !list->names) {
        plugin_fail(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        list->n = i + 1; /* so the caller frees the partially parsed one too */
        char *item = (char *)list->items + i * item_size;
        if (parse(json_array_get(arr, i), i, item, err, errlen) != 0)
            goto out;
        const char *name = *(char **)item;
        for (size_t j = 0; j < i; j++)
            if (strcmp(list->names[j], name) == 0) {
                plugin_fail(err, errlen, "%s[%zu]: name \"%s\" is already used by %s[%zu]", key, i, name, key, j);
                goto out;
            }
        list->names[i] = name;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The item named `name` (NULL when none). */
static __attribute__((unused)) void *plugin_find(const plugin_list *list, size_t item_size, const char *name)
{
    for (size_t i = 0; name && i < list->n; i++) {
        char *item = (char *)list->items + i * item_size;
        if (strcmp(*(char **)item, name) == 0)
            return item;
    }
    return NULL;
}

#endif
