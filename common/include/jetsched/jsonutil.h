/* JSON helpers on jansson: typed field access with errors that name the
 * field, and the API error body {"error":{"code":...,"message":...}}. */
#ifndef JETSCHED_JSONUTIL_H
#define JETSCHED_JSONUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <jetsched/status.h>

/* Each getter: a missing field returns JET_ERR_NOT_FOUND when !required
 * (leaving *out untouched) and JET_ERR_INVALID naming the field when required;
 * a wrong type is always JET_ERR_INVALID naming the field and expected type. */
jet_status jet_json_get_str(const json_t *obj, const char *field, bool required, const char **out, jet_err *err);
jet_status jet_json_get_int(const json_t *obj, const char *field, bool required, int64_t *out, jet_err *err);
jet_status jet_json_get_bool(const json_t *obj, const char *field, bool required, bool *out, jet_err *err);
jet_status jet_json_get_obj(const json_t *obj, const char *field, bool required, json_t **out, jet_err *err);

/* The deepest nesting of arrays and objects in JSON text buf[0..len) as a
 * peer sent it, measured without parsing (strings and escapes skipped), so
 * that a parser's recursion is bounded before it runs. Stops counting at
 * max + 1. */
int jet_json_depth(const char *buf, size_t len, int max);

/* Parses a JSON object from bytes; a non-object or bad JSON is JET_ERR_INVALID with line:column. */
jet_status jet_json_parse_object(const char *buf, size_t len, json_t **out, jet_err *err);

/* {"error":{"code":"<jet_status_code>","message":"<msg>"}} as a new reference. */
json_t *jet_json_error(jet_status code, const char *msg);
/* Compact serialisation; caller frees with free(). */
char *jet_json_dumps(const json_t *v);

#endif
