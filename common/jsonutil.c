/* JSON helpers: typed getters that name the field at fault, error bodies. */
#include <jetsched/jsonutil.h>

#include <stdlib.h>

static jet_status get_field(const json_t *obj, const char *field, bool required, json_t **v, jet_err *err)
{
    *v = json_is_object(obj) ? json_object_get(obj, field) : NULL;
    if (!*v || json_is_null(*v)) {
        if (required)
            return jet_err_set(err, JET_ERR_INVALID, "field \"%s\" is required", field);
        return JET_ERR_NOT_FOUND;
    }
    return JET_OK;
}

jet_status jet_json_get_str(const json_t *obj, const char *field, bool required, const char **out, jet_err *err)
{
    json_t *v;
    jet_status st = get_field(obj, field, required, &v, err);
    if (st)
        return st;
    if (!json_is_string(v))
        return jet_err_set(err, JET_ERR_INVALID, "field \"%s\" must be a string", field);
    *out = json_string_value(v);
    return JET_OK;
}

jet_status jet_json_get_int(const json_t *obj, const char *field, bool required, int64_t *out, jet_err *err)
{
    json_t *v;
    jet_status st = get_field(obj, field, required, &v, err);
    if (st)
        return st;
    if (!json_is_integer(v))
        return jet_err_set(err, JET_ERR_INVALID, "field \"%s\" must be an integer", field);
    *out = (int64_t)json_integer_value(v);
    return JET_OK;
}

jet_status jet_json_get_bool(const json_t *obj, const char *field, bool required, bool *out, jet_err *err)
{
    json_t *v;
    jet_status st = get_field(obj, field, required, &v, err);
    if (st)
        return st;
    if (!json_is_boolean(v))
        return jet_err_set(err, JET_ERR_INVALID, "field \"%s\" must be true or false", field);
    *out = json_is_true(v);
    return JET_OK;
}

jet_status jet_json_get_obj(const json_t *obj, const char *field, bool required, json_t **out, jet_err *err)
{
    json_t *v;
    jet_status st = get_field(obj, field, required, &v, err);
    if (st)
        return st;
    if (!json_is_object(v))
        return jet_err_set(err, JET_ERR_INVALID, "field \"%s\" must be an object", field);
    *out = v;
    return JET_OK;
}

int jet_json_depth(const char *buf, size_t len, int max)
{
    int depth = 0, deepest = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > deepest && (deepest = depth) > max)
                return deepest;
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

jet_status jet_json_parse_object(const char *buf, size_t len, json_t **out, jet_err *err)
{
    json_error_t je;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        return jet_err_set(err, JET_ERR_INVALID, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return jet_err_set(err, JET_ERR_INVALID, "request body must be a JSON object");
    }
    *out = v;
    return JET_OK;
}

json_t *jet_json_error(jet_status code, const char *msg)
{
    return json_pack("{s:{s:s,s:s}}", "error", "code", jet_status_code(code), "message", msg ? msg : "");
}

char *jet_json_dumps(const json_t *v) { return json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII); }
