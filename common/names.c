/* Validation of the names that appear in subjects and KV keys. */
#include <jetsched/names.h>

#include <ctype.h>
#include <string.h>

static bool all_chars(const char *s, size_t max, bool upper_ok)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                  (upper_ok && c >= 'A' && c <= 'Z');
        if (!ok || n >= max)
            return false;
    }
    return n > 0;
}

bool jet_name_valid(const char *s) { return all_chars(s, JET_NAME_MAX, false); }
bool jet_task_id_valid(const char *s) { return all_chars(s, JET_TASK_ID_MAX, true); }

bool jet_limit_key_valid(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == ':' || c == '-';
        if (!ok || n >= JET_LIMIT_KEY_MAX)
            return false;
    }
    return n > 0;
}

static const char *const prio_names[JET_PRIO_COUNT] = {"high", "normal", "low"};

const char *jet_priority_name(jet_priority p)
{
    return (unsigned)p < JET_PRIO_COUNT ? prio_names[p] : "normal";
}

bool jet_priority_parse(const char *s, jet_priority *out)
{
    for (int i = 0; i < JET_PRIO_COUNT; i++)
        if (s && strcmp(s, prio_names[i]) == 0) {
            *out = (jet_priority)i;
            return true;
        }
    return false;
}

void jet_trace_id(const char *tp, char out[33])
{
    out[0] = '\0';
    if (!tp || strlen(tp) < 55 || tp[2] != '-' || tp[35] != '-')
        return;
    for (int i = 0; i < 32; i++) {
        char ch = tp[3 + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return;
    }
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
}
